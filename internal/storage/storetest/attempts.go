package storetest

import (
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// runAttemptTests is the AttemptStore part of the suite.
func runAttemptTests(t *testing.T, newStore func(t *testing.T) storage.Store) {
	t.Run("login_attempts_round_trip_in_utc_and_unknown_keys_are_zero_states", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		zone := time.FixedZone("UTC+5", 5*3600)
		window := time.Date(2026, 1, 2, 3, 4, 5, 6, zone)
		err := s.UpdateLoginAttempts(ctx, storage.AttemptUpdate{
			Keys: []string{"a", "b"},
			Fn: func(st []storage.LoginAttempts) error {
				if want := []storage.LoginAttempts{{Key: "a"}, {Key: "b"}}; !reflect.DeepEqual(st, want) {
					t.Errorf("unknown keys: got %+v, want %+v", st, want)
				}
				st[0].Failures, st[0].WindowStart, st[0].BlockedUntil = 3, window, window.Add(time.Minute)
				st[1].LastSuccess = window
				return nil
			},
		})
		if err != nil {
			t.Fatalf("UpdateLoginAttempts(a, b) = %v", err)
		}
		var got []storage.LoginAttempts
		err = s.UpdateLoginAttempts(ctx, storage.AttemptUpdate{
			Keys: []string{"b", "a"},
			Fn:   func(st []storage.LoginAttempts) error { got = append(got, st...); return nil },
		})
		if err != nil {
			t.Fatalf("UpdateLoginAttempts(b, a) = %v", err)
		}
		want := []storage.LoginAttempts{
			{Key: "b", LastSuccess: window.UTC()},
			{Key: "a", Failures: 3, WindowStart: window.UTC(), BlockedUntil: window.Add(time.Minute).UTC()},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("states of b, a = %+v, want %+v", got, want)
		}
	})

	t.Run("login_attempts_fn_error_changes_nothing", func(t *testing.T) {
		s := newStore(t)
		setAttempts(t, s, "k", 1)
		boom := errors.New("boom")
		err := s.UpdateLoginAttempts(t.Context(), storage.AttemptUpdate{
			Keys: []string{"k", "new"},
			Fn: func(st []storage.LoginAttempts) error {
				st[0].Failures = 9
				st[1].Failures = 9
				return boom
			},
		})
		if !errors.Is(err, boom) {
			t.Fatalf("UpdateLoginAttempts with failing fn = %v, want fn's error", err)
		}
		if got := attemptState(t, s, "k"); got.Failures != 1 {
			t.Errorf("k after the aborted update = %+v, want 1 failure", got)
		}
		if got := attemptState(t, s, "new"); !got.Empty() {
			t.Errorf("new after the aborted update = %+v, want empty", got)
		}
	})

	t.Run("parallel_right_logins_all_succeed_while_successes_clear_the_row", func(t *testing.T) {
		// Each login reserves an attempt, then its success clears the key
		// (an emptied state is deleted): the next reservation must find or
		// create the row whatever a concurrent success did to it.
		s := newStore(t)
		mustCreateUser(t, s, newUser(t, "x"))
		keys := []string{"pair:x", "user:x"}
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range 30 {
					u, err := s.ReserveLogin(t.Context(), storage.AttemptUpdate{Keys: keys, Fn: func(st []storage.LoginAttempts) error {
						st[0].Failures++
						st[1].Failures++
						return nil
					}}, "x")
					if err != nil || u == nil || u.Username != "x" {
						t.Errorf("ReserveLogin(x) = %+v, %v; want user x", u, err)
						return
					}
					if err := s.UpdateLoginAttempts(t.Context(), storage.AttemptUpdate{Keys: keys, Fn: func(st []storage.LoginAttempts) error {
						st[0], st[1] = storage.LoginAttempts{}, storage.LoginAttempts{}
						return nil
					}}); err != nil {
						t.Errorf("UpdateLoginAttempts(success) = %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
		for _, k := range keys {
			if got := attemptState(t, s, k); !got.Empty() {
				t.Errorf("%s after every login succeeded = %+v, want empty", k, got)
			}
		}
	})

	t.Run("parallel_wrong_logins_all_count", func(t *testing.T) {
		s := newStore(t)
		parallelWrongLoginsAllCount(t, []storage.Store{s}, 40)
	})

	t.Run("login_attempts_concurrent_failures_of_two_keys_all_count", func(t *testing.T) {
		s := newStore(t)
		const n = 20
		release := make(chan struct{})
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				<-release
				err := s.UpdateLoginAttempts(t.Context(), storage.AttemptUpdate{
					Keys: []string{"user", "user|ip"},
					Fn: func(st []storage.LoginAttempts) error {
						st[0].Failures++
						st[1].Failures++
						return nil
					},
				})
				if err != nil {
					t.Errorf("UpdateLoginAttempts = %v", err)
				}
			})
		}
		close(release)
		wg.Wait()
		if a, b := attemptState(t, s, "user").Failures, attemptState(t, s, "user|ip").Failures; a != n || b != n {
			t.Errorf("got %d and %d failures after %d concurrent ones", a, b, n)
		}
	})

	t.Run("login_attempts_emptied_state_is_deleted_and_old_ones_pruned", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		setAttempts(t, s, "gone", 2)
		setAttempts(t, s, "gone", 0)
		setAttempts(t, s, "kept", 1)
		if err := s.PruneLoginAttempts(ctx, time.Now().Add(-time.Hour)); err != nil {
			t.Fatalf("PruneLoginAttempts(an hour ago) = %v", err)
		}
		if got := attemptState(t, s, "kept"); got.Failures != 1 {
			t.Errorf("a recent state was pruned: %+v", got)
		}
		if got := attemptState(t, s, "gone"); !got.Empty() {
			t.Errorf("an emptied state came back: %+v", got)
		}
		if err := s.PruneLoginAttempts(ctx, time.Now().Add(time.Hour)); err != nil {
			t.Fatalf("PruneLoginAttempts(in an hour) = %v", err)
		}
		if got := attemptState(t, s, "kept"); !got.Empty() {
			t.Errorf("an old state survived pruning: %+v", got)
		}
	})

	t.Run("reserve_login_returns_the_user_by_username_in_the_same_call", func(t *testing.T) {
		tests := []struct {
			name     string
			username string
			want     bool // whether alice comes back
		}{
			{"existing_user", "alice", true},
			{"unknown_user", "nobody", false},
			{"no_username", "", false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s := newStore(t)
				alice := newUser(t, "alice")
				mustCreateUser(t, s, alice)
				stored := mustUser(t, s, "alice")
				key := "user:" + tt.username
				got, err := s.ReserveLogin(t.Context(), storage.AttemptUpdate{
					Keys: []string{key},
					Fn:   func(st []storage.LoginAttempts) error { st[0].Failures++; return nil },
				}, tt.username)
				if err != nil {
					t.Fatalf("ReserveLogin(%q) = %v", tt.username, err)
				}
				switch {
				case tt.want && !reflect.DeepEqual(got, stored):
					t.Errorf("ReserveLogin(%q) = %+v, want %+v", tt.username, got, stored)
				case !tt.want && got != nil:
					t.Errorf("ReserveLogin(%q) = %+v, want nil", tt.username, got)
				}
				if st := attemptState(t, s, key); st.Failures != 1 {
					t.Errorf("%s after ReserveLogin = %+v, want the reservation applied", key, st)
				}
			})
		}
	})

	t.Run("reserve_login_fn_error_changes_nothing", func(t *testing.T) {
		s := newStore(t)
		mustCreateUser(t, s, newUser(t, "alice"))
		setAttempts(t, s, "user:alice", 1)
		boom := errors.New("boom")
		_, err := s.ReserveLogin(t.Context(), storage.AttemptUpdate{
			Keys: []string{"user:alice"},
			Fn:   func(st []storage.LoginAttempts) error { st[0].Failures = 9; return boom },
		}, "alice")
		if !errors.Is(err, boom) {
			t.Errorf("ReserveLogin with failing fn = %v, want fn's error", err)
		}
		if got := attemptState(t, s, "user:alice"); got.Failures != 1 {
			t.Errorf("user:alice after the aborted reservation = %+v, want 1 failure", got)
		}
	})
}

