// Package fastapiexample tests app.py, the FastAPI resource server example,
// against a real gatehouse: the Python side runs under Debian's
// python3-fastapi, python3-uvicorn and python3-jwt.
package fastapiexample

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/servertest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	servertest.Cleanup()
	os.Exit(code)
}

// python finds an interpreter with FastAPI, uvicorn and PyJWT:
// $GATEHOUSE_PYTHON, else Debian's /usr/bin/python3, else python3 on PATH.
// Without one the test skips, except in CI, where it fails.
func python(t *testing.T) string {
	t.Helper()
	candidates := []string{"/usr/bin/python3", "python3"}
	if p := os.Getenv("GATEHOUSE_PYTHON"); p != "" {
		candidates = []string{p}
	}
	var why string
	for _, c := range candidates {
		out, err := exec.Command(c, "-c", "import fastapi, uvicorn, jwt, cryptography").CombinedOutput()
		if err == nil {
			return c
		}
		why += fmt.Sprintf("%s: %v %s; ", c, err, strings.TrimSpace(string(out)))
	}
	const install = "apt-get install -y python3-fastapi python3-uvicorn python3-jwt python3-cryptography"
	if os.Getenv("CI") == "true" {
		t.Fatalf("the FastAPI example needs %s (%s)", install, why)
	}
	t.Skipf("skipping the FastAPI example: no Python with FastAPI (%s); %s runs it", why, install)
	return ""
}

// gatehouse is a running server with users for the example.
type gatehouse struct {
	url string
}

