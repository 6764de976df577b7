package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/golang-jwt/jwt/v5"
)

// forge signs claims with the given method, key and header overrides.
func forge(t *testing.T, method jwt.SigningMethod, key any, claims jwt.Claims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	tok.Header["typ"] = AccessTokenType
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
			continue
		}
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *fixture) claims(mutate func(*Claims)) *Claims {
	c := &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    testIssuer,
			Subject:   "user-1",
			Audience:  jwt.ClaimStrings{testAudience},
			ExpiresAt: jwt.NewNumericDate(f.now.Add(testTTL)),
			NotBefore: jwt.NewNumericDate(f.now),
			IssuedAt:  jwt.NewNumericDate(f.now),
			ID:        "jti-1",
		},
		ClientID:  PublicClientID,
		Scope:     "me",
		SessionID: "session-1",
	}
	if mutate != nil {
		mutate(c)
	}
	return c
}

func TestVerify(t *testing.T) {
	f := newFixture(t, AlgRS256, nil)
	_, _, signKey := f.keys.Signer()
	priv := signKey.(*rsa.PrivateKey)
	kid := f.keys.SigningKeyID()
	kidHeader := map[string]any{"kid": kid}
	pubDER, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	valid := forge(t, jwt.SigningMethodRS256, priv, f.claims(nil), kidHeader)

	t.Run("rfc9068_4_valid_token_is_accepted", func(t *testing.T) {
		c, err := f.validator.Verify(valid)
		if err != nil {
			t.Fatal(err)
		}
		if c.Subject != "user-1" || !c.HasScope("me") {
			t.Errorf("got claims %+v", c)
		}
	})

	t.Run("issued_token_is_accepted", func(t *testing.T) {
		f.createUser(t, "carol", "correct horse", "me")
		if _, err := f.validator.Verify(f.login(t, "carol", "correct horse", "")); err != nil {
			t.Fatal(err)
		}
	})

	tamperedPayload := func() string {
		parts := strings.Split(valid, ".")
		other := strings.Split(forge(t, jwt.SigningMethodRS256, priv, f.claims(func(c *Claims) { c.Scope = "me users:write" }), kidHeader), ".")
		return parts[0] + "." + other[1] + "." + parts[2]
	}()
	algNone := func() string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodNone, f.claims(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}()

	for _, tc := range []struct {
		name  string
		token string
		want  string // substring of the description
	}{
		{"rfc7515_tampered_payload_is_invalid_token", tamperedPayload, "invalid"},
		{"rfc8725_3.1_alg_none_is_invalid_token", algNone, ""},
		{"rfc8725_3.1_alg_none_with_our_kid_is_invalid_token", func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodNone, f.claims(nil))
			tok.Header["kid"], tok.Header["typ"] = kid, AccessTokenType
			s, _ := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
			return s
		}(), ""},
		{"rfc8725_2.1_hs256_signed_with_the_public_key_pem_is_invalid_token", forge(t, jwt.SigningMethodHS256, pubPEM, f.claims(nil), kidHeader), ""},
		{"rfc8725_2.1_hs256_signed_with_the_public_key_der_is_invalid_token", forge(t, jwt.SigningMethodHS256, pubDER, f.claims(nil), kidHeader), ""},
		{"unknown_kid_is_invalid_token", forge(t, jwt.SigningMethodRS256, otherKey, f.claims(nil), map[string]any{"kid": "not-ours"}), ""},
		{"our_kid_signed_by_another_key_is_invalid_token", forge(t, jwt.SigningMethodRS256, otherKey, f.claims(nil), kidHeader), ""},
		{"kid_path_traversal_is_invalid_token", forge(t, jwt.SigningMethodRS256, priv, f.claims(nil), map[string]any{"kid": "../../../../dev/null"}), ""},
		{"missing_kid_is_invalid_token", forge(t, jwt.SigningMethodRS256, priv, f.claims(nil), map[string]any{"kid": nil}), ""},
		{"rfc7519_4.1.4_expired_is_invalid_token", forge(t, jwt.SigningMethodRS256, priv, f.claims(func(c *Claims) {
			c.ExpiresAt = jwt.NewNumericDate(f.now.Add(-DefaultLeeway - time.Second))
		}), kidHeader), "expired"},
		{"rfc7519_4.1.4_missing_exp_is_invalid_token", forge(t, jwt.SigningMethodRS256, priv, f.claims(func(c *Claims) { c.ExpiresAt = nil }), kidHeader), ""},
		{"rfc7519_4.1.5_not_yet_valid_is_invalid_token", forge(t, jwt.SigningMethodRS256, priv, f.claims(func(c *Claims) {
			c.NotBefore = jwt.NewNumericDate(f.now.Add(DefaultLeeway + time.Minute))
		}), kidHeader), "not valid yet"},
		{"rfc9068_4_wrong_issuer_is_invalid_token", forge(t, jwt.SigningMethodRS256, priv, f.claims(func(c *Claims) { c.Issuer = "https://evil.test" }), kidHeader), "issuer"},
		{"rfc9068_4_wrong_audience_is_invalid_token", forge(t, jwt.SigningMethodRS256, priv, f.claims(func(c *Claims) { c.Audience = jwt.ClaimStrings{"other-api"} }), kidHeader), "audience"},
		{"rfc9068_4_typ_jwt_is_not_an_access_token", forge(t, jwt.SigningMethodRS256, priv, f.claims(nil), map[string]any{"kid": kid, "typ": "JWT"}), "not an access token"},
		{"rfc9068_4_missing_typ_is_not_an_access_token", forge(t, jwt.SigningMethodRS256, priv, f.claims(nil), map[string]any{"kid": kid, "typ": nil}), "not an access token"},
		{"rfc7515_4.1.11_unknown_crit_header_is_invalid_token", forge(t, jwt.SigningMethodRS256, priv, f.claims(nil), map[string]any{"kid": kid, "crit": []string{"exp"}}), ""},
		{"missing_sub_is_invalid_token", forge(t, jwt.SigningMethodRS256, priv, f.claims(func(c *Claims) { c.Subject = "" }), kidHeader), ""},
		{"oversized_token_is_invalid_token", valid + strings.Repeat("A", maxTokenBytes), "too large"},
		{"rfc8725_3.10_embedded_jwk_of_the_signer_is_ignored", forge(t, jwt.SigningMethodRS256, otherKey, f.claims(nil), map[string]any{
			"kid": "attacker", "jwk": map[string]any{"kty": "RSA", "kid": "attacker", "n": base64.RawURLEncoding.EncodeToString(otherKey.N.Bytes()), "e": "AQAB"},
		}), ""},
		{"rfc8725_3.10_embedded_jwk_with_our_kid_is_ignored", forge(t, jwt.SigningMethodRS256, otherKey, f.claims(nil), map[string]any{
			"kid": kid, "jwk": map[string]any{"kty": "RSA", "kid": kid, "n": base64.RawURLEncoding.EncodeToString(otherKey.N.Bytes()), "e": "AQAB"},
		}), ""},
		{"rfc8725_3.10_jku_is_ignored", forge(t, jwt.SigningMethodRS256, otherKey, f.claims(nil), map[string]any{"kid": kid, "jku": "http://127.0.0.1:1/jwks.json"}), ""},
		{"rfc8725_3.10_x5u_is_ignored", forge(t, jwt.SigningMethodRS256, otherKey, f.claims(nil), map[string]any{"kid": kid, "x5u": "http://127.0.0.1:1/cert.pem"}), ""},
		{"rfc8725_3.10_x5c_is_ignored", forge(t, jwt.SigningMethodRS256, otherKey, f.claims(nil), map[string]any{"kid": kid, "x5c": []string{base64.StdEncoding.EncodeToString(pubDER)}}), ""},
		{"deeply_nested_claims_are_invalid_token", func() string {
			h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","typ":"at+jwt","kid":"` + kid + `"}`))
			p := base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat(`{"a":`, 2000) + "1" + strings.Repeat("}", 2000)))
			return h + "." + p + ".c2ln"
		}(), ""},
		{"deeply_nested_header_is_invalid_token", func() string {
			h := base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat("[", 3000) + strings.Repeat("]", 3000)))
			return h + ".e30.c2ln"
		}(), ""},
		{"refresh_token_used_as_access_token_is_invalid_token", "Qm9ndXNSZWZyZXNoVG9rZW5PZjMyQnl0ZXNGb3JUZXN0aW5n", ""},
		{"garbage_is_invalid_token", "not.a.jwt", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.validator.Verify(tc.token)
			var be *BearerError
			if !errors.As(err, &be) {
				t.Fatalf("got %v, want *BearerError", err)
			}
			if be.Status != http.StatusUnauthorized || be.Code != BearerInvalidToken {
				t.Errorf("got %d %s, want 401 invalid_token", be.Status, be.Code)
			}
			if !strings.Contains(be.Description, tc.want) {
				t.Errorf("got description %q, want it to mention %q", be.Description, tc.want)
			}
		})
	}

	t.Run("rfc7519_4.1.4_expiry_within_the_leeway_is_accepted", func(t *testing.T) {
		tok := forge(t, jwt.SigningMethodRS256, priv, f.claims(func(c *Claims) {
			c.ExpiresAt = jwt.NewNumericDate(f.now.Add(-DefaultLeeway / 2))
		}), kidHeader)
		if _, err := f.validator.Verify(tok); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("rfc9068_4_typ_is_compared_case_insensitively", func(t *testing.T) {
		tok := forge(t, jwt.SigningMethodRS256, priv, f.claims(nil), map[string]any{"kid": kid, "typ": "application/AT+JWT"})
		if _, err := f.validator.Verify(tok); err != nil {
			t.Fatal(err)
		}
	})
}

func TestVerifyHS256(t *testing.T) {
	secret := []byte(strings.Repeat("s", 32))
	f := newFixture(t, AlgHS256, secret)
	f.createUser(t, "dave", "correct horse", "me")
	tok := f.login(t, "dave", "correct horse", "")
	if h := decodeSegment(t, tok, 0); h["alg"] != "HS256" {
		t.Fatalf("got alg %v, want HS256", h["alg"])
	}
	if _, err := f.validator.Verify(tok); err != nil {
		t.Fatalf("own HS256 token: %v", err)
	}
	forged := forge(t, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 32)), f.claims(nil), map[string]any{"kid": f.keys.SigningKeyID()})
	if _, err := f.validator.Verify(forged); err == nil {
		t.Fatal("token signed with another secret was accepted")
	}
}

