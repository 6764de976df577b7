package main

import (
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/gatehouse/gatehouse/client"
)

// TestGeneratedClient drives the server as an API consumer would, with the
// client generated from api/openapi.yaml. Steps share one server and run in
// order; a failed step that later ones need stops the test.
func TestGeneratedClient(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	env["GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD"] = adminPassword
	base, _, _ := startServer(t, env)
	c := newClient(t, base)

	var adminToken, aliceToken string
	step := func(name string, f func(t *testing.T)) {
		t.Helper()
		if !t.Run(name, f) {
			t.FailNow()
		}
	}

	step("rfc6749_5.1_password_grant_returns_a_bearer_token_not_to_be_cached", func(t *testing.T) {
		resp := passwordGrant(t, c, "admin", adminPassword, "")
		if resp.StatusCode() != http.StatusOK || resp.JSON200 == nil {
			t.Fatalf("POST /token as admin = %d %s, want 200", resp.StatusCode(), resp.Body)
		}
		if got := resp.JSON200.TokenType; got != "Bearer" {
			t.Errorf("token_type = %q, want Bearer", got)
		}
		if got := resp.JSON200.ExpiresIn; got != 900 {
			t.Errorf("expires_in = %d, want 900 (the default 15m)", got)
		}
		if resp.JSON200.AccessToken == "" {
			t.Errorf("access_token is empty")
		}
		if got := resp.HTTPResponse.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("Cache-Control = %q, want no-store", got)
		}
		if got := resp.HTTPResponse.Header.Get("Pragma"); got != "no-cache" {
			t.Errorf("Pragma = %q, want no-cache", got)
		}
		// Without a scope parameter the admin gets every scope it holds.
		var granted []string
		if resp.JSON200.Scope != nil {
			granted = strings.Fields(*resp.JSON200.Scope)
		}
		if want := specScopes(t); !slices.Equal(granted, want) {
			t.Errorf("scope = %q, want %q", granted, want)
		}
		adminToken = resp.JSON200.AccessToken
	})

	step("create_user_is_201_with_location", func(t *testing.T) {
		resp, err := c.CreateUserWithResponse(t.Context(),
			client.NewUser{Username: "alice", Password: alicePassword, Scopes: &[]string{"me"}}, bearer(adminToken))
		if err != nil {
			t.Fatalf("POST /users: %v", err)
		}
		if resp.StatusCode() != http.StatusCreated || resp.JSON201 == nil {
			t.Fatalf("POST /users alice = %d %s, want 201", resp.StatusCode(), resp.Body)
		}
		if got := resp.HTTPResponse.Header.Get("Location"); got != "/users/alice" {
			t.Errorf("Location = %q, want /users/alice", got)
		}
		if got := resp.JSON201; got.Username != "alice" || !slices.Equal(got.Scopes, []string{"me"}) || got.Disabled || got.Id == "" {
			t.Errorf("created user = %+v, want alice with scopes [me], enabled, with an id", got)
		}
	})

	step("rfc6749_3.3_requested_scope_is_granted", func(t *testing.T) {
		resp := passwordGrant(t, c, "alice", alicePassword, "me")
		if resp.StatusCode() != http.StatusOK || resp.JSON200 == nil {
			t.Fatalf("POST /token as alice = %d %s, want 200", resp.StatusCode(), resp.Body)
		}
		if resp.JSON200.Scope == nil || *resp.JSON200.Scope != "me" {
			t.Errorf("scope = %v, want \"me\"", resp.JSON200.Scope)
		}
		aliceToken = resp.JSON200.AccessToken
	})

	t.Run("users_me_is_the_token_subject", func(t *testing.T) {
		resp, err := c.GetCurrentUserWithResponse(t.Context(), bearer(aliceToken))
		if err != nil {
			t.Fatalf("GET /users/me: %v", err)
		}
		if resp.StatusCode() != http.StatusOK || resp.JSON200 == nil {
			t.Fatalf("GET /users/me as alice = %d %s, want 200", resp.StatusCode(), resp.Body)
		}
		if got := resp.JSON200; got.Username != "alice" || !slices.Equal(got.Scopes, []string{"me"}) {
			t.Errorf("GET /users/me = %+v, want username alice with scopes [me]", got)
		}
	})

	t.Run("rfc6750_3.1_token_without_required_scope_is_403_insufficient_scope", func(t *testing.T) {
		resp, err := c.ListUsersWithResponse(t.Context(), nil, bearer(aliceToken))
		if err != nil {
			t.Fatalf("GET /users: %v", err)
		}
		if resp.StatusCode() != http.StatusForbidden {
			t.Fatalf("GET /users as alice = %d %s, want 403", resp.StatusCode(), resp.Body)
		}
		challenge := resp.HTTPResponse.Header.Get("WWW-Authenticate")
		for _, want := range []string{"Bearer ", `error="insufficient_scope"`, `scope="users:read"`} {
			if !strings.Contains(challenge, want) {
				t.Errorf("WWW-Authenticate = %q, want it to contain %s", challenge, want)
			}
		}
		if got := resp.ContentType(); got != "application/problem+json" {
			t.Errorf("Content-Type = %q, want application/problem+json", got)
		}
	})

	t.Run("rfc6750_3.1_request_without_token_is_401_without_error_code", func(t *testing.T) {
		resp, err := c.GetCurrentUserWithResponse(t.Context())
		if err != nil {
			t.Fatalf("GET /users/me: %v", err)
		}
		if resp.StatusCode() != http.StatusUnauthorized {
			t.Fatalf("GET /users/me without a token = %d %s, want 401", resp.StatusCode(), resp.Body)
		}
		if got := resp.HTTPResponse.Header.Get("WWW-Authenticate"); got != `Bearer realm="gatehouse"` {
			t.Errorf("WWW-Authenticate = %q, want %q", got, `Bearer realm="gatehouse"`)
		}
	})

	t.Run("rfc6749_5.2_wrong_password_is_invalid_grant", func(t *testing.T) {
		resp := passwordGrant(t, c, "alice", "not-"+alicePassword, "me")
		if resp.StatusCode() != http.StatusBadRequest || resp.JSON400 == nil {
			t.Fatalf("POST /token with a wrong password = %d %s, want 400", resp.StatusCode(), resp.Body)
		}
		if got := resp.JSON400.Error; got != client.InvalidGrant {
			t.Errorf("error = %q, want invalid_grant", got)
		}
		if got := resp.HTTPResponse.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("Cache-Control = %q, want no-store", got)
		}
	})
}

