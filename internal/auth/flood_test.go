package auth

import (
	"context"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/storage"
	"github.com/gatehouse/gatehouse/internal/storage/storetest"
	"github.com/gatehouse/gatehouse/internal/users"
)

// floodFixture is a token endpoint whose hashing limiter has one slot,
// over a store that records every call the password grant makes, with
// the audit outcomes of its logins.
type floodFixture struct {
	*fixture
	svc       *users.Service
	faulty    *storetest.Faulty
	contended atomic.Bool

	mu       sync.Mutex
	ops      []string
	outcomes []string
}

// newFloodFixture builds a floodFixture with a hashing queue of queue
// and a wait of wait, and the user alice (password "correct horse").
func newFloodFixture(t *testing.T, queue int, wait time.Duration, throttle ThrottleConfig) *floodFixture {
	t.Helper()
	ff := &floodFixture{fixture: newFixture(t, AlgRS256, nil)}
	ff.createUser(t, "alice", "correct horse", "me")
	ff.faulty = storetest.NewFaulty(ff.store)
	counted := storage.Instrument(ff.faulty, func(_ context.Context, op string, _ time.Duration, _ error) {
		ff.mu.Lock()
		ff.ops = append(ff.ops, op)
		ff.mu.Unlock()
	})
	svc, err := users.NewService(counted, users.Options{
		Hasher:          users.Hasher{Memory: 64, Iterations: 1, Parallelism: 1},
		Scopes:          testScopes,
		HashConcurrency: 1,
		HashQueue:       queue,
		HashWait:        wait,
		Contended:       ff.contended.Load,
	})
	if err != nil {
		t.Fatal(err)
	}
	ff.svc = svc
	throttle.Now = func() time.Time { return ff.now }
	ff.issuer.Users = svc
	ff.issuer.Sessions = counted
	ff.issuer.Throttle = NewThrottle(counted, throttle)
	ff.issuer.Audit = audit.New(slog.New(slog.DiscardHandler), func(e audit.Event) {
		ff.mu.Lock()
		ff.outcomes = append(ff.outcomes, e.Outcome)
		ff.mu.Unlock()
	})
	return ff
}

// try is one password grant as alice from addr: the store calls it made
// and its error.
func (ff *floodFixture) try(t *testing.T, password, addr string) ([]string, error) {
	t.Helper()
	ff.mu.Lock()
	before := len(ff.ops)
	ff.mu.Unlock()
	_, err := ff.issuer.Token(context.Background(), TokenRequest{GrantType: GrantPassword, Username: "alice", Password: password, Scope: "me", ClientAddr: addr})
	ff.mu.Lock()
	defer ff.mu.Unlock()
	return slices.Clone(ff.ops[before:]), err
}

// lastOutcome is the audit outcome of the latest login.
func (ff *floodFixture) lastOutcome() string {
	ff.mu.Lock()
	defer ff.mu.Unlock()
	if len(ff.outcomes) == 0 {
		return ""
	}
	return ff.outcomes[len(ff.outcomes)-1]
}

// hold takes the only hashing slot and, when queued is set, fills the
// queue of one with a caller parked in it, until the returned func.
func (ff *floodFixture) hold(t *testing.T, queued bool) (release func()) {
	t.Helper()
	ctx := context.Background()
	held, err := ff.svc.Admit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !queued {
		return held.Release
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sl, err := ff.svc.Admit(ctx)
		if err != nil {
			t.Errorf("the queued caller: %v", err)
			return
		}
		sl.Release()
	}()
	for ff.svc.HashStats().Waiting != 1 {
		runtime.Gosched() // until the caller is parked in the queue
	}
	return func() { held.Release(); <-done }
}

// wantShed asserts a 503 temporarily_unavailable with Retry-After, audited
// as busy, that made no store call.
func (ff *floodFixture) wantShed(t *testing.T, err error, ops []string) {
	t.Helper()
	e := wantOAuthError(t, err, CodeTemporarilyUnavailable, 503)
	if e.RetryAfter < 1 {
		t.Errorf("Retry-After %d, want at least 1", e.RetryAfter)
	}
	if len(ops) != 0 {
		t.Errorf("the shed login made store calls %v, want none", ops)
	}
	if got := ff.lastOutcome(); got != audit.Busy {
		t.Errorf("audited as %q, want %q", got, audit.Busy)
	}
}

func TestPasswordGrant_a_login_the_full_queue_sheds_makes_no_store_call(t *testing.T) {
	ff := newFloodFixture(t, 1, time.Hour, DefaultThrottle())
	release := ff.hold(t, true)
	ops, err := ff.try(t, "correct horse", "192.0.2.1")
	ff.wantShed(t, err, ops)
	if st := ff.svc.HashStats(); st.Rejected != 1 || st.TimedOut != 0 {
		t.Errorf("got %+v, want one refusal from the full queue", st)
	}
	release()
	// With room again the same login goes through, at its two store calls.
	ops, err = ff.try(t, "correct horse", "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{storetest.OpReserveLogin, storetest.OpCreateSession}; !slices.Equal(ops, want) {
		t.Errorf("store calls %v, want %v", ops, want)
	}
}

