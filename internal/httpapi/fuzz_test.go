package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/users"
)

// FuzzHandler drives the whole HTTP surface (NewHandler over a real SQLite
// store and real RS256 keys) with arbitrary requests. Run it with
// `go test -run '^$' -fuzz '^FuzzHandler$' ./internal/httpapi/`, or with
// scripts/fuzz.sh; plain `go test` runs its seeds.

// fuzzMethods are the request methods the fuzzer picks from: the routed
// ones, some net/http treats specially, and a few no route knows.
var fuzzMethods = []string{
	http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete,
	http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodConnect,
	"get", "PROPFIND", "BREW",
}

// Authorization headers the fuzzer picks from, so that it reaches past the
// bearer check without having to forge a signature.
const (
	authNone   = iota // no Authorization header
	authRaw           // the fuzzed value
	authAdmin         // Bearer, every scope
	authAlice         // Bearer, scope "me" only
	authClient        // Basic, a registered confidential client
	authTwo           // the admin's Bearer and the fuzzed value: two headers
	authModes
)

var authNames = [authModes]string{"none", "raw", "admin", "alice", "client", "admin+raw"}

const (
	fuzzAdminPassword = "fuzz admin password"
	fuzzAlicePassword = "fuzz alice password"
	fuzzClientID      = "fuzz-client"
)

// fuzzIdentity is a user the fuzzer acts as, kept in this state by repair.
type fuzzIdentity struct {
	name, password string
	scopes         []string
	token          string
}

// fuzzServer is the handler of FuzzHandler, built once per fuzzing process.
// Requests may change its store (create and delete users, change passwords,
// revoke tokens); repair restores what the fuzzer relies on.
type fuzzServer struct {
	handler http.Handler
	users   *users.Service
	clients *auth.Clients
	// minter logs the fixture's users in without the handler's login
	// throttle, which the fuzzer's wrong passwords may have engaged.
	minter       *auth.Issuer
	validator    *auth.Validator
	admin, alice *fuzzIdentity
	clientSecret string

	mu  sync.Mutex
	log bytes.Buffer // the handler's log for the current request
}

func (s *fuzzServer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.Write(p)
}

func (s *fuzzServer) takeLog() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.log.String()
	s.log.Reset()
	return out
}

func newFuzzServer(tb testing.TB) *fuzzServer {
	tb.Helper()
	ctx := context.Background()
	st := newStack(tb, 0)
	svc, validator, scopes := st.users, st.validator, st.scopes
	deps, cfg := st.deps, st.cfg
	minter := auth.NewIssuer(deps, cfg)
	deps.Throttle = auth.NewThrottle(st.store, auth.DefaultThrottle())
	issuer := auth.NewIssuer(deps, cfg)
	s := &fuzzServer{
		users:     svc,
		clients:   st.clients,
		minter:    minter,
		validator: validator,
		admin:     &fuzzIdentity{name: "admin", password: fuzzAdminPassword, scopes: scopes},
		alice:     &fuzzIdentity{name: "alice", password: fuzzAlicePassword, scopes: []string{"me"}},
	}
	hd := st.handlerDeps(issuer)
	hd.Logger = slog.New(slog.NewTextHandler(s, nil))
	var err error
	s.handler, err = httpapi.NewHandler(hd)
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.repair(ctx); err != nil {
		tb.Fatal(err)
	}
	return s
}

// repair makes admin and alice exist, enabled, with their scopes, password
// and a valid access token, and the confidential client exist with a
// known secret: whatever the previous request did to them.
func (s *fuzzServer) repair(ctx context.Context) error {
	for _, id := range []*fuzzIdentity{s.admin, s.alice} {
		u, err := s.users.Get(ctx, id.name)
		switch {
		case errors.Is(err, users.ErrNotFound):
			if _, err := s.users.Create(ctx, users.CLIActor(), users.NewUser{Username: id.name, Password: id.password, Scopes: id.scopes}); err != nil {
				return fmt.Errorf("recreate %s: %w", id.name, err)
			}
			id.token = ""
		case err != nil:
			return err
		case u.Disabled || !slices.Equal(slices.Sorted(slices.Values(u.Scopes)), id.scopes):
			id.token = ""
		}
		if id.token != "" {
			if _, err := s.validator.Verify(id.token); err == nil {
				if _, err := s.users.Authenticate(ctx, id.name, id.password); err == nil {
					continue
				}
			}
		}
		disabled := false
		if _, err := s.users.Update(ctx, users.CLIActor(), id.name, users.Patch{Disabled: &disabled, Scopes: &id.scopes, Password: &id.password}); err != nil {
			return fmt.Errorf("restore %s: %w", id.name, err)
		}
		tok, err := s.minter.Token(ctx, auth.TokenRequest{GrantType: auth.GrantPassword, Username: id.name, Password: id.password, Scope: strings.Join(id.scopes, " ")})
		if err != nil {
			return fmt.Errorf("log in as %s: %w", id.name, err)
		}
		id.token = tok.AccessToken
	}
	if s.clientSecret != "" {
		if _, _, err := s.clients.AuthenticateClient(ctx, fuzzClientID, s.clientSecret); err == nil {
			return nil
		}
	}
	_ = s.clients.DeleteClient(ctx, fuzzClientID)
	_, secret, err := s.clients.RegisterClient(ctx, auth.NewClient{ID: fuzzClientID, Confidential: true})
	if err != nil {
		return fmt.Errorf("register %s: %w", fuzzClientID, err)
	}
	s.clientSecret = secret
	return nil
}

