package users

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
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
	ms, err := loadSQLiteMigrations()
	if err != nil {
		t.Fatalf("loadSQLiteMigrations() = %v", err)
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
