package auth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/users"
)

func (f *fixture) withThrottle(cfg ThrottleConfig) {
	cfg.Now = func() time.Time { return f.now }
	f.issuer.Throttle = NewThrottle(f.store, cfg)
}

// attempt is one password grant from addr; it returns the error code, ""
// for success.
func (f *fixture) attempt(t *testing.T, username, password, addr string) (code string, retryAfter int) {
	t.Helper()
	_, err := f.issuer.Token(context.Background(), TokenRequest{GrantType: GrantPassword, Username: username, Password: password, ClientAddr: addr})
	if err == nil {
		return "", 0
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v, want an *Error", err)
	}
	if e.Code == CodeTemporarilyUnavailable && e.Status != 429 {
		t.Fatalf("throttled with status %d, want 429", e.Status)
	}
	return e.Code, e.RetryAfter
}

func TestThrottle(t *testing.T) {
	cfg := DefaultThrottle()

	t.Run("rfc6749_4.3.2_failures_beyond_the_free_ones_wait_growing_delays", func(t *testing.T) {
		f := newFixture(t, AlgRS256, nil)
		f.createUser(t, "alice", "correct horse", "me")
		f.withThrottle(cfg)
		for i := range cfg.FreeFailures + 1 {
			if code, _ := f.attempt(t, "alice", "wrong", "192.0.2.1"); code != CodeInvalidGrant {
				t.Fatalf("attempt %d: got %s, want invalid_grant", i+1, code)
			}
		}
		for _, wait := range []int{1, 2, 4, 8} {
			code, retry := f.attempt(t, "alice", "correct horse", "192.0.2.1")
			if code != CodeTemporarilyUnavailable || retry != wait {
				t.Fatalf("got %s retry %d, want 429 with Retry-After %d", code, retry, wait)
			}
			f.now = f.now.Add(time.Duration(wait) * time.Second)
			if code, _ := f.attempt(t, "alice", "wrong", "192.0.2.1"); code != CodeInvalidGrant {
				t.Fatalf("after waiting %ds: got %s, want the password checked", wait, code)
			}
		}
		// Another address is not delayed by this one's failures.
		if code, _ := f.attempt(t, "alice", "correct horse", "192.0.2.2"); code != "" {
			t.Fatalf("another address: got %s", code)
		}
	})

	t.Run("delay_is_capped", func(t *testing.T) {
		f := newFixture(t, AlgRS256, nil)
		f.withThrottle(cfg)
		for range 30 {
			f.attempt(t, "bob", "wrong", "192.0.2.1")
			f.now = f.now.Add(cfg.MaxDelay)
		}
		if _, retry := f.attempt(t, "bob", "wrong", "192.0.2.1"); retry != 0 {
			// Advanced by MaxDelay each time: the attempt must be allowed.
			t.Fatalf("got Retry-After %d after waiting the cap", retry)
		}
		if _, retry := f.attempt(t, "bob", "wrong", "192.0.2.1"); retry != int(cfg.MaxDelay/time.Second) {
			t.Fatalf("got Retry-After %d, want the cap %d", retry, int(cfg.MaxDelay/time.Second))
		}
	})

	t.Run("n_parallel_wrong_guesses_cost_n_attempts", func(t *testing.T) {
		f := newFixture(t, AlgRS256, nil)
		f.createUser(t, "carol", "correct horse", "me")
		f.withThrottle(cfg)
		const n = 24
		var (
			wg              sync.WaitGroup
			mu              sync.Mutex
			checked, denied int
		)
		for range n {
			wg.Go(func() {
				code, _ := f.attempt(t, "carol", "wrong", "192.0.2.9")
				mu.Lock()
				defer mu.Unlock()
				switch code {
				case CodeInvalidGrant:
					checked++
				case CodeTemporarilyUnavailable:
					denied++
				default:
					t.Errorf("got %s", code)
				}
			})
		}
		wg.Wait()
		// Exactly the free failures plus the one that starts the delay
		// reach the password check, however the requests interleave.
		if checked != cfg.FreeFailures+1 || denied != n-checked {
			t.Fatalf("got %d checked and %d throttled of %d parallel guesses, want %d checked", checked, denied, n, cfg.FreeFailures+1)
		}
	})

	t.Run("unknown_and_existing_usernames_are_throttled_alike", func(t *testing.T) {
		f := newFixture(t, AlgRS256, nil)
		f.createUser(t, "dave", "correct horse", "me")
		f.withThrottle(cfg)
		var seq [2][]string
		for i, name := range []string{"dave", "nobody"} {
			for range cfg.FreeFailures + 3 {
				code, retry := f.attempt(t, name, "wrong", "192.0.2.1")
				seq[i] = append(seq[i], fmt.Sprintf("%s/%d", code, retry))
			}
		}
		if fmt.Sprint(seq[0]) != fmt.Sprint(seq[1]) {
			t.Fatalf("existing user: %v\nunknown user:  %v\nwant the same", seq[0], seq[1])
		}
	})

	t.Run("success_clears_the_pair", func(t *testing.T) {
		f := newFixture(t, AlgRS256, nil)
		f.createUser(t, "erin", "correct horse", "me")
		f.withThrottle(cfg)
		for range 2 {
			for range cfg.FreeFailures - 1 {
				if code, _ := f.attempt(t, "erin", "wrong", "192.0.2.1"); code != CodeInvalidGrant {
					t.Fatalf("got %s", code)
				}
			}
			if code, _ := f.attempt(t, "erin", "correct horse", "192.0.2.1"); code != "" {
				t.Fatalf("the right password: got %s", code)
			}
		}
	})

	t.Run("asvs_6.3.1_ceiling_per_username_spares_known_addresses", func(t *testing.T) {
		f := newFixture(t, AlgRS256, nil)
		f.createUser(t, "frank", "correct horse", "me")
		small := cfg
		small.UserFailures = 10
		f.withThrottle(small)
		if code, _ := f.attempt(t, "frank", "correct horse", "198.51.100.1"); code != "" {
			t.Fatal(code)
		}
		// A distributed guesser: two failures from each of many addresses.
		for i := range small.UserFailures / 2 {
			for range 2 {
				f.attempt(t, "frank", "wrong", fmt.Sprintf("203.0.113.%d", i))
			}
		}
		if code, retry := f.attempt(t, "frank", "wrong", "203.0.113.200"); code != CodeTemporarilyUnavailable || retry != int(small.UserWindow/time.Second) {
			t.Fatalf("a new address past the ceiling: got %s retry %d, want 429 until the window ends", code, retry)
		}
		// The real user, from where they logged in before, is not locked out.
		if code, _ := f.attempt(t, "frank", "correct horse", "198.51.100.1"); code != "" {
			t.Fatalf("known address: got %s, want success", code)
		}
		// And the ceiling lifts when the window ends.
		f.now = f.now.Add(small.UserWindow)
		if code, _ := f.attempt(t, "frank", "correct horse", "203.0.113.201"); code != "" {
			t.Fatalf("after the window: got %s", code)
		}
	})
}

