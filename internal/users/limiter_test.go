package users

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestHashLimiter asserts the bounds through the limiter's counters, with
// holders that release only when told: no timing is involved.
func TestHashLimiter(t *testing.T) {
	const slots, queue = 2, 3
	l := newHashLimiter(slots, queue, time.Hour, nil)
	ctx := context.Background()

	for range slots {
		if err := l.acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The next callers queue; wait until all of them do.
	var wg sync.WaitGroup
	got := make(chan struct{}, queue)
	for range queue {
		wg.Go(func() {
			if err := l.acquire(ctx); err != nil {
				t.Error(err)
				return
			}
			got <- struct{}{}
		})
	}
	for l.stats().Waiting != queue {
		runtime.Gosched() // until the goroutines are parked in the queue
	}
	if err := l.acquire(ctx); !errors.Is(err, ErrBusy) {
		t.Fatalf("with %d running and %d queued: got %v, want ErrBusy", slots, queue, err)
	}
	st := l.stats()
	if st.Running != slots || st.Waiting != queue || st.Rejected != 1 {
		t.Fatalf("got %+v, want %d running, %d waiting, 1 rejected", st, slots, queue)
	}
	// Release the holders: every queued caller gets a slot, never more
	// than `slots` at once.
	for range slots {
		l.release(0)
	}
	for range queue {
		<-got
		l.release(0)
	}
	wg.Wait()
	if st := l.stats(); st.Peak != slots || st.Running != 0 || st.Waiting != 0 {
		t.Fatalf("got %+v, want peak %d and nothing left running", st, slots)
	}
}

func TestHashLimiterQueuedCallerGivesUpWithItsContext(t *testing.T) {
	l := newHashLimiter(1, 1, time.Hour, nil)
	if err := l.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer l.release(0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.acquire(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if st := l.stats(); st.Waiting != 0 {
		t.Fatalf("a cancelled caller stayed in the queue: %+v", st)
	}
}

// TestLoginFloodIsBounded runs many concurrent logins through the Service:
// hashing never exceeds its slots, and the calls that find the queue full
// fail with ErrBusy instead of waiting.
func TestLoginFloodIsBounded(t *testing.T) {
	store := openTestStore(t)
	s, err := NewService(store, Options{Hasher: Hasher{Memory: 1024, Iterations: 2, Parallelism: 1}, HashConcurrency: 2, HashQueue: 4})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(context.Background(), CLIActor(), NewUser{Username: "alice", Password: "correct horse"}); err != nil {
		t.Fatal(err)
	}
	const n = 200
	var (
		wg             sync.WaitGroup
		mu             sync.Mutex
		busy, answered int
	)
	for i := range n {
		wg.Go(func() {
			pw := "wrong horse"
			if i%2 == 0 {
				pw = "correct horse"
			}
			_, err := s.Authenticate(context.Background(), "alice", pw)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, ErrBusy):
				busy++
			case err == nil, errors.Is(err, ErrInvalidCredentials):
				answered++
			default:
				t.Errorf("unexpected error %v", err)
			}
		})
	}
	wg.Wait()
	st := s.HashStats()
	if st.Peak > 2 {
		t.Errorf("peak concurrent hashing %d, want at most 2", st.Peak)
	}
	if busy+answered != n || busy != st.Rejected {
		t.Errorf("got %d busy + %d answered (stats %+v), want %d in all and busy == rejected", busy, answered, st, n)
	}
	if answered < 2 {
		t.Errorf("only %d logins were answered", answered)
	}
}
