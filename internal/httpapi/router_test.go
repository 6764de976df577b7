package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/api"
	"github.com/gatehouse/gatehouse/internal/app"
	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/storage"
	"github.com/gatehouse/gatehouse/internal/storage/sqlstore"
	"github.com/gatehouse/gatehouse/internal/storage/storetest"
	"github.com/gatehouse/gatehouse/internal/users"
)

const (
	adminPassword = "admin password"
	userPassword  = "alice password"
)

// testServer is the whole HTTP surface over a real SQLite store.
type testServer struct {
	*httptest.Server
	users  *users.Service
	keys   *auth.Keys
	calls  *storeCalls
	faulty *storetest.Faulty
	ready  error
}

const testIssuer = "http://gatehouse.test"

// stack is gatehouse without its HTTP layer, over a real SQLite store:
// what the tests, fuzz targets and benchmarks of the handler build on.
type stack struct {
	store       storage.Store
	users       *users.Service
	clients     *auth.Clients
	keys        *auth.Keys
	revocations *auth.Revocations
	view        *auth.UserView
	validator   *auth.Validator
	scopes      []string
	// calls counts the store calls of everything above, per operation;
	// faulty injects store faults below them.
	calls  *storeCalls
	faulty *storetest.Faulty
	// deps and cfg make an Issuer; deps has no throttle.
	deps auth.IssuerDeps
	cfg  auth.IssuerConfig
}

// storeCalls counts store calls by operation name (storage.Instrument's).
type storeCalls struct {
	mu  sync.Mutex
	ops []string
}

func (c *storeCalls) observe(_ context.Context, op string, _ time.Duration, _ error) {
	c.mu.Lock()
	c.ops = append(c.ops, op)
	c.mu.Unlock()
}

// take returns the operations since the last take.
func (c *storeCalls) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.ops
	c.ops = nil
	return out
}

func newStack(tb testing.TB, cacheSize int) *stack {
	tb.Helper()
	ctx := context.Background()
	doc, err := httpapi.Spec()
	if err != nil {
		tb.Fatal(err)
	}
	st := &stack{scopes: httpapi.SpecScopes(doc)}
	raw, err := sqlstore.OpenSQLite(ctx, filepath.Join(tb.TempDir(), "gatehouse.db"), sqlstore.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { raw.Close() })
	// Every store call is counted, for the statement budget, and may be
	// made to fail, for the fault answers.
	st.calls = &storeCalls{}
	st.faulty = storetest.NewFaulty(raw)
	st.store = storage.Instrument(st.faulty, st.calls.observe)
	// The server's own assembly (package app), with cheap hashing.
	const ttl = 15 * time.Minute
	a, err := app.New(st.store, app.Config{
		Issuer:         testIssuer,
		Audience:       "gatehouse",
		Hasher:         users.Hasher{Memory: 64, Iterations: 1, Parallelism: 1},
		SigningAlg:     auth.AlgRS256,
		KeyPrePublish:  time.Hour,
		AccessTTL:      ttl,
		TokenCacheSize: cacheSize,
		Throttle:       auth.DefaultThrottle(),
	})
	if err != nil {
		tb.Fatal(err)
	}
	if err := a.LoadKeys(ctx); err != nil {
		tb.Fatal(err)
	}
	st.users, st.clients, st.keys = a.Users, a.Clients, a.Keys
	st.revocations, st.view, st.validator = a.Revocations, a.View, a.Validator
	st.deps, st.cfg = a.IssuerDeps()
	st.deps.Throttle = nil // each test adds the throttle it wants
	st.deps.Log, st.deps.Audit = nil, nil
	return st
}

// handlerDeps wires the stack into the HTTP layer with issuer.
func (st *stack) handlerDeps(issuer *auth.Issuer) httpapi.Deps {
	return httpapi.Deps{
		Users:        st.users,
		Tokens:       issuer,
		Keys:         st.keys,
		Clients:      st.clients,
		Sessions:     issuer,
		Issuer:       testIssuer,
		Authenticate: st.validator.Authenticate,
		Ready:        func(context.Context) error { return nil },
	}
}

