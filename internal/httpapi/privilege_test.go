package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/users"
)

// The privilege model (users.Actor): a caller may grant only scopes it
// holds, and may change or delete only users whose scopes it all holds.
// These tables drive every account-changing operation of the spec with
// callers of several scope sets against targets of several scope sets.

// accountOperation is one way of changing an account over the API.
type accountOperation struct {
	name, method, path string
	// body builds the request body for the target; grants are the scopes
	// it would give the target.
	body   func(target string) string
	grants []string
	// ok is the status when allowed; 0 means the method's usual one.
	ok int
}

// accountOperations covers every operation of the spec that needs
// users:write; TestPrivilegeTable_covers_every_account_operation keeps it
// complete.
func accountOperations(all []string) []accountOperation {
	scopes := func(s ...string) string { b, _ := json.Marshal(map[string][]string{"scopes": s}); return string(b) }
	return []accountOperation{
		{name: "create_with_me", method: "POST", path: "/users", grants: []string{"me"},
			body: func(target string) string {
				return fmt.Sprintf(`{"username":%q,"password":"a long new password","scopes":["me"]}`, target)
			}},
		{name: "create_with_users_write", method: "POST", path: "/users", grants: []string{"me", "users:write"},
			body: func(target string) string {
				return fmt.Sprintf(`{"username":%q,"password":"a long new password","scopes":["me","users:write"]}`, target)
			}},
		{name: "create_with_every_scope", method: "POST", path: "/users", grants: all,
			body: func(target string) string {
				b, _ := json.Marshal(map[string]any{"username": target, "password": "a long new password", "scopes": all})
				return string(b)
			}},
		{name: "reset_password", method: "PATCH", path: "/users/{username}",
			body: func(string) string { return `{"password":"a long new password"}` }},
		{name: "disable", method: "PATCH", path: "/users/{username}",
			body: func(string) string { return `{"disabled":true}` }},
		{name: "narrow_scopes", method: "PATCH", path: "/users/{username}", grants: []string{"me"},
			body: func(string) string { return scopes("me") }},
		{name: "grant_keys_write", method: "PATCH", path: "/users/{username}", grants: []string{"me", "keys:write"},
			body: func(string) string { return scopes("me", "keys:write") }},
		{name: "delete", method: "DELETE", path: "/users/{username}",
			body: func(string) string { return "" }},
		{name: "list_sessions", method: "GET", path: "/users/{username}/sessions",
			body: func(string) string { return "" }},
		{name: "log_out_everywhere", method: "DELETE", path: "/users/{username}/sessions", ok: 200,
			body: func(string) string { return "" }},
		// The session id is the target's name: no such session, so 404
		// when allowed, and still 403 when not.
		{name: "end_a_session", method: "DELETE", path: "/users/{username}/sessions/{session_id}", ok: 404,
			body: func(string) string { return "" }},
		// The target has no factor: 409 when allowed, 403 when not.
		{name: "reset_second_factor", method: "DELETE", path: "/users/{username}/mfa", ok: 409,
			body: func(string) string { return "" }},
	}
}

func subset(a, b []string) bool {
	for _, s := range a {
		if !slices.Contains(b, s) {
			return false
		}
	}
	return true
}

