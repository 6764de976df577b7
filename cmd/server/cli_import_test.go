package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// passlib's bcrypt and argon2id hashes of "wonderland-1" (see
// internal/users/import_test.go).
const (
	importBcrypt = "$2b$04$XZQY.y7joq.yTQ4RdgEDKOLKCNOu7j6J7qYFFV5ypdW/y49xqUHNS"
	importArgon2 = "$argon2id$v=19$m=256,t=1,p=1$SkmptTbGmNOaU0qp9Z6T8g$MYFgQu6u42mel2nmnJlNQA"
)

// `users import` brings a FastAPI app's users with their hashes, from JSON
// lines or CSV, all or none; a bad line is named and nothing is stored.
func TestCLIUsersImport(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	env["GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD"] = adminPassword
	base, _, _ := startServer(t, env)
	c := newClient(t, base)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	t.Run("refused_files_import_nothing", func(t *testing.T) {
		for _, tc := range []struct {
			name, file, content, wantErr string
		}{
			{"bad_hash_on_line_3", "a.jsonl", `{"username":"ann","password_hash":"` + importBcrypt + `"}` + "\n\n" + `{"username":"ben","password_hash":"plaintext"}` + "\n", "line 3: password_hash unsupported algorithm"},
			{"not_json_on_line_2", "b.jsonl", `{"username":"ann","password_hash":"` + importBcrypt + `"}` + "\n{oops\n", "line 2: not a user object"},
			{"unknown_field", "c.jsonl", `{"username":"ann","password_hash":"` + importBcrypt + `","is_admin":true}` + "\n", `line 1: not a user object: json: unknown field "is_admin"`},
			{"email_username_in_csv", "d.csv", "username,password_hash\nann," + importBcrypt + "\nben@example.com," + importBcrypt + "\n", "line 3: username may contain only"},
			{"repeated_username", "e.csv", "username,password_hash\nann," + importBcrypt + "\nAnn," + importBcrypt + "\n", `line 3: username "Ann" repeats line 2`},
			{"taken_username", "f.jsonl", `{"username":"admin","password_hash":"` + importBcrypt + `"}` + "\n", `line 1: username "admin" is taken`},
			{"unknown_scope", "g.csv", "username,password_hash,scopes\nann," + importBcrypt + ",me root\n", `line 2: scopes unknown scope "root"`},
			{"bad_disabled", "h.csv", "username,password_hash,disabled\nann," + importBcrypt + ",maybe\n", `line 2: disabled: "maybe"`},
			{"no_header_columns", "i.csv", "name,hash\nann," + importBcrypt + "\n", `unknown column "name"`},
		} {
			_, err := runCLI(t, env, "", "users", "import", write(tc.file, tc.content))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.wantErr)
			}
		}
		if got := listUsers(t, env); len(got) != 1 {
			t.Errorf("users after the refused imports: %v, want only admin", got)
		}
	})

	t.Run("jsonl_then_csv_then_stdin", func(t *testing.T) {
		jsonl := `{"username":"Ann","password_hash":"` + importBcrypt + `","scopes":["me"]}` + "\n" +
			`{"username":"ben","password_hash":"` + importArgon2 + `","scopes":"me users:read","disabled":false}` + "\n"
		out, logged, err := runCLILogged(t, env, "", "users", "import", write("users.jsonl", jsonl))
		if err != nil || !strings.HasPrefix(out, "imported 2 users") {
			t.Fatalf("import jsonl = %q, %v\n%s", out, err, logged)
		}
		if !strings.Contains(logged, `"event":"user.created"`) || !strings.Contains(logged, `"via":"import"`) {
			t.Errorf("the import was not audited:\n%s", logged)
		}
		// An argon2id hash holds commas: CSV quotes it (as Python's csv module does).
		csvFile := "username,password_hash,scopes,disabled\ncat," + importBcrypt + ",me,false\ndan,\"" + importArgon2 + "\",,true\n"
		if out, err := runCLI(t, env, "", "users", "import", write("users.csv", csvFile)); err != nil || !strings.HasPrefix(out, "imported 2 users") {
			t.Fatalf("import csv = %q, %v", out, err)
		}
		if out, err := runCLI(t, env, `{"username":"eve","password_hash":"`+importBcrypt+`","scopes":["me"]}`+"\n", "users", "import", "-"); err != nil || !strings.HasPrefix(out, "imported 1 users") {
			t.Fatalf("import from stdin = %q, %v", out, err)
		}
		got := listUsers(t, env)
		if got["ann"] != "me" || got["ben"] != "me users:read" || got["dan"] != "" || len(got) != 6 {
			t.Errorf("users list = %v", got)
		}
		for _, name := range []string{"ann", "ben", "cat", "eve"} {
			accessToken(t, c, name, "wonderland-1", "me")
		}
		if status := passwordGrant(t, c, "dan", "wonderland-1", "").StatusCode(); status != http.StatusBadRequest {
			t.Errorf("login of the disabled imported user = %d, want 400", status)
		}
	})
}
