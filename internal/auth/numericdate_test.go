package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// notNumbers are JSON values of every type but number, for a NumericDate
// claim; "date" stands for the claim's valid value as a string.
var notNumbers = []struct {
	name  string
	value func(date int64) any
}{
	{"numeric_string", func(date int64) any { return strconv.FormatInt(date, 10) }},
	{"fractional_string", func(date int64) any { return strconv.FormatInt(date, 10) + ".5" }},
	{"other_string", func(int64) any { return "tomorrow" }},
	{"empty_string", func(int64) any { return "" }},
	{"null", func(int64) any { return nil }},
	{"true", func(int64) any { return true }},
	{"object", func(date int64) any { return map[string]any{"exp": date} }},
	{"array", func(date int64) any { return []any{date} }},
}

func TestVerify_rfc7519_2_numericdate_must_be_a_number(t *testing.T) {
	f := newFixture(t, AlgRS256, nil)
	kid, method, key := f.keys.Signer()
	header := map[string]any{"kid": kid}
	cached := NewValidator(f.keys, ValidatorConfig{Issuer: testIssuer, Audience: testAudience, Leeway: DefaultLeeway, Now: func() time.Time { return f.now }, Revocations: f.revocations, CacheSize: 16})
	validators := map[string]*Validator{"uncached": f.validator, "cached": cached}
	dates := map[string]int64{
		"exp": f.now.Add(testTTL).Unix(),
		"nbf": f.now.Unix(),
		"iat": f.now.Unix(),
	}
	// claims are f.claims(nil) as a map, so that a date can be any JSON
	// value; set changes it (a Go nil is JSON null, not absent).
	claims := func(set map[string]any) jwt.MapClaims {
		c := jwt.MapClaims{
			"iss": testIssuer, "sub": "user-1", "aud": testAudience, "jti": "jti-1", "sid": "session-1",
			"client_id": PublicClientID, "scope": "me",
			"exp": dates["exp"], "nbf": dates["nbf"], "iat": dates["iat"],
		}
		for k, v := range set {
			c[k] = v
		}
		return c
	}
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}

	for _, claim := range []string{"exp", "nbf", "iat"} {
		for _, nn := range notNumbers {
			t.Run(claim+"_as_"+nn.name+"_is_invalid_token", func(t *testing.T) {
				set := map[string]any{claim: nn.value(dates[claim])}
				signed := forge(t, method, key, claims(set), header)
				for name, v := range validators {
					got := verifyRefused(t, name, v, signed)
					// The same payload under a forged signature gets the
					// same answer: nothing tells the two apart.
					if forged := verifyRefused(t, name, v, forge(t, jwt.SigningMethodRS256, otherKey, claims(set), header)); forged.Description != got.Description {
						t.Errorf("%s: forged: got %q, want %q as for the signed token", name, forged.Description, got.Description)
					}
				}
			})
		}
	}

	for _, tc := range []struct {
		name string
		set  map[string]any
	}{
		{"integers_are_accepted", nil},
		{"fractional_seconds_are_accepted", map[string]any{"exp": float64(dates["exp"]) + 0.5, "iat": float64(dates["iat"]) - 0.25}},
		{"exponent_notation_is_accepted", map[string]any{"nbf": jsonNumber(strconv.FormatInt(dates["nbf"], 10) + "e0")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := forge(t, method, key, claims(tc.set), header)
			for name, v := range validators {
				c, err := v.Verify(tok)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if c.Subject != "user-1" || c.ClientID != PublicClientID || !c.HasScope("me") || c.Issuer != testIssuer || c.ID != "jti-1" {
					t.Errorf("%s: got claims %+v", name, c)
				}
				if c.ExpiresAt == nil || c.ExpiresAt.Unix() != dates["exp"] || c.NotBefore == nil || c.NotBefore.Unix() != dates["nbf"] || c.IssuedAt == nil {
					t.Errorf("%s: got exp %v nbf %v iat %v", name, c.ExpiresAt, c.NotBefore, c.IssuedAt)
				}
			}
		})
	}

	t.Run("absent_nbf_and_iat_are_accepted", func(t *testing.T) {
		c := claims(nil)
		delete(c, "nbf")
		delete(c, "iat")
		c2, err := f.validator.Verify(forge(t, method, key, c, header))
		if err != nil {
			t.Fatal(err)
		}
		if c2.NotBefore != nil || c2.IssuedAt != nil {
			t.Errorf("got nbf %v iat %v, want both absent", c2.NotBefore, c2.IssuedAt)
		}
	})
}

// jsonNumber is a number written as given, e.g. in exponent notation.
type jsonNumber string

func (n jsonNumber) MarshalJSON() ([]byte, error) { return []byte(n), nil }

// verifyRefused wants v to refuse token with a generic invalid_token.
func verifyRefused(t *testing.T, name string, v *Validator, token string) *BearerError {
	t.Helper()
	c, err := v.Verify(token)
	var be *BearerError
	if !errors.As(err, &be) {
		t.Fatalf("%s: got claims %+v and error %v, want *BearerError", name, c, err)
	}
	if be.Status != http.StatusUnauthorized || be.Code != BearerInvalidToken {
		t.Errorf("%s: got %d %q, want 401 invalid_token", name, be.Status, be.Code)
	}
	if be.Description != "the access token is malformed" {
		t.Errorf("%s: got description %q, want the generic malformed one", name, be.Description)
	}
	return be
}
