package httpapi_test

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

func (ts *testServer) login(t *testing.T, username, password string, extra ...string) map[string]any {
	t.Helper()
	r := ts.do(t, "POST", "/token", form(append([]string{"grant_type", "password", "username", username, "password", password}, extra...)...), "Content-Type", formType)
	if r.status != 200 {
		t.Fatalf("login %s: %d %s", username, r.status, r.body)
	}
	return r.json(t)
}

func TestRefreshOverHTTP(t *testing.T) {
	ts := newTestServer(t)
	first := ts.login(t, "alice", userPassword)
	refresh, _ := first["refresh_token"].(string)
	if refresh == "" {
		t.Fatalf("no refresh_token in %v", first)
	}
	r := ts.do(t, "POST", "/token", form("grant_type", "refresh_token", "refresh_token", refresh), "Content-Type", formType)
	if r.status != 200 || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	second := r.json(t)
	if second["refresh_token"] == refresh || second["access_token"] == "" {
		t.Errorf("refresh did not rotate: %v", second)
	}
	wantOAuth(t, ts.do(t, "POST", "/token", form("grant_type", "refresh_token", "refresh_token", refresh), "Content-Type", formType), 400, "invalid_grant")
	// Reuse revoked the family: the access token from the refresh dies too.
	wantChallenge(t, ts.do(t, "GET", "/users/me", "", bearer(second["access_token"].(string))...), 401, `Bearer realm="gatehouse", error="invalid_token"`)
}