// TestOAuth2Client checks interoperability with golang.org/x/oauth2, a
// client that follows RFC 6749 rather than our OpenAPI document.
func TestOAuth2Client(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	env["GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD"] = adminPassword
	base, _, _ := startServer(t, env)
	c := newClient(t, base)
	alice := createUser(t, c, accessToken(t, c, "admin", adminPassword, ""), "alice", alicePassword, "me")

	cfg := &oauth2.Config{
		ClientID: "cli",
		Endpoint: oauth2.Endpoint{TokenURL: base + "/token"},
		Scopes:   []string{"me"},
	}

	t.Run("password_credentials_token_reaches_users_me", func(t *testing.T) {
		tok, err := cfg.PasswordCredentialsToken(t.Context(), "alice", alicePassword)
		if err != nil {
			t.Fatalf("PasswordCredentialsToken(alice) = %v", err)
		}
		if tok.Type() != "Bearer" || tok.Expiry.IsZero() {
			t.Errorf("token type %q, expiry %v; want Bearer with an expiry", tok.Type(), tok.Expiry)
		}
		resp, err := cfg.Client(t.Context(), tok).Get(base + "/users/me")
		if err != nil {
			t.Fatalf("GET /users/me: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"username":"alice"`) {
			t.Errorf("GET /users/me with the oauth2 client = %d %s, want 200 for alice", resp.StatusCode, body)
		}

		// RFC 9068 §2: an at+jwt naming its key, issued to the client
		// that asked for it.
		header, claims := jwtParts(t, tok.AccessToken)
		if header["typ"] != "at+jwt" {
			t.Errorf("JWT typ = %v, want at+jwt", header["typ"])
		}
		if header["alg"] != "RS256" {
			t.Errorf("JWT alg = %v, want RS256", header["alg"])
		}
		if kid, _ := header["kid"].(string); kid == "" {
			t.Errorf("JWT has no kid: %v", header)
		}
		wantClaims := map[string]any{
			"client_id":          "cli",
			"scope":              "me",
			"sub":                alice.Id,
			"preferred_username": "alice",
		}
		for name, want := range wantClaims {
			if claims[name] != want {
				t.Errorf("JWT claim %s = %v, want %v", name, claims[name], want)
			}
		}
		for _, name := range []string{"iss", "aud", "exp", "iat", "jti"} {
			if _, ok := claims[name]; !ok {
				t.Errorf("JWT lacks the %s claim (RFC 9068 §2.2): %v", name, claims)
			}
		}
	})

	t.Run("rfc6749_5.2_wrong_password_is_retrieve_error_invalid_grant", func(t *testing.T) {
		tok, err := cfg.PasswordCredentialsToken(t.Context(), "alice", "not-"+alicePassword)
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) {
			t.Fatalf("PasswordCredentialsToken with a wrong password = %v, %v; want an *oauth2.RetrieveError", tok, err)
		}
		if re.ErrorCode != "invalid_grant" {
			t.Errorf("RetrieveError.ErrorCode = %q, want invalid_grant (body %s)", re.ErrorCode, re.Body)
		}
		if re.Response.StatusCode != http.StatusBadRequest {
			t.Errorf("status = %d, want 400", re.Response.StatusCode)
		}
	})
}

func TestHS256_tokens_are_signed_with_the_secret_and_accepted(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	env["GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD"] = adminPassword
	env["GATEHOUSE_SIGNING_ALG"] = "HS256"
	env["GATEHOUSE_HS256_SECRET"] = strings.Repeat("0123456789abcdef", 2) + "!" // 33 bytes
	base, stderr, _ := startServer(t, env)
	c := newClient(t, base)

	if rec, _ := findLog(stderr.String(), "gatehouse listening"); rec["signing_alg"] != "HS256" {
		t.Errorf("the \"gatehouse listening\" log line says signing_alg %v, want HS256", rec["signing_alg"])
	}
	token := accessToken(t, c, "admin", adminPassword, "me")
	header, _ := jwtParts(t, token)
	if header["alg"] != "HS256" {
		t.Errorf("JWT alg = %v, want HS256", header["alg"])
	}
	if kid, _ := header["kid"].(string); kid == "" || strings.Contains(kid, "0123456789abcdef") {
		t.Errorf("JWT kid = %q, want one that names the secret without revealing it", kid)
	}
	resp, err := c.GetCurrentUserWithResponse(t.Context(), bearer(token))
	if err != nil {
		t.Fatalf("GET /users/me: %v", err)
	}
	if resp.StatusCode() != http.StatusOK || resp.JSON200 == nil || resp.JSON200.Username != "admin" {
		t.Errorf("GET /users/me with an HS256 token = %d %s, want 200 for admin", resp.StatusCode(), resp.Body)
	}
}
