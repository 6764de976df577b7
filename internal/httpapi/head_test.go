package httpapi_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// HEAD works wherever GET does (RFC 9110 §9.3.2): the same status and
// headers without a body, after the same checks: a protected operation
// still wants its bearer token and scope.
func TestHead(t *testing.T) {
	ts := newTestServer(t)
	alice := ts.token(t, "alice", userPassword, "me")
	for _, tc := range []struct {
		name, target string
		header       []string
		status       int
	}{
		{"healthz", "/healthz", nil, 200},
		{"jwks", "/.well-known/jwks.json", nil, 200},
		{"spec", "/openapi.yaml", nil, 200},
		{"root", "/", nil, 200},
		{"protected_with_token", "/users/me", bearer(alice), 200},
		{"protected_without_token", "/users/me", nil, 401},
		{"protected_without_scope", "/users", bearer(alice), 403},
		{"unknown_path", "/nope", nil, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			get := ts.do(t, "GET", tc.target, "", tc.header...)
			head := ts.do(t, "HEAD", tc.target, "", tc.header...)
			if get.status != tc.status || head.status != tc.status {
				t.Fatalf("GET %d, HEAD %d, want %d", get.status, head.status, tc.status)
			}
			if len(head.body) != 0 {
				t.Errorf("HEAD answered a body: %.80s", head.body)
			}
			for _, h := range []string{"Content-Type", "Cache-Control", "X-Content-Type-Options", "WWW-Authenticate"} {
				if head.header.Get(h) != get.header.Get(h) {
					t.Errorf("%s: HEAD %q, GET %q", h, head.header.Get(h), get.header.Get(h))
				}
			}
		})
	}
	t.Run("allow_lists_head_beside_get", func(t *testing.T) {
		r := ts.do(t, "DELETE", "/healthz", "")
		if r.status != 405 || r.header.Get("Allow") != "GET, HEAD" {
			t.Fatalf("got %d Allow %q, want 405 Allow GET, HEAD", r.status, r.header.Get("Allow"))
		}
	})
}

// GET / points at the documentation, the spec and the metadata, each of
// which answers.
func TestRoot(t *testing.T) {
	ts := newTestServer(t)
	r := ts.do(t, "GET", "/", "")
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("got %d %q", r.status, r.header.Get("Content-Type"))
	}
	var links map[string]string
	if err := json.Unmarshal(r.body, &links); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"docs", "openapi", "openapi_json", "metadata", "jwks"} {
		if links[k] == "" {
			t.Errorf("no %s link in %s", k, r.body)
			continue
		}
		if got := ts.do(t, "GET", links[k], ""); got.status != 200 {
			t.Errorf("%s link %s answers %d", k, links[k], got.status)
		}
	}
}
