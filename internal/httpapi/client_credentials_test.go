package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// tokenClaims decodes a JWT's payload without checking it: what a
// resource server would see.
func tokenClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// registerService registers a confidential client allowed the
// client-credentials grant and returns its secret and secret id.
func registerService(t *testing.T, ts *testServer, admin, id string, serviceScopes ...string) (secret, secretID string) {
	t.Helper()
	scopes, _ := json.Marshal(serviceScopes)
	r := ts.do(t, "POST", "/clients", `{"client_id":"`+id+`","service_scopes":`+string(scopes)+`,"grants":["client_credentials"]}`, jsonHeader(admin)...)
	if r.status != 201 {
		t.Fatalf("register %s: %d %s", id, r.status, r.body)
	}
	var c struct {
		Secret  string                `json:"client_secret"`
		Secrets []struct{ ID string } `json:"secrets"`
	}
	if err := json.Unmarshal(r.body, &c); err != nil || c.Secret == "" || len(c.Secrets) != 1 {
		t.Fatalf("register %s: %v in %s, want a secret and its id", id, err, r.body)
	}
	return c.Secret, c.Secrets[0].ID
}

// TestClientCredentialsGrant: a service gets tokens for itself (RFC 6749
// §4.4) through golang.org/x/oauth2/clientcredentials, unmodified; the
// tokens are RFC 9068 tokens whose sub is the client, accepted where the
// spec marks an operation for them and refused, with an RFC 6750 error,
// where an operation acts for a user.
func TestClientCredentialsGrant(t *testing.T) {
	ts := newTestServer(t)
	admin := ts.token(t, "admin", adminPassword, "")
	secret, secretID := registerService(t, ts, admin, "billing", "users:read", "tokens:introspect")
	cfg := clientcredentials.Config{ClientID: "billing", ClientSecret: secret, TokenURL: ts.URL + "/token", Scopes: []string{"users:read"}}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, ts.Client())

	tok, err := cfg.Token(ctx)
	if err != nil {
		t.Fatalf("clientcredentials Token: %v", err)
	}
	if tok.RefreshToken != "" || tok.TokenType != "Bearer" || tok.Expiry.IsZero() {
		t.Errorf("token = %+v, want a Bearer token with an expiry and no refresh token (RFC 6749 §4.4.3)", tok)
	}
	claims := tokenClaims(t, tok.AccessToken)
	if claims["sub"] != "billing" || claims["client_id"] != "billing" || claims["sid"] != secretID || claims["scope"] != "users:read" {
		t.Errorf("claims = %v, want sub and client_id billing (RFC 9068 §2.2), sid %s, scope users:read", claims, secretID)
	}
	if _, ok := claims["preferred_username"]; ok {
		t.Errorf("claims = %v: a client's own token names no user", claims)
	}

	t.Run("the_spec_marks_which_operations_take_it", func(t *testing.T) {
		hc := cfg.Client(ctx)
		resp, err := hc.Get(ts.URL + "/users/alice")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET /users/alice with the service's token: %d, want 200", resp.StatusCode)
		}
		for _, path := range []string{"/users/me", "/users/me/sessions"} {
			r := ts.do(t, "GET", path, "", bearer(tok.AccessToken)...)
			wantChallenge(t, r, 403, `Bearer realm="gatehouse", error="insufficient_scope"`)
			if !strings.Contains(r.header.Get("WWW-Authenticate"), "acts for a user") {
				t.Errorf("GET %s: WWW-Authenticate %q, want it to say the operation acts for a user", path, r.header.Get("WWW-Authenticate"))
			}
		}
		// users:write is not among the token's scopes, whatever the operation.
		r := ts.do(t, "POST", "/users", `{"username":"mallory","password":"a long enough password"}`, jsonHeader(tok.AccessToken)...)
		wantChallenge(t, r, 403, `Bearer realm="gatehouse", error="insufficient_scope"`)
	})

	t.Run("introspection_shows_the_client_as_subject", func(t *testing.T) {
		r := ts.do(t, "POST", "/introspect", form("token", tok.AccessToken), "Content-Type", formType, "Authorization", basicAuth("billing", secret))
		if r.status != 200 {
			t.Fatalf("introspect: %d %s", r.status, r.body)
		}
		in := r.json(t)
		if in["active"] != true || in["sub"] != "billing" || in["client_id"] != "billing" || in["scope"] != "users:read" {
			t.Errorf("introspection = %v, want active, sub and client_id billing, scope users:read", in)
		}
		if u, ok := in["username"]; ok && u != "" {
			t.Errorf("introspection username = %v, want none", u)
		}
	})

	t.Run("every_service_scope_when_none_is_requested", func(t *testing.T) {
		all := clientcredentials.Config{ClientID: "billing", ClientSecret: secret, TokenURL: ts.URL + "/token"}
		tok, err := all.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := tokenClaims(t, tok.AccessToken)["scope"]; got != "tokens:introspect users:read" {
			t.Errorf("scope = %v, want every service scope", got)
		}
	})

	t.Run("rfc6749_5.2_refusals", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			body   string
			auth   string
			status int
			code   string
		}{
			{"no_client_authentication", form("grant_type", "client_credentials"), "", 401, "invalid_client"},
			{"wrong_secret", form("grant_type", "client_credentials"), basicAuth("billing", "not the secret"), 401, "invalid_client"},
			{"unregistered_client", form("grant_type", "client_credentials", "client_id", "nobody"), "", 401, "invalid_client"},
			{"scope_the_client_does_not_hold", form("grant_type", "client_credentials", "scope", "users:write"), basicAuth("billing", secret), 400, "invalid_scope"},
			{"unknown_scope", form("grant_type", "client_credentials", "scope", "admin"), basicAuth("billing", secret), 400, "invalid_scope"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				h := []string{"Content-Type", formType}
				if tc.auth != "" {
					h = append(h, "Authorization", tc.auth)
				}
				wantOAuth(t, ts.do(t, "POST", "/token", tc.body, h...), tc.status, tc.code)
			})
		}
	})

	t.Run("a_client_without_the_grant_is_unauthorized_client", func(t *testing.T) {
		r := ts.do(t, "POST", "/clients", `{"client_id":"plain","service_scopes":["users:read"]}`, jsonHeader(admin)...)
		if r.status != 201 {
			t.Fatalf("register plain: %d %s", r.status, r.body)
		}
		plain := r.json(t)["client_secret"].(string)
		wantOAuth(t, ts.do(t, "POST", "/token", form("grant_type", "client_credentials"), "Content-Type", formType, "Authorization", basicAuth("plain", plain)), 400, "unauthorized_client")
		// Through x/oauth2 the same refusal is a *oauth2.RetrieveError.
		_, err := (&clientcredentials.Config{ClientID: "plain", ClientSecret: plain, TokenURL: ts.URL + "/token"}).Token(ctx)
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "unauthorized_client" {
			t.Errorf("x/oauth2 error = %v, want unauthorized_client", err)
		}
	})

	t.Run("registration_refuses_what_could_pass_for_a_user", func(t *testing.T) {
		for _, tc := range []struct{ body, field string }{
			// A client_id of a user id's form would give tokens a user's sub.
			{`{"client_id":"6f1c2a4e-8d3b-4c5a-9e7f-0a1b2c3d4e5f","grants":["client_credentials"],"service_scopes":["users:read"]}`, "client_id"},
			{`{"client_id":"spa","confidential":false,"grants":["client_credentials"]}`, "grants"},
		} {
			p := wantProblem(t, ts.do(t, "POST", "/clients", tc.body, jsonHeader(admin)...), 400)
			if !strings.Contains(string(mustJSON(t, p)), `"`+tc.field+`"`) {
				t.Errorf("POST /clients %s: problem %v, want it to name %s", tc.body, p, tc.field)
			}
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestClientSecretRotation: a service rotates its secret without a
// failed request (add one, deploy it, remove the old one), and removing a
// secret ends the tokens obtained with it at once.
func TestClientSecretRotation(t *testing.T) {
	ts := newTestServer(t)
	admin := ts.token(t, "admin", adminPassword, "")
	oldSecret, oldID := registerService(t, ts, admin, "billing", "users:read")
	grant := func(secret string) response {
		return ts.do(t, "POST", "/token", form("grant_type", "client_credentials"), "Content-Type", formType, "Authorization", basicAuth("billing", secret))
	}
	access := func(r response) string {
		t.Helper()
		if r.status != 200 {
			t.Fatalf("client_credentials grant: %d %s", r.status, r.body)
		}
		return r.json(t)["access_token"].(string)
	}
	oldToken := access(grant(oldSecret))

	r := ts.do(t, "POST", "/clients/billing/secrets", "", bearer(admin)...)
	if r.status != 201 || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("add a secret: %d %s (Cache-Control %q), want 201 no-store", r.status, r.body, r.header.Get("Cache-Control"))
	}
	added := r.json(t)
	newSecret, newID := added["client_secret"].(string), added["id"].(string)
	if raw, err := base64.RawURLEncoding.DecodeString(newSecret); err != nil || len(raw) < 32 {
		t.Errorf("new secret %q: %v, want at least 256 bits", newSecret, err)
	}

	// Both secrets work while the new one is deployed.
	access(grant(oldSecret))
	newToken := access(grant(newSecret))
	if got := tokenClaims(t, newToken)["sid"]; got != newID {
		t.Errorf("sid of a token of the new secret = %v, want %s", got, newID)
	}
	for _, tok := range []string{oldToken, newToken} {
		if r := ts.do(t, "GET", "/users/alice", "", bearer(tok)...); r.status != 200 {
			t.Errorf("GET /users/alice during the rotation: %d %s", r.status, r.body)
		}
	}
	list := ts.do(t, "GET", "/clients", "", bearer(admin)...)
	if strings.Contains(string(list.body), oldSecret) || strings.Contains(string(list.body), newSecret) || !strings.Contains(string(list.body), oldID) || !strings.Contains(string(list.body), newID) {
		t.Errorf("GET /clients = %s, want both secret ids and neither secret", list.body)
	}

	// A third secret is refused: two at once is the rotation's need.
	wantProblem(t, ts.do(t, "POST", "/clients/billing/secrets", "", bearer(admin)...), 409)

	if r := ts.do(t, "DELETE", "/clients/billing/secrets/"+oldID, "", bearer(admin)...); r.status != 204 {
		t.Fatalf("remove the old secret: %d %s", r.status, r.body)
	}
	wantOAuth(t, grant(oldSecret), 401, "invalid_client")
	wantChallenge(t, ts.do(t, "GET", "/users/alice", "", bearer(oldToken)...), 401, `Bearer realm="gatehouse", error="invalid_token"`)
	if r := ts.do(t, "GET", "/users/alice", "", bearer(newToken)...); r.status != 200 {
		t.Errorf("the new secret's token after the old one was removed: %d %s", r.status, r.body)
	}
	access(grant(newSecret))

	// The last secret stays; an unknown one is 404.
	wantProblem(t, ts.do(t, "DELETE", "/clients/billing/secrets/"+newID, "", bearer(admin)...), 409)
	wantProblem(t, ts.do(t, "DELETE", "/clients/billing/secrets/"+oldID, "", bearer(admin)...), 404)
	wantProblem(t, ts.do(t, "POST", "/clients/nobody/secrets", "", bearer(admin)...), 404)
	if r := ts.do(t, "POST", "/clients", `{"client_id":"spa","confidential":false}`, jsonHeader(admin)...); r.status != 201 {
		t.Fatalf("register spa: %d", r.status)
	}
	wantProblem(t, ts.do(t, "POST", "/clients/spa/secrets", "", bearer(admin)...), 409)
}

// TestClientChangesEndClientTokens: narrowing a client, taking its grant
// away or deleting it ends the tokens it already holds, at once.
func TestClientChangesEndClientTokens(t *testing.T) {
	ts := newTestServer(t)
	admin := ts.token(t, "admin", adminPassword, "")
	secret, _ := registerService(t, ts, admin, "billing", "users:read", "tokens:introspect")
	get := func(scope string) string {
		t.Helper()
		r := ts.do(t, "POST", "/token", form("grant_type", "client_credentials", "scope", scope), "Content-Type", formType, "Authorization", basicAuth("billing", secret))
		if r.status != 200 {
			t.Fatalf("grant %s: %d %s", scope, r.status, r.body)
		}
		return r.json(t)["access_token"].(string)
	}
	patch := func(body string) {
		t.Helper()
		if r := ts.do(t, "PATCH", "/clients/billing", body, jsonHeader(admin)...); r.status != 200 {
			t.Fatalf("PATCH /clients/billing %s: %d %s", body, r.status, r.body)
		}
	}
	users, introspect := get("users:read"), get("tokens:introspect")

	patch(`{"service_scopes":["tokens:introspect"]}`)
	wantChallenge(t, ts.do(t, "GET", "/users/alice", "", bearer(users)...), 401, `Bearer realm="gatehouse", error="invalid_token"`)
	r := ts.do(t, "POST", "/introspect", form("token", users), "Content-Type", formType, "Authorization", "Bearer "+introspect)
	if r.status != 200 || r.json(t)["active"] != false {
		t.Errorf("introspecting a token of a scope the client lost: %d %s, want inactive", r.status, r.body)
	}
	wantOAuth(t, ts.do(t, "POST", "/token", form("grant_type", "client_credentials", "scope", "users:read"), "Content-Type", formType, "Authorization", basicAuth("billing", secret)), 400, "invalid_scope")

	patch(`{"grants":[]}`)
	wantChallenge(t, ts.do(t, "POST", "/introspect", form("token", introspect), "Content-Type", formType, "Authorization", "Bearer "+introspect), 401, `Bearer realm="gatehouse", error="invalid_token"`)
	wantOAuth(t, ts.do(t, "POST", "/token", form("grant_type", "client_credentials"), "Content-Type", formType, "Authorization", basicAuth("billing", secret)), 400, "unauthorized_client")

	patch(`{"grants":["client_credentials"]}`)
	again := get("tokens:introspect")
	if r := ts.do(t, "DELETE", "/clients/billing", "", bearer(admin)...); r.status != 204 {
		t.Fatalf("delete billing: %d", r.status)
	}
	wantChallenge(t, ts.do(t, "POST", "/introspect", form("token", again), "Content-Type", formType, "Authorization", "Bearer "+again), 401, `Bearer realm="gatehouse", error="invalid_token"`)

	// Re-registered under the same id, the client's old tokens stay dead:
	// they name a secret it no longer has.
	registerService(t, ts, admin, "billing", "tokens:introspect")
	wantChallenge(t, ts.do(t, "POST", "/introspect", form("token", again), "Content-Type", formType, "Authorization", "Bearer "+again), 401, `Bearer realm="gatehouse", error="invalid_token"`)

	wantProblem(t, ts.do(t, "PATCH", "/clients/nobody", `{"grants":[]}`, jsonHeader(admin)...), 404)
	wantProblem(t, ts.do(t, "PATCH", "/clients/billing", `{"grants":["password"]}`, jsonHeader(admin)...), 400)
}
