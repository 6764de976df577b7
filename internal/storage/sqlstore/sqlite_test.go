package sqlstore

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
)

func TestOpenSQLite_creates_an_owner_only_directory_and_file(t *testing.T) {
	_, path := openTestSQLite(t, sqliteTuning{})
	for _, c := range []struct {
		path string
		want os.FileMode
	}{{filepath.Dir(path), 0o700 | os.ModeDir}, {path, 0o600}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode() & (os.ModePerm | os.ModeDir); got != c.want {
			t.Errorf("%s has mode %v, want %v", c.path, got, c.want)
		}
	}
}

func TestOpenSQLite_refuses_a_question_mark_in_the_path(t *testing.T) {
	if s, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "g.db?mode=memory"), Options{}); err == nil {
		s.Close()
		t.Error("OpenSQLite of a path with '?' = nil error")
	}
	if s, err := OpenSQLite(t.Context(), "", Options{}); err == nil {
		s.Close()
		t.Error("OpenSQLite of an empty path = nil error")
	}
}

func TestOpenSQLite_connections_use_wal_busy_timeout_foreign_keys_and_a_bounded_pool(t *testing.T) {
	s, _ := openTestSQLite(t, sqliteTuning{})
	ctx := t.Context()
	var mode string
	var fk, busy int
	if err := s.db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	if err := s.db.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
		t.Errorf("foreign_keys = %d, %v; want 1", fk, err)
	}
	if err := s.db.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&busy); err != nil || busy != int(sqliteBusyTimeout.Milliseconds()) {
		t.Errorf("busy_timeout = %d, %v; want %d", busy, err, sqliteBusyTimeout.Milliseconds())
	}
	if got := s.db.Stats().MaxOpenConnections; got != sqliteMaxConns {
		t.Errorf("MaxOpenConnections = %d, want %d", got, sqliteMaxConns)
	}
}

func TestOpenSQLite_concurrent_openers_of_a_new_file_all_succeed_and_migrate_once(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			s, err := OpenSQLite(context.Background(), path, Options{})
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("opener %d: %v", i, err)
		}
	}
	s := openSQLiteAt(t, path, sqliteTuning{})
	var rows, distinct int
	if err := s.db.QueryRowContext(t.Context(), `SELECT count(*), count(DISTINCT version) FROM schema_migrations`).Scan(&rows, &distinct); err != nil || rows != 8 || distinct != 8 {
		t.Errorf("schema_migrations: %d rows, %d versions, %v; want 8 and 8", rows, distinct, err)
	}
}

func TestOpenSQLite_is_no_Notifier(t *testing.T) {
	s, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "g.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, ok := s.(storage.Notifier); ok {
		t.Error("the SQLite store is a Notifier; one process owns the file, nothing to listen to")
	}
}

// Options.Now is the store's clock, and ChangeRetention dates the entries.
func TestOptions_clock_and_change_retention(t *testing.T) {
	ctx := t.Context()
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	s, err := openSQLite(ctx, filepath.Join(t.TempDir(), "g.db"), Options{Now: func() time.Time { return at }, ChangeRetention: 2 * time.Hour}, sqliteTuning{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u := testUser("alice")
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if !u.CreatedAt.Equal(at) || !u.UpdatedAt.Equal(at) {
		t.Errorf("CreateUser times %v %v, want the store's clock %v", u.CreatedAt, u.UpdatedAt, at)
	}
	if _, err := s.UpdateUser(ctx, "alice", func(u *storage.User) error { u.Disabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	exp := at.Add(time.Hour)
	if err := s.RevokeToken(ctx, "jti", exp, at); err != nil {
		t.Fatal(err)
	}
	got, err := s.Changes(ctx, 0, 10)
	if err != nil || len(got) != 2 {
		t.Fatalf("Changes = %v, %v", got, err)
	}
	if c := got[0]; c.Kind != storage.ChangeUser || !c.At.Equal(at) || !c.ExpiresAt.Equal(at.Add(2*time.Hour)) {
		t.Errorf("user entry %+v, want At %v and ExpiresAt At+ChangeRetention", c, at)
	}
	if c := got[1]; c.Kind != storage.ChangeToken || !c.ExpiresAt.Equal(exp) {
		t.Errorf("token entry %+v, want it to expire with the token at %v", c, exp)
	}
}

// A backup taken while the store is open is a complete store of its own,
// owner-only, and never overwrites a file.
func TestSQLite_backup_is_a_complete_store(t *testing.T) {
	ctx := t.Context()
	s, path := openTestSQLite(t, sqliteTuning{})
	for _, name := range []string{"alice", "bob"} {
		if err := s.CreateUser(ctx, &storage.User{ID: "id-" + name, Username: name, PasswordHash: "$2b$04$" + strings.Repeat("a", 53)}); err != nil {
			t.Fatal(err)
		}
	}
	dest := filepath.Join(t.TempDir(), "backup.db")
	if err := BackupSQLite(ctx, path, dest); err != nil {
		t.Fatalf("BackupSQLite = %v", err)
	}
	if fi, err := os.Stat(dest); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("backup file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	// Written after the backup: not in it.
	if err := s.CreateUser(ctx, &storage.User{ID: "id-carol", Username: "carol", PasswordHash: "$2b$04$" + strings.Repeat("a", 53)}); err != nil {
		t.Fatal(err)
	}
	restored := openSQLiteAt(t, dest, sqliteTuning{})
	if n, err := restored.CountUsers(ctx); err != nil || n != 2 {
		t.Errorf("users in the backup: %d, %v; want 2", n, err)
	}
	if u, err := restored.UserByUsername(ctx, "bob"); err != nil || u.ID != "id-bob" {
		t.Errorf("bob in the backup: %+v, %v", u, err)
	}
	if err := BackupSQLite(ctx, path, dest); err == nil || !errors.Is(err, fs.ErrExist) {
		t.Errorf("a second backup onto the same file = %v, want it refused (fs.ErrExist)", err)
	}
	if err := BackupSQLite(ctx, filepath.Join(t.TempDir(), "missing.db"), filepath.Join(t.TempDir(), "b.db")); err == nil {
		t.Error("a backup of a store that does not exist succeeded")
	}
}

// With MustExist, a missing or empty SQLite file is ErrNoStore and
// nothing is created; an existing store opens.
func TestSQLite_must_exist(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	missing := filepath.Join(dir, "sub", "gatehouse.db")
	if _, err := OpenSQLite(ctx, missing, Options{MustExist: true}); !errors.Is(err, ErrNoStore) {
		t.Errorf("OpenSQLite(missing, MustExist) = %v, want ErrNoStore", err)
	}
	if _, err := os.Stat(filepath.Dir(missing)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the directory of the missing store was created: %v", err)
	}
	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSQLite(ctx, empty, Options{MustExist: true}); !errors.Is(err, ErrNoStore) {
		t.Errorf("OpenSQLite(empty file, MustExist) = %v, want ErrNoStore", err)
	}
	_, path := openTestSQLite(t, sqliteTuning{})
	s, err := OpenSQLite(ctx, path, Options{MustExist: true})
	if err != nil {
		t.Fatalf("OpenSQLite(existing store, MustExist) = %v", err)
	}
	s.Close()
}