func newTestServer(t *testing.T, options ...func(*httpapi.Deps)) *testServer {
	t.Helper()
	ctx := context.Background()
	st := newStack(t, 0)
	svc, keys, scopes := st.users, st.keys, st.scopes
	issuerDeps := st.deps
	issuerDeps.Throttle = auth.NewThrottle(st.store, auth.DefaultThrottle())
	ts := &testServer{users: svc, keys: keys, calls: st.calls, faulty: st.faulty}
	deps := st.handlerDeps(auth.NewIssuer(issuerDeps, st.cfg))
	deps.Throttle = issuerDeps.Throttle
	deps.Ready = func(context.Context) error { return ts.ready }
	for _, o := range options {
		o(&deps)
	}
	h, err := httpapi.NewHandler(deps)
	if err != nil {
		t.Fatal(err)
	}
	// As cmd/server serves it: an HTTP/1.x connection's requests reuse
	// one request state.
	ts.Server = httptest.NewUnstartedServer(h)
	ts.Config.ConnContext = httpapi.ConnContext
	ts.Start()
	t.Cleanup(ts.Close)
	if _, err := svc.Create(ctx, users.CLIActor(), users.NewUser{Username: "admin", Password: adminPassword, Scopes: scopes}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Create(ctx, users.CLIActor(), users.NewUser{Username: "alice", Password: userPassword, Scopes: []string{"me"}}); err != nil {
		t.Fatal(err)
	}
	return ts
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	m := map[string]any{}
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.body, err)
	}
	return m
}

// do sends one request; header pairs are name, value, name, value, …
func (ts *testServer) do(t *testing.T, method, target, body string, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return send(t, ts.Client(), req, header...)
}

// doRaw sends a request line as written, for paths net/http would clean.
func (ts *testServer) doRaw(t *testing.T, method, rawPath string, header ...string) response {
	t.Helper()
	u, err := url.Parse(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	req := &http.Request{Method: method, URL: &url.URL{Scheme: "http", Host: u.Host, Opaque: rawPath}, Header: http.Header{}, Host: u.Host}
	return send(t, ts.Client(), req, header...)
}

// send adds the header pairs to req, sends it with c and reads the answer.
func send(t *testing.T, c *http.Client, req *http.Request, header ...string) response {
	t.Helper()
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func form(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v.Encode()
}

const formType = "application/x-www-form-urlencoded"

func (ts *testServer) token(t *testing.T, username, password, scope string) string {
	t.Helper()
	r := ts.do(t, "POST", "/token", form("grant_type", "password", "username", username, "password", password, "scope", scope), "Content-Type", formType)
	if r.status != 200 {
		t.Fatalf("login %s: %d %s", username, r.status, r.body)
	}
	return r.json(t)["access_token"].(string)
}

func bearer(token string) []string {
	return []string{"Authorization", "Bearer " + token}
}

func jsonHeader(token string) []string {
	return append(bearer(token), "Content-Type", "application/json")
}

func wantOAuth(t *testing.T, r response, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("got %d %s, want %d %s", r.status, r.body, status, code)
	}
	if got := r.json(t)["error"]; got != code {
		t.Errorf("got error %v, want %s (body %s)", got, code, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("got Content-Type %q, want application/json", ct)
	}
	if r.header.Get("Cache-Control") != "no-store" || r.header.Get("Pragma") != "no-cache" {
		t.Errorf("got Cache-Control %q Pragma %q, want no-store and no-cache (RFC 6749 §5.1)", r.header.Get("Cache-Control"), r.header.Get("Pragma"))
	}
}

func wantProblem(t *testing.T, r response, status int) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("got %d %s, want %d", r.status, r.body, status)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("got Content-Type %q, want application/problem+json", ct)
	}
	p := r.json(t)
	if p["status"] != float64(status) || p["title"] != http.StatusText(status) || p["type"] != "about:blank" {
		t.Errorf("got problem %v, want RFC 9457 fields for %d", p, status)
	}
	return p
}

func wantChallenge(t *testing.T, r response, status int, challenge string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("got %d %s, want %d", r.status, r.body, status)
	}
	if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, challenge) {
		t.Errorf("got WWW-Authenticate %q, want prefix %q", got, challenge)
	}
}

