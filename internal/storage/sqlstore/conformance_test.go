package sqlstore_test

import (
	"path/filepath"
	"testing"

	"github.com/gatehouse/gatehouse/internal/storage"
	"github.com/gatehouse/gatehouse/internal/storage/sqlstore"
	"github.com/gatehouse/gatehouse/internal/storage/storetest"
)

// openSQLite opens a store on the file at path and closes it after the
// test.
func openSQLite(t *testing.T, path string) storage.Store {
	t.Helper()
	s, err := sqlstore.OpenSQLite(t.Context(), path, sqlstore.Options{})
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

// openPostgres opens a store on dsn and closes it after the test (before
// PostgresSchema drops the schema: cleanups run last first).
func openPostgres(t *testing.T, dsn string) storage.Store {
	t.Helper()
	s, err := sqlstore.OpenPostgres(t.Context(), dsn, sqlstore.Options{})
	if err != nil {
		t.Fatalf("OpenPostgres = %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return s
}

func TestSQLite_conformance(t *testing.T) {
	storetest.RunTests(t, func(t *testing.T) storage.Store {
		return openSQLite(t, filepath.Join(t.TempDir(), "gatehouse.db"))
	})
}

// Two stores on one file, each with its own pool, stand in for two
// processes sharing the database.
func TestSQLite_two_instance_conformance(t *testing.T) {
	storetest.RunTwoInstanceTests(t, func(t *testing.T) (a, b storage.Store) {
		path := filepath.Join(t.TempDir(), "gatehouse.db")
		return openSQLite(t, path), openSQLite(t, path)
	})
}

// Each case gets a schema of its own (PostgresSchema skips without
// GATEHOUSE_TEST_POSTGRES_URL, and fails in CI).
func TestPostgres_conformance(t *testing.T) {
	storetest.PostgresURL(t)
	storetest.RunTests(t, func(t *testing.T) storage.Store {
		dsn, _ := storetest.PostgresSchema(t)
		return openPostgres(t, dsn)
	})
}

// Two stores on one schema, each with its own pool, stand in for two
// server processes.
func TestPostgres_two_instance_conformance(t *testing.T) {
	storetest.PostgresURL(t)
	storetest.RunTwoInstanceTests(t, func(t *testing.T) (a, b storage.Store) {
		dsn, _ := storetest.PostgresSchema(t)
		return openPostgres(t, dsn), openPostgres(t, dsn)
	})
}
