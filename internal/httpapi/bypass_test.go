package httpapi_test

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/users"
)

// specOperation is one operation of api/openapi.yaml.
type specOperation struct {
	method, path string
	// secured is false for `security: []`; scopes are what it requires.
	secured bool
	scopes  []string
}

// specOperations reads every operation from the spec at test time, so new
// operations are covered without touching this test.
func specOperations(t *testing.T) []specOperation {
	t.Helper()
	doc, err := httpapi.Spec()
	if err != nil {
		t.Fatal(err)
	}
	var ops []specOperation
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			reqs := doc.Security
			if op.Security != nil {
				reqs = *op.Security
			}
			o := specOperation{method: method, path: path}
			for _, req := range reqs {
				for _, scopes := range req {
					o.secured = true
					o.scopes = append(o.scopes, scopes...)
				}
			}
			ops = append(ops, o)
		}
	}
	slices.SortFunc(ops, func(a, b specOperation) int { return strings.Compare(a.method+a.path, b.method+b.path) })
	return ops
}

var pathParam = regexp.MustCompile(`\{[^}]+\}`)

func concrete(path, value string) string { return pathParam.ReplaceAllString(path, value) }

// TestSpecWideBypass sends every protected operation the requests that
// must fail closed, and every public one a request that must get through.
func TestSpecWideBypass(t *testing.T) {
	ts := newTestServer(t)
	ctx := context.Background()
	doc, _ := httpapi.Spec()
	all := httpapi.SpecScopes(doc)
	for _, name := range []string{"disabled", "deleted"} {
		if _, err := ts.users.Create(ctx, users.CLIActor(), users.NewUser{Username: name, Password: name + " password", Scopes: all}); err != nil {
			t.Fatal(err)
		}
	}
	disabledTok := ts.token(t, "disabled", "disabled password", "")
	deletedTok := ts.token(t, "deleted", "deleted password", "")
	if _, err := ts.users.Update(ctx, users.CLIActor(), "disabled", users.Patch{Disabled: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	if err := ts.users.Delete(ctx, users.CLIActor(), "deleted"); err != nil {
		t.Fatal(err)
	}
	expired := ts.forge(t, func(c *auth.Claims) {
		c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour))
		c.IssuedAt = jwt.NewNumericDate(time.Now().Add(-2 * time.Hour))
		c.NotBefore = c.IssuedAt
	})

	for _, op := range specOperations(t) {
		path := concrete(op.path, "alice")
		if !op.secured {
			t.Run("public_"+op.method+"_"+op.path, func(t *testing.T) {
				r := ts.do(t, op.method, path, "")
				if r.status == 401 || r.status == 403 || r.status >= 500 {
					t.Fatalf("got %d %s, want the public operation reachable", r.status, r.body)
				}
			})
			continue
		}
		// A token holding every scope except the ones the operation needs.
		var others []string
		for _, s := range all {
			if !slices.Contains(op.scopes, s) {
				others = append(others, s)
			}
		}
		lacking := ts.token(t, "admin", adminPassword, strings.Join(others, " "))

		for _, tc := range []struct {
			name      string
			method    string
			path      string
			header    []string
			status    []int
			challenge string
		}{
			{"no_token", op.method, path, nil, []int{401}, `Bearer realm="gatehouse"`},
			{"malformed_token", op.method, path, []string{"Authorization", "Bearer not.a.jwt"}, []int{401}, `error="invalid_token"`},
			{"expired_token", op.method, path, bearer(expired), []int{401}, `error="invalid_token"`},
			{"token_lacking_the_scope", op.method, path, bearer(lacking), []int{403}, `error="insufficient_scope"`},
			{"disabled_users_token", op.method, path, bearer(disabledTok), []int{401}, `error="invalid_token"`},
			{"deleted_users_token", op.method, path, bearer(deletedTok), []int{401}, `error="invalid_token"`},
			{"encoded_slash_in_a_parameter", op.method, concrete(op.path, "a%2Fb"), nil, []int{401, 404}, ""},
			{"encoded_dot_dot_parameter", op.method, concrete(op.path, "%2e%2e"), nil, []int{401, 404}, ""},
			{"encoded_letters", op.method, strings.Replace(path, "/", "/%2F", 1), nil, []int{401, 404}, ""},
			{"encoded_first_letter", op.method, "/%" + strings.ToUpper(hexByte(path[1])) + path[2:], nil, []int{401, 404}, ""},
			{"lower_case_method", strings.ToLower(op.method), path, nil, []int{401, 404, 405}, ""},
			{"trailing_slash", op.method, path + "/", nil, []int{401, 404, 405}, ""},
			{"double_slash", op.method, "/" + path, nil, []int{401, 404, 405}, ""},
		} {
			if tc.name == "token_lacking_the_scope" && len(op.scopes) == 0 {
				continue
			}
			t.Run(op.method+"_"+op.path+"/"+tc.name, func(t *testing.T) {
				r := ts.doRaw(t, tc.method, tc.path, tc.header...)
				if !slices.Contains(tc.status, r.status) {
					t.Fatalf("%s %s: got %d %s, want one of %v", tc.method, tc.path, r.status, r.body, tc.status)
				}
				if r.status == 401 || r.status == 403 {
					if got := r.header.Get("WWW-Authenticate"); !strings.Contains(got, tc.challenge) || !strings.HasPrefix(got, "Bearer ") {
						t.Errorf("got WWW-Authenticate %q, want a Bearer challenge with %q", got, tc.challenge)
					}
				}
			})
		}
	}
}

func hexByte(b byte) string {
	return strings.ToLower(string("0123456789abcdef"[b>>4]) + string("0123456789abcdef"[b&15]))
}

func ptr[T any](v T) *T { return &v }

// forge signs claims with the server's own key, for tokens the token
// endpoint would not issue (e.g. already expired).
func (ts *testServer) forge(t *testing.T, mutate func(*auth.Claims)) string {
	t.Helper()
	now := time.Now()
	c := &auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: testIssuer, Subject: "someone", Audience: jwt.ClaimStrings{"gatehouse"},
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute)), IssuedAt: jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now), ID: "forged",
		},
		Scope: "me users:read users:write tokens:introspect keys:write clients:read clients:write",
	}
	mutate(c)
	kid, method, key := ts.keys.Signer()
	tok := jwt.NewWithClaims(method, c)
	tok.Header["typ"], tok.Header["kid"] = auth.AccessTokenType, kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
