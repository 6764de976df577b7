package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresURL is the server the PostgreSQL tests use, from
// GATEHOUSE_TEST_POSTGRES_URL. Without one they skip, saying how to run
// them, except in CI (CI=true), where a missing database is a failure.
func PostgresURL(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("GATEHOUSE_TEST_POSTGRES_URL")
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("GATEHOUSE_TEST_POSTGRES_URL is not set: the PostgreSQL tests must run in CI")
		}
		t.Skip("set GATEHOUSE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable (or run make test-postgres) to run the PostgreSQL tests")
	}
	return dsn
}

// PostgresSchema creates a schema of the test's own, with a random name,
// drops it at cleanup, and returns a DSN whose connections use it
// (search_path) and carry its name as application_name, by which tests
// find the store's connections in pg_stat_activity.
func PostgresSchema(t testing.TB) (dsn, schema string) {
	t.Helper()
	base := PostgresURL(t)
	b := make([]byte, 8)
	rand.Read(b)
	schema = "gatehouse_test_" + hex.EncodeToString(b)
	ident := pgx.Identifier{schema}.Sanitize()

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connecting to GATEHOUSE_TEST_POSTGRES_URL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+ident); err != nil {
		t.Fatalf("CREATE SCHEMA %s: %v", ident, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("DROP SCHEMA %s: %v", ident, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+ident+" CASCADE"); err != nil {
			t.Errorf("DROP SCHEMA %s: %v", ident, err)
		}
	})

	if u, err := url.Parse(base); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		q.Set("search_path", schema)
		q.Set("application_name", schema)
		u.RawQuery = q.Encode()
		return u.String(), schema
	}
	// A key=value DSN: unknown keys are runtime parameters too.
	return base + " search_path=" + schema + " application_name=" + schema, schema
}
