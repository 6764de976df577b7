package sqlstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/gatehouse/gatehouse/internal/storage/storetest"
)

// The fixture's contents (testdata/README.md).
const (
	fixtureBobID        = "2d4c1f7e-b0b0-4000-8000-000000000002"
	fixtureBobHash      = "$2a$04$oVJAUvXjZqWkfMLsC0w/lui6xhw1oshtPNv4QpZii784ItHQTPSPy"
	fixtureClientSecret = "gKWlL_2pUIgEcMxDuR4HlBFyE8lI2H9izGFVu_8_H1g"
	fixtureKID          = "A47TCPCgV5dfABo4FUGIyeIfD7VRTGxzxSkBAHaplpM"
)

// fixtureAttempts are the throttle rows the fixture holds: one wrong
// password for admin from 192.0.2.7, and alice's success.
var fixtureAttempts = []string{
	"known:bfca84ca58d65545365f707535def96f=0",
	"pair:86859d484ad2f33e8427384e4caa99cb=1",
	"user:aa73da63e26b40a1bb701c2b4c024870=1",
	"user:dabd1db8d35ab13106274f61f1bf9778=0",
}

func hexSHA256(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// assertUpgraded checks what must survive the upgrade to the latest migration on either
// engine, and what must not.
func assertUpgraded(t *testing.T, s *store, wantAttempts []string) {
	t.Helper()
	ctx := t.Context()
	var names []string
	users, err := s.ListUsers(ctx, "", 100)
	if err != nil {
		t.Fatalf("ListUsers() = %v", err)
	}
	for _, u := range users {
		names = append(names, u.Username)
	}
	if want := []string{"admin", "alice", "bob"}; !slices.Equal(names, want) {
		t.Errorf("users after the upgrade %v, want %v", names, want)
	}
	bob, err := s.UserByUsername(ctx, "bob")
	if err != nil {
		t.Fatalf("UserByUsername(bob) = %v", err)
	}
	if bob.ID != fixtureBobID || bob.PasswordHash != fixtureBobHash || !bob.Disabled || !slices.Equal(bob.Scopes, []string{"me"}) {
		t.Errorf("bob after the upgrade = %+v, want id %s, his bcrypt hash, disabled, scopes [me]", bob, fixtureBobID)
	}
	if n, err := s.CountEnabledWithScope(ctx, "me"); err != nil || n != 2 {
		t.Errorf("CountEnabledWithScope(me) = %d, %v; want 2 (admin and alice; bob is disabled)", n, err)
	}

	c, err := s.ClientByID(ctx, "backend")
	if err != nil {
		t.Fatalf("ClientByID(backend) = %v", err)
	}
	if len(c.Secrets) != 1 || c.Secrets[0].Hash != hexSHA256(fixtureClientSecret) || c.Secrets[0].ID == "" || !c.Secrets[0].CreatedAt.Equal(c.CreatedAt) ||
		!slices.Equal(c.Scopes, []string{"me"}) || c.ServiceScopes == nil || len(c.ServiceScopes) != 0 || c.Grants == nil || len(c.Grants) != 0 {
		// Migration 0006 gives a client from before it no scope of its
		// own, 0007 moves its secret to client_secrets under an id of its
		// own and allows it no grant beyond password and refresh.
		t.Errorf("client backend = %+v, want one secret (the SHA-256 of its secret, with an id, made when the client was), scopes [me], no service scopes, no grants", c)
	}

	keys, err := s.SigningKeys(ctx)
	if err != nil {
		t.Fatalf("SigningKeys() = %v", err)
	}
	if len(keys) != 1 || keys[0].ID != fixtureKID || keys[0].Algorithm != "RS256" || len(keys[0].Private) == 0 ||
		!keys[0].ActivatesAt.Equal(keys[0].CreatedAt) {
		t.Errorf("signing keys after the upgrade = %+v, want the RS256 key %s", keys, fixtureKID)
	}

	var attempts []string
	rows, err := s.db.QueryContext(ctx, `SELECT key, failures FROM login_attempts ORDER BY key`)
	if err != nil {
		t.Fatalf("reading login_attempts: %v", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			key string
			n   int
		)
		if err := rows.Scan(&key, &n); err != nil {
			t.Fatal(err)
		}
		attempts = append(attempts, key+"="+strconv.Itoa(n))
	}
	if !slices.Equal(attempts, wantAttempts) {
		t.Errorf("login_attempts after the upgrade %v, want %v", attempts, wantAttempts)
	}

	var versions []int
	vrows, err := s.db.QueryContext(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatalf("reading schema_migrations: %v", err)
	}
	defer vrows.Close()
	for vrows.Next() {
		var v int
		vrows.Scan(&v)
		versions = append(versions, v)
	}
	if want := []int{1, 2, 3, 4, 5, 6, 7, 8}; !slices.Equal(versions, want) {
		t.Errorf("schema_migrations %v, want %v", versions, want)
	}

	for _, table := range []string{"refresh_tokens", "access_tokens"} {
		if _, err := s.db.ExecContext(ctx, `SELECT 1 FROM `+table); err == nil {
			t.Errorf("table %s survived the upgrade; migration 0005 drops it", table)
		}
	}
	// The old login's refresh token names no session: it is refused.
	var sessions int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM sessions`).Scan(&sessions); err != nil || sessions != 0 {
		t.Errorf("sessions after the upgrade: %d, %v; want none", sessions, err)
	}
	if seq, err := s.LastChange(ctx); err != nil || seq != 0 {
		t.Errorf("LastChange() after the upgrade = %d, %v; want 0", seq, err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping() after the upgrade = %v", err)
	}
}

func TestOpenSQLite_upgrades_a_0_1_store_keeping_accounts_clients_keys_and_throttle_state(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "gatehouse-0.1.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s := openSQLiteAt(t, path, sqliteTuning{})
	assertUpgraded(t, s, fixtureAttempts)

	// Reopening applies nothing twice.
	s.Close()
	again := openSQLiteAt(t, path, sqliteTuning{})
	var n int
	if err := again.db.QueryRowContext(t.Context(), `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n != 8 {
		t.Errorf("schema_migrations after reopening: %d rows, %v; want 8", n, err)
	}
}

func TestOpenPostgres_upgrades_a_0003_schema_keeping_accounts_clients_keys_and_throttle_state(t *testing.T) {
	ctx := t.Context()
	dsn, _ := storetest.PostgresSchema(t)
	old := openPostgresAt(t, dsn, 3)
	var versions int
	if err := old.db.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version <= 3`).Scan(&versions); err != nil || versions != 3 {
		t.Fatalf("migrating up to 3: %d versions, %v", versions, err)
	}
	const ns = int64(1796163558740721120)
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO users (id, username, password_hash, scopes, disabled, created_at, updated_at, token_epoch)
		  VALUES ($1, $2, $3, $4, $5, $6, $6, 0)`, []any{"admin-id", "admin", "$argon2id$v=19$m=19456,t=2,p=1$x$y", "me users:write", false, ns}},
		{`INSERT INTO users (id, username, password_hash, scopes, disabled, created_at, updated_at, token_epoch)
		  VALUES ($1, $2, $3, $4, $5, $6, $6, 0)`, []any{"alice-id", "alice", "$argon2id$v=19$m=19456,t=2,p=1$x$z", "me", false, ns}},
		{`INSERT INTO users (id, username, password_hash, scopes, disabled, created_at, updated_at, token_epoch)
		  VALUES ($1, $2, $3, $4, $5, $6, $6, 0)`, []any{fixtureBobID, "bob", fixtureBobHash, "me", true, ns}},
		{`INSERT INTO clients (id, secret_hash, scopes, created_at) VALUES ($1, $2, $3, $4)`,
			[]any{"backend", hexSHA256(fixtureClientSecret), "me", ns}},
		{`INSERT INTO signing_keys (id, algorithm, private, created_at, activates_at) VALUES ($1, $2, $3, $4, $4)`,
			[]any{fixtureKID, "RS256", []byte("pkcs8"), ns}},
		{`INSERT INTO refresh_tokens (hash, family_id, user_id, client_id, scopes, issued_at, expires_at, family_expires_at)
		  VALUES ($1, $2, $3, $4, $5, $6, $6, $6)`, []any{hexSHA256("old-refresh"), "fam", "alice-id", "public", "me", ns}},
		{`INSERT INTO access_tokens (jti, user_id, family_id, client_id, expires_at) VALUES ($1, $2, $3, $4, $5)`,
			[]any{"old-jti", "alice-id", "fam", "public", ns}},
		{`INSERT INTO login_attempts (key, failures, window_start, blocked_until, last_success, updated_at)
		  VALUES ($1, 1, $2, 0, 0, $2)`, []any{"pair:86859d484ad2f33e8427384e4caa99cb", ns}},
	} {
		if _, err := old.db.ExecContext(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("writing the old shape: %v\n%s", err, q.sql)
		}
	}
	old.Close()

	s := openPostgresAt(t, dsn, allMigrations)
	assertUpgraded(t, s.store, []string{"pair:86859d484ad2f33e8427384e4caa99cb=1"})
	var name string
	if err := s.db.QueryRowContext(ctx, `SELECT name FROM schema_migrations WHERE version = 4`).Scan(&name); err != nil || name != "0004_align_numbering.sql" {
		t.Errorf("migration 4 on PostgreSQL = %q, %v; want 0004_align_numbering.sql", name, err)
	}
}

