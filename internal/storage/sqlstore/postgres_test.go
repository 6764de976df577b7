package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
	"github.com/gatehouse/gatehouse/internal/storage/storetest"
)

// listener runs Listen on s until the test ends or stop is called.
type listener struct {
	woke   chan struct{}
	stop   context.CancelFunc
	exited chan struct{}
	err    error
}

func listen(t *testing.T, s storage.Notifier) *listener {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &listener{woke: make(chan struct{}, 100), stop: cancel, exited: make(chan struct{})}
	go func() {
		defer close(l.exited)
		l.err = s.Listen(ctx, func() {
			select {
			case l.woke <- struct{}{}:
			default:
			}
		})
	}()
	t.Cleanup(func() { cancel(); <-l.exited })
	return l
}

// awaitWake appends through append until l wakes: Listen gives no sign of
// when its LISTEN took effect, and an append before that wakes nothing.
func awaitWake(t *testing.T, l *listener, append func(i int) error) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		if err := append(i); err != nil {
			t.Fatalf("appending: %v", err)
		}
		select {
		case <-l.woke:
			return
		case <-l.exited:
			t.Fatalf("Listen returned %v before waking", l.err)
		case <-deadline:
			t.Fatal("Listen did not wake within 10s of the appends")
		case <-tick.C:
		}
	}
}

func TestPostgres_a_change_appended_on_one_instance_wakes_Listen_on_the_other(t *testing.T) {
	ctx := t.Context()
	a, dsn, _ := openTestPostgres(t)
	b := openPostgresAt(t, dsn, allMigrations)
	l := listen(t, b)
	before, err := b.LastChange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	awaitWake(t, l, func(i int) error {
		return a.RevokeToken(ctx, fmt.Sprintf("jti-%d", i), now.Add(time.Hour), now)
	})
	// The wake comes after the commit: the entry is there to read.
	got, err := b.Changes(ctx, before, 100)
	if err != nil || len(got) == 0 || got[0].Kind != storage.ChangeToken {
		t.Errorf("Changes after the wake = %v, %v; want the token entry", got, err)
	}

	l.stop()
	select {
	case <-l.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("Listen did not return within 10s of its context ending")
	}
	if l.err != nil {
		t.Errorf("Listen after its context ended = %v, want nil", l.err)
	}
}

func TestPostgres_Listen_returns_the_fault_when_its_connection_is_terminated(t *testing.T) {
	ctx := t.Context()
	s, dsn, schema := openTestPostgres(t)
	l := listen(t, s)
	awaitWake(t, l, func(int) error { return s.RevokeToken(ctx, "jti", time.Now().Add(time.Hour), time.Now()) })
	admin := postgresAdmin(t, dsn)
	var n int
	if err := admin.QueryRow(ctx, `
		SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1 AND query LIKE 'LISTEN %'`, schema).Scan(&n); err != nil || n != 1 {
		t.Fatalf("terminating the listening connection: %d, %v; want 1", n, err)
	}
	select {
	case <-l.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("Listen did not return within 10s of losing its connection")
	}
	if !errors.Is(l.err, storage.ErrUnavailable) {
		t.Errorf("Listen after its connection was terminated = %v, want ErrUnavailable", l.err)
	}
	// Its connection was its own: the pool is unharmed.
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping() after Listen failed = %v", err)
	}
}

