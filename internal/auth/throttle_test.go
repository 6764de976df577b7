package auth

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
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

	t.Run("invalid_usernames_from_one_address_are_throttled_like_one_pair", func(t *testing.T) {
		f := newFixture(t, AlgRS256, nil)
		f.withThrottle(cfg)
		names := map[string]func(i int) string{
			"unknown":        func(int) string { return "nobody" },
			"junk":           func(i int) string { return fmt.Sprintf("junk name %d %s", i, strings.Repeat("\u212A", i*100)) },
			"kelvin_sign":    func(int) string { return "\u212Aate" },
			"sixty_kb_names": func(i int) string { return fmt.Sprintf("%d%s", i, strings.Repeat("x", 60<<10)) },
		}
		seq := map[string][]string{}
		for kind, name := range names {
			addr := "192.0.2." + fmt.Sprint(len(seq)+1)
			for i := range cfg.FreeFailures + 3 {
				code, retry := f.attempt(t, name(i), "wrong", addr)
				seq[kind] = append(seq[kind], fmt.Sprintf("%s/%d", code, retry))
			}
		}
		for kind := range names {
			if got, want := fmt.Sprint(seq[kind]), fmt.Sprint(seq["unknown"]); got != want {
				t.Errorf("%s: got %v, want the unknown username's %v", kind, got, want)
			}
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

func (c *countingAttempts) UpdateLoginAttempts(ctx context.Context, up storage.AttemptUpdate) error {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.AttemptStore.UpdateLoginAttempts(ctx, up)
}

func (c *countingAttempts) ReserveLogin(ctx context.Context, up storage.AttemptUpdate, username string) (*storage.User, error) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.AttemptStore.ReserveLogin(ctx, up, username)
}

func TestThrottleRemembersBlocksWithoutStoreWrites(t *testing.T) {
	for _, tc := range []struct {
		name     string
		username func(i int) string
	}{
		{"valid_username", func(int) string { return "gina" }},
		{"invalid_usernames_from_one_address", func(i int) string { return fmt.Sprintf("gina@%d", i) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, AlgRS256, nil)
			counting := &countingAttempts{AttemptStore: f.store}
			cfg := DefaultThrottle()
			cfg.Now = func() time.Time { return f.now }
			th := NewThrottle(counting, cfg)
			ctx := context.Background()
			i := 0
			reserve := func() error { i++; _, err := th.Reserve(ctx, tc.username(i), "192.0.2.1"); return err }
			for range cfg.FreeFailures + 1 {
				if err := reserve(); err != nil {
					t.Fatal(err)
				}
			}
			if err := reserve(); err == nil {
				t.Fatal("the blocked pair was let through")
			}
			before := counting.n
			for range 50 {
				if err := reserve(); err == nil {
					t.Fatal("the blocked pair was let through")
				}
			}
			if counting.n != before {
				t.Errorf("%d store updates for refusals of a remembered block, want 0", counting.n-before)
			}
			f.now = f.now.Add(cfg.BaseDelay)
			if err := reserve(); err != nil {
				t.Fatalf("after the delay: %v", err)
			}
		})
	}
}

// recordingAttempts records the keys of every store update, and the keys
// an update left holding state (the rows the store keeps).
type recordingAttempts struct {
	AttemptStore
	mu      sync.Mutex
	calls   [][]string
	written map[string]bool
}

func (r *recordingAttempts) record(up storage.AttemptUpdate) storage.AttemptUpdate {
	r.mu.Lock()
	r.calls = append(r.calls, slices.Clone(up.Keys))
	r.mu.Unlock()
	return storage.AttemptUpdate{Keys: up.Keys, Fn: func(st []storage.LoginAttempts) error {
		if err := up.Fn(st); err != nil {
			return err
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, a := range st {
			if a != (storage.LoginAttempts{Key: a.Key}) {
				r.written[a.Key] = true
			}
		}
		return nil
	}}
}

func (r *recordingAttempts) UpdateLoginAttempts(ctx context.Context, up storage.AttemptUpdate) error {
	return r.AttemptStore.UpdateLoginAttempts(ctx, r.record(up))
}

func (r *recordingAttempts) ReserveLogin(ctx context.Context, up storage.AttemptUpdate, username string) (*storage.User, error) {
	return r.AttemptStore.ReserveLogin(ctx, r.record(up), username)
}

// newRecordingThrottle is a throttle over a fresh SQLite store, recording
// what it asks of the store, with the clock at *now.
func newRecordingThrottle(t *testing.T, now *time.Time) (*Throttle, *recordingAttempts) {
	t.Helper()
	store := openTestStore(t)
	rec := &recordingAttempts{AttemptStore: store, written: map[string]bool{}}
	cfg := DefaultThrottle()
	cfg.Now = func() time.Time { return *now }
	return NewThrottle(rec, cfg), rec
}

// keyShape is a throttle key: a kind and 32 hex digits of a digest.
var keyShape = regexp.MustCompile(`^(pair|user|known):[0-9a-f]{32}$`)

func TestThrottle_keys_have_bounded_size(t *testing.T) {
	junk := strings.Repeat("x", 60<<10)
	for _, tc := range []struct{ name, username, addr string }{
		{"valid_username", "alice", "192.0.2.1"},
		{"longest_valid_username", strings.Repeat("a", 64), "2001:db8::1"},
		{"sixty_kb_username", junk, "192.0.2.1"},
		{"sixty_kb_of_non_ascii", strings.Repeat("\u212A", 20<<10), "192.0.2.1"},
		{"sixty_kb_address", "alice", junk},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Now()
			th, rec := newRecordingThrottle(t, &now)
			ctx := context.Background()
			if _, err := th.Reserve(ctx, tc.username, tc.addr); err != nil {
				t.Fatal(err)
			}
			if err := th.Succeeded(ctx, tc.username, tc.addr); err != nil {
				t.Fatal(err)
			}
			if err := th.Cancel(ctx, tc.username, tc.addr); err != nil {
				t.Fatal(err)
			}
			for _, keys := range rec.calls {
				for _, k := range keys {
					if got, want := len(k), len("known:")+32; got > want || !keyShape.MatchString(k) {
						t.Errorf("key %.80q: got %d bytes, want a kind and 32 hex digits (at most %d bytes)", k, got, want)
					}
				}
			}
		})
	}
}

