package auth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
	"github.com/gatehouse/gatehouse/internal/users"
)

func TestToken(t *testing.T) {
	f := newFixture(t, AlgRS256, nil)
	alice := f.createUser(t, "alice", "correct horse", "me", "users:read")
	f.createUser(t, "mallory", "correct horse", "me")
	if _, err := f.users.Update(context.Background(), users.CLIActor(), "mallory", users.Patch{Disabled: ptr(true)}); err != nil {
		t.Fatal(err)
	}

	t.Run("rfc6749_4.3.2_valid_credentials_issue_a_bearer_token", func(t *testing.T) {
		resp, err := f.issuer.Token(context.Background(), TokenRequest{GrantType: "password", Username: "alice", Password: "correct horse"})
		if err != nil {
			t.Fatal(err)
		}
		if resp.TokenType != "Bearer" || resp.ExpiresIn != int(testTTL/time.Second) {
			t.Errorf("got token_type %q expires_in %d, want Bearer %d", resp.TokenType, resp.ExpiresIn, int(testTTL/time.Second))
		}
		// No scope requested: every scope the user holds.
		if resp.Scope != "me users:read" {
			t.Errorf("got scope %q, want %q", resp.Scope, "me users:read")
		}
	})

	t.Run("rfc6749_3.3_requested_scope_narrows_the_grant", func(t *testing.T) {
		resp, err := f.issuer.Token(context.Background(), TokenRequest{GrantType: "password", Username: "alice", Password: "correct horse", Scope: "me"})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Scope != "me" {
			t.Errorf("got scope %q, want me", resp.Scope)
		}
	})

	t.Run("username_is_case_insensitive", func(t *testing.T) {
		if _, err := f.issuer.Token(context.Background(), TokenRequest{GrantType: "password", Username: "ALICE", Password: "correct horse"}); err != nil {
			t.Fatal(err)
		}
	})

	for _, tc := range []struct {
		name   string
		req    TokenRequest
		code   string
		status int
	}{
		{"rfc6749_5.2_unknown_user_is_invalid_grant", TokenRequest{GrantType: "password", Username: "nobody", Password: "correct horse"}, CodeInvalidGrant, 400},
		{"rfc6749_5.2_wrong_password_is_invalid_grant", TokenRequest{GrantType: "password", Username: "alice", Password: "wrong horse"}, CodeInvalidGrant, 400},
		{"rfc6749_5.2_disabled_user_is_invalid_grant", TokenRequest{GrantType: "password", Username: "mallory", Password: "correct horse"}, CodeInvalidGrant, 400},
		{"rfc6749_5.2_missing_grant_type_is_invalid_request", TokenRequest{Username: "alice", Password: "correct horse"}, CodeInvalidRequest, 400},
		{"rfc6749_5.2_missing_username_is_invalid_request", TokenRequest{GrantType: "password", Password: "correct horse"}, CodeInvalidRequest, 400},
		{"rfc6749_5.2_missing_password_is_invalid_request", TokenRequest{GrantType: "password", Username: "alice"}, CodeInvalidRequest, 400},
		{"rfc6749_5.2_unknown_grant_is_unsupported_grant_type", TokenRequest{GrantType: "urn:ietf:params:oauth:grant-type:device_code"}, CodeUnsupportedGrantType, 400},
		{"rfc6749_4.4_client_credentials_without_client_authentication_is_invalid_client", TokenRequest{GrantType: "client_credentials"}, CodeInvalidClient, 401},
		{"rfc6749_5.2_authorization_code_is_unsupported_grant_type", TokenRequest{GrantType: "authorization_code"}, CodeUnsupportedGrantType, 400},
		{"rfc6749_5.2_scope_not_held_is_invalid_scope", TokenRequest{GrantType: "password", Username: "alice", Password: "correct horse", Scope: "me users:write"}, CodeInvalidScope, 400},
		{"rfc6749_5.2_unknown_scope_is_invalid_scope", TokenRequest{GrantType: "password", Username: "alice", Password: "correct horse", Scope: "admin"}, CodeInvalidScope, 400},
		{"rfc6749_5.2_client_secret_without_registered_client_is_invalid_client", TokenRequest{GrantType: "password", Username: "alice", Password: "correct horse", ClientID: "app", ClientSecret: "s3cret"}, CodeInvalidClient, 401},
		{"rfc6749_2.2_client_id_with_control_characters_is_invalid_request", TokenRequest{GrantType: "password", Username: "alice", Password: "correct horse", ClientID: "a\nb"}, CodeInvalidRequest, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.issuer.Token(context.Background(), tc.req)
			wantOAuthError(t, err, tc.code, tc.status)
		})
	}

	t.Run("rfc6749_5.2_unknown_user_and_wrong_password_look_the_same", func(t *testing.T) {
		_, errUnknown := f.issuer.Token(context.Background(), TokenRequest{GrantType: "password", Username: "nobody", Password: "correct horse"})
		_, errWrong := f.issuer.Token(context.Background(), TokenRequest{GrantType: "password", Username: "alice", Password: "wrong horse"})
		if errUnknown.Error() != errWrong.Error() {
			t.Errorf("got %q for an unknown user and %q for a wrong password, want the same", errUnknown, errWrong)
		}
	})

	t.Run("rfc9068_2.2_access_token_claims", func(t *testing.T) {
		resp, err := f.issuer.Token(context.Background(), TokenRequest{GrantType: "password", Username: "alice", Password: "correct horse", Scope: "me", ClientID: "cli"})
		if err != nil {
			t.Fatal(err)
		}
		header := decodeSegment(t, resp.AccessToken, 0)
		if header["typ"] != "at+jwt" || header["alg"] != "RS256" || header["kid"] != f.keys.SigningKeyID() {
			t.Errorf("got header %v, want typ at+jwt, alg RS256, kid %s", header, f.keys.SigningKeyID())
		}
		c := decodeSegment(t, resp.AccessToken, 1)
		now := float64(f.now.Unix())
		want := map[string]any{
			"iss": testIssuer, "sub": alice.ID, "client_id": "cli", "scope": "me", "preferred_username": "alice",
			"iat": now, "nbf": now, "exp": now + testTTL.Seconds(),
		}
		for k, v := range want {
			if c[k] != v {
				t.Errorf("claim %s: got %v, want %v", k, c[k], v)
			}
		}
		if aud, _ := c["aud"].([]any); len(aud) != 1 || aud[0] != testAudience {
			t.Errorf("got aud %v, want [%s]", c["aud"], testAudience)
		}
		if jti, _ := c["jti"].(string); len(jti) < 16 {
			t.Errorf("got jti %q, want a random identifier", jti)
		}
	})

	t.Run("rfc9068_2.2_public_client_gets_the_public_client_id", func(t *testing.T) {
		c := decodeSegment(t, f.login(t, "alice", "correct horse", ""), 1)
		if c["client_id"] != PublicClientID {
			t.Errorf("got client_id %v, want %s", c["client_id"], PublicClientID)
		}
	})

	t.Run("rfc7519_4.1.7_every_token_has_its_own_jti", func(t *testing.T) {
		a := decodeSegment(t, f.login(t, "alice", "correct horse", ""), 1)
		b := decodeSegment(t, f.login(t, "alice", "correct horse", ""), 1)
		if a["jti"] == b["jti"] {
			t.Errorf("two tokens share jti %v", a["jti"])
		}
	})
}