// A store whose schema is newer than the program is refused, not run.
func TestOpenSQLite_refuses_a_newer_schema(t *testing.T) {
	s, path := openTestSQLite(t, sqliteTuning{})
	if _, err := s.db.ExecContext(t.Context(), `INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, '0099_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := openSQLite(context.Background(), path, Options{}, sqliteTuning{}); err == nil {
		s.Close()
		t.Fatal("openSQLite of a schema at version 99 = nil error, want a refusal")
	}
}

func TestOpenPostgres_refuses_a_newer_schema(t *testing.T) {
	s, dsn, _ := openTestPostgres(t)
	if _, err := s.db.ExecContext(t.Context(), `INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, '0099_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	if s, err := openPostgres(t.Context(), dsn, Options{}, allMigrations); err == nil {
		s.Close()
		t.Fatal("openPostgres of a schema at version 99 = nil error, want a refusal")
	}
}

// Both engines have the same migration numbers from now on.
func TestMigrations_have_the_same_numbers_on_both_engines(t *testing.T) {
	lite, err := loadMigrations("sqlite")
	if err != nil {
		t.Fatal(err)
	}
	pg, err := loadMigrations("postgres")
	if err != nil {
		t.Fatal(err)
	}
	version := func(m migration) int { return m.version }
	if got, want := mapSlice(pg, version), mapSlice(lite, version); !slices.Equal(got, want) {
		t.Errorf("PostgreSQL migrations %v, SQLite %v: want the same numbers", got, want)
	}
	if lite[len(lite)-1].name != pg[len(pg)-1].name {
		t.Errorf("newest migrations %s and %s: want one name for one change", lite[len(lite)-1].name, pg[len(pg)-1].name)
	}
}

func mapSlice[T, U any](s []T, f func(T) U) []U {
	out := make([]U, 0, len(s))
	for _, v := range s {
		out = append(out, f(v))
	}
	return out
}
