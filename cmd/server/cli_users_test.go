package main

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// The account commands an operator needs, against a running server's
// store: each change takes effect on the API at once (a disabled or
// re-passworded user's sessions end) and is audited with actor "cli".
func TestCLIAccountCommands(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	env["GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD"] = adminPassword
	base, _, _ := startServer(t, env)
	c := newClient(t, base)
	if _, err := runCLI(t, env, bobPassword+"\n", "users", "create", "bob", "--scopes", "me"); err != nil {
		t.Fatal(err)
	}
	me := func(token string) int {
		resp, err := c.GetCurrentUserWithResponse(t.Context(), bearer(token))
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode()
	}
	cli := func(stdin string, args ...string) (string, string) {
		t.Helper()
		out, logged, err := runCLILogged(t, env, stdin, args...)
		if err != nil {
			t.Fatalf("%q = %v\n%s", args, err, logged)
		}
		return out, logged
	}
	// A change made by another process reaches the server's bearer path
	// through the change log, within GATEHOUSE_SYNC_INTERVAL (1s).
	gone := func(token, what string) {
		t.Helper()
		eventually(t, 5*time.Second, what+" to be refused", func() bool { return me(token) == http.StatusUnauthorized })
	}
	wantAudit := func(logged, event, changed string) {
		t.Helper()
		for _, line := range jsonLogLines(t, logged) {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "audit" && rec["event"] == event &&
				rec["actor"] == "cli" && rec["username"] == "bob" && (changed == "" || rec["changed"] == changed) {
				return
			}
		}
		t.Errorf("no audit record %s by cli for bob (changed %q) in:\n%s", event, changed, logged)
	}

	t.Run("disable_ends_the_sessions_and_enable_lets_the_user_back", func(t *testing.T) {
		token := accessToken(t, c, "bob", bobPassword, "me")
		_, logged := cli("", "users", "disable", "bob")
		wantAudit(logged, "user.disabled", "")
		gone(token, "the disabled user's token")
		if got := passwordGrant(t, c, "bob", bobPassword, "me").StatusCode(); got != http.StatusBadRequest {
			t.Errorf("login of the disabled user = %d, want 400", got)
		}
		_, logged = cli("", "users", "enable", "bob")
		wantAudit(logged, "user.changed", "enabled")
		// The login reads the store, the bearer path the server's user
		// view, which learns of the change as above.
		token = accessToken(t, c, "bob", bobPassword, "me")
		eventually(t, 5*time.Second, "the enabled user's new token to be accepted", func() bool { return me(token) == http.StatusOK })
	})

	t.Run("set_password_replaces_it_and_ends_the_sessions", func(t *testing.T) {
		token := accessToken(t, c, "bob", bobPassword, "me")
		out, logged := cli("bob-new-password-2\n", "users", "set-password", "bob")
		if strings.Contains(out+logged, "bob-new-password-2") {
			t.Errorf("the password was echoed: %s %s", out, logged)
		}
		wantAudit(logged, "user.changed", "password")
		gone(token, "a token from before the new password")
		if got := passwordGrant(t, c, "bob", bobPassword, "me").StatusCode(); got != http.StatusBadRequest {
			t.Errorf("login with the old password = %d, want 400", got)
		}
		accessToken(t, c, "bob", "bob-new-password-2", "me")
	})

	t.Run("set_scopes_replaces_the_set", func(t *testing.T) {
		_, logged := cli("", "users", "set-scopes", "bob", "me users:read")
		wantAudit(logged, "user.changed", "scopes")
		if got := listUsers(t, env)["bob"]; got != "me users:read" {
			t.Errorf("bob's scopes = %q, want \"me users:read\"", got)
		}
	})

	t.Run("refusals_change_nothing", func(t *testing.T) {
		for _, tc := range []struct {
			args    []string
			stdin   string
			wantErr string
		}{
			{[]string{"users", "set-scopes", "bob", "me admin:everything"}, "", `unknown scope "admin:everything"`},
			{[]string{"users", "set-password", "bob"}, "short\n", "at least 8 characters"},
			{[]string{"users", "set-password", "bob"}, "", "no password on stdin"},
			{[]string{"users", "set-password", "nobody"}, "nobody-password-1\n", "not found"},
			{[]string{"users", "disable", "nobody"}, "", "not found"},
			{[]string{"users", "disable"}, "", "usage: gatehouse users disable NAME"},
			{[]string{"users", "rename", "bob"}, "", `unknown users command "rename"`},
		} {
			if _, err := runCLI(t, env, tc.stdin, tc.args...); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q = %v, want an error containing %q", tc.args, err, tc.wantErr)
			}
		}
		if got := listUsers(t, env)["bob"]; got != "me users:read" {
			t.Errorf("bob's scopes = %q after the refusals", got)
		}
		accessToken(t, c, "bob", "bob-new-password-2", "me")
	})

	t.Run("a_lost_admin_password_is_reset_from_the_command_line", func(t *testing.T) {
		// The recovery the README documents: whoever holds the store sets
		// a new one, and the admin logs in with it.
		cli("recovered-admin-password-3\n", "users", "set-password", "admin")
		accessToken(t, c, "admin", "recovered-admin-password-3", "users:read")
	})

	t.Run("delete_removes_the_user", func(t *testing.T) {
		token := accessToken(t, c, "bob", "bob-new-password-2", "me")
		_, logged := cli("", "users", "delete", "bob")
		wantAudit(logged, "user.deleted", "")
		if _, ok := listUsers(t, env)["bob"]; ok {
			t.Error("bob is still listed")
		}
		gone(token, "the deleted user's token")
	})
}

// A CLI command where no store exists says so and creates nothing: the
// wrong directory or a mistyped GATEHOUSE_DATABASE_URL would otherwise
// get an empty store of its own.
func TestCLIWithoutStore(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	path := strings.TrimPrefix(env["GATEHOUSE_DATABASE_URL"], "sqlite://")
	for _, args := range [][]string{{"users", "list"}, {"users", "create", "bob"}, {"clients", "list"}, {"keys", "rotate"}} {
		_, err := runCLI(t, env, bobPassword+"\n", args...)
		if err == nil || !strings.Contains(err.Error(), "no store at "+path) {
			t.Errorf("%q = %v, want \"no store at %s\"", args, err, path)
		}
	}
	if _, err := os.Stat(path); err == nil {
		t.Errorf("%s was created", path)
	}
}