func TestRevokeOverHTTP(t *testing.T) {
	ts := newTestServer(t)

	t.Run("rfc7009_2.2_revoked_access_token_is_refused_within_the_same_second", func(t *testing.T) {
		tok := ts.login(t, "alice", userPassword)["access_token"].(string)
		if r := ts.do(t, "GET", "/users/me", "", bearer(tok)...); r.status != 200 {
			t.Fatalf("before: %d", r.status)
		}
		r := ts.do(t, "POST", "/revoke", form("token", tok, "token_type_hint", "access_token"), "Content-Type", formType)
		if r.status != 200 || len(r.body) != 0 {
			t.Fatalf("revoke: %d %q", r.status, r.body)
		}
		wantChallenge(t, ts.do(t, "GET", "/users/me", "", bearer(tok)...), 401, `Bearer realm="gatehouse", error="invalid_token"`)
	})
	t.Run("rfc7009_2.2_unknown_token_is_200", func(t *testing.T) {
		if r := ts.do(t, "POST", "/revoke", form("token", "nothing-we-issued"), "Content-Type", formType); r.status != 200 {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
	t.Run("rfc7009_2.1_swagger_ui_empty_basic_is_a_public_client", func(t *testing.T) {
		tok := ts.login(t, "alice", userPassword)["refresh_token"].(string)
		r := ts.do(t, "POST", "/revoke", form("token", tok), "Content-Type", formType, "Authorization", "Basic Og==")
		if r.status != 200 {
			t.Fatalf("got %d %s", r.status, r.body)
		}
		wantOAuth(t, ts.do(t, "POST", "/token", form("grant_type", "refresh_token", "refresh_token", tok), "Content-Type", formType), 400, "invalid_grant")
	})
	t.Run("rfc7009_2.1_missing_token_is_invalid_request", func(t *testing.T) {
		wantOAuth(t, ts.do(t, "POST", "/revoke", form("token_type_hint", "access_token"), "Content-Type", formType), 400, "invalid_request")
	})
	t.Run("rfc6749_2.3.1_token_in_query_is_invalid_request", func(t *testing.T) {
		wantOAuth(t, ts.do(t, "POST", "/revoke?token=x", form("token", "y"), "Content-Type", formType), 400, "invalid_request")
	})
}

func TestIntrospectOverHTTP(t *testing.T) {
	ts := newTestServer(t)
	admin := ts.token(t, "admin", adminPassword, "tokens:introspect")
	alice := ts.login(t, "alice", userPassword, "client_id", "cli")

	t.Run("rfc7662_2.1_caller_needs_tokens_introspect", func(t *testing.T) {
		r := ts.do(t, "POST", "/introspect", form("token", alice["access_token"].(string)), append(bearer(alice["access_token"].(string)), "Content-Type", formType)...)
		wantProblem(t, r, 403)
		if !strings.Contains(r.header.Get("WWW-Authenticate"), `scope="tokens:introspect"`) {
			t.Errorf("got WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
		}
		wantProblem(t, ts.do(t, "POST", "/introspect", form("token", "x"), "Content-Type", formType), 401)
	})
	t.Run("rfc7662_2.2_active_access_token", func(t *testing.T) {
		r := ts.do(t, "POST", "/introspect", form("token", alice["access_token"].(string)), append(bearer(admin), "Content-Type", formType)...)
		if r.status != 200 || r.header.Get("Cache-Control") != "no-store" {
			t.Fatalf("got %d %s", r.status, r.body)
		}
		in := r.json(t)
		for k, want := range map[string]any{"active": true, "username": "alice", "client_id": "cli", "scope": "me", "token_type": "Bearer", "iss": testIssuer, "aud": "gatehouse"} {
			if in[k] != want {
				t.Errorf("%s: got %v, want %v", k, in[k], want)
			}
		}
		for _, k := range []string{"exp", "iat", "nbf", "sub", "jti"} {
			if in[k] == nil {
				t.Errorf("missing %s in %v", k, in)
			}
		}
	})
	t.Run("rfc7662_2.2_refresh_token", func(t *testing.T) {
		in := ts.do(t, "POST", "/introspect", form("token", alice["refresh_token"].(string), "token_type_hint", "refresh_token"), append(bearer(admin), "Content-Type", formType)...).json(t)
		if in["active"] != true || in["token_type"] != "refresh_token" {
			t.Errorf("got %v", in)
		}
	})
	t.Run("rfc7662_2.2_inactive_is_only_active_false", func(t *testing.T) {
		r := ts.do(t, "POST", "/introspect", form("token", "garbage"), append(bearer(admin), "Content-Type", formType)...)
		if r.status != 200 || strings.TrimSpace(string(r.body)) != `{"active":false}` {
			t.Errorf("got %d %s", r.status, r.body)
		}
	})
	t.Run("rfc7662_2.1_missing_token_is_invalid_request", func(t *testing.T) {
		wantOAuth(t, ts.do(t, "POST", "/introspect", form("token_type_hint", "x"), append(bearer(admin), "Content-Type", formType)...), 400, "invalid_request")
	})
}

func TestDiscovery(t *testing.T) {
	ts := newTestServer(t)
	r := ts.do(t, "GET", "/.well-known/oauth-authorization-server", "")
	if r.status != 200 {
		t.Fatalf("got %d", r.status)
	}
	m := r.json(t)
	for k, want := range map[string]string{
		"issuer":                 testIssuer,
		"token_endpoint":         testIssuer + "/token",
		"jwks_uri":               testIssuer + "/.well-known/jwks.json",
		"revocation_endpoint":    testIssuer + "/revoke",
		"introspection_endpoint": testIssuer + "/introspect",
	} {
		if m[k] != want {
			t.Errorf("%s: got %v, want %s", k, m[k], want)
		}
	}
	joined := func(k string) string {
		var out []string
		for _, v := range m[k].([]any) {
			out = append(out, v.(string))
		}
		return strings.Join(out, " ")
	}
	if got := joined("grant_types_supported"); got != "password refresh_token client_credentials http://auth0.com/oauth/grant-type/mfa-otp" {
		t.Errorf("grant_types_supported: got %q", got)
	}
	if got := joined("scopes_supported"); !strings.Contains(got, "users:read") || !strings.Contains(got, "tokens:introspect") {
		t.Errorf("scopes_supported: got %q, want the spec's scopes", got)
	}
	if got := joined("token_endpoint_auth_methods_supported"); got != "client_secret_basic client_secret_post none" {
		t.Errorf("token_endpoint_auth_methods_supported: got %q", got)
	}
	if got := joined("introspection_endpoint_auth_methods_supported"); got != "client_secret_basic client_secret_post bearer" {
		t.Errorf("introspection_endpoint_auth_methods_supported: got %q, want client_secret_basic and bearer", got)
	}
	if _, ok := m["response_types_supported"]; !ok {
		t.Error("response_types_supported is required by RFC 8414 §2")
	}
}

func TestJWKSAndRotation(t *testing.T) {
	ts := newTestServer(t)
	jwks := func() []map[string]any {
		var set struct {
			Keys []map[string]any `json:"keys"`
		}
		r := ts.do(t, "GET", "/.well-known/jwks.json", "")
		if r.status != 200 {
			t.Fatalf("jwks: %d", r.status)
		}
		if err := json.Unmarshal(r.body, &set); err != nil {
			t.Fatal(err)
		}
		return set.Keys
	}
	tokenKID := func(tok string) string {
		raw, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
		var h map[string]any
		_ = json.Unmarshal(raw, &h)
		return h["kid"].(string)
	}
	keys := jwks()
	if len(keys) != 1 || keys[0]["kty"] != "RSA" || keys[0]["use"] != "sig" || keys[0]["alg"] != "RS256" || keys[0]["n"] == nil || keys[0]["d"] != nil {
		t.Fatalf("got %v", keys)
	}
	oldKID := keys[0]["kid"].(string)
	tok := ts.token(t, "admin", adminPassword, "")
	if tokenKID(tok) != oldKID {
		t.Fatalf("token kid %s, JWKS kid %s", tokenKID(tok), oldKID)
	}

	alice := ts.token(t, "alice", userPassword, "me")
	wantProblem(t, ts.do(t, "POST", "/keys/rotate", "", bearer(alice)...), 403)
	r := ts.do(t, "POST", "/keys/rotate", "", bearer(tok)...)
	if r.status != 201 {
		t.Fatalf("rotate: %d %s", r.status, r.body)
	}
	newKID := r.json(t)["kid"].(string)
	if newKID == oldKID {
		t.Fatal("rotation returned the old kid")
	}
	var kids []string
	for _, k := range jwks() {
		kids = append(kids, k["kid"].(string))
	}
	if len(kids) != 2 || !strings.Contains(strings.Join(kids, " "), newKID) {
		t.Fatalf("after rotation the JWKS has %v, want old and new", kids)
	}
	// Pre-publication: the new key is published but does not sign yet.
	if got := tokenKID(ts.token(t, "admin", adminPassword, "")); got != oldKID {
		t.Errorf("a token right after rotation is signed by %s, want the old key %s", got, oldKID)
	}
}

func TestClientsOverHTTP(t *testing.T) {
	ts := newTestServer(t)
	admin := ts.token(t, "admin", adminPassword, "")

	r := ts.do(t, "POST", "/clients", `{"client_id":"backend","scopes":["me"]}`, jsonHeader(admin)...)
	if r.status != 201 || r.header.Get("Location") != "/clients/backend" || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("create: %d %v %s", r.status, r.header, r.body)
	}
	created := r.json(t)
	secret, _ := created["client_secret"].(string)
	if created["confidential"] != true || len(secret) < 43 {
		t.Fatalf("got %v, want a confidential client with a 256-bit secret", created)
	}
	wantProblem(t, ts.do(t, "POST", "/clients", `{"client_id":"backend"}`, jsonHeader(admin)...), 409)
	wantProblem(t, ts.do(t, "POST", "/clients", `{"client_id":"has space"}`, jsonHeader(admin)...), 400)
	wantProblem(t, ts.do(t, "POST", "/clients", `{"scopes":["root"]}`, jsonHeader(admin)...), 400)

	list := ts.do(t, "GET", "/clients", "", bearer(admin)...)
	if list.status != 200 || strings.Contains(string(list.body), secret) || !strings.Contains(string(list.body), `"client_id":"backend"`) {
		t.Fatalf("list: %d %s", list.status, list.body)
	}

	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("backend:"+url.QueryEscape(secret)))
	login := func(auth string) response {
		return ts.do(t, "POST", "/token", form("grant_type", "password", "username", "alice", "password", userPassword), "Content-Type", formType, "Authorization", auth)
	}
	if r := login(basic); r.status != 200 {
		t.Fatalf("client_secret_basic: %d %s", r.status, r.body)
	}
	post := ts.do(t, "POST", "/token", form("grant_type", "password", "username", "alice", "password", userPassword, "client_id", "backend", "client_secret", secret), "Content-Type", formType)
	if post.status != 200 {
		t.Fatalf("client_secret_post: %d %s", post.status, post.body)
	}
	wrong := login("Basic " + base64.StdEncoding.EncodeToString([]byte("backend:nope")))
	wantOAuth(t, wrong, 401, "invalid_client")
	if !strings.HasPrefix(wrong.header.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("got WWW-Authenticate %q, want a Basic challenge", wrong.header.Get("WWW-Authenticate"))
	}

	if r := ts.do(t, "DELETE", "/clients/backend", "", bearer(admin)...); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	wantProblem(t, ts.do(t, "DELETE", "/clients/backend", "", bearer(admin)...), 404)
	// Its tokens are revoked and its secret no longer authenticates.
	wantOAuth(t, ts.do(t, "POST", "/token", form("grant_type", "refresh_token", "refresh_token", post.json(t)["refresh_token"].(string), "client_id", "backend", "client_secret", secret), "Content-Type", formType), 401, "invalid_client")
	wantOAuth(t, login(basic), 401, "invalid_client")
}

func TestThrottleOverHTTP(t *testing.T) {
	ts := newTestServer(t)
	wrong := form("grant_type", "password", "username", "alice", "password", "not her password")
	// DefaultThrottle: five free failures, the sixth starts the delay.
	for range 6 {
		wantOAuth(t, ts.do(t, "POST", "/token", wrong, "Content-Type", formType), 400, "invalid_grant")
	}
	r := ts.do(t, "POST", "/token", form("grant_type", "password", "username", "alice", "password", userPassword), "Content-Type", formType)
	wantOAuth(t, r, 429, "temporarily_unavailable")
	if got := r.header.Get("Retry-After"); got != "1" {
		t.Errorf("got Retry-After %q, want 1", got)
	}
}