func TestPrivilegeTable_every_account_operation_honours_the_callers_scopes(t *testing.T) {
	ts := newTestServer(t)
	ctx := context.Background()
	doc, _ := httpapi.Spec()
	all := httpapi.SpecScopes(doc)

	callers := map[string][]string{
		"writer":        {"users:write"},
		"writer_reader": {"me", "users:read", "users:write"},
		"every_scope":   all,
	}
	targets := map[string][]string{
		"no_scope":    {},
		"me":          {"me"},
		"peer_writer": {"me", "users:read", "users:write"},
		"every_scope": all,
	}
	tokens := map[string]string{}
	for name, scopes := range callers {
		caller := "caller-" + strings.ReplaceAll(name, "_", "-")
		if _, err := ts.users.Create(ctx, users.CLIActor(), users.NewUser{Username: caller, Password: caller + " password", Scopes: scopes}); err != nil {
			t.Fatal(err)
		}
		tokens[name] = ts.token(t, caller, caller+" password", "")
	}

	n := 0
	for _, op := range accountOperations(all) {
		for callerName, callerScopes := range callers {
			targetSets := targets
			if op.method == "POST" {
				targetSets = map[string][]string{"new_user": nil}
			}
			for targetName, targetScopes := range targetSets {
				n++
				target := fmt.Sprintf("target-%d", n)
				want := 200
				switch op.method {
				case "POST":
					want = 201
				case "DELETE":
					want = 204
				}
				if op.ok != 0 {
					want = op.ok
				}
				if !subset(targetScopes, callerScopes) || !subset(op.grants, callerScopes) {
					want = 403
				}
				t.Run(op.name+"/"+callerName+"/"+targetName, func(t *testing.T) {
					if op.method != "POST" {
						if _, err := ts.users.Create(ctx, users.CLIActor(), users.NewUser{Username: target, Password: target + " password", Scopes: targetScopes}); err != nil {
							t.Fatal(err)
						}
					}
					r := ts.do(t, op.method, concrete(op.path, target), op.body(target), append(bearer(tokens[callerName]), "Content-Type", "application/json")...)
					if r.status != want {
						t.Fatalf("%s %s as %v on %v: got %d %s, want %d", op.method, op.path, callerScopes, targetScopes, r.status, r.body, want)
					}
					if (want == 403 || want == 404) && r.header.Get("Content-Type") != "application/problem+json" {
						t.Errorf("refusal Content-Type = %q, want problem+json", r.header.Get("Content-Type"))
					}
					// A refused change changed nothing.
					if want == 403 && op.method != "POST" {
						u, err := ts.users.Get(ctx, target)
						if err != nil || u.Disabled || !slices.Equal(u.Scopes, sorted(targetScopes)) {
							t.Errorf("the refused change was applied: %+v, %v", u, err)
						}
					}
				})
			}
		}
	}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	if out == nil {
		out = []string{}
	}
	slices.Sort(out)
	return out
}

func TestPrivilegeTable_covers_every_account_operation(t *testing.T) {
	// A new operation that needs users:write must be added to the table.
	doc, _ := httpapi.Spec()
	covered := map[string]bool{}
	for _, op := range accountOperations(httpapi.SpecScopes(doc)) {
		covered[op.method+" "+op.path] = true
	}
	for _, op := range specOperations(t) {
		if slices.Contains(op.scopes, users.ManageScope) && !covered[op.method+" "+op.path] {
			t.Errorf("%s %s needs %s but is not in accountOperations", op.method, op.path, users.ManageScope)
		}
	}
}

func TestPrivilege_a_caller_cannot_widen_its_own_scopes(t *testing.T) {
	ts := newTestServer(t)
	ctx := context.Background()
	if _, err := ts.users.Create(ctx, users.CLIActor(), users.NewUser{Username: "mallory", Password: "mallory password", Scopes: []string{"me", "users:write"}}); err != nil {
		t.Fatal(err)
	}
	tok := ts.token(t, "mallory", "mallory password", "")
	for _, scopes := range []string{`["me","users:write","keys:write"]`, `["me","users:write","tokens:introspect"]`, `["me","users:write","clients:write"]`} {
		r := ts.do(t, "PATCH", "/users/mallory", `{"scopes":`+scopes+`}`, append(bearer(tok), "Content-Type", "application/json")...)
		if r.status != 403 {
			t.Errorf("mallory widening to %s: got %d %s, want 403", scopes, r.status, r.body)
		}
	}
	// Nor through a narrowed token: authority is what the token carries.
	narrow := ts.token(t, "mallory", "mallory password", "users:write")
	r := ts.do(t, "POST", "/users", `{"username":"sock","password":"a long new password","scopes":["me"]}`, append(bearer(narrow), "Content-Type", "application/json")...)
	if r.status != 403 {
		t.Errorf("granting me with a token without me: got %d %s, want 403", r.status, r.body)
	}
	if u, _ := ts.users.Get(ctx, "mallory"); !slices.Equal(u.Scopes, []string{"me", "users:write"}) {
		t.Errorf("mallory's scopes = %v, want unchanged", u.Scopes)
	}
}