// countingAttempts counts store updates.
type countingAttempts struct {
	AttemptStore
	mu sync.Mutex
	n  int
}

func (c *countingAttempts) UpdateLoginAttempts(ctx context.Context, keys []string, fn func([]users.LoginAttempts) error) error {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.AttemptStore.UpdateLoginAttempts(ctx, keys, fn)
}

func TestThrottleRemembersBlocksWithoutStoreWrites(t *testing.T) {
	f := newFixture(t, AlgRS256, nil)
	counting := &countingAttempts{AttemptStore: f.store}
	cfg := DefaultThrottle()
	cfg.Now = func() time.Time { return f.now }
	th := NewThrottle(counting, cfg)
	ctx := context.Background()
	for range cfg.FreeFailures + 1 {
		if err := th.Reserve(ctx, "gina", "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := th.Reserve(ctx, "gina", "192.0.2.1"); err == nil {
		t.Fatal("the blocked pair was let through")
	}
	before := counting.n
	for range 50 {
		if err := th.Reserve(ctx, "gina", "192.0.2.1"); err == nil {
			t.Fatal("the blocked pair was let through")
		}
	}
	if counting.n != before {
		t.Errorf("%d store updates for refusals of a remembered block, want 0", counting.n-before)
	}
	f.now = f.now.Add(cfg.BaseDelay)
	if err := th.Reserve(ctx, "gina", "192.0.2.1"); err != nil {
		t.Fatalf("after the delay: %v", err)
	}
}
