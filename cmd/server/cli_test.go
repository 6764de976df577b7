package main

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// listRowRE splits a `users list` row; scopes may contain spaces.
var listRowRE = regexp.MustCompile(`^(\S+)\s+(.*?)\s+(true|false)\s+(none|pending|enabled)\s+(\S+)$`)

// listUsers runs `users list` and returns username → scopes.
func listUsers(t *testing.T, env map[string]string) map[string]string {
	t.Helper()
	out, err := runCLI(t, env, "", "users", "list")
	if err != nil {
		t.Fatalf("users list = %v", err)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "USERNAME") {
		t.Fatalf("users list printed no header:\n%s", out)
	}
	got := map[string]string{}
	for _, line := range lines[1:] {
		m := listRowRE.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("users list row %q is not USERNAME SCOPES DISABLED TOTP CREATED:\n%s", line, out)
		}
		got[m[1]] = m[2]
	}
	return got
}

// TestCLI manages users with `server users …` on the database of a running
// server, as an operator would.
func TestCLI(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	env["GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD"] = adminPassword
	base, _, _ := startServer(t, env)
	wantUsers := map[string]string{
		"admin": strings.Join(specScopes(t), " "),
		"bob":   "me users:read",
	}

	t.Run("users_create_reads_the_password_from_stdin", func(t *testing.T) {
		out, err := runCLI(t, env, bobPassword+"\n", "users", "create", "bob", "--scopes", "me users:read")
		if err != nil {
			t.Fatalf("users create bob = %v", err)
		}
		if !strings.HasPrefix(out, "created user bob ") || !strings.Contains(out, `scopes "me users:read"`) {
			t.Errorf("users create bob printed %q, want the created user with scopes \"me users:read\"", out)
		}
		if strings.Contains(out, bobPassword) {
			t.Errorf("users create echoed the password: %q", out)
		}
	})

	t.Run("users_list_shows_every_user_with_scopes", func(t *testing.T) {
		got := listUsers(t, env)
		for name, scopes := range wantUsers {
			if got[name] != scopes {
				t.Errorf("users list: %s has scopes %q, want %q (all: %v)", name, got[name], scopes, got)
			}
		}
		if len(got) != len(wantUsers) {
			t.Errorf("users list = %v, want exactly %v", got, wantUsers)
		}
	})

	t.Run("users_create_refuses_bad_input_and_creates_nothing", func(t *testing.T) {
		tests := []struct {
			name    string
			stdin   string
			args    []string
			wantErr string
		}{
			{"unknown_scope", "carol-password-1\n", []string{"carol", "--scopes", "me admin:everything"}, `unknown scope "admin:everything"`},
			{"short_password", "short\n", []string{"dave"}, "password: must be at least 8 characters"},
			{"empty_stdin", "", []string{"erin"}, "no password on stdin"},
			{"blank_line_on_stdin", "\n", []string{"frank"}, "no password on stdin"},
			{"taken_username", "bob-password-2\n", []string{"BOB"}, "taken"},
		}
		for _, tt := range tests {
			args := append([]string{"users", "create"}, tt.args...)
			out, err := runCLI(t, env, tt.stdin, args...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: run(%q) = %v, want an error containing %q", tt.name, args, err, tt.wantErr)
			}
			if out != "" {
				t.Errorf("%s: run(%q) printed %q, want nothing", tt.name, args, out)
			}
		}
		if got := listUsers(t, env); len(got) != len(wantUsers) {
			t.Errorf("after the refused creates users list = %v, want only %v", got, wantUsers)
		}
	})

	t.Run("cli_created_user_logs_in_over_http", func(t *testing.T) {
		c := newClient(t, base)
		token := accessToken(t, c, "bob", bobPassword, "users:read")
		resp, err := c.ListUsersWithResponse(t.Context(), nil, bearer(token))
		if err != nil {
			t.Fatalf("GET /users: %v", err)
		}
		if resp.StatusCode() != http.StatusOK || resp.JSON200 == nil {
			t.Fatalf("GET /users as bob = %d %s, want 200", resp.StatusCode(), resp.Body)
		}
		var names []string
		for _, u := range resp.JSON200.Users {
			names = append(names, u.Username)
		}
		if strings.Join(names, ",") != "admin,bob" {
			t.Errorf("GET /users lists %q, want [admin bob]", names)
		}
	})
}
