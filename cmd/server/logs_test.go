package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
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
	// A second factor: its secret, codes, recovery codes and MFA tokens,
	// and a service's client secret and token.
	jsonPost := func(path, token, body string) map[string]any {
		return post(path, "application/json", body, "Authorization", "Bearer "+token)
	}
	fresh := post("/token", formType, form("grant_type", "password", "username", "alice", "password", alicePassword))
	aliceToken, _ := fresh["access_token"].(string)
	secrets = append(secrets, aliceToken)
	enrolment := post("/users/me/mfa/totp", "application/json", "", "Authorization", "Bearer "+aliceToken)
	totpSecret, _ := enrolment["secret"].(string)
	if totpSecret == "" {
		t.Fatalf("enrolment: %v", enrolment)
	}
	code, err := totp.GenerateCode(totpSecret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	confirmed := jsonPost("/users/me/mfa/totp/confirm", aliceToken, `{"code":"`+code+`"}`)
	codes, _ := confirmed["recovery_codes"].([]any)
	if len(codes) == 0 {
		t.Fatalf("confirm: %v", confirmed)
	}
	secrets = append(secrets, totpSecret, codes[0].(string), codes[1].(string))
	post("/token", formType, form("grant_type", "password", "username", "alice", "password", alicePassword, "otp", "000000"))
	step := post("/token", formType, form("grant_type", "password", "username", "alice", "password", alicePassword))
	mfa, _ := step["mfa_token"].(string)
	secrets = append(secrets, mfa)
	post("/token", formType, form("grant_type", "http://auth0.com/oauth/grant-type/mfa-otp", "mfa_token", mfa, "otp", codes[0].(string)))
	post("/token", formType, form("grant_type", "http://auth0.com/oauth/grant-type/mfa-otp", "mfa_token", mfa, "otp", codes[1].(string)))
	svc := jsonPost("/clients", admin, `{"client_id":"svc","service_scopes":["users:read"],"grants":["client_credentials"]}`)
	svcSecret, _ := svc["client_secret"].(string)
	cc := post("/token", formType, form("grant_type", "client_credentials", "client_id", "svc", "client_secret", svcSecret))
	ccToken, _ := cc["access_token"].(string)
	if svcSecret == "" || ccToken == "" {
		t.Fatalf("service: %v %v", svc, cc)
	}
	secrets = append(secrets, svcSecret, ccToken)
	post("/token", formType, form("grant_type", "client_credentials", "client_id", "svc", "client_secret", svcSecret+"x"))
	post("/introspect", formType, form("token", ccToken, "client_id", "svc", "client_secret", svcSecret))
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