func TestThrottle_invalid_username_counts_per_address_only(t *testing.T) {
	now := time.Now()
	th, rec := newRecordingThrottle(t, &now)
	ctx := context.Background()
	cfg := DefaultThrottle()
	// A different junk name every time, from one address: no two share
	// a name, yet they share the address's one counter.
	junk := func(i int) string { return fmt.Sprintf("junk@%d-%s", i, strings.Repeat("z", i*1000)) }
	for i := range cfg.FreeFailures + 1 {
		if _, err := th.Reserve(ctx, junk(i), "192.0.2.1"); err != nil {
			t.Fatalf("junk name %d: %v", i, err)
		}
	}
	var e *Error
	if _, err := th.Reserve(ctx, junk(99), "192.0.2.1"); !errors.As(err, &e) || e.RetryAfter != int(cfg.BaseDelay/time.Second) {
		t.Fatalf("a new junk name past the free failures: got %v, want 429 with Retry-After %d", err, int(cfg.BaseDelay/time.Second))
	}

	var got []string
	for _, keys := range rec.calls {
		got = append(got, keys...)
	}
	want := []string{throttleKey(pairPrefix, invalidUsername, "192.0.2.1")}
	if got := slices.Compact(got); !slices.Equal(got, want) {
		t.Errorf("junk names were keyed %q, want only the address's pair %q", got, want)
	}
	if got := slices.Sorted(maps.Keys(rec.written)); !slices.Equal(got, want) {
		t.Errorf("rows written: got %q, want %q", got, want)
	}

	// The address's valid usernames, and junk from other addresses, are
	// not slowed by it.
	if _, err := th.Reserve(ctx, "alice", "192.0.2.1"); err != nil {
		t.Errorf("a valid username from the same address: %v", err)
	}
	if _, err := th.Reserve(ctx, junk(99), "192.0.2.2"); err != nil {
		t.Errorf("a junk name from another address: %v", err)
	}
	// And the delay ends like a pair's.
	now = now.Add(cfg.BaseDelay)
	if _, err := th.Reserve(ctx, junk(100), "192.0.2.1"); err != nil {
		t.Errorf("after the delay: %v", err)
	}
}

func TestThrottle_invalid_username_costs_the_same_store_calls_as_a_valid_one(t *testing.T) {
	for _, username := range []string{"alice", "nobody", "al\u0131ce", strings.Repeat("x", 60<<10), "ali ce"} {
		t.Run(fmt.Sprintf("%.10q", username), func(t *testing.T) {
			now := time.Now()
			th, rec := newRecordingThrottle(t, &now)
			ctx := context.Background()
			var got []int
			for _, step := range []func() error{
				func() error { _, err := th.Reserve(ctx, username, "192.0.2.1"); return err },
				func() error { return th.Cancel(ctx, username, "192.0.2.1") },
				func() error { _, err := th.Reserve(ctx, username, "192.0.2.1"); return err },
				func() error { return th.Succeeded(ctx, username, "192.0.2.1") },
			} {
				before := len(rec.calls)
				if err := step(); err != nil {
					t.Fatal(err)
				}
				got = append(got, len(rec.calls)-before)
			}
			if want := []int{1, 1, 1, 1}; !slices.Equal(got, want) {
				t.Errorf("store updates for Reserve, Cancel, Reserve, Succeeded: got %v, want %v", got, want)
			}
		})
	}
}

