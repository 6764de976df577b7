package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
	"github.com/jackc/pgx/v5"
)

// Store faults must reach callers as the contract's sentinels, so the
// HTTP layer answers 503 with Retry-After rather than 500.

var userN atomic.Int64

func testUser(name string) *storage.User {
	return &storage.User{ID: fmt.Sprintf("id-%s-%d", name, userN.Add(1)), Username: name, PasswordHash: "hash", Scopes: []string{"me"}}
}

// assertFault checks that err is the fault want and names the operation.
func assertFault(t *testing.T, what string, err, want error, op string) {
	t.Helper()
	if !errors.Is(err, want) || !storage.IsFault(err) {
		t.Errorf("%s = %v, want %v (a fault)", what, err, want)
		return
	}
	if op != "" && !strings.Contains(err.Error(), op) {
		t.Errorf("%s = %q, want the operation %q named", what, err, op)
	}
}

func TestSQLite_a_full_database_is_ErrFull(t *testing.T) {
	ctx := t.Context()
	s, _ := openTestSQLite(t, sqliteTuning{})
	// max_page_count is per connection: keep one, and cap it at the pages
	// the file has now, so the first write that needs a page fails.
	s.db.SetMaxOpenConns(1)
	s.db.SetMaxIdleConns(1)
	var pages int
	if err := s.db.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.ExecContext(ctx, fmt.Sprintf(`PRAGMA max_page_count = %d`, pages)); err != nil {
		t.Fatal(err)
	}
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		u := testUser(fmt.Sprintf("user%03d", i))
		u.PasswordHash = strings.Repeat("h", 4000)
		err = s.CreateUser(ctx, u)
	}
	assertFault(t, "CreateUser on a full database", err, storage.ErrFull, "create user")
}

func TestSQLite_a_read_only_store_fails_ping_and_writes_with_ErrReadOnly(t *testing.T) {
	ctx := t.Context()
	rw, path := openTestSQLite(t, sqliteTuning{})
	if err := rw.CreateUser(ctx, testUser("alice")); err != nil {
		t.Fatal(err)
	}
	rw.Close()
	// chmod 0400 does not stop root, which the tests run as: the
	// connections refuse writes instead (PRAGMA query_only).
	ro := openSQLiteAt(t, path, sqliteTuning{queryOnly: true})
	assertFault(t, "Ping on a read-only store", ro.Ping(ctx), storage.ErrReadOnly, "ping")
	assertFault(t, "CreateUser on a read-only store", ro.CreateUser(ctx, testUser("bob")), storage.ErrReadOnly, "create user")
	_, err := ro.UpdateUser(ctx, "alice", func(u *storage.User) error { u.Disabled = true; return nil })
	assertFault(t, "UpdateUser on a read-only store", err, storage.ErrReadOnly, "update user")
	// Reads still work: readiness fails, the bearer path does not.
	if _, err := ro.UserByUsername(ctx, "alice"); err != nil {
		t.Errorf("UserByUsername on a read-only store = %v, want the user", err)
	}
}