// token logs username in and returns the token response's fields.
func (g gatehouse) token(t *testing.T, username, password, scope string) (access, refresh string) {
	t.Helper()
	resp, err := http.PostForm(g.url+"/token", url.Values{"grant_type": {"password"}, "username": {username}, "password": {password}, "scope": {scope}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil || resp.StatusCode != 200 {
		t.Fatalf("login %s: %d %v %v", username, resp.StatusCode, raw, err)
	}
	access, _ = raw["access_token"].(string)
	refresh, _ = raw["refresh_token"].(string)
	return access, refresh
}

// call sends method target with the headers and returns the status, the
// challenge and the body.
func call(t *testing.T, method, target string, header ...string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), string(b)
}

func TestFastAPIResourceServer(t *testing.T) {
	py := python(t)
	// Rotated keys sign at once, so a rotation shows in the next token.
	g := gatehouse{servertest.StartT(t, map[string]string{"GATEHOUSE_KEY_PREPUBLISH": "0"}).URL}
	admin, _ := g.token(t, "admin", servertest.AdminPassword, "") // every scope the admin holds
	for name, scopes := range map[string]string{"alice": `["me"]`, "carol": `["me","users:read"]`, "inspector": `["tokens:introspect"]`} {
		req, _ := http.NewRequest("POST", g.url+"/users", strings.NewReader(`{"username":"`+name+`","password":"`+name+`-password-1","scopes":`+scopes+`}`))
		req.Header.Set("Authorization", "Bearer "+admin)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 201 {
			t.Fatalf("create %s: %v %v", name, resp, err)
		}
		resp.Body.Close()
	}
	inspector, _ := g.token(t, "inspector", "inspector-password-1", "tokens:introspect")

	// uvicorn serves on a socket this test opened: no port to guess.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	app := "http://" + ln.Addr().String()
	cmd := exec.Command(py, "-m", "uvicorn", "app:app", "--fd", "3", "--log-level", "warning")
	cmd.ExtraFiles = []*os.File{f}
	// No __pycache__ left in the source tree.
	cmd.Env = append(os.Environ(), "GATEHOUSE_ISSUER="+g.url, "GATEHOUSE_INTROSPECT_TOKEN="+inspector, "PYTHONDONTWRITEBYTECODE=1")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get(app + "/openapi.json"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the FastAPI app did not answer within 30s:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	alice, aliceRefresh := g.token(t, "alice", "alice-password-1", "me")
	carol, _ := g.token(t, "carol", "carol-password-1", "me users:read")

	t.Run("a_valid_token_reaches_the_route", func(t *testing.T) {
		status, _, body := call(t, "GET", app+"/me", "Authorization", "Bearer "+alice)
		if status != 200 || !strings.Contains(body, `"username":"alice"`) {
			t.Fatalf("got %d %s", status, body)
		}
		if status, _, _ := call(t, "GET", app+"/reports/users", "Authorization", "Bearer "+carol); status != 200 {
			t.Fatalf("carol's report: %d", status)
		}
	})

	t.Run("refusals_are_gatehouses", func(t *testing.T) {
		tampered := alice[:len(alice)-4] + "AAAA"
		for _, tc := range []struct {
			name, path, gatehousePath string
			header                    []string
			status                    int
		}{
			{"no_token", "/me", "/users/me", nil, 401},
			{"empty_token", "/me", "/users/me", []string{"Authorization", "Bearer "}, 401},
			{"another_scheme", "/me", "/users/me", []string{"Authorization", "Basic YTpi"}, 401},
			{"token_only_in_the_query", "/me?access_token=" + alice, "/users/me?access_token=" + alice, nil, 401},
			{"token_in_the_query_and_the_header", "/me?access_token=" + alice, "/users/me?access_token=" + alice, []string{"Authorization", "Bearer " + alice}, 400},
			{"two_headers", "/me", "/users/me", []string{"Authorization", "Bearer " + alice, "Authorization", "Bearer " + alice}, 400},
			{"missing_scope", "/reports/users", "/users", []string{"Authorization", "Bearer " + alice}, 403},
		} {
			t.Run(tc.name, func(t *testing.T) {
				status, challenge, body := call(t, "GET", app+tc.path, tc.header...)
				wantStatus, wantChallenge, _ := call(t, "GET", g.url+tc.gatehousePath, tc.header...)
				if status != tc.status || wantStatus != tc.status {
					t.Fatalf("example %d, gatehouse %d, want %d (%s)", status, wantStatus, tc.status, body)
				}
				if challenge != wantChallenge {
					t.Errorf("challenge %q, gatehouse's %q", challenge, wantChallenge)
				}
			})
		}
		status, challenge, _ := call(t, "GET", app+"/me", "Authorization", "Bearer "+tampered)
		if status != 401 || !strings.HasPrefix(challenge, `Bearer realm="gatehouse", error="invalid_token"`) {
			t.Errorf("tampered token: %d %q", status, challenge)
		}
		// A refresh token is not an access token.
		if status, _, _ := call(t, "GET", app+"/me", "Authorization", "Bearer "+aliceRefresh); status != 401 {
			t.Errorf("refresh token as a bearer: %d, want 401", status)
		}
	})

	t.Run("a_token_signed_by_a_rotated_key_is_accepted", func(t *testing.T) {
		req, _ := http.NewRequest("POST", g.url+"/keys/rotate", nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode/100 != 2 {
			t.Fatalf("rotate: %v %v", resp, err)
		}
		resp.Body.Close()
		fresh, _ := g.token(t, "alice", "alice-password-1", "me")
		if kid(t, fresh) == kid(t, alice) {
			t.Fatal("the rotation did not change the signing key")
		}
		for _, tok := range []string{fresh, alice} {
			if status, _, body := call(t, "GET", app+"/me", "Authorization", "Bearer "+tok); status != 200 {
				t.Errorf("token of key %s: %d %s", kid(t, tok), status, body)
			}
		}
	})

	t.Run("a_revoked_token_is_refused_where_the_route_introspects", func(t *testing.T) {
		resp, err := http.PostForm(g.url+"/revoke", url.Values{"token": {aliceRefresh}})
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("revoke: %v %v", resp, err)
		}
		resp.Body.Close()
		status, challenge, _ := call(t, "POST", app+"/account/delete", "Authorization", "Bearer "+alice)
		if status != 401 || !strings.Contains(challenge, `error_description="the access token was revoked"`) {
			t.Errorf("revoked token at an introspecting route: %d %q", status, challenge)
		}
		// Verified locally, it stays valid until it expires: what the
		// short access-token lifetime is for.
		if status, _, _ := call(t, "GET", app+"/me", "Authorization", "Bearer "+alice); status != 200 {
			t.Errorf("revoked token at a local-only route: %d, want 200 until it expires", status)
		}
		if status, _, _ := call(t, "POST", app+"/account/delete", "Authorization", "Bearer "+carol); status != 200 {
			t.Errorf("an active token at the introspecting route: %d", status)
		}
	})
}

// kid is the key id of a JWS's header.
func kid(t *testing.T, token string) string {
	t.Helper()
	seg, _, _ := strings.Cut(token, ".")
	b, err := base64URL(seg)
	if err != nil {
		t.Fatal(err)
	}
	var h struct{ Kid string }
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h.Kid
}

func base64URL(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
