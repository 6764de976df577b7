package sqlstore

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// openOneConnSQLite opens a store whose pool is one connection, so every
// call runs on the connection compiled reports on.
func openOneConnSQLite(t *testing.T) *store {
	t.Helper()
	s, err := openSQLite(t.Context(), filepath.Join(t.TempDir(), "gatehouse.db"), Options{MaxConns: 1}, sqliteTuning{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// compiled is how many statements the store's connection has compiled
// for its cache.
func compiled(t *testing.T, s *store) int {
	t.Helper()
	conn, err := s.db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var n int
	if err := conn.Raw(func(dc any) error { n = dc.(*sqliteConn).prepared; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestOpenSQLite_connections_sync_the_wal_at_checkpoints_not_at_each_commit(t *testing.T) {
	s, _ := openTestSQLite(t, sqliteTuning{})
	var sync int
	// 1 is NORMAL (2 is FULL, SQLite's default).
	if err := s.db.QueryRowContext(t.Context(), `PRAGMA synchronous`).Scan(&sync); err != nil || sync != 1 {
		t.Errorf("synchronous = %d, %v; want 1 (NORMAL)", sync, err)
	}
}

// A refresh is one UpdateSession: once its statements are compiled on a
// connection, further refreshes compile none.
func TestSQLite_a_statement_is_compiled_once_per_connection(t *testing.T) {
	ctx := t.Context()
	s := openOneConnSQLite(t)
	u := testUser("alice")
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	sess := &storage.Session{ID: "sid", UserID: u.ID, ClientID: "public", Scopes: []string{"me"},
		IdleExpiresAt: now.Add(time.Hour), ExpiresAt: now.Add(2 * time.Hour), SecretHash: "00"}
	if err := s.CreateSession(ctx, sess, u.TokenEpoch, nil); err != nil {
		t.Fatal(err)
	}
	refresh := func() {
		t.Helper()
		if _, _, err := s.UpdateSession(ctx, "sid", func(s *storage.Session, _ *storage.User) error {
			s.Generation++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	refresh()
	before := compiled(t, s)
	if before == 0 {
		t.Fatal("a refresh compiled no statement for the cache")
	}
	for range 10 {
		refresh()
	}
	if got := compiled(t, s); got != before {
		t.Errorf("10 refreshes compiled %d statements, want 0", got-before)
	}
	got, err := s.Session(ctx, "sid")
	if err != nil || got.Generation != 11 {
		t.Errorf("Session = generation %v, %v; want 11", got, err)
	}
}

// A query run again while rows of it are still being read (on the same
// connection) runs uncached; neither result set disturbs the other.
func TestSQLite_a_query_run_inside_its_own_rows_reads_both_result_sets(t *testing.T) {
	ctx := t.Context()
	s := openOneConnSQLite(t)
	for _, name := range []string{"alice", "bob", "carol"} {
		if err := s.CreateUser(ctx, testUser(name)); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const q = `SELECT username FROM users ORDER BY username`
	names := func() []string {
		t.Helper()
		rows, err := conn.QueryContext(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				t.Fatal(err)
			}
			if out = append(out, n); len(out) > 3 {
				t.Fatalf("query read %v, more rows than there are", out)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	want := []string{"alice", "bob", "carol"}
	rows, err := conn.QueryContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close() // before the connection, should a check stop the test
	var outer []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		if outer = append(outer, n); len(outer) > len(want) {
			t.Fatalf("outer query read %v, more rows than there are", outer)
		}
		if err := conn.Raw(func(dc any) error {
			if c, ok := dc.(*sqliteConn).stmts[q]; !ok || !c.open {
				t.Errorf("the outer query is not the open cached statement")
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if got := names(); !slices.Equal(got, want) {
			t.Errorf("inner query = %v, want %v", got, want)
		}
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(outer, want) {
		t.Errorf("outer query = %v, want %v", outer, want)
	}
	// The cached statement is free again.
	if got := names(); !slices.Equal(got, want) {
		t.Errorf("query after both = %v, want %v", got, want)
	}
}

// Closing the store finalizes the cached statements with the connections.
func TestSQLite_close_with_cached_statements_succeeds(t *testing.T) {
	ctx := t.Context()
	s, err := openSQLite(ctx, filepath.Join(t.TempDir(), "gatehouse.db"), Options{}, sqliteTuning{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(ctx, testUser("alice")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UserByUsername(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
}