func (s *fuzzServer) authorization(mode uint8, raw string) []string {
	switch mode % authModes {
	case authRaw:
		return []string{raw}
	case authAdmin:
		return []string{"Bearer " + s.admin.token}
	case authAlice:
		return []string{"Bearer " + s.alice.token}
	case authClient:
		return []string{"Basic " + base64.StdEncoding.EncodeToString([]byte(fuzzClientID+":"+s.clientSecret))}
	case authTwo:
		return []string{"Bearer " + s.admin.token, raw}
	}
	return nil
}

// validHeaderValue is what net/http's server accepts as a field value
// (RFC 9110 §5.5): no CTL but HTAB. Other requests never reach a handler.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// readRequest builds the request net/http's server would hand the handler
// for these bytes on the wire, or nil when the server would refuse them
// itself.
func readRequest(method, target string, header http.Header, body string) *http.Request {
	if strings.ContainsAny(target, "\r\n") {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: gatehouse.test\r\n", method, target)
	for name, values := range header {
		for _, v := range values {
			if !validHeaderValue(v) {
				return nil
			}
			fmt.Fprintf(&b, "%s: %s\r\n", name, v)
		}
	}
	if body != "" {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n")
	b.WriteString(body)
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(b.String())))
	if err != nil {
		return nil
	}
	r.RemoteAddr = "192.0.2.1:49152"
	return r
}

// oauthPaths answer client errors in the RFC 6749 §5.2 format.
var oauthPaths = map[string]bool{"/token": true, "/revoke": true, "/introspect": true}

// oauthClientErrors are the 4xx error codes of RFC 6749 §5.2 (and §5.2's
// registry use by RFC 7009 and RFC 7662), with temporarily_unavailable for
// the 429 of login throttling.
var oauthClientErrors = map[string]bool{
	"invalid_request": true, "invalid_client": true, "invalid_grant": true,
	"unauthorized_client": true, "unsupported_grant_type": true, "invalid_scope": true,
	"temporarily_unavailable": true,
}

// mutating reports whether a successful r may have changed the store.
func mutating(r *http.Request, status int) bool {
	return status < 300 && r.Method != http.MethodGet && r.Method != http.MethodHead
}

