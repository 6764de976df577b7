package verify_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse/gatehouse/verify"
)

func TestVerify_rfc7519_2_numericdate_must_be_a_number(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFakeIssuer(t)
	now := time.Now().Truncate(time.Second)
	v := newVerifier(t, verify.Config{Issuer: f.URL, Audience: "gatehouse", Now: func() time.Time { return now }})
	dates := map[string]int64{
		"exp": now.Add(15 * time.Minute).Unix(),
		"nbf": now.Unix(),
		"iat": now.Unix(),
	}
	// numbers are the dates as JSON numbers; f.sign changes them as given.
	numbers := map[string]any{"exp": dates["exp"], "nbf": dates["nbf"], "iat": dates["iat"]}
	with := func(set map[string]any) map[string]any {
		c := map[string]any{}
		for k, v := range numbers {
			c[k] = v
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
		date := dates[claim]
		for _, nn := range []struct {
			name  string
			value any
		}{
			{"numeric_string", strconv.FormatInt(date, 10)},
			{"fractional_string", strconv.FormatInt(date, 10) + ".5"},
			{"other_string", "tomorrow"},
			{"empty_string", ""},
			{"null", json.RawMessage("null")},
			{"true", true},
			{"object", map[string]any{claim: date}},
			{"array", []any{date}},
		} {
			t.Run(claim+"_as_"+nn.name+"_is_invalid_token", func(t *testing.T) {
				t.Parallel()
				claims := with(map[string]any{claim: nn.value})
				got := wantRefused(t, v, f.sign(t, nil, claims))
				// The same payload under a forged signature gets the same
				// answer: nothing tells the two apart.
				forged := wantRefused(t, v, forgeLike(t, f, otherKey, claims))
				if forged.Description != got.Description {
					t.Errorf("forged: got %q, want %q as for the signed token", forged.Description, got.Description)
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
		{"exponent_notation_is_accepted", map[string]any{"nbf": json.RawMessage(strconv.FormatInt(dates["nbf"], 10) + "e0")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := v.Verify(ctx, f.sign(t, nil, with(tc.set)))
			if err != nil {
				t.Fatal(err)
			}
			if c.Subject != "user-1" || c.ClientID != "gatehouse" || c.Username != "alice" || !c.HasScope("me") || c.Issuer != f.URL || c.ID == "" {
				t.Errorf("got claims %+v", c)
			}
			if c.ExpiresAt.Unix() != dates["exp"] || c.NotBefore.Unix() != dates["nbf"] || c.IssuedAt.IsZero() {
				t.Errorf("got exp %v nbf %v iat %v", c.ExpiresAt, c.NotBefore, c.IssuedAt)
			}
		})
	}

	t.Run("absent_nbf_is_accepted", func(t *testing.T) {
		t.Parallel()
		c, err := v.Verify(ctx, f.sign(t, nil, with(map[string]any{"nbf": nil})))
		if err != nil {
			t.Fatal(err)
		}
		if !c.NotBefore.IsZero() {
			t.Errorf("got nbf %v, want zero", c.NotBefore)
		}
	})
}

// forgeLike signs what f.sign would, with another key under f's kid.
func forgeLike(t *testing.T, f *fakeIssuer, key *rsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	signed := f.sign(t, nil, claims)
	_, payload, _ := jwtParts(t, signed)
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims(payload))
	tok.Header["typ"], tok.Header["kid"] = "at+jwt", f.kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// wantRefused wants v to refuse token with a generic invalid_token.
func wantRefused(t *testing.T, v *verify.Verifier, token string) *verify.Error {
	t.Helper()
	c, err := v.Verify(context.Background(), token)
	var e *verify.Error
	if !errors.As(err, &e) {
		t.Fatalf("got claims %+v and error %v, want *verify.Error", c, err)
	}
	if e.Code != verify.CodeInvalidToken || e.Status != http.StatusUnauthorized {
		t.Errorf("got %d %q, want 401 invalid_token", e.Status, e.Code)
	}
	if e.Description != "the access token is malformed" {
		t.Errorf("got description %q, want the generic malformed one", e.Description)
	}
	return e
}