func TestParseTokenRequest(t *testing.T) {
	newReq := func(query, body string, header http.Header) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/token"+query, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range header {
			r.Header[k] = v
		}
		if err := r.ParseForm(); err != nil {
			t.Fatal(err)
		}
		return r
	}
	basic := func(id, secret string) http.Header {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
		return r.Header
	}
	form := "grant_type=password&username=alice&password=pw"

	for _, tc := range []struct {
		name       string
		query      string
		body       string
		header     http.Header
		wantCode   string
		wantClient string
		wantSecret string
	}{
		{name: "rfc6749_4.3.2_parameters_from_the_body", body: form + "&scope=me"},
		{name: "rfc6749_3.2_repeated_parameter_is_invalid_request", body: form + "&scope=me&scope=users:read", wantCode: CodeInvalidRequest},
		{name: "rfc6749_2.3.1_password_in_the_query_is_invalid_request", query: "?password=pw", body: "grant_type=password&username=alice", wantCode: CodeInvalidRequest},
		{name: "rfc6749_2.3.1_client_secret_in_the_query_is_invalid_request", query: "?client_secret=s", body: form, wantCode: CodeInvalidRequest},
		{name: "unrelated_query_parameters_are_allowed", query: "?tenant=x", body: form},
		{name: "rfc6749_2.3.1_basic_with_empty_credentials_is_a_public_client", body: form, header: http.Header{"Authorization": {"Basic Og=="}}},
		{name: "rfc6749_2.3.1_basic_client_id_without_secret", body: form, header: basic("cli", ""), wantClient: "cli"},
		{name: "rfc6749_2.3.1_basic_credentials_are_form_decoded", body: form, header: basic("my app", "s:e%c"), wantClient: "my app", wantSecret: "s:e%c"},
		{name: "rfc6749_2.3.1_body_client_id_alone", body: form + "&client_id=cli", wantClient: "cli"},
		{name: "rfc6749_2.3_two_client_authentication_methods_are_invalid_request", body: form + "&client_secret=x", header: basic("cli", "y"), wantCode: CodeInvalidRequest},
		{name: "rfc6749_2.3_basic_and_body_client_id_disagree", body: form + "&client_id=other", header: basic("cli", ""), wantCode: CodeInvalidRequest},
		{name: "rfc6749_5.2_malformed_basic_is_invalid_client", body: form, header: http.Header{"Authorization": {"Basic !!!"}}, wantCode: CodeInvalidClient},
		{name: "bearer_on_the_token_endpoint_is_invalid_request", body: form, header: http.Header{"Authorization": {"Bearer abc"}}, wantCode: CodeInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseTokenRequest(newReq(tc.query, tc.body, tc.header))
			if tc.wantCode != "" {
				if e, ok := err.(*Error); !ok || e.Code != tc.wantCode {
					t.Fatalf("got %v, want %s", err, tc.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.GrantType != "password" || got.Username != "alice" || got.Password != "pw" {
				t.Errorf("got %+v, want the form's grant_type, username and password", got)
			}
			if got.ClientID != tc.wantClient || got.ClientSecret != tc.wantSecret {
				t.Errorf("got client %q secret %q, want %q %q", got.ClientID, got.ClientSecret, tc.wantClient, tc.wantSecret)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestToken_the_public_client_id_is_the_anonymous_client_even_if_registered(t *testing.T) {
	f := newFixture(t, AlgRS256, nil)
	f.createUser(t, "alice", "correct horse", "me", "users:read")
	// A store from before the reservation may hold a client named public,
	// limited to some scopes; it must not stand in for anonymous callers.
	if err := f.store.CreateClient(context.Background(), &storage.Client{ID: "public", Secrets: []storage.ClientSecret{{ID: "s1", Hash: "00"}}, Scopes: []string{"me"}}); err != nil {
		t.Fatal(err)
	}
	anon, err := f.issuer.Token(context.Background(), TokenRequest{GrantType: GrantPassword, Username: "alice", Password: "correct horse"})
	if err != nil {
		t.Fatal(err)
	}
	named, err := f.issuer.Token(context.Background(), TokenRequest{GrantType: GrantPassword, Username: "alice", Password: "correct horse", ClientID: "public"})
	if err != nil {
		t.Fatalf("client_id=public without a secret: %v", err)
	}
	if anon.Scope != "me users:read" || named.Scope != anon.Scope {
		t.Errorf("scopes %q and %q, want both %q: the registered public client's limit must not apply", anon.Scope, named.Scope, "me users:read")
	}
	// Its refresh token refreshes as the anonymous client's does.
	if _, err := f.refresh(named.RefreshToken, "", ""); err != nil {
		t.Errorf("refresh of a client_id=public login without client_id: %v", err)
	}
	_, err = f.issuer.Token(context.Background(), TokenRequest{GrantType: GrantPassword, Username: "alice", Password: "correct horse", ClientID: "public", ClientSecret: "guess"})
	wantOAuthError(t, err, CodeInvalidClient, 401)
}
