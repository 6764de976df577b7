package users

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// openTestSQLite opens a store on a file in a fresh directory below
// t.TempDir() (so OpenSQLite must create it) and closes it after the test.
func openTestSQLite(t *testing.T) Store {
	t.Helper()
	return openSQLiteAt(t, filepath.Join(t.TempDir(), "data", "gatehouse.db"))
}

func openSQLiteAt(t *testing.T, path string) Store {
	t.Helper()
	s, err := OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatalf("OpenSQLite(%q) = %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return s
}

func TestSQLiteStore(t *testing.T) {
	runStoreTests(t, openTestSQLite)
}

func TestOpenSQLite_reopen_keeps_data_and_applies_each_migration_once(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	first, err := OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatalf("OpenSQLite(%q) = %v", path, err)
	}
	u := testUser(t, "alice")
	mustCreate(t, first, u)
	if err := first.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}

	second := openSQLiteAt(t, path)
	if got := mustGet(t, second, "alice"); got.ID != u.ID {
		t.Errorf("after reopen alice has ID %q, want %q", got.ID, u.ID)
	}
	ms, err := loadMigrations(sqliteMigrations, "sqlite")
	if err != nil {
		t.Fatalf("loadMigrations(sqlite) = %v", err)
	}
	var rows, distinct int
	err = second.(*sqliteStore).db.QueryRowContext(t.Context(),
		`SELECT count(*), count(DISTINCT version) FROM schema_migrations`).Scan(&rows, &distinct)
	if err != nil {
		t.Fatalf("reading schema_migrations: %v", err)
	}
	if rows != len(ms) || distinct != len(ms) {
		t.Errorf("schema_migrations has %d rows (%d versions), want %d, one per migration", rows, distinct, len(ms))
	}
}

func TestOpenSQLite_concurrent_openers_of_a_new_file_both_succeed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			s, err := OpenSQLite(t.Context(), path)
			if err == nil {
				err = s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("OpenSQLite #%d = %v", i, err)
		}
	}
}

func TestOpenSQLite_refuses_a_newer_schema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	s, err := OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatalf("OpenSQLite(%q) = %v", path, err)
	}
	_, err = s.(*sqliteStore).db.ExecContext(t.Context(),
		`INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 0)`)
	if err != nil {
		t.Fatalf("inserting a future migration: %v", err)
	}
	s.Close()
	if s, err := OpenSQLite(t.Context(), path); err == nil {
		s.Close()
		t.Errorf("OpenSQLite on a schema from the future = nil error, want one")
	}
}

func TestOpenSQLite_connections_use_wal_busy_timeout_and_foreign_keys(t *testing.T) {
	s := openTestSQLite(t).(*sqliteStore)
	tests := []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"busy_timeout", "5000"},
		{"foreign_keys", "1"},
	}
	for _, tt := range tests {
		var got string
		if err := s.db.QueryRowContext(t.Context(), "PRAGMA "+tt.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", tt.pragma, err)
		}
		if strings.ToLower(got) != tt.want {
			t.Errorf("PRAGMA %s = %q, want %q", tt.pragma, got, tt.want)
		}
	}
}