func TestTokenEndpoint(t *testing.T) {
	ts := newTestServer(t)

	t.Run("rfc6749_5.1_success_is_not_cacheable", func(t *testing.T) {
		r := ts.do(t, "POST", "/token", form("grant_type", "password", "username", "alice", "password", userPassword), "Content-Type", formType)
		if r.status != 200 {
			t.Fatalf("got %d %s", r.status, r.body)
		}
		if r.header.Get("Cache-Control") != "no-store" || r.header.Get("Pragma") != "no-cache" {
			t.Errorf("got Cache-Control %q Pragma %q", r.header.Get("Cache-Control"), r.header.Get("Pragma"))
		}
		b := r.json(t)
		if b["token_type"] != "Bearer" || b["expires_in"] != float64(900) || b["scope"] != "me" || b["access_token"] == "" {
			t.Errorf("got %v", b)
		}
	})

	for _, tc := range []struct {
		name   string
		target string
		body   string
		header []string
		status int
		code   string
	}{
		{"rfc6749_5.2_wrong_password_is_invalid_grant", "/token", form("grant_type", "password", "username", "alice", "password", "nope nope"), nil, 400, "invalid_grant"},
		{"rfc6749_5.2_unknown_user_is_invalid_grant", "/token", form("grant_type", "password", "username", "zed", "password", "nope nope"), nil, 400, "invalid_grant"},
		{"rfc6749_5.2_unsupported_grant_type", "/token", form("grant_type", "implicit"), nil, 400, "unsupported_grant_type"},
		{"rfc6749_5.2_missing_grant_type_is_invalid_request", "/token", form("username", "alice", "password", userPassword), nil, 400, "invalid_request"},
		{"rfc6749_5.2_invalid_scope", "/token", form("grant_type", "password", "username", "alice", "password", userPassword, "scope", "users:write"), nil, 400, "invalid_scope"},
		{"rfc6749_3.2_repeated_parameter_is_invalid_request", "/token", form("grant_type", "password", "username", "alice", "username", "admin", "password", userPassword), nil, 400, "invalid_request"},
		{"rfc6749_2.3.1_password_in_url_is_invalid_request", "/token?password=" + url.QueryEscape(userPassword), form("grant_type", "password", "username", "alice"), nil, 400, "invalid_request"},
		{"rfc6749_5.2_client_secret_is_invalid_client", "/token", form("grant_type", "password", "username", "alice", "password", userPassword, "client_id", "x", "client_secret", "y"), nil, 401, "invalid_client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := append([]string{"Content-Type", formType}, tc.header...)
			wantOAuth(t, ts.do(t, "POST", tc.target, tc.body, h...), tc.status, tc.code)
		})
	}

	t.Run("rfc6749_5.2_invalid_client_challenges_with_basic", func(t *testing.T) {
		r := ts.do(t, "POST", "/token", form("grant_type", "password", "username", "alice", "password", userPassword), "Content-Type", formType, "Authorization", "Basic YXBwOnNlY3JldA==")
		wantOAuth(t, r, 401, "invalid_client")
		if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Basic ") {
			t.Errorf("got WWW-Authenticate %q, want a Basic challenge", got)
		}
	})

	t.Run("swagger_ui_empty_basic_credentials_mean_a_public_client", func(t *testing.T) {
		r := ts.do(t, "POST", "/token", form("grant_type", "password", "username", "alice", "password", userPassword), "Content-Type", formType, "Authorization", "Basic Og==")
		if r.status != 200 {
			t.Fatalf("got %d %s, want 200", r.status, r.body)
		}
	})

	t.Run("rfc6749_3.2_json_body_is_invalid_request", func(t *testing.T) {
		r := ts.do(t, "POST", "/token", `{"grant_type":"password","username":"alice","password":"alice password"}`, "Content-Type", "application/json")
		wantOAuth(t, r, 400, "invalid_request")
	})

	t.Run("rfc6749_3.2_missing_content_type_is_invalid_request", func(t *testing.T) {
		wantOAuth(t, ts.do(t, "POST", "/token", form("grant_type", "password")), 400, "invalid_request")
	})

	t.Run("oversized_body_is_413", func(t *testing.T) {
		body := form("grant_type", "password", "username", "alice", "password", strings.Repeat("p", httpapi.MaxBodyBytes))
		wantOAuth(t, ts.do(t, "POST", "/token", body, "Content-Type", formType), 413, "invalid_request")
	})

	t.Run("oversized_chunked_body_is_413", func(t *testing.T) {
		body := io.MultiReader(strings.NewReader("grant_type=password&password="), bytes.NewReader(bytes.Repeat([]byte("p"), 2*httpapi.MaxBodyBytes)))
		req, _ := http.NewRequest("POST", ts.URL+"/token", body)
		req.ContentLength = -1 // chunked: the limit must hold without a length
		req.Header.Set("Content-Type", formType)
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Errorf("got %d, want 413", resp.StatusCode)
		}
	})

	t.Run("rfc6749_3.2_get_is_method_not_allowed", func(t *testing.T) {
		r := ts.do(t, "GET", "/token?grant_type=password", "")
		wantProblem(t, r, 405)
		if got := r.header.Get("Allow"); got != "POST" {
			t.Errorf("got Allow %q, want POST (RFC 9110 §15.5.6)", got)
		}
	})
}