func TestSQLite_a_write_lock_held_past_the_busy_timeout_is_ErrBusy(t *testing.T) {
	ctx := t.Context()
	s, path := openTestSQLite(t, sqliteTuning{busyTimeout: 50 * time.Millisecond})
	// Another process's writer: a connection of its own holding the write
	// lock.
	other, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	assertFault(t, "CreateUser behind another writer", s.CreateUser(ctx, testUser("alice")), storage.ErrBusy, "create user")
	_, err = s.UpdateUser(ctx, "alice", func(*storage.User) error { return nil })
	assertFault(t, "UpdateUser behind another writer", err, storage.ErrBusy, "update user")
	assertFault(t, "Ping behind another writer", s.Ping(ctx), storage.ErrBusy, "ping")

	if _, err := conn.ExecContext(ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(ctx, testUser("alice")); err != nil {
		t.Errorf("CreateUser once the lock is free = %v", err)
	}
}

// A write queued behind a stuck writer of the same store gives up at the
// deadline WithTimeout imposes.
func TestWithTimeout_a_write_queued_behind_a_stuck_writer_is_ErrTimeout(t *testing.T) {
	ctx := t.Context()
	s, _ := openTestSQLite(t, sqliteTuning{})
	if err := s.CreateUser(ctx, testUser("alice")); err != nil {
		t.Fatal(err)
	}
	inside, release := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() {
		_, err := s.UpdateUser(ctx, "alice", func(*storage.User) error {
			close(inside)
			<-release
			return nil
		})
		done <- err
	}()
	<-inside
	timed := storage.WithTimeout(s, 100*time.Millisecond)
	assertFault(t, "CreateUser behind a stuck writer", timed.CreateUser(ctx, testUser("bob")), storage.ErrTimeout, "")
	assertFault(t, "Ping behind a stuck writer", timed.Ping(ctx), storage.ErrTimeout, "")
	close(release)
	if err := <-done; err != nil {
		t.Errorf("the stuck UpdateUser = %v once released", err)
	}
	if err := timed.CreateUser(ctx, testUser("bob")); err != nil {
		t.Errorf("CreateUser after the writer finished = %v", err)
	}
}

func TestWithTimeout_an_expired_deadline_is_ErrTimeout_and_a_cancelled_call_is_not(t *testing.T) {
	s, _ := openTestSQLite(t, sqliteTuning{})
	timed := storage.WithTimeout(s, time.Nanosecond)
	_, err := timed.UserByUsername(t.Context(), "alice")
	assertFault(t, "UserByUsername past its deadline", err, storage.ErrTimeout, "")

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err = storage.WithTimeout(s, time.Minute).CreateUser(ctx, testUser("alice"))
	if !errors.Is(err, context.Canceled) || storage.IsFault(err) {
		t.Errorf("CreateUser with a cancelled context = %v, want context.Canceled and no fault", err)
	}
}

func TestOpenPostgres_a_closed_port_is_ErrUnavailable_and_keeps_the_password_out(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	const secret = "s3cret-pw"
	s, err := OpenPostgres(t.Context(), "postgres://gatehouse:"+secret+"@"+addr+"/gatehouse?sslmode=disable", Options{ConnectTimeout: 5 * time.Second})
	if err == nil {
		s.Close()
		t.Fatal("OpenPostgres on a closed port = nil error")
	}
	assertFault(t, "OpenPostgres on a closed port", err, storage.ErrUnavailable, "open")
	if strings.Contains(err.Error(), secret) {
		t.Errorf("OpenPostgres error %q quotes the password", err)
	}
}

func TestOpenPostgres_rejects_a_malformed_dsn_without_quoting_the_password(t *testing.T) {
	const secret = "s3cret-pw"
	for _, dsn := range []string{
		"postgres://u:" + secret + "@127.0.0.1:notaport/db",
		"host=127.0.0.1 port=1 password='" + secret, // unterminated quote
	} {
		s, err := OpenPostgres(t.Context(), dsn, Options{})
		if err == nil {
			s.Close()
			t.Fatalf("OpenPostgres(%q) = nil error", dsn)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("OpenPostgres error %q quotes the password", err)
		}
	}
	if _, err := OpenPostgres(t.Context(), "postgres://127.0.0.1/db", Options{MaxConns: -1}); err == nil {
		t.Error("OpenPostgres with MaxConns -1 = nil error")
	}
}

// postgresAdmin connects as the tests' server user, outside any store.
func postgresAdmin(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestPostgres_terminated_connections_are_ErrUnavailable_or_replaced_never_a_panic(t *testing.T) {
	ctx := t.Context()
	s, dsn, schema := openTestPostgres(t)
	if err := s.CreateUser(ctx, testUser("alice")); err != nil {
		t.Fatal(err)
	}
	admin := postgresAdmin(t, dsn)
	var killed int
	if err := admin.QueryRow(ctx, `
		SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1 AND pid <> pg_backend_pid()`, schema).Scan(&killed); err != nil || killed == 0 {
		t.Fatalf("terminating the store's connections: %d, %v", killed, err)
	}
	calls := []struct {
		name string
		call func() error
	}{
		{"UserByUsername", func() error { _, err := s.UserByUsername(ctx, "alice"); return err }},
		{"UpdateUser", func() error {
			_, err := s.UpdateUser(ctx, "alice", func(u *storage.User) error { u.Disabled = !u.Disabled; return nil })
			return err
		}},
		{"Ping", func() error { return s.Ping(ctx) }},
	}
	for _, c := range calls {
		ok := false
		for range 3 {
			err := c.call()
			if err == nil {
				ok = true
				break
			}
			assertFault(t, c.name+" after its connection was terminated", err, storage.ErrUnavailable, "")
		}
		if !ok {
			t.Errorf("%s still fails on its third call after the terminations", c.name)
		}
	}
}

func TestPostgres_a_statement_blocked_on_a_lock_times_out_with_WithTimeout(t *testing.T) {
	ctx := t.Context()
	s, dsn, _ := openTestPostgres(t)
	if err := s.CreateUser(ctx, testUser("alice")); err != nil {
		t.Fatal(err)
	}
	holder := postgresAdmin(t, dsn)
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT id FROM users WHERE username = 'alice' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	timed := storage.WithTimeout(s, 100*time.Millisecond)
	_, err = timed.UpdateUser(ctx, "alice", func(u *storage.User) error { u.Disabled = true; return nil })
	assertFault(t, "UpdateUser blocked on a row lock", err, storage.ErrTimeout, "update user")
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	// The cancelled statement left the pool usable.
	if _, err := timed.UpdateUser(ctx, "alice", func(u *storage.User) error { u.Disabled = true; return nil }); err != nil {
		t.Errorf("UpdateUser once the lock is free = %v", err)
	}
}

func TestPostgres_a_read_only_server_fails_ping_and_writes_with_ErrReadOnly(t *testing.T) {
	ctx := t.Context()
	_, dsn, _ := openTestPostgres(t)
	// A hot standby refuses writes with read_only_sql_transaction (25006),
	// as every transaction does under default_transaction_read_only.
	ro, err := OpenPostgres(ctx, dsn+"&default_transaction_read_only=on", Options{})
	if err != nil {
		t.Fatalf("OpenPostgres read-only = %v, want the migrated store to open", err)
	}
	defer ro.Close()
	assertFault(t, "Ping on a read-only server", ro.Ping(ctx), storage.ErrReadOnly, "ping")
	assertFault(t, "CreateUser on a read-only server", ro.CreateUser(ctx, testUser("bob")), storage.ErrReadOnly, "create user")
	if _, err := ro.UserByUsername(ctx, "bob"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("UserByUsername on a read-only server = %v, want ErrNotFound", err)
	}
}
