package main

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// bannerRE matches the one-time banner bootstrapAdmin prints on stderr.
var bannerRE = regexp.MustCompile(`created the admin user "admin" with the password:\s+(\S+)\s`)

func TestBootstrap(t *testing.T) {
	t.Parallel()
	env := testEnv(t) // no GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD
	// Both runs bind a fresh port: a fixed issuer keeps tokens valid across them.
	env["GATEHOUSE_ISSUER"] = "https://auth.example.test"
	base, stderr1, stop := startServer(t, env)
	c := newClient(t, base)

	out1 := stderr1.String()
	m := bannerRE.FindStringSubmatch(out1)
	if m == nil {
		t.Fatalf("first start printed no generated admin password on stderr:\n%s", out1)
	}
	password := m[1]
	var oldToken string

	t.Run("generated_password_printed_once", func(t *testing.T) {
		if n := strings.Count(out1, password); n != 1 {
			t.Errorf("the generated password appears %d times on stderr, want 1:\n%s", n, out1)
		}
		if len(password) < 16 {
			t.Errorf("generated password %q is shorter than 16 characters", password)
		}
	})

	t.Run("generated_password_logs_in", func(t *testing.T) {
		oldToken = accessToken(t, c, "admin", password, "")
	})

	t.Run("bootstrap_is_logged_without_the_password", func(t *testing.T) {
		if _, ok := findLog(out1, "bootstrap admin created"); !ok {
			t.Errorf("no \"bootstrap admin created\" log record:\n%s", out1)
		}
	})

	stop()
	listening1, _ := findLog(stderr1.String(), "gatehouse listening")

	base, stderr2, _ := startServer(t, env)
	c = newClient(t, base)
	out2 := stderr2.String()

	t.Run("restart_prints_no_new_password", func(t *testing.T) {
		if strings.Contains(out2, "created the admin user") || strings.Contains(out2, password) {
			t.Errorf("second start on the same database printed a password:\n%s", out2)
		}
		if _, ok := findLog(out2, "bootstrap admin created"); ok {
			t.Errorf("second start on the same database created the admin again:\n%s", out2)
		}
	})

	t.Run("admin_still_logs_in_after_restart", func(t *testing.T) {
		accessToken(t, c, "admin", password, "")
	})

	t.Run("rs256_key_is_persisted_so_old_tokens_stay_valid", func(t *testing.T) {
		listening2, _ := findLog(out2, "gatehouse listening")
		kid1, _ := listening1["kid"].(string)
		kid2, _ := listening2["kid"].(string)
		if kid1 == "" || kid1 != kid2 {
			t.Errorf("kid before restart %q, after %q; want the same, non-empty", kid1, kid2)
		}
		if oldToken == "" {
			t.Fatal("no token was issued before the restart; the first run failed to log in")
		}
		if header, _ := jwtParts(t, oldToken); header["kid"] != kid1 {
			t.Errorf("token kid = %v, want the logged kid %q", header["kid"], kid1)
		}
		resp, err := c.GetCurrentUserWithResponse(t.Context(), bearer(oldToken))
		if err != nil {
			t.Fatalf("GET /users/me: %v", err)
		}
		if resp.StatusCode() != http.StatusOK {
			t.Errorf("GET /users/me with a token issued before the restart = %d %s, want 200", resp.StatusCode(), resp.Body)
		}
	})

	t.Run("json_logs_never_contain_the_password", func(t *testing.T) {
		for _, line := range jsonLogLines(t, out1+stderr2.String()) {
			if strings.Contains(line, password) {
				t.Errorf("a log record contains the admin password: %s", line)
			}
		}
	})
}