func TestThrottle_keys_are_of_the_canonical_username(t *testing.T) {
	keysOf := func(username, addr string) string {
		keys, _ := throttleKeys(username, addr)
		return strings.Join(keys, " ")
	}
	alice := keysOf("alice", "192.0.2.1")
	invalid := keysOf("!", "192.0.2.1")
	for _, tc := range []struct{ name, username, want string }{
		{"ascii_case_folds", "Alice", alice},
		{"all_capitals_fold", "ALICE", alice},
		{"dotless_i_is_invalid", "al\u0131ce", invalid},
		{"dotted_capital_i_is_invalid", "AL\u0130CE", invalid},
		{"kelvin_sign_is_invalid", "\u212Aate", invalid},
		{"long_s_is_invalid", "\u017Fam", invalid},
		{"nul_is_invalid", "alice\x00", invalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := keysOf(tc.username, "192.0.2.1"); got != tc.want {
				t.Errorf("keys of %q: got %s, want %s", tc.username, got, tc.want)
			}
		})
	}
	if got, wrong := keysOf("\u212Aate", "192.0.2.1"), keysOf("kate", "192.0.2.1"); got == wrong {
		t.Errorf("the Kelvin sign shares the keys of kate: %s", got)
	}
}

func TestThrottle_keys_of_different_attempts_differ(t *testing.T) {
	seen := map[string]string{}
	for _, a := range []struct{ username, addr string }{
		{"alice", "192.0.2.1"},
		{"alice", "192.0.2.10"},
		{"alice1", "92.0.2.1"},
		{"alice.1", "92.0.2.1"},
		{"bob", "192.0.2.1"},
		{"bob", ""},
		{"bob", "\x00"},
		{"!", "192.0.2.1"},
		{"!", "192.0.2.2"},
	} {
		keys, _ := throttleKeys(a.username, a.addr)
		for _, k := range keys {
			id := fmt.Sprintf("%q from %q", a.username, a.addr)
			if prev, ok := seen[k]; ok && !strings.HasPrefix(k, userPrefix) {
				t.Errorf("%s and %s share the key %s", prev, id, k)
			}
			seen[k] = id
		}
	}
	// A username's key does not depend on the address.
	a, _ := throttleKeys("alice", "192.0.2.1")
	b, _ := throttleKeys("alice", "192.0.2.2")
	if a[1] != b[1] || a[0] == b[0] || a[2] == b[2] {
		t.Errorf("got %q and %q, want only the user key shared", a, b)
	}
}

func TestThrottle_success_reported_for_an_invalid_username_keeps_the_address_count(t *testing.T) {
	now := time.Now()
	th, _ := newRecordingThrottle(t, &now)
	ctx := context.Background()
	cfg := DefaultThrottle()
	for i := range cfg.FreeFailures {
		if _, err := th.Reserve(ctx, fmt.Sprintf("junk %d", i), "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
	}
	// One more reserved and reported right: only it is taken back.
	if _, err := th.Reserve(ctx, "junk !", "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(cfg.BaseDelay)
	if err := th.Succeeded(ctx, "junk !", "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	// FreeFailures still counted: the next junk name is the one past them.
	if _, err := th.Reserve(ctx, "junk ?", "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if _, err := th.Reserve(ctx, "junk ?", "192.0.2.1"); err == nil {
		t.Error("the address's junk count was cleared by a success of a name that cannot exist")
	}
}

// A pair's count is forgotten after ForgetAfter without a failure: the
// right password is not the only way out, which an address's junk
// usernames (no password is right for them) would otherwise need. Short
// of it, the count and its delays stand.
func TestThrottle_a_pair_is_forgotten_after_a_quiet_day(t *testing.T) {
	for _, name := range []string{"alice", "junk name"} {
		t.Run(name, func(t *testing.T) {
			now := time.Now()
			th, _ := newRecordingThrottle(t, &now)
			ctx := context.Background()
			cfg := DefaultThrottle()
			fail := func() error { _, err := th.Reserve(ctx, name, "192.0.2.1"); return err }
			for i := range cfg.FreeFailures + 3 {
				if err := fail(); err != nil {
					t.Fatalf("attempt %d: %v", i, err)
				}
				now = now.Add(cfg.BaseDelay << i) // past each delay
			}
			// Still within a day of the last failure: the next one is
			// delayed as the count says.
			now = now.Add(cfg.ForgetAfter / 2)
			if err := fail(); err != nil {
				t.Fatalf("after half a day: %v", err)
			}
			var e *Error
			if err := fail(); !errors.As(err, &e) {
				t.Fatalf("right after a failure past the free ones: %v, want 429", err)
			}
			// A quiet day later the count starts again: the free failures
			// are free again.
			now = now.Add(cfg.ForgetAfter + cfg.MaxDelay)
			for i := range cfg.FreeFailures {
				if err := fail(); err != nil {
					t.Errorf("after a quiet day, free failure %d: %v", i, err)
				}
			}
			if err := fail(); err != nil {
				t.Errorf("after a quiet day, the %dth failure: %v, want the first delayed one to be counted", cfg.FreeFailures+1, err)
			}
			if err := fail(); !errors.As(err, &e) || e.RetryAfter != int(cfg.BaseDelay/time.Second) {
				t.Errorf("after a quiet day, past the free failures: %v, want 429 with Retry-After %d", err, int(cfg.BaseDelay/time.Second))
			}
		})
	}
}