func TestBearerValidation(t *testing.T) {
	ts := newTestServer(t)
	alice := ts.token(t, "alice", userPassword, "me")

	t.Run("rfc6750_3.1_no_token_is_401_without_error", func(t *testing.T) {
		r := ts.do(t, "GET", "/users/me", "")
		wantProblem(t, r, 401)
		if got := r.header.Get("WWW-Authenticate"); got != `Bearer realm="gatehouse"` {
			t.Errorf("got WWW-Authenticate %q, want exactly Bearer realm=\"gatehouse\"", got)
		}
	})
	t.Run("rfc6750_3.1_bad_token_is_invalid_token", func(t *testing.T) {
		r := ts.do(t, "GET", "/users/me", "", bearer(alice+"x")...)
		wantProblem(t, r, 401)
		wantChallenge(t, r, 401, `Bearer realm="gatehouse", error="invalid_token", error_description="`)
	})
	t.Run("rfc6750_3.1_spec_scope_missing_is_insufficient_scope", func(t *testing.T) {
		r := ts.do(t, "GET", "/users", "", bearer(alice)...)
		wantProblem(t, r, 403)
		if got := r.header.Get("WWW-Authenticate"); !strings.Contains(got, `error="insufficient_scope"`) || !strings.HasSuffix(got, `scope="users:read"`) {
			t.Errorf("got WWW-Authenticate %q", got)
		}
	})
	t.Run("rfc6750_2.3_token_only_in_query_gets_a_plain_challenge", func(t *testing.T) {
		// The query is not a method gatehouse accepts: no usable
		// credentials, so 401 and a challenge without an error (§3.1).
		r := ts.do(t, "GET", "/users/me?access_token="+alice, "")
		wantProblem(t, r, 401)
		if got := r.header.Get("WWW-Authenticate"); got != `Bearer realm="gatehouse"` {
			t.Errorf("got WWW-Authenticate %q", got)
		}
	})
	t.Run("rfc6750_3.1_token_in_query_and_header_is_invalid_request", func(t *testing.T) {
		r := ts.do(t, "GET", "/users/me?access_token="+alice, "", bearer(alice)...)
		wantProblem(t, r, 400)
		wantChallenge(t, r, 400, `Bearer realm="gatehouse", error="invalid_request"`)
	})
	t.Run("rfc6750_3.1_empty_token_gets_a_plain_challenge", func(t *testing.T) {
		r := ts.do(t, "GET", "/users/me", "", "Authorization", "Bearer ")
		wantProblem(t, r, 401)
		if got := r.header.Get("WWW-Authenticate"); got != `Bearer realm="gatehouse"` {
			t.Errorf("got WWW-Authenticate %q", got)
		}
	})
	t.Run("rfc6750_3.1_two_authorization_headers_is_invalid_request", func(t *testing.T) {
		r := ts.do(t, "GET", "/users/me", "", append(bearer(alice), bearer(alice)...)...)
		wantProblem(t, r, 400)
		wantChallenge(t, r, 400, `Bearer realm="gatehouse", error="invalid_request"`)
	})
	t.Run("rfc6750_2.1_valid_token_reaches_the_handler", func(t *testing.T) {
		r := ts.do(t, "GET", "/users/me", "", "Authorization", "bearer "+alice)
		if r.status != 200 || r.json(t)["username"] != "alice" {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
	t.Run("unauthenticated_malformed_request_is_401_not_400", func(t *testing.T) {
		wantProblem(t, ts.do(t, "POST", "/users", "{not json", "Content-Type", "application/json"), 401)
		wantProblem(t, ts.do(t, "GET", "/users?limit=abc", ""), 401)
	})
	t.Run("unauthenticated_oversized_request_is_refused", func(t *testing.T) {
		r := ts.do(t, "POST", "/users", `{"username":"`+strings.Repeat("a", httpapi.MaxBodyBytes)+`"}`, "Content-Type", "application/json")
		if r.status != 413 && r.status != 401 {
			t.Fatalf("got %d, want 413 or 401", r.status)
		}
	})
}

// TestRoutingBypass checks that every way of spelling a protected path
// either needs a token or routes nowhere: validation looks operations up on
// the same raw path chi routes on.
func TestRoutingBypass(t *testing.T) {
	ts := newTestServer(t)
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/users/a%2Fb", 401},
		{"GET", "/users/%61dmin", 401},
		{"GET", "/users/%2e%2e", 401},
		{"GET", "/users/me%2Fpassword", 401},
		{"DELETE", "/users/admin", 401},
		{"PATCH", "/users/%41DMIN", 401},
		{"GET", "/users/", 404},
		{"GET", "/users/me/", 404},
		{"GET", "/USERS/me", 404},
		{"get", "/users/me", 405},
		{"Get", "/users", 405},
		{"POST", "/users/me", 405},
	} {
		t.Run(tc.method+"_"+tc.path, func(t *testing.T) {
			r := ts.doRaw(t, tc.method, tc.path)
			if r.status != tc.want {
				t.Fatalf("got %d %s, want %d", r.status, r.body, tc.want)
			}
			if tc.want == 401 && r.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without a WWW-Authenticate challenge")
			}
		})
	}
	t.Run("public_operations_stay_reachable", func(t *testing.T) {
		for _, p := range []string{"/healthz", "/readyz", "/openapi.yaml", "/openapi.json"} {
			if r := ts.do(t, "GET", p, ""); r.status != 200 {
				t.Errorf("GET %s: got %d, want 200", p, r.status)
			}
		}
	})
}

func TestUsers(t *testing.T) {
	ts := newTestServer(t)
	admin := ts.token(t, "admin", adminPassword, "")

	t.Run("create_returns_201_with_location", func(t *testing.T) {
		r := ts.do(t, "POST", "/users", `{"username":"Bob","password":"bob password","scopes":["me","users:read"]}`, jsonHeader(admin)...)
		if r.status != 201 || r.header.Get("Location") != "/users/bob" {
			t.Fatalf("got %d Location %q %s", r.status, r.header.Get("Location"), r.body)
		}
		u := r.json(t)
		if u["username"] != "bob" || u["disabled"] != false || u["id"] == "" || u["created_at"] == "" {
			t.Errorf("got %v", u)
		}
		if _, ok := u["password"]; ok {
			t.Error("the response carries a password field")
		}
		got := ts.do(t, "GET", "/users/BOB", "", bearer(admin)...)
		if got.status != 200 || got.json(t)["id"] != u["id"] {
			t.Errorf("GET /users/BOB: got %d %s", got.status, got.body)
		}
	})
	t.Run("default_scope_is_me", func(t *testing.T) {
		r := ts.do(t, "POST", "/users", `{"username":"carol","password":"carol password"}`, jsonHeader(admin)...)
		if r.status != 201 {
			t.Fatalf("got %d %s", r.status, r.body)
		}
		if scopes := r.json(t)["scopes"].([]any); len(scopes) != 1 || scopes[0] != "me" {
			t.Errorf("got scopes %v, want [me]", scopes)
		}
	})
	t.Run("duplicate_username_is_409", func(t *testing.T) {
		wantProblem(t, ts.do(t, "POST", "/users", `{"username":"ALICE","password":"whatever1"}`, jsonHeader(admin)...), 409)
	})
	for _, tc := range []struct{ name, body, field string }{
		{"short_password_names_the_field", `{"username":"dave","password":"short"}`, "password"},
		{"missing_password_names_the_field", `{"username":"dave"}`, "password"},
		{"bad_username_characters_name_the_field", `{"username":"da ve","password":"dave password"}`, "username"},
		{"unknown_scope_names_the_field", `{"username":"dave","password":"dave password","scopes":["root"]}`, "scopes"},
		{"unknown_property_is_rejected", `{"username":"dave","password":"dave password","admin":true}`, "body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := wantProblem(t, ts.do(t, "POST", "/users", tc.body, jsonHeader(admin)...), 400)
			errs, _ := p["errors"].([]any)
			if len(errs) == 0 || !strings.Contains(errs[0].(map[string]any)["field"].(string), tc.field) {
				t.Errorf("got %v, want a field error naming %s", p, tc.field)
			}
			if r := ts.do(t, "GET", "/users/dave", "", bearer(admin)...); r.status != 404 {
				t.Errorf("a rejected create left user dave behind: %d", r.status)
			}
		})
	}
	t.Run("malformed_json_is_400", func(t *testing.T) {
		wantProblem(t, ts.do(t, "POST", "/users", `{"username":`, jsonHeader(admin)...), 400)
	})
	t.Run("get_unknown_user_is_404", func(t *testing.T) {
		wantProblem(t, ts.do(t, "GET", "/users/nobody", "", bearer(admin)...), 404)
	})
	t.Run("patch_disable_blocks_login_and_outstanding_tokens", func(t *testing.T) {
		ts.do(t, "POST", "/users", `{"username":"erin","password":"erin password"}`, jsonHeader(admin)...)
		erin := ts.token(t, "erin", "erin password", "me")
		r := ts.do(t, "PATCH", "/users/erin", `{"disabled":true}`, jsonHeader(admin)...)
		if r.status != 200 || r.json(t)["disabled"] != true {
			t.Fatalf("got %d %s", r.status, r.body)
		}
		wantOAuth(t, ts.do(t, "POST", "/token", form("grant_type", "password", "username", "erin", "password", "erin password"), "Content-Type", formType), 400, "invalid_grant")
		wantChallenge(t, ts.do(t, "GET", "/users/me", "", bearer(erin)...), 401, `Bearer realm="gatehouse", error="invalid_token"`)
	})
	t.Run("patch_password_and_scopes", func(t *testing.T) {
		ts.do(t, "POST", "/users", `{"username":"frank","password":"frank password"}`, jsonHeader(admin)...)
		r := ts.do(t, "PATCH", "/users/frank", `{"password":"new frank password","scopes":["me","users:read"]}`, jsonHeader(admin)...)
		if r.status != 200 {
			t.Fatalf("got %d %s", r.status, r.body)
		}
		wantOAuth(t, ts.do(t, "POST", "/token", form("grant_type", "password", "username", "frank", "password", "frank password"), "Content-Type", formType), 400, "invalid_grant")
		tok := ts.token(t, "frank", "new frank password", "users:read")
		if r := ts.do(t, "GET", "/users", "", bearer(tok)...); r.status != 200 {
			t.Errorf("new scope users:read: got %d", r.status)
		}
	})
	t.Run("patch_unknown_user_is_404", func(t *testing.T) {
		wantProblem(t, ts.do(t, "PATCH", "/users/nobody", `{"disabled":true}`, jsonHeader(admin)...), 404)
	})
	t.Run("delete_then_404_and_tokens_stop_working", func(t *testing.T) {
		ts.do(t, "POST", "/users", `{"username":"gina","password":"gina password"}`, jsonHeader(admin)...)
		gina := ts.token(t, "gina", "gina password", "me")
		if r := ts.do(t, "DELETE", "/users/gina", "", bearer(admin)...); r.status != 204 {
			t.Fatalf("got %d %s", r.status, r.body)
		}
		wantProblem(t, ts.do(t, "DELETE", "/users/gina", "", bearer(admin)...), 404)
		wantChallenge(t, ts.do(t, "GET", "/users/me", "", bearer(gina)...), 401, `Bearer realm="gatehouse", error="invalid_token"`)
	})
}

