package bearer_test

import (
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/gatehouse/gatehouse/bearer"
)

// Each way a request can carry (or fail to carry) a bearer token, with the
// status, code and challenge RFC 6750 gives it.
func TestToken(t *testing.T) {
	const tok = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"
	for _, tc := range []struct {
		name, target string
		header       []string
		token        string // on success
		status       int
		challenge    string
	}{
		{"rfc6750_2.1_bearer_header", "/r", []string{"Bearer " + tok}, tok, 0, ""},
		{"rfc6750_2.1_scheme_is_case_insensitive", "/r", []string{"bEaReR " + tok}, tok, 0, ""},
		{"rfc6750_2.1_spaces_after_the_scheme", "/r", []string{"Bearer   " + tok}, tok, 0, ""},
		{"rfc6750_2.1_other_query_parameters_are_fine", "/r?page=2", []string{"Bearer " + tok}, tok, 0, ""},
		{"rfc6750_3.1_no_credentials", "/r", nil, "", 401, `Bearer realm="r"`},
		{"rfc6750_3.1_other_scheme_is_no_bearer_credentials", "/r", []string{"Basic YTpi"}, "", 401, `Bearer realm="r"`},
		{"rfc6750_3.1_empty_token_is_no_usable_credentials", "/r", []string{"Bearer "}, "", 401, `Bearer realm="r"`},
		{"rfc6750_3.1_scheme_alone_is_no_usable_credentials", "/r", []string{"Bearer"}, "", 401, `Bearer realm="r"`},
		{"rfc6750_2.3_query_only_is_not_accepted", "/r?access_token=" + tok, nil, "", 401, `Bearer realm="r"`},
		{"rfc6750_2.3_query_with_an_empty_header_token", "/r?access_token=" + tok, []string{"Bearer "}, "", 401, `Bearer realm="r"`},
		{"rfc6750_2.3_query_with_another_scheme", "/r?access_token=" + tok, []string{"Basic YTpi"}, "", 401, `Bearer realm="r"`},
		{"rfc6750_3.1_two_methods_is_invalid_request", "/r?access_token=" + tok, []string{"Bearer " + tok}, "", 400,
			`Bearer realm="r", error="invalid_request", error_description="the access token was sent both in the Authorization header and in the query"`},
		{"rfc6750_3.1_two_headers_is_invalid_request", "/r", []string{"Bearer " + tok, "Bearer " + tok}, "", 400,
			`Bearer realm="r", error="invalid_request", error_description="more than one Authorization header"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tc.target, nil)
			for _, h := range tc.header {
				r.Header.Add("Authorization", h)
			}
			got, err := bearer.Token(r)
			if tc.status == 0 {
				if err != nil || got != tc.token {
					t.Fatalf("got %q, %v; want %q", got, err, tc.token)
				}
				return
			}
			var e *bearer.Error
			if !errors.As(err, &e) {
				t.Fatalf("got %q, %v; want a *bearer.Error", got, err)
			}
			if e.Status != tc.status || bearer.Challenge("r", e) != tc.challenge {
				t.Fatalf("got %d %q, want %d %q", e.Status, bearer.Challenge("r", e), tc.status, tc.challenge)
			}
		})
	}
}

// The b64token syntax of RFC 6750 §2.1.
func TestValidSyntax(t *testing.T) {
	for token, want := range map[string]bool{
		"abc.DEF-ghi_jkl~123+/": true,
		"abc==":                 true,
		"a":                     true,
		"":                      false,
		"==":                    false,
		"a=b":                   false,
		"a b":                   false,
		"a,b":                   false,
		`a"b`:                   false,
		"é":                     false,
	} {
		if got := bearer.ValidSyntax(token); got != want {
			t.Errorf("ValidSyntax(%q) = %v, want %v", token, got, want)
		}
	}
}

// Challenges carry only the characters §3 allows, whatever the
// description or scope holds; insufficient_scope names the scopes.
func TestChallenge(t *testing.T) {
	for _, tc := range []struct {
		e    *bearer.Error
		want string
	}{
		{bearer.Invalid("the access token expired", errors.New("cause never sent")), `Bearer realm="gatehouse", error="invalid_token", error_description="the access token expired"`},
		{bearer.Invalid(`a "quoted" \ value`+"\n\xff", nil), `Bearer realm="gatehouse", error="invalid_token", error_description="a 'quoted' / value"`},
		{bearer.Insufficient([]string{"users:read", "users:write"}), `Bearer realm="gatehouse", error="insufficient_scope", error_description="the access token lacks a required scope", scope="users:read users:write"`},
		{bearer.NoCredentials("an access token is required"), `Bearer realm="gatehouse"`},
		{bearer.Malformed(""), `Bearer realm="gatehouse", error="invalid_request"`},
	} {
		if got := bearer.Challenge("gatehouse", tc.e); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
	if e := bearer.Invalid("x", errors.ErrUnsupported); !errors.Is(e, errors.ErrUnsupported) {
		t.Error("the cause is not reachable with errors.Is")
	}
}
