package users

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// The tests of the queue's wait and the slot's rest run in a synctest
// bubble: its clock moves only when every goroutine in it is blocked, so
// a hash is stood in for by a sleep of known length and every duration
// below is exact, whatever the machine's load.

// noStore is a Store whose every call panics: the tests using it prove
// their path makes none.
type noStore struct{ Store }

// newLimitedService is a Service over store with one hashing slot, a
// queue of queue, a wait of wait, and Contended reporting *contended.
func newLimitedService(t *testing.T, store Store, queue int, wait time.Duration, contended *atomic.Bool) *Service {
	t.Helper()
	s, err := NewService(store, Options{
		Hasher:          testHasher,
		HashConcurrency: 1,
		HashQueue:       queue,
		HashWait:        wait,
		Contended:       contended.Load,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAdmit_a_full_queue_sheds_at_once(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var contended atomic.Bool
		s := newLimitedService(t, noStore{}, 1, time.Second, &contended)
		ctx := context.Background()
		held, err := s.Admit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		queued := make(chan error, 1)
		go func() {
			sl, err := s.Admit(ctx)
			if err == nil {
				sl.Release()
			}
			queued <- err
		}()
		synctest.Wait() // the second caller is parked in the queue
		start := time.Now()
		if _, err := s.Admit(ctx); !errors.Is(err, ErrBusy) {
			t.Fatalf("with the slot held and the queue full: got %v, want ErrBusy", err)
		}
		if waited := time.Since(start); waited != 0 {
			t.Errorf("the refusal waited %v, want none", waited)
		}
		held.Release()
		if err := <-queued; err != nil {
			t.Errorf("the queued caller: got %v, want a slot once the holder released it", err)
		}
		if st := s.HashStats(); st.Rejected != 1 || st.TimedOut != 0 || st.Waiting != 0 || st.Running != 0 {
			t.Errorf("got %+v, want 1 rejected, none timed out, nothing left", st)
		}
	})
}

func TestAdmit_a_wait_past_the_bound_sheds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const wait = 750 * time.Millisecond
		var contended atomic.Bool
		s := newLimitedService(t, noStore{}, 8, wait, &contended)
		ctx := context.Background()
		held, err := s.Admit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer held.Release()
		start := time.Now()
		if _, err := s.Admit(ctx); !errors.Is(err, ErrBusy) {
			t.Fatalf("with the slot held throughout: got %v, want ErrBusy", err)
		}
		if waited := time.Since(start); waited != wait {
			t.Errorf("refused after %v, want after the wait bound %v", waited, wait)
		}
		if st := s.HashStats(); st.Rejected != 1 || st.TimedOut != 1 || st.Waiting != 0 {
			t.Errorf("got %+v, want 1 rejected after timing out and nothing waiting", st)
		}
	})
}

func TestAdmit_a_slot_freed_within_the_bound_is_taken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var contended atomic.Bool
		s := newLimitedService(t, noStore{}, 8, time.Second, &contended)
		ctx := context.Background()
		held, err := s.Admit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		time.AfterFunc(999*time.Millisecond, held.Release)
		start := time.Now()
		sl, err := s.Admit(ctx)
		if err != nil {
			t.Fatalf("a slot freed after 999ms of a 1s wait: got %v", err)
		}
		sl.Release()
		if waited := time.Since(start); waited != 999*time.Millisecond {
			t.Errorf("admitted after %v, want 999ms", waited)
		}
	})
}

// TestSlot_rests_while_contended: a slot given back while other requests
// are in flight stays taken for contendedRest times as long as it hashed,
// and the holder is
// not kept waiting for that; with none in flight it is free at once.
func TestSlot_rests_while_contended(t *testing.T) {
	const hashed = 40 * time.Millisecond
	for _, tc := range []struct {
		name      string
		contended bool
		rest      time.Duration
		resting   int
	}{
		{"contended", true, contendedRest * hashed, 1},
		{"not_contended", false, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var contended atomic.Bool
				contended.Store(tc.contended)
				s := newLimitedService(t, noStore{}, 8, time.Hour, &contended)
				ctx := context.Background()
				sl, err := s.Admit(ctx)
				if err != nil {
					t.Fatal(err)
				}
				sl.run(func() { time.Sleep(hashed / 2) })
				sl.run(func() { time.Sleep(hashed / 2) }) // a rehash adds to the rest
				start := time.Now()
				sl.Release()
				if d := time.Since(start); d != 0 {
					t.Errorf("Release kept the holder %v, want 0", d)
				}
				st := s.HashStats()
				if st.Running != 0 || st.Resting != tc.resting {
					t.Errorf("right after Release: got %+v, want nothing running and %d resting", st, tc.resting)
				}
				sl.Release() // a second Release gives back nothing more
				next, err := s.Admit(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if waited := time.Since(start); waited != tc.rest {
					t.Errorf("the next caller got the slot after %v, want %v", waited, tc.rest)
				}
				next.Release()
				if st := s.HashStats(); st.Resting != 0 || st.Running != 0 || st.Peak != 1 {
					t.Errorf("at the end: got %+v, want nothing held and a peak of 1", st)
				}
			})
		})
	}
}

// TestSlot_released_without_hashing_does_not_rest: a login refused
// before its hash (the throttle said no) gives its slot back at once,
// contended or not.
func TestSlot_released_without_hashing_does_not_rest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var contended atomic.Bool
		contended.Store(true)
		s := newLimitedService(t, noStore{}, 8, time.Hour, &contended)
		sl, err := s.Admit(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		sl.Release()
		if st := s.HashStats(); st.Resting != 0 || st.Running != 0 || s.limiter.saturated() {
			t.Errorf("got %+v, want the slot free at once", st)
		}
	})
}

// TestSlot_Verify_hashes_in_its_slot: an unknown username still burns
// the dummy hash, and a rehash on login runs in the login's own slot, so
// with a single slot it neither waits for itself nor fails.
func TestSlot_Verify_hashes_in_its_slot(t *testing.T) {
	store := openTestStore(t)
	var hashes atomic.Int64
	s, err := NewService(store, Options{
		Hasher:          testHasher,
		HashConcurrency: 1,
		HashQueue:       1,
		HashWait:        time.Nanosecond, // a second slot would never come
		ObserveHash:     func(wait, run time.Duration) { hashes.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	old := Hasher{Memory: 32, Iterations: 1, Parallelism: 1}
	u := &User{ID: "u1", Username: "alice", PasswordHash: mustHash(t, old, "correct horse"), Scopes: []string{}, CreatedAt: testNow, UpdatedAt: testNow}
	if err := store.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}

	sl, err := s.Admit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sl.Verify(ctx, nil, "correct horse"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("unknown user: got %v, want ErrInvalidCredentials", err)
	}
	if got := hashes.Load(); got != 1 {
		t.Fatalf("unknown user: %d hashes, want the dummy one", got)
	}
	sl.Release()

	sl, err = s.Admit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := sl.Verify(ctx, u, "correct horse")
	sl.Release()
	if err != nil {
		t.Fatalf("right password with an outdated hash: %v", err)
	}
	if got.PasswordHash == u.PasswordHash {
		t.Error("the outdated hash was not upgraded in the login's slot")
	}
	if n := hashes.Load(); n != 3 {
		t.Errorf("%d hashes in all, want 3 (dummy, check, rehash)", n)
	}
	if st := s.HashStats(); st.Rejected != 0 || st.Running != 0 {
		t.Errorf("got %+v, want nothing refused and nothing held", st)
	}
}