func TestListUsersPagination(t *testing.T) {
	ts := newTestServer(t)
	// "me" too: new users get it by default, and only held scopes are granted.
	admin := ts.token(t, "admin", adminPassword, "me users:read users:write")
	for _, name := range []string{"user1", "user2", "user3"} {
		if r := ts.do(t, "POST", "/users", `{"username":"`+name+`","password":"password `+name+`"}`, jsonHeader(admin)...); r.status != 201 {
			t.Fatalf("create %s: %d", name, r.status)
		}
	}
	var got []string
	target := "/users?limit=2"
	for pages := 0; target != ""; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		r := ts.do(t, "GET", target, "", bearer(admin)...)
		if r.status != 200 {
			t.Fatalf("got %d %s", r.status, r.body)
		}
		var page struct {
			Users []struct {
				Username string `json:"username"`
			} `json:"users"`
			NextCursor string `json:"next_cursor"`
		}
		if err := json.Unmarshal(r.body, &page); err != nil {
			t.Fatal(err)
		}
		for _, u := range page.Users {
			got = append(got, u.Username)
		}
		target = ""
		if page.NextCursor != "" {
			target = "/users?limit=2&cursor=" + url.QueryEscape(page.NextCursor)
		}
	}
	want := []string{"admin", "alice", "user1", "user2", "user3"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("got %v, want %v", got, want)
	}
	r := ts.do(t, "GET", "/users?limit=100", "", bearer(admin)...)
	if r.status != 200 || len(r.json(t)["users"].([]any)) != len(want) {
		t.Errorf("the largest page: got %d %s", r.status, r.body)
	}
	for _, q := range []string{"limit=0", "limit=101", "limit=x", "cursor=%25%25"} {
		p := wantProblem(t, ts.do(t, "GET", "/users?"+q, "", bearer(admin)...), 400)
		if p["errors"] == nil {
			t.Errorf("%s: got %v, want field errors", q, p)
		}
	}
}

