package sqlstore

import (
	"path/filepath"
	"testing"

	"github.com/gatehouse/gatehouse/internal/storage/storetest"
)

// openTestSQLite opens a store on a new file below t.TempDir() (in a
// directory OpenSQLite must create) and closes it after the test.
func openTestSQLite(t *testing.T, tune sqliteTuning) (*store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "data", "gatehouse.db")
	return openSQLiteAt(t, path, tune), path
}

func openSQLiteAt(t *testing.T, path string, tune sqliteTuning) *store {
	t.Helper()
	s, err := openSQLite(t.Context(), path, Options{}, tune)
	if err != nil {
		t.Fatalf("openSQLite(%q) = %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openTestPostgres opens a store on a schema of the test's own (skipping
// without a test server) and closes it after the test.
func openTestPostgres(t *testing.T) (s *pgStore, dsn, schema string) {
	t.Helper()
	dsn, schema = storetest.PostgresSchema(t)
	return openPostgresAt(t, dsn, allMigrations), dsn, schema
}

func openPostgresAt(t *testing.T, dsn string, upTo int) *pgStore {
	t.Helper()
	s, err := openPostgres(t.Context(), dsn, Options{}, upTo)
	if err != nil {
		t.Fatalf("openPostgres = %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
