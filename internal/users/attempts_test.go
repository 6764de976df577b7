package users

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// runLoginAttemptTests is the AttemptStore part of the conformance suite.
func runLoginAttemptTests(t *testing.T, newStore func(t *testing.T) Store) {
	t.Run("login_attempts_round_trip_in_utc", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		zone := time.FixedZone("UTC+5", 5*3600)
		window := time.Date(2026, 1, 2, 3, 4, 5, 6, zone)
		err := s.UpdateLoginAttempts(ctx, []string{"a", "b"}, func(st []LoginAttempts) error {
			if st[0].Key != "a" || st[1].Key != "b" || !st[0].empty() || !st[1].empty() {
				t.Errorf("unknown keys: got %+v, want zero states with keys", st)
			}
			st[0].Failures, st[0].WindowStart, st[0].BlockedUntil = 3, window, window.Add(time.Minute)
			st[1].LastSuccess = window
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		err = s.UpdateLoginAttempts(ctx, []string{"b", "a"}, func(st []LoginAttempts) error {
			if st[0].Key != "b" || !st[0].LastSuccess.Equal(window) || st[0].LastSuccess.Location() != time.UTC {
				t.Errorf("got %+v for b", st[0])
			}
			if st[1].Failures != 3 || !st[1].WindowStart.Equal(window) || !st[1].BlockedUntil.Equal(window.Add(time.Minute)) {
				t.Errorf("got %+v for a", st[1])
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("parallel_right_logins_all_succeed_while_successes_clear_the_row", func(t *testing.T) {
		// Each login reserves an attempt, then its success clears the key
		// (an empty state is deleted); the next reservation must find or
		// create the row whatever a concurrent success did to it.
		s := newStore(t)
		ctx := t.Context()
		keys := []string{"pair:x", "user:x"}
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range 30 {
					if err := s.UpdateLoginAttempts(ctx, keys, func(st []LoginAttempts) error {
						st[0].Failures++
						st[1].Failures++
						return nil
					}); err != nil {
						t.Errorf("reserve: %v", err)
						return
					}
					if err := s.UpdateLoginAttempts(ctx, keys, func(st []LoginAttempts) error {
						st[0], st[1] = LoginAttempts{}, LoginAttempts{}
						return nil
					}); err != nil {
						t.Errorf("success: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
	})

	t.Run("parallel_wrong_logins_all_count", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		const logins = 40
		var wg sync.WaitGroup
		for range logins {
			wg.Go(func() {
				if err := s.UpdateLoginAttempts(ctx, []string{"pair:y"}, func(st []LoginAttempts) error {
					st[0].Failures++
					return nil
				}); err != nil {
					t.Errorf("reserve: %v", err)
				}
			})
		}
		wg.Wait()
		_ = s.UpdateLoginAttempts(ctx, []string{"pair:y"}, func(st []LoginAttempts) error {
			if st[0].Failures != logins {
				t.Errorf("Failures = %d after %d parallel wrong logins", st[0].Failures, logins)
			}
			return nil
		})
	})

	t.Run("login_attempts_fn_error_changes_nothing", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		boom := errors.New("boom")
		err := s.UpdateLoginAttempts(ctx, []string{"k"}, func(st []LoginAttempts) error {
			st[0].Failures = 9
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("got %v, want fn's error", err)
		}
		_ = s.UpdateLoginAttempts(ctx, []string{"k"}, func(st []LoginAttempts) error {
			if st[0].Failures != 0 {
				t.Errorf("the aborted update was stored: %+v", st[0])
			}
			return nil
		})
	})

	t.Run("login_attempts_concurrent_failures_all_count", func(t *testing.T) {
		s := newStore(t)
		const n = 20
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				err := s.UpdateLoginAttempts(t.Context(), []string{"user", "user|ip"}, func(st []LoginAttempts) error {
					st[0].Failures++
					st[1].Failures++
					return nil
				})
				if err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		_ = s.UpdateLoginAttempts(t.Context(), []string{"user", "user|ip"}, func(st []LoginAttempts) error {
			if st[0].Failures != n || st[1].Failures != n {
				t.Errorf("got %d and %d failures after %d concurrent ones", st[0].Failures, st[1].Failures, n)
			}
			return nil
		})
	})

	t.Run("login_attempts_emptied_state_is_deleted_and_old_ones_pruned", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		set := func(key string, failures int) {
			t.Helper()
			if err := s.UpdateLoginAttempts(ctx, []string{key}, func(st []LoginAttempts) error {
				st[0].Failures = failures
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		set("gone", 2)
		set("gone", 0)
		set("kept", 1)
		if err := s.PruneLoginAttempts(ctx, time.Now().Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		_ = s.UpdateLoginAttempts(ctx, []string{"kept"}, func(st []LoginAttempts) error {
			if st[0].Failures != 1 {
				t.Errorf("a recent state was pruned: %+v", st[0])
			}
			return nil
		})
		if err := s.PruneLoginAttempts(ctx, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		_ = s.UpdateLoginAttempts(ctx, []string{"kept"}, func(st []LoginAttempts) error {
			if !st[0].empty() {
				t.Errorf("an old state survived pruning: %+v", st[0])
			}
			return nil
		})
	})
}