// authInput builds what kin-openapi passes to an AuthenticationFunc.
func authInput(r *http.Request, scopes ...string) *openapi3filter.AuthenticationInput {
	return &openapi3filter.AuthenticationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: r},
		SecuritySchemeName:     "oauth2",
		SecurityScheme:         &openapi3.SecurityScheme{Type: "oauth2"},
		Scopes:                 scopes,
	}
}

func TestAuthenticate(t *testing.T) {
	f := newFixture(t, AlgRS256, nil)
	f.createUser(t, "erin", "correct horse", "me", "users:read")
	token := f.login(t, "erin", "correct horse", "me")

	request := func(target string, auth ...string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, target, nil)
		for _, a := range auth {
			r.Header.Add("Authorization", a)
		}
		return r.WithContext(WithClaimsHolder(r.Context()))
	}

	for _, tc := range []struct {
		name     string
		req      *http.Request
		scopes   []string
		status   int
		code     string
		scopeHdr string
	}{
		{"rfc6750_3.1_no_credentials_has_no_error_code", request("/users/me"), []string{"me"}, 401, "", ""},
		{"rfc6750_2.1_other_scheme_is_no_bearer_credentials", request("/users/me", "Basic Og=="), []string{"me"}, 401, "", ""},
		{"rfc6750_2.3_token_only_in_query_is_no_usable_credentials", request("/users/me?access_token=" + token), []string{"me"}, 401, "", ""},
		{"rfc6750_2.3_token_in_query_beside_header_is_invalid_request", request("/users/me?access_token="+token, "Bearer "+token), []string{"me"}, 400, BearerInvalidRequest, ""},
		{"rfc6750_3.1_two_authorization_headers_is_invalid_request", request("/users/me", "Bearer "+token, "Bearer "+token), []string{"me"}, 400, BearerInvalidRequest, ""},
		{"rfc6750_3.1_empty_token_is_no_usable_credentials", request("/users/me", "Bearer "), []string{"me"}, 401, "", ""},
		{"rfc6750_2.1_token_outside_b64token_is_invalid_token", request("/users/me", "Bearer a b"), []string{"me"}, 401, BearerInvalidToken, ""},
		{"rfc6750_3.1_missing_scope_is_insufficient_scope", request("/users", "Bearer "+token), []string{"users:read"}, 403, BearerInsufficientScope, "users:read"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := f.validator.Authenticate(tc.req.Context(), authInput(tc.req, tc.scopes...))
			var be *BearerError
			if !errors.As(err, &be) {
				t.Fatalf("got %v, want *BearerError", err)
			}
			if be.Status != tc.status || be.Code != tc.code || be.Scope != tc.scopeHdr {
				t.Errorf("got %d %q scope %q, want %d %q scope %q", be.Status, be.Code, be.Scope, tc.status, tc.code, tc.scopeHdr)
			}
			if _, ok := ClaimsFromContext(tc.req.Context()); ok {
				t.Error("claims reached the context of a refused request")
			}
		})
	}

	for _, scheme := range []string{"Bearer", "bearer", "BEARER", "bEaReR"} {
		t.Run("rfc6750_2.1_scheme_"+scheme+"_is_case_insensitive", func(t *testing.T) {
			r := request("/users/me", scheme+" "+token)
			if err := f.validator.Authenticate(r.Context(), authInput(r, "me")); err != nil {
				t.Fatal(err)
			}
			c, ok := ClaimsFromContext(r.Context())
			if !ok || c.PreferredUsername != "erin" {
				t.Fatalf("got claims %+v, %v; want erin's", c, ok)
			}
		})
	}

	t.Run("fails_closed_without_a_claims_holder", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodGet, "/users/me", nil)
		r.Header.Set("Authorization", "Bearer "+token)
		if err := f.validator.Authenticate(context.Background(), authInput(r, "me")); err == nil {
			t.Fatal("got nil error without a holder")
		}
		if _, ok := ClaimsFromContext(r.Context()); ok {
			t.Fatal("claims without a holder")
		}
	})

	t.Run("other_security_schemes_are_refused", func(t *testing.T) {
		r := request("/users/me", "Bearer "+token)
		in := authInput(r, "me")
		in.SecurityScheme = &openapi3.SecurityScheme{Type: "apiKey"}
		if err := f.validator.Authenticate(r.Context(), in); err == nil {
			t.Fatal("got nil error for an apiKey scheme")
		}
	})
}
