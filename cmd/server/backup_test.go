package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `server backup` copies the store of a running server; a server started
// on the copy has its users, clients and keys: a token signed before the
// backup is valid there.
func TestBackupAndRestore(t *testing.T) {
	t.Parallel()
	// A restored server is the same service: the same public URL.
	const issuer = "http://gatehouse.test"
	env := testEnv(t)
	env["GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD"] = adminPassword
	env["GATEHOUSE_ISSUER"] = issuer
	base, _, _ := startServer(t, env)
	if _, err := runCLI(t, env, bobPassword+"\n", "users", "create", "bob", "--scopes", "me"); err != nil {
		t.Fatal(err)
	}
	token := accessToken(t, newClient(t, base), "bob", bobPassword, "me")

	dest := filepath.Join(t.TempDir(), "backup.db")
	out, err := runCLI(t, env, "", "backup", dest)
	if err != nil || !strings.HasPrefix(out, "backed up ") {
		t.Fatalf("backup = %q, %v", out, err)
	}
	if _, err := runCLI(t, env, "", "backup", dest); err == nil {
		t.Error("a backup onto an existing file succeeded")
	}

	// Restore: the copy in place of a store, a server started on it.
	restoredEnv := testEnv(t)
	restoredEnv["GATEHOUSE_ISSUER"] = issuer
	restored := strings.TrimPrefix(restoredEnv["GATEHOUSE_DATABASE_URL"], "sqlite://")
	b, err := os.ReadFile(dest)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(restored, b, 0o600); err != nil {
		t.Fatal(err)
	}
	base2, _, _ := startServer(t, restoredEnv)
	c := newClient(t, base2)
	accessToken(t, c, "bob", bobPassword, "me")
	accessToken(t, c, "admin", adminPassword, "users:read")
	resp, err := c.GetCurrentUserWithResponse(t.Context(), bearer(token))
	if err != nil || resp.StatusCode() != http.StatusOK {
		t.Fatalf("a token from before the backup on the restored server: %v %v", resp.StatusCode(), err)
	}
}

// PostgreSQL is backed up with its own tools: the command says how.
func TestBackupOfPostgresPointsToPgDump(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	env["GATEHOUSE_DATABASE_URL"] = "postgres://gatehouse@db:5432/gatehouse"
	env["GATEHOUSE_ISSUER"] = "https://auth.example.com"
	if _, err := runCLI(t, env, "", "backup", filepath.Join(t.TempDir(), "x")); err == nil || !strings.Contains(err.Error(), "pg_dump") {
		t.Errorf("backup on PostgreSQL = %v, want the pg_dump advice", err)
	}
}