func FuzzHandler(f *testing.F) {
	s := newFuzzServer(f)
	method := func(m string) uint8 { return uint8(slices.Index(fuzzMethods, m)) }
	const form, jsonType = "application/x-www-form-urlencoded", "application/json"
	for _, seed := range []struct {
		method      uint8
		path        string
		contentType string
		auth        uint8
		raw         string
		body        string
	}{
		{method("POST"), "/token", form, authNone, "", "grant_type=password&username=alice&password=fuzz+alice+password"},
		{method("POST"), "/token", form, authNone, "", "grant_type=password&username=alice&password=wrong+password"},
		{method("POST"), "/token", form, authNone, "", "grant_type=refresh_token&refresh_token=nope"},
		{method("POST"), "/token?password=x", form, authNone, "", "grant_type=password&username=alice"},
		{method("POST"), "/token", form, authNone, "", "grant_type=password&grant_type=password"},
		{method("POST"), "/token", form, authClient, "", "grant_type=password&username=alice&password=fuzz+alice+password"},
		{method("POST"), "/token", form, authRaw, "Basic YXBwOnNlY3JldA==", "grant_type=password&username=alice&password=x"},
		{method("POST"), "/token", form, authRaw, "Basic Og==", "grant_type=password&username=alice&password=x"},
		{method("POST"), "/token", form, authRaw, "Basic !!", "grant_type=password"},
		{method("POST"), "/token", jsonType, authNone, "", `{"grant_type":"password"}`},
		{method("POST"), "/token", "", authNone, "", "grant_type=password"},
		{method("POST"), "/token", form, authNone, "", "%zz"},
		{method("GET"), "/token", "", authNone, "", ""},
		{method("POST"), "/token", form, authNone, "", "grant_type=password&username=" + strings.Repeat("a", httpapi.MaxBodyBytes)},
		{method("POST"), "/users", jsonType, authAdmin, "", `{"username":"` + strings.Repeat("a", httpapi.MaxBodyBytes) + `"}`},
		{method("POST"), "/revoke", form, authNone, "", "token=abc&token_type_hint=refresh_token"},
		{method("POST"), "/revoke", form, authClient, "", "token=abc"},
		{method("POST"), "/introspect", form, authAdmin, "", "token=abc"},
		{method("POST"), "/introspect", form, authAlice, "", "token=abc"},
		{method("POST"), "/introspect", form, authNone, "", "token=abc"},
		{method("GET"), "/users/me", "", authAlice, "", ""},
		{method("GET"), "/users/me?access_token=abc", "", authNone, "", ""},
		{method("GET"), "/users/me", "", authRaw, "Bearer not.a.jwt", ""},
		{method("GET"), "/users/me", "", authRaw, "bearer a\"b", ""},
		{method("GET"), "/users/me", "", authTwo, "Bearer x", ""},
		{method("POST"), "/users/me/password", jsonType, authAlice, "", `{"current_password":"wrong","new_password":"short"}`},
		{method("POST"), "/users/me/password", jsonType, authAlice, "", `{"current_password":"fuzz alice password","new_password":"a new password"}`},
		{method("GET"), "/users?limit=0", "", authAdmin, "", ""},
		{method("GET"), "/users?limit=2&cursor=%%%", "", authAdmin, "", ""},
		{method("GET"), "/users?cursor=not-base64!", "", authAdmin, "", ""},
		{method("POST"), "/users", jsonType, authAdmin, "", `{"username":"bob","password":"bob password","scopes":["me"]}`},
		{method("POST"), "/users", jsonType, authAdmin, "", `{"username":"B O B","password":"x","scopes":["root"],"extra":1}`},
		{method("POST"), "/users", jsonType, authAdmin, "", `{"username":`},
		{method("POST"), "/users", "text/plain", authAdmin, "", "username=bob"},
		{method("POST"), "/users", jsonType, authAlice, "", `{"username":"bob","password":"bob password"}`},
		{method("GET"), "/users/alice", "", authAdmin, "", ""},
		{method("GET"), "/users/a%2Fb", "", authAdmin, "", ""},
		{method("GET"), "/users/%zz", "", authAdmin, "", ""},
		{method("PATCH"), "/users/alice", jsonType, authAdmin, "", `{"disabled":true}`},
		{method("PATCH"), "/users/alice", "application/merge-patch+json", authAdmin, "", `{"scopes":["nope"]}`},
		{method("DELETE"), "/users/alice", "", authAdmin, "", ""},
		{method("DELETE"), "/users/nobody", "", authAdmin, "", ""},
		{method("GET"), "/clients", "", authAdmin, "", ""},
		{method("POST"), "/clients", jsonType, authAdmin, "", `{"client_id":"x y","confidential":"yes"}`},
		{method("DELETE"), "/clients/" + fuzzClientID, "", authAdmin, "", ""},
		{method("POST"), "/keys/rotate", "", authAlice, "", ""},
		{method("GET"), "/.well-known/oauth-authorization-server", "", authNone, "", ""},
		{method("GET"), "/.well-known/jwks.json", "", authNone, "", ""},
		{method("GET"), "/healthz", "", authNone, "", ""},
		{method("GET"), "/readyz", "", authNone, "", ""},
		{method("GET"), "/openapi.json", "", authNone, "", ""},
		{method("GET"), "/docs/nope.js", "", authNone, "", ""},
		{method("DELETE"), "/token", "", authNone, "", ""},
		{method("PROPFIND"), "/users", "", authAdmin, "", ""},
		{method("get"), "/users/me", "", authAlice, "", ""},
		{method("OPTIONS"), "*", "", authNone, "", ""},
		{method("CONNECT"), "gatehouse.test:443", "", authNone, "", ""},
		{method("GET"), "http://gatehouse.test/users/me", "", authAlice, "", ""},
		{method("GET"), "//users/me", "", authAlice, "", ""},
		{method("GET"), "/users/me/../me", "", authAlice, "", ""},
		{method("GET"), "/nope", "", authNone, "", ""},
	} {
		f.Add(seed.method, seed.path, seed.contentType, seed.auth, seed.raw, seed.body)
	}

	f.Fuzz(func(t *testing.T, methodIndex uint8, target, contentType string, authMode uint8, rawAuth, body string) {
		header := http.Header{}
		if contentType != "" {
			header.Set("Content-Type", contentType)
		}
		if values := s.authorization(authMode, rawAuth); values != nil {
			header["Authorization"] = values
		}
		m := fuzzMethods[int(methodIndex)%len(fuzzMethods)]
		r := readRequest(m, target, header, body)
		if r == nil {
			return // net/http's server answers 400 itself
		}
		if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/keys") && authMode%authModes == authAdmin {
			// Each successful rotation generates an RSA key: too slow to
			// fuzz through, and covered by the keys tests.
			return
		}
		_ = s.takeLog()
		rec := httptest.NewRecorder()
		s.handler.ServeHTTP(rec, r)
		status := rec.Code
		res := rec.Result()
		desc := fmt.Sprintf("%s %q (Content-Type %q, Authorization %s %q, body %q)", m, target, contentType, authNames[authMode%authModes], rawAuth, body)

		if status >= 500 {
			t.Fatalf("%s: got %d %s\nlog:\n%s", desc, status, rec.Body.Bytes(), s.takeLog())
		}
		if res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: got %d without X-Content-Type-Options: nosniff", desc, status)
		}
		ct := res.Header.Get("Content-Type")
		if (ct == "application/json" || ct == "application/problem+json") && r.Method != http.MethodHead && !json.Valid(rec.Body.Bytes()) {
			t.Errorf("%s: got %d %s body that is not JSON: %q", desc, status, ct, rec.Body.Bytes())
		}
		if status >= 400 {
			wantErrorBody(t, desc, r, res, rec.Body.Bytes())
		}
		if status == http.StatusUnauthorized {
			// RFC 9110 §15.5.2: a 401 carries a challenge; Basic for a
			// client on the OAuth endpoints (RFC 6749 §5.2 invalid_client),
			// Bearer for an access token (RFC 6750 §3).
			want := "Bearer realm="
			if ct == "application/json" {
				want = "Basic realm="
			}
			if challenge := res.Header.Get("WWW-Authenticate"); !strings.HasPrefix(challenge, want) {
				t.Errorf("%s: got 401 %s with WWW-Authenticate %q, want a %q challenge", desc, ct, challenge, want)
			}
		}
		if status == http.StatusMethodNotAllowed {
			if _, ok := res.Header["Allow"]; !ok {
				t.Errorf("%s: got 405 without Allow (RFC 9110 §15.5.6)", desc)
			}
		}
		if mutating(r, status) {
			if err := s.repair(context.Background()); err != nil {
				t.Fatalf("%s: restoring the fixture: %v", desc, err)
			}
		}
	})
}