// Appenders on two instances take the change-log lock as their last
// statements: a reader that applies entries in Seq order never finds one
// with a smaller Seq committed after it read a larger one.
func TestPostgres_seq_order_is_commit_order_across_instances(t *testing.T) {
	ctx := t.Context()
	a, dsn, _ := openTestPostgres(t)
	b := openPostgresAt(t, dsn, allMigrations)
	const perWriter = 40
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w, s := range []*pgStore{a, b, a, b} {
		wg.Go(func() {
			for i := range perWriter {
				now := time.Now()
				if err := s.RevokeToken(ctx, fmt.Sprintf("w%d-%d", w, i), now.Add(time.Hour), now); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	seen := map[int64]bool{}
	var after int64
	poll := func() {
		got, err := b.Changes(ctx, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range got {
			seen[c.Seq] = true
			after = c.Seq
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for polling := true; polling; {
		select {
		case <-done:
			polling = false
		default:
		}
		poll()
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	poll()
	all, err := b.Changes(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 4*perWriter || len(seen) != len(all) {
		t.Errorf("the polling reader saw %d of %d entries (%d appended): an entry committed behind the reader's cursor", len(seen), len(all), 4*perWriter)
	}
}

// A role or a database that does not exist is permanent (start-up ends at
// once with PostgreSQL's message); a server that does not answer is not.
func TestPostgres_permanent_open_errors(t *testing.T) {
	base, err := url.Parse(storetest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	with := func(edit func(u *url.URL)) string {
		u := *base
		edit(&u)
		return u.String()
	}
	opts := Options{ConnectTimeout: 2 * time.Second}
	for _, tc := range []struct {
		name      string
		dsn       string
		permanent bool
		message   string
	}{
		{"no_such_database", with(func(u *url.URL) { u.Path = "/gatehouse_no_such_database" }), true, "does not exist"},
		{"no_such_role", with(func(u *url.URL) { u.User = url.User("gatehouse_no_such_role") }), true, "gatehouse_no_such_role"},
		{"nothing_listening", with(func(u *url.URL) { u.Host = "127.0.0.1:1" }), false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := OpenPostgres(t.Context(), tc.dsn, opts)
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
			if got := IsPermanentOpenError(err); got != tc.permanent {
				t.Fatalf("IsPermanentOpenError(%v) = %v, want %v", err, got, tc.permanent)
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error %q does not say %q", err, tc.message)
			}
		})
	}
}

// With MustExist, a database (here a schema) without gatehouse's tables is
// ErrNoStore, a permanent error, and gets no tables; a store opens.
func TestPostgres_must_exist(t *testing.T) {
	dsn, schema := storetest.PostgresSchema(t)
	_, err := OpenPostgres(t.Context(), dsn, Options{MustExist: true})
	if !errors.Is(err, ErrNoStore) || !IsPermanentOpenError(err) {
		t.Fatalf("OpenPostgres(empty schema, MustExist) = %v, want ErrNoStore (permanent)", err)
	}
	s := openPostgresAt(t, dsn, allMigrations)
	s.Close()
	s2, err := OpenPostgres(t.Context(), dsn, Options{MustExist: true})
	if err != nil {
		t.Fatalf("OpenPostgres(schema %s with a store, MustExist) = %v", schema, err)
	}
	s2.Close()
}

// Two managers stepping down at once on two instances: the second waits
// for the first's turn (the holders lock) before it counts, so it finds
// itself the last holder. Without the turn both would count two holders
// and both go through. The first change holds its transaction open in
// its fn, after its count; the test waits until the second is seen
// waiting on the lock, or fails at once if the second reaches its fn.
func TestPostgres_changes_that_keep_a_holder_take_turns_across_instances(t *testing.T) {
	ctx := t.Context()
	a, dsn, schema := openTestPostgres(t)
	b := openPostgresAt(t, dsn, allMigrations)
	for _, name := range []string{"root", "ops"} {
		if err := a.CreateUser(ctx, &storage.User{ID: "id-" + name, Username: name, PasswordHash: "h", Scopes: []string{"admin"}}); err != nil {
			t.Fatal(err)
		}
	}
	narrow := func(u *storage.User) { u.Scopes = []string{"me"} }
	inFirst, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		_, err := a.UpdateUser(ctx, "root", func(u *storage.User) error {
			close(inFirst)
			<-release
			narrow(u)
			return nil
		}, "admin")
		first <- err
	}()
	<-inFirst
	inSecond := make(chan struct{})
	second := make(chan error, 1)
	go func() {
		_, err := b.UpdateUser(ctx, "ops", func(u *storage.User) error {
			close(inSecond)
			narrow(u)
			return nil
		}, "admin")
		second <- err
	}()
	admin := postgresAdmin(t, dsn)
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-inSecond:
			close(release)
			t.Fatal("the second change counted the holders while the first was still in its transaction")
		default:
		}
		var waiting int
		if err := admin.QueryRow(ctx, `
			SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE l.locktype = 'advisory' AND NOT l.granted AND a.application_name = $1
				AND (l.classid::bigint << 32) + l.objid::bigint = $2`, schema, postgresHoldersLock).Scan(&waiting); err != nil {
			close(release)
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			close(release)
			t.Fatal("the second change neither waited for the holders lock nor ran within 10s")
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("the first change (root stepping down while ops holds admin) = %v", err)
	}
	if err := <-second; !errors.Is(err, storage.ErrLastHolder) {
		t.Errorf("the second change (ops stepping down after root) = %v, want ErrLastHolder", err)
	}
	if u, err := b.UserByUsername(ctx, "ops"); err != nil || !u.Holds("admin") {
		t.Errorf("ops after the refusal = %+v, %v; want still holding admin", u, err)
	}
}