func TestPasswordGrant_a_login_that_waits_past_the_bound_makes_no_store_call(t *testing.T) {
	// The slot stays held throughout, so the login can only time out.
	ff := newFloodFixture(t, 8, time.Millisecond, DefaultThrottle())
	release := ff.hold(t, false)
	defer release()
	ops, err := ff.try(t, "correct horse", "192.0.2.1")
	ff.wantShed(t, err, ops)
	if st := ff.svc.HashStats(); st.TimedOut != 1 || st.Waiting != 0 {
		t.Errorf("got %+v, want one refusal after the wait and nothing waiting", st)
	}
}

// TestPasswordGrant_a_refused_reservation_releases_the_slot_at_once: a
// login the throttle refuses, or whose reservation the store could not
// take, hashed nothing, so its slot is free again at once even while
// other requests are in flight.
func TestPasswordGrant_a_refused_reservation_releases_the_slot_at_once(t *testing.T) {
	ceiling := DefaultThrottle()
	ceiling.UserFailures = 1
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, ff *floodFixture)
		status  int
		outcome string
	}{
		{"asvs_6.3.1_username_ceiling", func(t *testing.T, ff *floodFixture) {
			if _, err := ff.try(t, "wrong horse", "198.51.100.1"); err == nil {
				t.Fatal("a wrong password was accepted")
			}
		}, 429, audit.Throttled},
		{"store_fault", func(t *testing.T, ff *floodFixture) {
			ff.faulty.FailNext(storetest.OpReserveLogin, storage.ErrUnavailable)
		}, 503, audit.Unavailable},
		// A read-only or full SQLite file: 503 and audited as what it is,
		// never as throttling.
		{"read_only_store", func(t *testing.T, ff *floodFixture) {
			ff.faulty.FailNext(storetest.OpReserveLogin, storage.ErrReadOnly)
		}, 503, audit.Unavailable},
		{"full_store", func(t *testing.T, ff *floodFixture) {
			ff.faulty.FailNext(storetest.OpReserveLogin, storage.ErrFull)
		}, 503, audit.Unavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A wait of a nanosecond: the Admit below succeeds only if
			// the slot is free when it asks.
			ff := newFloodFixture(t, 8, time.Nanosecond, ceiling)
			tc.setup(t, ff)
			ff.contended.Store(true)
			ops, err := ff.try(t, "correct horse", "192.0.2.1")
			wantOAuthError(t, err, CodeTemporarilyUnavailable, tc.status)
			if want := []string{storetest.OpReserveLogin}; !slices.Equal(ops, want) {
				t.Errorf("store calls %v, want %v", ops, want)
			}
			if got := ff.lastOutcome(); got != tc.outcome {
				t.Errorf("audited as %q, want %q", got, tc.outcome)
			}
			if st := ff.svc.HashStats(); st.Running != 0 || st.Resting != 0 {
				t.Errorf("got %+v, want the slot given back", st)
			}
			sl, err := ff.svc.Admit(context.Background())
			if err != nil {
				t.Fatalf("the next caller: %v, want the slot free", err)
			}
			sl.Release()
		})
	}
}

// TestPasswordGrant_a_blocked_pair_is_refused_before_it_queues: a pair
// the throttle remembers as blocked is answered 429, not 503, even with
// the hashing queue full, and costs no store call.
func TestPasswordGrant_a_blocked_pair_is_refused_before_it_queues(t *testing.T) {
	cfg := DefaultThrottle()
	ff := newFloodFixture(t, 1, time.Hour, cfg)
	for range cfg.FreeFailures + 1 {
		ff.try(t, "wrong horse", "192.0.2.1")
	}
	// The first refusal of the block reads it from the store; from then
	// on the throttle remembers it.
	if _, err := ff.try(t, "correct horse", "192.0.2.1"); err == nil {
		t.Fatal("the blocked pair was let through")
	}
	release := ff.hold(t, true)
	defer release()
	ops, err := ff.try(t, "correct horse", "192.0.2.1")
	e := wantOAuthError(t, err, CodeTemporarilyUnavailable, 429)
	if e.RetryAfter < 1 || len(ops) != 0 {
		t.Errorf("Retry-After %d and store calls %v, want at least 1 and none", e.RetryAfter, ops)
	}
	if got := ff.lastOutcome(); got != audit.Throttled {
		t.Errorf("audited as %q, want %q", got, audit.Throttled)
	}
}

// TestPasswordGrant_gives_its_slot_back_before_the_session_write: the
// slot covers the reservation and the hash only; the session write (and
// the answer) never wait for it.
func TestPasswordGrant_gives_its_slot_back_before_the_session_write(t *testing.T) {
	ff := newFloodFixture(t, 8, time.Hour, DefaultThrottle())
	var st users.HashStats
	ff.issuer.testHookBeforeStore = func(context.Context) { st = ff.svc.HashStats() }
	if _, err := ff.try(t, "correct horse", "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if st.Running != 0 || st.Resting != 0 || st.Peak != 1 {
		t.Errorf("at the session write: got %+v, want the slot given back after one use", st)
	}
}