// wantErrorBody checks that a 4xx answer is in one of the formats the
// README promises: RFC 6749 §5.2 JSON on the OAuth endpoints, RFC 9457
// problem details (with RFC 6750 challenges) everywhere.
func wantErrorBody(t *testing.T, desc string, r *http.Request, res *http.Response, body []byte) {
	t.Helper()
	status := res.StatusCode
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Errorf("%s: got %d body %q, want a JSON object: %v", desc, status, body, err)
		return
	}
	switch ct := res.Header.Get("Content-Type"); ct {
	case "application/json":
		if r.Method != http.MethodPost || !oauthPaths[r.URL.Path] {
			t.Errorf("%s: got %d OAuth error %s outside the OAuth endpoints", desc, status, body)
		}
		code, ok := m["error"].(string)
		if !ok || !oauthClientErrors[code] {
			t.Errorf("%s: got %d body %s, want an RFC 6749 §5.2 error code", desc, status, body)
		}
		if d, ok := m["error_description"]; ok {
			if s, ok := d.(string); !ok || !isNQSChars(s) {
				t.Errorf("%s: got error_description %q, want %%x20-21 / %%x23-5B / %%x5D-7E (RFC 6749 §5.2)", desc, d)
			}
		}
		if res.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: got %d OAuth error without Cache-Control: no-store (RFC 6749 §5.1)", desc, status)
		}
		if (code == "invalid_client") != (status == http.StatusUnauthorized) {
			t.Errorf("%s: got %d with %s, want 401 exactly for invalid_client (RFC 6749 §5.2)", desc, status, code)
		}
	case "application/problem+json":
		if got, ok := m["status"].(float64); !ok || int(got) != status {
			t.Errorf("%s: got %d with problem status %v", desc, status, m["status"])
		}
		if m["title"] != http.StatusText(status) || m["type"] != "about:blank" {
			t.Errorf("%s: got %d problem %s, want type about:blank titled %q (RFC 9457 §4.2.1)", desc, status, body, http.StatusText(status))
		}
	default:
		t.Errorf("%s: got %d with Content-Type %q, want application/json or application/problem+json", desc, status, ct)
	}
}

// isNQSChars reports whether s fits the error_description syntax of
// RFC 6749 §5.2: %x20-21 / %x23-5B / %x5D-7E.
func isNQSChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