func TestChangePassword(t *testing.T) {
	ts := newTestServer(t)
	alice := ts.token(t, "alice", userPassword, "me")
	wantProblem(t, ts.do(t, "POST", "/users/me/password", `{"current_password":"wrong one","new_password":"brand new pw"}`, jsonHeader(alice)...), 403)
	wantProblem(t, ts.do(t, "POST", "/users/me/password", `{"current_password":"`+userPassword+`","new_password":"short"}`, jsonHeader(alice)...), 400)
	if r := ts.do(t, "POST", "/users/me/password", `{"current_password":"`+userPassword+`","new_password":"brand new pw"}`, jsonHeader(alice)...); r.status != 204 {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	wantOAuth(t, ts.do(t, "POST", "/token", form("grant_type", "password", "username", "alice", "password", userPassword), "Content-Type", formType), 400, "invalid_grant")
	ts.token(t, "alice", "brand new pw", "me")
}

func TestSpecDocuments(t *testing.T) {
	ts := newTestServer(t)
	r := ts.do(t, "GET", "/openapi.yaml", "")
	if r.status != 200 || !bytes.Equal(r.body, api.OpenAPI) {
		t.Errorf("GET /openapi.yaml: got %d and %d bytes, want the file's %d bytes", r.status, len(r.body), len(api.OpenAPI))
	}
	j := ts.do(t, "GET", "/openapi.json", "").json(t)
	flows := j["components"].(map[string]any)["securitySchemes"].(map[string]any)["oauth2"].(map[string]any)["flows"].(map[string]any)["password"].(map[string]any)
	if flows["tokenUrl"] != "/token" || flows["refreshUrl"] != "/token" {
		t.Errorf("got password flow %v", flows)
	}
}

func TestReadiness(t *testing.T) {
	ts := newTestServer(t)
	if r := ts.do(t, "GET", "/readyz", ""); r.status != 200 {
		t.Fatalf("got %d", r.status)
	}
	ts.ready = errors.New("database is gone")
	p := wantProblem(t, ts.do(t, "GET", "/readyz", ""), 503)
	if strings.Contains(p["detail"].(string), "database is gone") {
		t.Error("the internal cause leaked into the response")
	}
	// A store that cannot take writes (a read-only or full SQLite file)
	// is not ready, and the answer says so.
	for fault, want := range map[error]string{
		storage.ErrReadOnly: "not ready: the store cannot take writes (read-only)",
		storage.ErrFull:     "not ready: the store cannot take writes (full)",
	} {
		ts.ready = fmt.Errorf("sqlstore: sqlite: ping /var/lib/secret.db: %w: attempt to write", fault)
		r := ts.do(t, "GET", "/readyz", "")
		if p := wantProblem(t, r, 503); p["detail"] != want || r.header.Get("Retry-After") == "" {
			t.Errorf("got %v (Retry-After %q), want detail %q", p["detail"], r.header.Get("Retry-After"), want)
		}
	}
}

// TestNoServerErrorsOnBadInput sends malformed requests to every kind of
// operation and wants a 4xx for each.
func TestNoServerErrorsOnBadInput(t *testing.T) {
	ts := newTestServer(t)
	admin := ts.token(t, "admin", adminPassword, "")
	for _, tc := range []struct {
		method, target, body string
		header               []string
	}{
		{"POST", "/token", "%zz", []string{"Content-Type", formType}},
		{"POST", "/token", "grant_type=password&username=%00&password=%00", []string{"Content-Type", formType}},
		{"POST", "/token", "", []string{"Content-Type", "multipart/form-data; boundary=x"}},
		{"POST", "/token", "grant_type=password", []string{"Content-Type", "application/x-www-form-urlencoded; charset=bogus"}},
		{"POST", "/users", `[]`, jsonHeader(admin)},
		{"POST", "/users", `{"username":1}`, jsonHeader(admin)},
		{"POST", "/users", `{"username":"ok1","password":"` + strings.Repeat("é", 600) + `"}`, jsonHeader(admin)},
		{"POST", "/users", "\x00", jsonHeader(admin)},
		{"POST", "/users", `{"username":"ok2","password":"password1"}`, append(bearer(admin), "Content-Type", "text/plain")},
		{"PATCH", "/users/alice", `{"scopes":"me"}`, jsonHeader(admin)},
		{"PATCH", "/users/alice", `null`, jsonHeader(admin)},
		{"PATCH", "/users/" + strings.Repeat("a", 100), `{}`, jsonHeader(admin)},
		{"POST", "/users/me/password", `{}`, jsonHeader(admin)},
		{"GET", "/users?limit=-1&cursor=" + strings.Repeat("x", 300), "", bearer(admin)},
		{"GET", "/users/%ff%fe", "", bearer(admin)},
		{"GET", "/users?limit=5&limit=6", "", bearer(admin)},
		{"GET", "/users?cursor=&cursor=", "", bearer(admin)},
		{"GET", "/users/me", "", []string{"Authorization", "Bearer " + strings.Repeat("a", 9000)}},
		{"GET", "/users/me", "", []string{"Authorization", "Bearer a.b.c"}},
	} {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			r := ts.do(t, tc.method, tc.target, tc.body, tc.header...)
			if r.status < 400 || r.status >= 500 {
				t.Fatalf("got %d %s, want a 4xx", r.status, r.body)
			}
		})
	}
}