// Two stores on one file stand in for two server processes: SQLite's file
// lock, not an in-process mutex, must make them agree on one key.
func TestSQLiteStore_two_stores_on_one_file_share_one_signing_key(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	stores := []Store{openSQLiteAt(t, path), openSQLiteAt(t, path)}
	var wg sync.WaitGroup
	ids := make([]string, 10)
	errs := make([]error, len(ids))
	for i := range ids {
		wg.Go(func() {
			k, err := stores[i%2].EnsureSigningKey(context.Background(), "ES256", func() (SigningKey, error) {
				return SigningKey{Private: []byte("secret")}, nil
			})
			ids[i], errs[i] = k.ID, err
		})
	}
	wg.Wait()
	for i := range ids {
		if errs[i] != nil {
			t.Fatalf("EnsureSigningKey #%d = %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Errorf("EnsureSigningKey #%d returned key %q, #0 returned %q", i, ids[i], ids[0])
		}
	}
	keys, err := stores[0].SigningKeys(t.Context())
	if err != nil || len(keys) != 1 {
		t.Errorf("SigningKeys() = %d keys, %v; want 1", len(keys), err)
	}
}

func TestOpenSQLite_rejects_unusable_paths(t *testing.T) {
	for _, path := range []string{"", filepath.Join(t.TempDir(), "a?b.db")} {
		if s, err := OpenSQLite(t.Context(), path); err == nil {
			s.Close()
			t.Errorf("OpenSQLite(%q) = nil error, want one", path)
		}
	}
}

func TestOpenSQLite_upgrades_a_database_created_by_migration_0001(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	ms, err := loadMigrations(sqliteMigrations, "sqlite")
	if err != nil {
		t.Fatalf("loadMigrations(sqlite) = %v", err)
	}
	if len(ms) < 2 || ms[0].version != 1 {
		t.Fatalf("migrations = %d, want 0001 and later ones", len(ms))
	}
	// An installation of the first release: schema 0001, one user, one key.
	db, err := sql.Open("sqlite", sqliteDSN(path))
	if err != nil {
		t.Fatalf("sql.Open(%q) = %v", path, err)
	}
	if err := applySQLiteMigrations(ctx, db, ms[:1], time.Now); err != nil {
		db.Close()
		t.Fatalf("applying 0001 alone: %v", err)
	}
	created := time.Date(2024, 11, 5, 9, 0, 0, 0, time.UTC)
	_, err = db.ExecContext(ctx,
		`INSERT INTO signing_keys (id, algorithm, private, created_at) VALUES ('old-key', 'RS256', x'01', ?)`,
		created.UnixNano())
	if err == nil {
		_, err = db.ExecContext(ctx,
			`INSERT INTO users (id, username, password_hash, scopes, created_at, updated_at) VALUES ('alice-id', 'alice', 'h', 'me', 0, 0)`)
	}
	if err != nil {
		db.Close()
		t.Fatalf("seeding the 0001 schema: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}

	s := openSQLiteAt(t, path)
	keys, err := s.SigningKeys(ctx)
	if err != nil {
		t.Fatalf("SigningKeys() after upgrade = %v", err)
	}
	if len(keys) != 1 || keys[0].ID != "old-key" || !keys[0].ActivatesAt.Equal(created) {
		t.Errorf("SigningKeys() after upgrade = %+v, want old-key with ActivatesAt = CreatedAt %v", keys, created)
	}
	if got := mustGet(t, s, "alice"); got.ID != "alice-id" {
		t.Errorf("alice after upgrade has ID %q, want alice-id", got.ID)
	}
	// The new tables are there and usable.
	mustCreateRefreshToken(t, s, newRefreshToken(t, "h1", "fam", "alice-id", "web"))
	mustRecordAccessToken(t, s, newAccessToken(t, "at1", "alice-id", "fam", "web"))
	if err := s.CreateClient(ctx, &Client{ID: "web", CreatedAt: created}); err != nil {
		t.Errorf("CreateClient(web) after upgrade = %v", err)
	}
	var versions int
	if err := s.(*sqliteStore).db.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&versions); err != nil || versions != len(ms) {
		t.Errorf("schema_migrations has %d rows (%v), want %d", versions, err, len(ms))
	}
}

// Two stores on one file stand in for two server processes presenting the
// same refresh token: SQLite's write lock must let exactly one rotate it.
func TestSQLiteStore_two_stores_on_one_file_rotate_a_token_once(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	stores := []Store{openSQLiteAt(t, path), openSQLiteAt(t, path)}
	mustCreateRefreshToken(t, stores[0], newRefreshToken(t, "h1", "fam", "alice-id", "web"))
	at := tokenNow.Add(time.Minute)
	errs := make([]error, 10)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() {
			<-start
			_, errs[i] = stores[i%2].RotateRefreshToken(context.Background(), "h1", at, successor(fmt.Sprintf("next-%d", i), at))
		})
	}
	close(start)
	wg.Wait()
	var ok, reused int
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrTokenReused):
			reused++
		default:
			t.Errorf("RotateRefreshToken #%d = %v, want nil or ErrTokenReused", i, err)
		}
	}
	if ok != 1 || reused != len(errs)-1 {
		t.Errorf("rotations across two stores: %d succeeded, %d reused; want 1 and %d", ok, reused, len(errs)-1)
	}
}

func TestSQLiteStore_revoked_access_tokens_read_the_partial_index(t *testing.T) {
	s := openTestSQLite(t).(*sqliteStore)
	rows, err := s.db.QueryContext(t.Context(), `
		EXPLAIN QUERY PLAN
		SELECT jti, expires_at FROM access_tokens
		WHERE revoked_at <> 0 AND expires_at > ?
		ORDER BY expires_at, jti`, tokenNow.UnixNano())
	if err != nil {
		t.Fatalf("EXPLAIN QUERY PLAN: %v", err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatalf("reading the plan: %v", err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("reading the plan: %v", err)
	}
	if !slices.ContainsFunc(plan, func(d string) bool { return strings.Contains(d, "access_tokens_revoked_expires_at") }) {
		t.Errorf("RevokedAccessTokens query plan = %q, want it to use access_tokens_revoked_expires_at", plan)
	}
}

func TestOpenSQLite_store_files_are_owner_only(t *testing.T) {
	// The file holds password hashes and signing keys.
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "gatehouse.db")
	s := openSQLiteAt(t, path)
	mustCreate(t, s, testUser(t, "alice")) // a write, so the WAL and SHM files exist
	for file, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, path: 0o600, path + "-wal": 0o600, path + "-shm": 0o600} {
		fi, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode(); got != want {
			t.Errorf("mode of %s = %v, want %v", filepath.Base(file), got, want)
		}
	}
}