func TestPrivilege_users_write_alone_cannot_take_over_the_bootstrap_admin(t *testing.T) {
	// The finding: a users:write holder reset the admin's password and
	// logged in as it.
	ts := newTestServer(t)
	ctx := context.Background()
	if _, err := ts.users.Create(ctx, users.CLIActor(), users.NewUser{Username: "mallory", Password: "mallory password", Scopes: []string{"me", "users:write"}}); err != nil {
		t.Fatal(err)
	}
	tok := ts.token(t, "mallory", "mallory password", "")
	json := append(bearer(tok), "Content-Type", "application/json")
	for _, tc := range []struct{ method, body string }{
		{"PATCH", `{"password":"mallory owns you"}`},
		{"PATCH", `{"disabled":true}`},
		{"DELETE", ""},
	} {
		if r := ts.do(t, tc.method, "/users/admin", tc.body, json...); r.status != 403 {
			t.Errorf("%s /users/admin %s: got %d %s, want 403", tc.method, tc.body, r.status, r.body)
		}
	}
	ts.token(t, "admin", adminPassword, "") // the admin still logs in with its own password
}

func TestPrivilege_the_last_enabled_users_write_holder_cannot_lose_it(t *testing.T) {
	ts := newTestServer(t)
	tok := ts.token(t, "admin", adminPassword, "")
	json := append(bearer(tok), "Content-Type", "application/json")
	for _, tc := range []struct{ method, body string }{
		{"PATCH", `{"scopes":["me"]}`},
		{"PATCH", `{"disabled":true}`},
		{"DELETE", ""},
	} {
		r := ts.do(t, tc.method, "/users/admin", tc.body, json...)
		if r.status != 409 {
			t.Errorf("%s /users/admin %s as the last admin: got %d %s, want 409", tc.method, tc.body, r.status, r.body)
		}
	}
	// With a second admin, the first may step down.
	if _, err := ts.users.Create(context.Background(), users.CLIActor(), users.NewUser{Username: "second", Password: "second password", Scopes: []string{"users:write"}}); err != nil {
		t.Fatal(err)
	}
	if r := ts.do(t, "PATCH", "/users/admin", `{"scopes":["me"]}`, json...); r.status != 200 {
		t.Errorf("stepping down beside another admin: got %d %s, want 200", r.status, r.body)
	}
}

func TestChangePassword_wrong_current_passwords_are_throttled_like_logins(t *testing.T) {
	// A stolen `me` token must not be a password oracle: guesses of
	// current_password count in the /token throttle (per username and
	// address) and are answered 429 with Retry-After once it bites.
	ts := newTestServer(t)
	alice := ts.token(t, "alice", userPassword, "")
	free := auth.DefaultThrottle().FreeFailures
	for i := range free + 1 { // the last of these sets the first delay
		r := ts.do(t, "POST", "/users/me/password", `{"current_password":"guess number `+fmt.Sprint(i)+`","new_password":"brand new pw"}`, jsonHeader(alice)...)
		wantProblem(t, r, 403)
	}
	r := ts.do(t, "POST", "/users/me/password", `{"current_password":"guess number last","new_password":"brand new pw"}`, jsonHeader(alice)...)
	wantProblem(t, r, 429)
	if r.header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	// Even the right password waits now, so the oracle answers nothing.
	r = ts.do(t, "POST", "/users/me/password", `{"current_password":"`+userPassword+`","new_password":"brand new pw"}`, jsonHeader(alice)...)
	wantProblem(t, r, 429)
	// The same limit holds on /token for that username and address.
	r = ts.do(t, "POST", "/token", form("grant_type", "password", "username", "alice", "password", userPassword), "Content-Type", formType)
	if r.status != 429 {
		t.Errorf("login after the password guesses: got %d %s, want 429", r.status, r.body)
	}
}