func TestCORS(t *testing.T) {
	t.Run("off_by_default", func(t *testing.T) {
		ts := newTestServer(t)
		r := ts.do(t, "GET", "/healthz", "", "Origin", "https://app.example.test")
		if got := r.header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Fatalf("got Access-Control-Allow-Origin %q without an allow-list", got)
		}
	})
	ts := newTestServer(t, func(d *httpapi.Deps) { d.CORSOrigins = []string{"https://app.example.test"} })
	t.Run("preflight_from_an_allowed_origin", func(t *testing.T) {
		r := ts.do(t, "OPTIONS", "/users/me", "", "Origin", "https://app.example.test",
			"Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "authorization")
		if r.status >= 300 || r.header.Get("Access-Control-Allow-Origin") != "https://app.example.test" {
			t.Fatalf("got %d %v", r.status, r.header)
		}
	})
	t.Run("actual_request_exposes_the_challenge", func(t *testing.T) {
		r := ts.do(t, "GET", "/users/me", "", "Origin", "https://app.example.test")
		if r.status != 401 || r.header.Get("Access-Control-Allow-Origin") != "https://app.example.test" ||
			!strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "Www-Authenticate") {
			t.Fatalf("got %d %v", r.status, r.header)
		}
	})
	t.Run("other_origins_get_no_grant", func(t *testing.T) {
		r := ts.do(t, "GET", "/healthz", "", "Origin", "https://evil.example.test")
		if got := r.header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Fatalf("got Access-Control-Allow-Origin %q for an origin not allowed", got)
		}
	})
}
