package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/client"
	"github.com/gatehouse/gatehouse/internal/httpapi"
)

// Passwords used across the tests; each is at least users.MinPasswordLen.
const (
	adminPassword = "admin-password-1"
	alicePassword = "alice-password-1"
	bobPassword   = "bob-password-1"
)

// syncBuffer is a bytes.Buffer safe for the server goroutine to write while
// the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testEnv is the environment of a server on a free port with its own
// SQLite file, and argon2id parameters small enough for -race.
func testEnv(t *testing.T) map[string]string {
	t.Helper()
	db := filepath.ToSlash(filepath.Join(t.TempDir(), "gatehouse.db"))
	return map[string]string{
		"GATEHOUSE_ADDR":              "127.0.0.1:0",
		"GATEHOUSE_DATABASE_URL":      "sqlite://" + db, // db is absolute: sqlite:///tmp/…
		"GATEHOUSE_ARGON2_MEMORY_KIB": "64",
		"GATEHOUSE_ARGON2_ITERATIONS": "1",
	}
}

// getenvFrom is a getenv over a copy of env, so the caller may keep
// changing env for a later run.
func getenvFrom(env map[string]string) func(string) string {
	m := make(map[string]string, len(env))
	for k, v := range env {
		m[k] = v
	}
	return func(name string) string { return m[name] }
}

// startServer runs the server with env until stop is called (also at
// cleanup), and returns once GET /readyz answers 200. stop cancels run's
// context and fails the test unless run returns nil: shutdown is graceful.
func startServer(t *testing.T, env map[string]string) (baseURL string, stderr *syncBuffer, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr = &syncBuffer{}
	var runErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		runErr = run(ctx, nil, getenvFrom(env), strings.NewReader(""), io.Discard, stderr)
	}()

	var once sync.Once
	exitedEarly := false
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(shutdownTimeout + 5*time.Second):
				t.Errorf("run did not return within %v of its context being cancelled", shutdownTimeout+5*time.Second)
				return
			}
			if runErr != nil && !exitedEarly {
				t.Errorf("run returned %v after its context was cancelled, want nil (graceful shutdown)\nstderr:\n%s", runErr, stderr)
			}
		})
	}
	t.Cleanup(stop)

	deadline := time.Now().Add(30 * time.Second)
	var addr string
	for addr == "" {
		if rec, ok := findLog(stderr.String(), "gatehouse listening"); ok {
			addr, _ = rec["addr"].(string)
			if addr == "" {
				t.Fatalf("the \"gatehouse listening\" log line has no addr: %v", rec)
			}
			break
		}
		select {
		case <-done:
			exitedEarly = true
			t.Fatalf("run returned before listening: %v\nstderr:\n%s", runErr, stderr)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no \"gatehouse listening\" log line within 30s\nstderr:\n%s", stderr)
		}
	}
	baseURL = "http://" + addr

	for {
		resp, err := http.Get(baseURL + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /readyz did not answer 200 within 30s (last: %v)\nstderr:\n%s", err, stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return baseURL, stderr, stop
}

// findLog returns the first JSON log record of stderr whose msg is msg.
// Lines that are not JSON (the one-time password banner) are skipped.
func findLog(stderr, msg string) (map[string]any, bool) {
	for _, line := range strings.Split(stderr, "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			return rec, true
		}
	}
	return nil, false
}

// jsonLogLines returns the lines of stderr that are JSON log records,
// failing on a line that starts like one but does not parse.
func jsonLogLines(t *testing.T, stderr string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(stderr, "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		if !json.Valid([]byte(line)) {
			t.Errorf("stderr line is not valid JSON: %s", line)
		}
		out = append(out, line)
	}
	return out
}

// runCLI runs the program once with args, stdin and env, as a shell would.
func runCLI(t *testing.T, env map[string]string, stdin string, args ...string) (stdout string, err error) {
	t.Helper()
	stdout, _, err = runCLILogged(t, env, stdin, args...)
	return stdout, err
}

// runCLILogged is runCLI that also returns what the command logged.
func runCLILogged(t *testing.T, env map[string]string, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = run(t.Context(), args, getenvFrom(env), strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), err
}

func newClient(t *testing.T, baseURL string) *client.ClientWithResponses {
	t.Helper()
	c, err := client.NewClientWithResponses(baseURL)
	if err != nil {
		t.Fatalf("NewClientWithResponses(%q) = %v", baseURL, err)
	}
	return c
}

// bearer sends token as in RFC 6750 §2.1.
func bearer(token string) client.RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+token)
		return nil
	}
}

// passwordGrant posts a form-encoded password grant; scope "" requests none.
func passwordGrant(t *testing.T, c *client.ClientWithResponses, username, password, scope string) *client.IssueTokenResponse {
	t.Helper()
	body := client.IssueTokenFormdataRequestBody{GrantType: "password", Username: &username, Password: &password}
	if scope != "" {
		body.Scope = &scope
	}
	resp, err := c.IssueTokenWithFormdataBodyWithResponse(t.Context(), body)
	if err != nil {
		t.Fatalf("POST /token as %s: %v", username, err)
	}
	return resp
}

// accessToken logs in and returns the access token, failing unless 200.
func accessToken(t *testing.T, c *client.ClientWithResponses, username, password, scope string) string {
	t.Helper()
	resp := passwordGrant(t, c, username, password, scope)
	if resp.StatusCode() != http.StatusOK || resp.JSON200 == nil {
		t.Fatalf("POST /token as %s (scope %q) = %d %s, want 200", username, scope, resp.StatusCode(), resp.Body)
	}
	return resp.JSON200.AccessToken
}

// createUser creates a user through POST /users, failing unless 201.
func createUser(t *testing.T, c *client.ClientWithResponses, adminToken, username, password string, scopes ...string) *client.User {
	t.Helper()
	resp, err := c.CreateUserWithResponse(t.Context(), client.NewUser{Username: username, Password: password, Scopes: &scopes}, bearer(adminToken))
	if err != nil {
		t.Fatalf("POST /users %s: %v", username, err)
	}
	if resp.StatusCode() != http.StatusCreated || resp.JSON201 == nil {
		t.Fatalf("POST /users %s = %d %s, want 201", username, resp.StatusCode(), resp.Body)
	}
	return resp.JSON201
}

// jwtParts decodes a JWS compact serialization's header and payload without
// checking the signature: the server's own validator does that.
func jwtParts(t *testing.T, token string) (header, payload map[string]any) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("access token has %d dot-separated parts, want 3: %q", len(parts), token)
	}
	decode := func(what, s string) map[string]any {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("JWT %s is not base64url: %v", what, err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("JWT %s is not a JSON object: %v: %s", what, err, b)
		}
		return m
	}
	return decode("header", parts[0]), decode("payload", parts[1])
}

// specScopes is every scope api/openapi.yaml declares: what the bootstrap
// admin holds.
func specScopes(t *testing.T) []string {
	t.Helper()
	doc, err := httpapi.Spec()
	if err != nil {
		t.Fatal(err)
	}
	return httpapi.SpecScopes(doc)
}
