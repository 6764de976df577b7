package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestLogsHoldNoSecrets drives every path that handles a password or a
// token, including failures and malformed requests, then searches all the
// server wrote for any of those secrets.
func TestLogsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	env["GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD"] = adminPassword
	env["GATEHOUSE_LOG_LEVEL"] = "debug"
	base, stderr, stop := startServer(t, env)
	c := newClient(t, base)
	admin := accessToken(t, c, "admin", adminPassword, "")
	createUser(t, c, admin, "alice", alicePassword, "me")

	secrets := []string{adminPassword, alicePassword, admin}
	post := func(path, contentType, body string, header ...string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		m := map[string]any{}
		_ = json.Unmarshal(b, &m)
		return m
	}
	form := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	const formType = "application/x-www-form-urlencoded"

	login := post("/token", formType, form("grant_type", "password", "username", "alice", "password", alicePassword))
	access, refresh := login["access_token"].(string), login["refresh_token"].(string)
	secrets = append(secrets, access, refresh)
	rotated := post("/token", formType, form("grant_type", "refresh_token", "refresh_token", refresh))
	secrets = append(secrets, rotated["access_token"].(string), rotated["refresh_token"].(string))

	// Failures that carry secrets: wrong password, replayed refresh token,
	// password in the URL, JSON to the token endpoint, a bad bearer token,
	// malformed JSON holding a password, a too-short new password.
	wrong := "wrong-password-123"
	secrets = append(secrets, wrong, "never-logged-password-1")
	post("/token", formType, form("grant_type", "password", "username", "alice", "password", wrong))
	// A password typed into the username field, and a huge junk name: the
	// log gets neither (only valid usernames, else a short keyed hash).
	typo := "Typed-In-The-Username-Field!2"
	junk := strings.Repeat("junk-username-", 4096)
	secrets = append(secrets, typo, junk[:200])
	post("/token", formType, form("grant_type", "password", "username", typo, "password", "irrelevant-password"))
	post("/token", formType, form("grant_type", "password", "username", junk, "password", "irrelevant-password"))
	post("/token", formType, form("grant_type", "refresh_token", "refresh_token", refresh))
	post("/token?password="+url.QueryEscape(alicePassword), formType, form("grant_type", "password", "username", "alice"))
	post("/token", "application/json", `{"password":"`+alicePassword+`"}`)
	post("/users", "application/json", `{"username":"bob","password":"never-logged-password-1"`, "Authorization", "Bearer "+admin)
	post("/users/me/password", "application/json", `{"current_password":"`+alicePassword+`","new_password":"x"}`, "Authorization", "Bearer "+access)
	post("/introspect", formType, form("token", access), "Authorization", "Bearer "+admin+"tampered")
	post("/revoke", formType, form("token", rotated["refresh_token"].(string)))
	if _, err := runCLI(t, env, "cli-password-12345\n", "users", "create", "carol"); err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, "cli-password-12345")
	stop()

	logs := stderr.String()
	if len(jsonLogLines(t, logs)) == 0 {
		t.Fatal("the server logged nothing; the test would prove nothing")
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			t.Errorf("the logs contain a secret (%.12s…)", s)
		}
		// A token's signature or payload alone is a secret too.
		for _, part := range strings.Split(s, ".") {
			if len(part) >= 20 && strings.Contains(logs, part) {
				t.Errorf("the logs contain part of a token (%.12s…)", part)
			}
		}
	}
}