// runAttemptTwoInstanceTests is the part of the AttemptStore suite that
// needs two instances on one database.
func runAttemptTwoInstanceTests(t *testing.T, newPair func(t *testing.T) (a, b storage.Store)) {
	t.Run("parallel_wrong_logins_on_two_instances_all_count", func(t *testing.T) {
		a, b := newPair(t)
		parallelWrongLoginsAllCount(t, []storage.Store{a, b}, 40)
	})
}

// parallelWrongLoginsAllCount has n logins, spread over stores, each
// reserve an attempt that is never cleared: every one must count.
func parallelWrongLoginsAllCount(t *testing.T, stores []storage.Store, n int) {
	t.Helper()
	mustCreateUser(t, stores[0], newUser(t, "y"))
	release := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-release
			_, err := stores[i%len(stores)].ReserveLogin(t.Context(), storage.AttemptUpdate{
				Keys: []string{"pair:y"},
				Fn:   func(st []storage.LoginAttempts) error { st[0].Failures++; return nil },
			}, "y")
			if err != nil {
				t.Errorf("ReserveLogin #%d = %v", i, err)
			}
		})
	}
	close(release)
	wg.Wait()
	for i, s := range stores {
		if got := attemptState(t, s, "pair:y").Failures; got != n {
			t.Errorf("store %d reads %d failures after %d parallel wrong logins", i, got, n)
		}
	}
}
