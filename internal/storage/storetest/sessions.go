package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// runSessionTests is the SessionStore part of the suite.
func runSessionTests(t *testing.T, newStore func(t *testing.T) storage.Store) {
	zone := time.FixedZone("UTC+9", 9*3600)

	t.Run("rfc6749_4.3_create_session_round_trips_every_field_in_utc", func(t *testing.T) {
		s := newStore(t)
		u := newUser(t, "alice")
		mustCreateUser(t, s, u)
		created := time.Date(2025, 6, 1, 21, 0, 0, 123456789, zone)
		sess := &storage.Session{
			ID:            "sid-1",
			UserID:        u.ID,
			ClientID:      "web",
			Scopes:        []string{"me", "users:read"},
			CreatedAt:     created,
			LastUsedAt:    created.Add(time.Second),
			IdleExpiresAt: created.Add(time.Hour),
			ExpiresAt:     created.Add(30 * 24 * time.Hour),
			Generation:    7,
			SecretHash:    hashOf("secret"),
			RotatedAt:     created.Add(2 * time.Second),
			GraceUses:     2,
			ClientAddr:    "2001:db8::1",
			UserAgent:     "Mozilla/5.0 (X11; Linux x86_64) \"quoted\" 'single' ünïcode",
		}
		want := inUTC(sess)
		mustCreateSession(t, s, sess, 0)
		if got := mustSession(t, s, "sid-1"); !reflect.DeepEqual(got, want) {
			t.Errorf("Session(sid-1) = %+v, want %+v", got, want)
		}
	})

	t.Run("create_session_sets_zero_times_from_the_store_clock", func(t *testing.T) {
		s := newStore(t)
		u := newUser(t, "alice")
		mustCreateUser(t, s, u)
		sess := newSession(t, "s1", u, "web")
		sess.CreatedAt, sess.LastUsedAt, sess.RotatedAt = time.Time{}, time.Time{}, time.Time{}
		sess.IdleExpiresAt, sess.ExpiresAt = time.Now().Add(time.Hour), time.Now().Add(24*time.Hour)
		mustCreateSession(t, s, sess, 0)
		got := mustSession(t, s, "s1")
		for _, c := range []struct {
			name string
			at   time.Time
		}{
			{"CreatedAt", got.CreatedAt},
			{"LastUsedAt", got.LastUsedAt},
			{"RotatedAt", got.RotatedAt},
		} {
			if c.at.IsZero() || c.at.Location() != time.UTC {
				t.Errorf("%s = %v, want the store's clock in UTC", c.name, c.at)
			}
		}
		if !got.Live(got.CreatedAt) {
			t.Errorf("session %+v is not live when created", got)
		}
	})

	t.Run("rfc9700_4.14.2_create_session_refuses_a_grant_the_account_changed_under", func(t *testing.T) {
		tests := []struct {
			name   string
			change func(t *testing.T, s storage.Store, u *storage.User)
			epoch  int64
		}{
			{"epoch_raised", func(t *testing.T, s storage.Store, u *storage.User) {
				raiseEpoch(t, s, u.Username, base)
			}, 0},
			{"epoch_ahead_of_the_user", func(*testing.T, storage.Store, *storage.User) {}, 1},
			{"disabled", func(t *testing.T, s storage.Store, u *storage.User) {
				mustUpdateUser(t, s, u.Username, func(u *storage.User) error { u.Disabled = true; return nil })
			}, 0},
			{"deleted", func(t *testing.T, s storage.Store, u *storage.User) {
				if err := s.DeleteUser(t.Context(), u.Username, base, nil); err != nil {
					t.Fatalf("DeleteUser(%s) = %v", u.Username, err)
				}
			}, 0},
			{"deleted_and_recreated_under_the_name", func(t *testing.T, s storage.Store, u *storage.User) {
				if err := s.DeleteUser(t.Context(), u.Username, base, nil); err != nil {
					t.Fatalf("DeleteUser(%s) = %v", u.Username, err)
				}
				mustCreateUser(t, s, newUser(t, u.Username))
			}, 0},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s := newStore(t)
				u := newUser(t, "alice")
				mustCreateUser(t, s, u)
				setAttempts(t, s, "user:alice", 2)
				tt.change(t, s, u)
				cursor := lastChange(t, s)
				settle := &storage.AttemptUpdate{
					Keys: []string{"user:alice", "pair:alice|192.0.2.1"},
					Fn: func(st []storage.LoginAttempts) error {
						st[0].Failures, st[0].WindowStart = 0, time.Time{}
						st[1].LastSuccess = base
						return nil
					},
				}
				err := s.CreateSession(t.Context(), newSession(t, "s1", u, "web"), tt.epoch, settle)
				if !errors.Is(err, storage.ErrGrantStale) {
					t.Fatalf("CreateSession after %s = %v, want ErrGrantStale", tt.name, err)
				}
				assertNoSession(t, s, "s1")
				if got := attemptState(t, s, "user:alice"); got.Failures != 2 {
					t.Errorf("user:alice after the refused grant = %+v, want its 2 failures kept", got)
				}
				if got := attemptState(t, s, "pair:alice|192.0.2.1"); !got.Empty() {
					t.Errorf("the refused grant applied its settlement: %+v", got)
				}
				assertNoChanges(t, s, cursor, "the refused CreateSession")
			})
		}
	})

	t.Run("create_session_applies_the_throttle_settlement_in_the_same_call", func(t *testing.T) {
		s := newStore(t)
		u := newUser(t, "alice")
		mustCreateUser(t, s, u)
		setAttempts(t, s, "user:alice", 2)
		var seen []storage.LoginAttempts
		settle := &storage.AttemptUpdate{
			Keys: []string{"user:alice", "pair:alice|192.0.2.1"},
			Fn: func(st []storage.LoginAttempts) error {
				seen = slices.Clone(st)
				st[0].Failures, st[0].WindowStart = 0, time.Time{} // emptied: deleted
				st[1].LastSuccess = base
				return nil
			},
		}
		if err := s.CreateSession(t.Context(), newSession(t, "s1", u, "web"), 0, settle); err != nil {
			t.Fatalf("CreateSession(s1) = %v", err)
		}
		mustSession(t, s, "s1")
		wantSeen := []storage.LoginAttempts{
			{Key: "user:alice", Failures: 2, WindowStart: base},
			{Key: "pair:alice|192.0.2.1"},
		}
		if !reflect.DeepEqual(seen, wantSeen) {
			t.Errorf("settle.Fn got %+v, want %+v", seen, wantSeen)
		}
		if got := attemptState(t, s, "user:alice"); !got.Empty() {
			t.Errorf("user:alice after the settlement = %+v, want empty", got)
		}
		if got := attemptState(t, s, "pair:alice|192.0.2.1"); !got.LastSuccess.Equal(base) || got.Failures != 0 {
			t.Errorf("pair:alice|192.0.2.1 after the settlement = %+v, want LastSuccess %v", got, base)
		}
	})

	t.Run("create_session_settlement_error_aborts_everything", func(t *testing.T) {
		s := newStore(t)
		u := newUser(t, "alice")
		mustCreateUser(t, s, u)
		setAttempts(t, s, "user:alice", 2)
		cursor := lastChange(t, s)
		errVeto := errors.New("veto")
		settle := &storage.AttemptUpdate{
			Keys: []string{"user:alice"},
			Fn: func(st []storage.LoginAttempts) error {
				st[0].Failures = 0
				return errVeto
			},
		}
		if err := s.CreateSession(t.Context(), newSession(t, "s1", u, "web"), 0, settle); !errors.Is(err, errVeto) {
			t.Fatalf("CreateSession with a failing settlement = %v, want %v", err, errVeto)
		}
		assertNoSession(t, s, "s1")
		if got := attemptState(t, s, "user:alice"); got.Failures != 2 {
			t.Errorf("user:alice after the aborted grant = %+v, want its 2 failures kept", got)
		}
		assertNoChanges(t, s, cursor, "the aborted CreateSession")
	})

	t.Run("unknown_session_is_ErrNotFound", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Session(t.Context(), "nope"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Session(nope) = %v, want ErrNotFound", err)
		}
		_, _, err := s.UpdateSession(t.Context(), "nope", func(*storage.Session, *storage.User) error {
			t.Error("UpdateSession(nope) called fn")
			return nil
		})
		if !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("UpdateSession(nope) = %v, want ErrNotFound", err)
		}
	})

	t.Run("rfc6749_6_update_session_passes_the_session_and_its_user_and_saves_fn_changes", func(t *testing.T) {
		s := newStore(t)
		u := newUser(t, "alice")
		mustCreateUser(t, s, u)
		sess := newSession(t, "s1", u, "web")
		sess.Scopes = []string{"me", "users:read"}
		mustCreateSession(t, s, sess, 0)
		before, user := mustSession(t, s, "s1"), mustUser(t, s, "alice")

		at := base.Add(10*time.Minute + 987654321).In(zone)
		var seenS *storage.Session
		var seenU *storage.User
		gotS, gotU, err := s.UpdateSession(t.Context(), "s1", func(sess *storage.Session, u *storage.User) error {
			seenS, seenU = cloneSession(sess), cloneUser(u)
			sess.LastUsedAt = at
			sess.IdleExpiresAt = at.Add(time.Hour)
			sess.Generation = 2
			sess.SecretHash = hashOf("s1/2")
			sess.RotatedAt = at
			sess.GraceUses = 1
			sess.Scopes = []string{"me"}
			return nil
		})
		if err != nil {
			t.Fatalf("UpdateSession(s1) = %v", err)
		}
		if !reflect.DeepEqual(seenS, before) || !reflect.DeepEqual(seenU, user) {
			t.Errorf("fn got %+v and %+v, want the stored %+v and %+v", seenS, seenU, before, user)
		}
		want := cloneSession(before)
		want.LastUsedAt, want.IdleExpiresAt, want.RotatedAt = at.UTC(), at.Add(time.Hour).UTC(), at.UTC()
		want.Generation, want.SecretHash, want.GraceUses, want.Scopes = 2, hashOf("s1/2"), 1, []string{"me"}
		if !reflect.DeepEqual(gotS, want) {
			t.Errorf("UpdateSession(s1) returned %+v, want %+v", gotS, want)
		}
		if !reflect.DeepEqual(gotU, user) {
			t.Errorf("UpdateSession(s1) returned user %+v, want %+v", gotU, user)
		}
		if got := mustSession(t, s, "s1"); !reflect.DeepEqual(got, want) {
			t.Errorf("Session(s1) after the update = %+v, want %+v", got, want)
		}
	})

	t.Run("update_session_keeps_the_fields_fn_may_not_change", func(t *testing.T) {
		s := newStore(t)
		u, other := newUser(t, "alice"), newUser(t, "bob")
		mustCreateUser(t, s, u)
		mustCreateUser(t, s, other)
		mustCreateSession(t, s, newSession(t, "s1", u, "web"), 0)
		before := mustSession(t, s, "s1")
		got, _, err := s.UpdateSession(t.Context(), "s1", func(sess *storage.Session, _ *storage.User) error {
			sess.ID = "s2"
			sess.UserID = other.ID
			sess.ClientID = "cli"
			sess.CreatedAt = base.Add(-time.Hour)
			sess.ExpiresAt = base.Add(365 * 24 * time.Hour) // ExpiresAt never moves
			sess.ClientAddr = "198.51.100.1"
			sess.UserAgent = "other"
			return nil
		})
		// Refusing the update or keeping the fields both keep the contract.
		if err == nil && !reflect.DeepEqual(got, before) {
			t.Errorf("UpdateSession returned %+v, want the fields fn may not change kept: %+v", got, before)
		}
		if after := mustSession(t, s, "s1"); !reflect.DeepEqual(after, before) {
			t.Errorf("Session(s1) = %+v, want the fields fn may not change kept: %+v", after, before)
		}
		assertNoSession(t, s, "s2")
		if list, err := s.ListSessions(t.Context(), other.ID, base); err != nil || len(list) != 0 {
			t.Errorf("ListSessions(bob) = %d sessions, %v; want none moved to him", len(list), err)
		}
	})

	t.Run("update_session_passes_a_nil_user_after_delete_user", func(t *testing.T) {
		s := newStore(t)
		u := newUser(t, "alice")
		mustCreateUser(t, s, u)
		mustCreateSession(t, s, newSession(t, "s1", u, "web"), 0)
		now := base.Add(time.Minute)
		if err := s.DeleteUser(t.Context(), "alice", now, nil); err != nil {
			t.Fatalf("DeleteUser(alice) = %v", err)
		}
		called := false
		gotS, gotU, err := s.UpdateSession(t.Context(), "s1", func(sess *storage.Session, u *storage.User) error {
			called = true
			if u != nil {
				t.Errorf("fn got user %+v after DeleteUser, want nil", u)
			}
			if !sess.RevokedAt.Equal(now) {
				t.Errorf("fn got RevokedAt %v, want DeleteUser's %v", sess.RevokedAt, now)
			}
			return nil
		})
		if err != nil || !called {
			t.Fatalf("UpdateSession(s1) = %v (fn called %v), want nil", err, called)
		}
		if gotU != nil || gotS == nil || gotS.ID != "s1" {
			t.Errorf("UpdateSession(s1) = %+v, %+v; want s1 and a nil user", gotS, gotU)
		}
	})

	t.Run("update_session_fn_error_is_returned_unchanged_and_nothing_is_written", func(t *testing.T) {
		s := newStore(t)
		u := newUser(t, "alice")
		mustCreateUser(t, s, u)
		mustCreateSession(t, s, newSession(t, "s1", u, "web"), 0)
		before := mustSession(t, s, "s1")
		cursor := lastChange(t, s)
		errVeto := errors.New("rfc9700 reuse")
		_, _, err := s.UpdateSession(t.Context(), "s1", func(sess *storage.Session, _ *storage.User) error {
			sess.Generation = 99
			sess.Scopes = append(sess.Scopes, "users:write")
			sess.RevokedAt = base.Add(time.Minute)
			return errVeto
		})
		if err != errVeto {
			t.Errorf("UpdateSession with failing fn = %v, want fn's error unchanged", err)
		}
		if after := mustSession(t, s, "s1"); !reflect.DeepEqual(after, before) {
			t.Errorf("after the failed update %+v, want unchanged %+v", after, before)
		}
		assertNoChanges(t, s, cursor, "UpdateSession with failing fn")
	})

	t.Run("rfc9700_4.14.2_update_session_that_revokes_appends_a_session_change", func(t *testing.T) {
		s := newStore(t)
		u := newUser(t, "alice")
		mustCreateUser(t, s, u)
		mustCreateSession(t, s, newSession(t, "s1", u, "web"), 0)
		cursor := lastChange(t, s)
		at := base.Add(time.Minute)
		got, _, err := s.UpdateSession(t.Context(), "s1", func(sess *storage.Session, _ *storage.User) error {
			sess.RevokedAt = at
			return nil
		})
		if err != nil {
			t.Fatalf("UpdateSession(revoke s1) = %v", err)
		}
		if !got.RevokedAt.Equal(at) || got.Live(at) {
			t.Errorf("UpdateSession(revoke s1) returned %+v, want RevokedAt %v", got, at)
		}
		if got := mustSession(t, s, "s1").RevokedAt; !got.Equal(at) {
			t.Errorf("Session(s1).RevokedAt = %v, want %v", got, at)
		}
		appended := changesAfter(t, s, cursor)
		if got, want := entries(appended), entryNames(storage.ChangeSession, "s1"); !slices.Equal(got, want) {
			t.Errorf("revoking through UpdateSession appended %v, want %v", got, want)
		}
		assertChangesAt(t, appended, storage.ChangeSession, at)
		if got := liveRevocations(t, s, at); !slices.Contains(got, storage.ChangeSession+":s1") {
			t.Errorf("LiveRevocations(%v) = %v, want it to hold s1", at, got)
		}
	})

	t.Run("update_session_keeps_a_set_revoked_at", func(t *testing.T) {
		revoked := base.Add(time.Minute)
		tests := []struct {
			name      string
			revokedAt time.Time
		}{
			{"fn_sets_a_later_revocation", revoked.Add(time.Hour)},
			{"fn_sets_an_earlier_revocation", revoked.Add(-time.Second)},
			{"fn_clears_the_revocation", time.Time{}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s := newStore(t)
				u := newUser(t, "alice")
				mustCreateUser(t, s, u)
				mustCreateSession(t, s, newSession(t, "s1", u, "web"), 0)
				mustRevoke(t, s, u, "s1", revoked)
				cursor := lastChange(t, s)
				got, _, err := s.UpdateSession(t.Context(), "s1", func(sess *storage.Session, _ *storage.User) error {
					sess.RevokedAt = tt.revokedAt
					return nil
				})
				if err != nil {
					t.Fatalf("UpdateSession(s1) = %v", err)
				}
				if !got.RevokedAt.Equal(revoked) {
					t.Errorf("UpdateSession(s1) returned RevokedAt %v, want the first %v", got.RevokedAt, revoked)
				}
				if got := mustSession(t, s, "s1").RevokedAt; !got.Equal(revoked) {
					t.Errorf("Session(s1).RevokedAt = %v, want the first %v", got, revoked)
				}
				assertNoChanges(t, s, cursor, "UpdateSession of a revoked session")
			})
		}
	})

	t.Run("rfc9700_4.14.2_50_concurrent_refreshes_of_one_session_run_one_after_another", func(t *testing.T) {
		s := newStore(t)
		concurrentRefreshes(t, []storage.Store{s}, 50)
	})

	t.Run("list_sessions_returns_the_users_live_sessions_most_recently_used_first", func(t *testing.T) {
		s := newStore(t)
		alice, bob := newUser(t, "alice"), newUser(t, "bob")
		mustCreateUser(t, s, alice)
		mustCreateUser(t, s, bob)
		now := base.Add(30 * time.Minute)
		used := func(id string, last time.Duration) *storage.Session {
			sess := newSession(t, id, alice, "web")
			sess.LastUsedAt = base.Add(last)
			return sess
		}
		idleNow := used("idle-at-now", 4*time.Minute)
		idleNow.IdleExpiresAt = now
		endedNow := used("ended-at-now", 5*time.Minute)
		endedNow.ExpiresAt = now
		idleSoon := used("idle-after-now", 0)
		idleSoon.IdleExpiresAt = now.Add(time.Nanosecond)
		for _, sess := range []*storage.Session{
			used("a1", time.Minute),
			used("a2", 3*time.Minute),
			used("a3", 2*time.Minute),
			used("revoked", 6*time.Minute),
			idleNow, endedNow, idleSoon,
			newSession(t, "bob-1", bob, "web"),
		} {
			mustCreateSession(t, s, sess, 0)
		}
		mustRevoke(t, s, alice, "revoked", base.Add(10*time.Minute))
		tests := []struct {
			userID string
			want   []string
		}{
			{alice.ID, []string{"a2", "a3", "a1", "idle-after-now"}},
			{bob.ID, []string{"bob-1"}},
			{"no-such-user", []string{}},
		}
		for _, tt := range tests {
			list, err := s.ListSessions(t.Context(), tt.userID, now)
			if err != nil {
				t.Fatalf("ListSessions(%s) = %v", tt.userID, err)
			}
			got := []string{}
			for _, sess := range list {
				got = append(got, sess.ID)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ListSessions(%s, %v) = %v, want %v", tt.userID, now, got, tt.want)
			}
			for _, sess := range list {
				if stored := mustSession(t, s, sess.ID); !reflect.DeepEqual(sess, stored) {
					t.Errorf("ListSessions lists %+v, Session(%s) = %+v", sess, sess.ID, stored)
				}
			}
		}
	})

	t.Run("revoke_sessions_revokes_one_all_or_all_but_one_of_the_user", func(t *testing.T) {
		earlier := base.Add(10 * time.Second)
		now := base.Add(time.Minute)
		tests := []struct {
			name        string
			user        string // "alice", "bob" or an unknown ID
			id, except  string
			wantN       int
			wantRevoked []string
		}{
			{"every_session_of_the_user", "alice", "", "", 3, []string{"a1", "a2", "a3"}},
			{"one_session", "alice", "a2", "", 1, []string{"a2"}},
			{"all_but_the_current_session", "alice", "", "a1", 2, []string{"a2", "a3"}},
			{"the_one_that_is_also_the_exception", "alice", "a1", "a1", 0, nil},
			{"a_session_of_another_user", "alice", "b1", "", 0, nil},
			{"an_unknown_session", "alice", "nope", "", 0, nil},
			{"an_already_revoked_session", "alice", "a4", "", 0, nil},
			{"an_ended_session", "alice", "a5", "", 0, nil},
			{"an_unknown_user", "no-such-user", "", "", 0, nil},
			{"the_other_user", "bob", "", "", 1, []string{"b1"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s := newStore(t)
				alice, bob := newUser(t, "alice"), newUser(t, "bob")
				mustCreateUser(t, s, alice)
				mustCreateUser(t, s, bob)
				ended := newSession(t, "a5", alice, "web")
				ended.IdleExpiresAt = base.Add(30 * time.Second)
				for _, sess := range []*storage.Session{
					newSession(t, "a1", alice, "web"),
					newSession(t, "a2", alice, "cli"),
					newSession(t, "a3", alice, "web"),
					newSession(t, "a4", alice, "web"),
					ended,
					newSession(t, "b1", bob, "web"),
				} {
					mustCreateSession(t, s, sess, 0)
				}
				mustRevoke(t, s, alice, "a4", earlier)
				userID := map[string]string{"alice": alice.ID, "bob": bob.ID}[tt.user]
				if userID == "" {
					userID = tt.user
				}
				cursor := lastChange(t, s)
				n, err := s.RevokeSessions(t.Context(), userID, tt.id, tt.except, now)
				if err != nil || n != tt.wantN {
					t.Errorf("RevokeSessions(%s, %q, except %q) = %d, %v; want %d, nil", tt.user, tt.id, tt.except, n, err, tt.wantN)
				}
				for _, id := range []string{"a1", "a2", "a3", "a4", "a5", "b1"} {
					want := time.Time{}
					switch {
					case id == "a4":
						want = earlier
					case slices.Contains(tt.wantRevoked, id):
						want = now
					}
					if got := mustSession(t, s, id).RevokedAt; !got.Equal(want) {
						t.Errorf("Session(%s).RevokedAt = %v, want %v", id, got, want)
					}
				}
				appended := changesAfter(t, s, cursor)
				if got, want := entries(appended), entryNames(storage.ChangeSession, tt.wantRevoked...); !slices.Equal(got, want) {
					t.Errorf("RevokeSessions appended %v, want %v", got, want)
				}
				assertChangesAt(t, appended, storage.ChangeSession, now)
			})
		}
	})

	t.Run("revoke_sessions_again_revokes_nothing_and_keeps_the_first_time", func(t *testing.T) {
		s := newStore(t)
		u := newUser(t, "alice")
		mustCreateUser(t, s, u)
		mustCreateSession(t, s, newSession(t, "s1", u, "web"), 0)
		first := base.Add(time.Minute)
		mustRevoke(t, s, u, "s1", first)
		cursor := lastChange(t, s)
		if n, err := s.RevokeSessions(t.Context(), u.ID, "", "", first.Add(time.Minute)); err != nil || n != 0 {
			t.Errorf("second RevokeSessions = %d, %v; want 0, nil", n, err)
		}
		if got := mustSession(t, s, "s1").RevokedAt; !got.Equal(first) {
			t.Errorf("RevokedAt after two revocations = %v, want the first %v", got, first)
		}
		assertNoChanges(t, s, cursor, "revoking a revoked session")
	})

	t.Run("revoke_client_sessions_revokes_every_live_session_of_the_client", func(t *testing.T) {
		s := newStore(t)
		alice, bob := newUser(t, "alice"), newUser(t, "bob")
		mustCreateUser(t, s, alice)
		mustCreateUser(t, s, bob)
		ended := newSession(t, "b3", bob, "web")
		ended.ExpiresAt = base.Add(30 * time.Second)
		for _, sess := range []*storage.Session{
			newSession(t, "a1", alice, "web"),
			newSession(t, "a2", alice, "cli"),
			newSession(t, "b1", bob, "web"),
			newSession(t, "b2", bob, "web"),
			ended,
		} {
			mustCreateSession(t, s, sess, 0)
		}
		earlier := base.Add(10 * time.Second)
		mustRevoke(t, s, bob, "b2", earlier)
		cursor := lastChange(t, s)
		now := base.Add(time.Minute)
		n, err := s.RevokeClientSessions(t.Context(), "web", now)
		if err != nil || n != 2 {
			t.Errorf("RevokeClientSessions(web) = %d, %v; want 2, nil", n, err)
		}
		for _, tt := range []struct {
			id   string
			want time.Time
		}{
			{"a1", now},
			{"a2", time.Time{}},
			{"b1", now},
			{"b2", earlier},
			{"b3", time.Time{}},
		} {
			if got := mustSession(t, s, tt.id).RevokedAt; !got.Equal(tt.want) {
				t.Errorf("Session(%s).RevokedAt = %v, want %v", tt.id, got, tt.want)
			}
		}
		appended := changesAfter(t, s, cursor)
		if got, want := entries(appended), entryNames(storage.ChangeSession, "a1", "b1"); !slices.Equal(got, want) {
			t.Errorf("RevokeClientSessions appended %v, want %v", got, want)
		}
		assertChangesAt(t, appended, storage.ChangeSession, now)
		if n, err := s.RevokeClientSessions(t.Context(), "no-such-client", now); err != nil || n != 0 {
			t.Errorf("RevokeClientSessions(no-such-client) = %d, %v; want 0, nil", n, err)
		}
	})

	t.Run("prune_sessions_removes_only_sessions_that_ended_before", func(t *testing.T) {
		s := newStore(t)
		u := newUser(t, "alice")
		mustCreateUser(t, s, u)
		before := base.Add(2 * time.Hour)
		tests := []struct {
			id                     string
			idle, expires, revoked time.Time // zero revoked: not revoked
			kept                   bool
		}{
			{"live", before.Add(time.Hour), before.Add(24 * time.Hour), time.Time{}, true},
			{"revoked_just_before", before.Add(time.Hour), before.Add(24 * time.Hour), before.Add(-time.Nanosecond), false},
			{"revoked_just_after", before.Add(time.Hour), before.Add(24 * time.Hour), before.Add(time.Nanosecond), true},
			{"idle_just_before", before.Add(-time.Nanosecond), before.Add(24 * time.Hour), time.Time{}, false},
			{"idle_just_after", before.Add(time.Nanosecond), before.Add(24 * time.Hour), time.Time{}, true},
			{"expired_just_before", before.Add(time.Hour), before.Add(-time.Nanosecond), time.Time{}, false},
			{"expires_just_after", before.Add(time.Hour), before.Add(time.Nanosecond), time.Time{}, true},
			// It ended when it idled out, whatever came later.
			{"idle_before_revoked_after", before.Add(-time.Minute), before.Add(24 * time.Hour), before.Add(time.Hour), false},
		}
		for _, tt := range tests {
			sess := newSession(t, tt.id, u, "web")
			sess.IdleExpiresAt, sess.ExpiresAt = tt.idle, tt.expires
			mustCreateSession(t, s, sess, 0)
			if !tt.revoked.IsZero() {
				if _, _, err := s.UpdateSession(t.Context(), tt.id, func(sess *storage.Session, _ *storage.User) error {
					sess.RevokedAt = tt.revoked
					return nil
				}); err != nil {
					t.Fatalf("UpdateSession(revoke %s) = %v", tt.id, err)
				}
			}
		}
		if err := s.PruneSessions(t.Context(), before); err != nil {
			t.Fatalf("PruneSessions(%v) = %v", before, err)
		}
		for _, tt := range tests {
			_, err := s.Session(t.Context(), tt.id)
			if kept := err == nil; kept != tt.kept || (!kept && !errors.Is(err, storage.ErrNotFound)) {
				t.Errorf("after PruneSessions(%v), Session(%s) = %v; want kept = %v", before, tt.id, err, tt.kept)
			}
		}
		mustUser(t, s, "alice")
	})

	t.Run("rfc9700_4.14.2_concurrent_grants_and_an_epoch_raise_leave_no_live_session_of_the_old_epoch", func(t *testing.T) {
		s := newStore(t)
		grantsAgainstAnEpochRaise(t, s, s)
	})
}

// runSessionTwoInstanceTests is the part of the SessionStore suite that
// needs two instances on one database.
func runSessionTwoInstanceTests(t *testing.T, newPair func(t *testing.T) (a, b storage.Store)) {
	t.Run("rfc9700_4.14.2_50_concurrent_refreshes_on_two_instances_run_one_after_another", func(t *testing.T) {
		a, b := newPair(t)
		concurrentRefreshes(t, []storage.Store{a, b}, 50)
	})

	t.Run("rfc9700_4.14.2_grants_on_one_instance_and_an_epoch_raise_on_the_other_leave_no_live_session_of_the_old_epoch", func(t *testing.T) {
		a, b := newPair(t)
		grantsAgainstAnEpochRaise(t, a, b)
	})

	t.Run("a_session_revoked_on_one_instance_is_revoked_on_the_other", func(t *testing.T) {
		a, b := newPair(t)
		u := newUser(t, "alice")
		mustCreateUser(t, a, u)
		mustCreateSession(t, a, newSession(t, "s1", u, "web"), 0)
		now := base.Add(time.Minute)
		mustRevoke(t, b, u, "s1", now)
		if got := mustSession(t, a, "s1"); !got.RevokedAt.Equal(now) {
			t.Errorf("Session(s1) on a = %+v, want RevokedAt %v", got, now)
		}
	})
}

// concurrentRefreshes has n goroutines, spread over stores, update one
// session at once, each adding one to Generation and GraceUses: they must
// run one after another, each seeing the one before, and every one be
// kept.
func concurrentRefreshes(t *testing.T, stores []storage.Store, n int) {
	t.Helper()
	u := newUser(t, "alice")
	mustCreateUser(t, stores[0], u)
	sess := newSession(t, "s1", u, "web")
	sess.Generation = 0
	mustCreateSession(t, stores[0], sess, 0)

	gens := make([]int64, n)
	errs := make([]error, n)
	release := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-release
			got, _, err := stores[i%len(stores)].UpdateSession(t.Context(), "s1", func(s *storage.Session, _ *storage.User) error {
				s.Generation++
				s.GraceUses++
				return nil
			})
			errs[i] = err
			if err == nil {
				gens[i] = got.Generation
			}
		})
	}
	close(release)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("UpdateSession #%d (store %d) = %v, want nil", i, i%len(stores), err)
		}
	}
	slices.Sort(gens)
	for i, g := range gens {
		if g != int64(i+1) {
			t.Errorf("the %d updates returned generations %v, want each of 1 to %d once", n, gens, n)
			break
		}
	}
	for i, s := range stores {
		got := mustSession(t, s, "s1")
		if got.Generation != int64(n) || got.GraceUses != n {
			t.Errorf("after %d concurrent updates store %d reads Generation %d, GraceUses %d; want %d, %d (a lost update)",
				n, i, got.Generation, got.GraceUses, n, n)
		}
	}
}

// grantsAgainstAnEpochRaise stores 20 grants of epoch 0 on grants while an
// epoch raise runs on raiser: each grant is either stored before the
// raise, which revokes it, or refused after it. Whatever the interleaving,
// no session of epoch 0 is left live.
func grantsAgainstAnEpochRaise(t *testing.T, grants, raiser storage.Store) {
	t.Helper()
	u := newUser(t, "alice")
	mustCreateUser(t, grants, u)
	const n = 20
	errs := make([]error, n)
	at := base.Add(time.Minute)
	release := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-release
			errs[i] = grants.CreateSession(t.Context(), newSession(t, fmt.Sprintf("s%02d", i), u, "web"), 0, nil)
		})
	}
	var raiseErr error
	wg.Go(func() {
		<-release
		_, raiseErr = raiser.UpdateUser(t.Context(), "alice", func(u *storage.User) error {
			u.TokenEpoch++
			u.UpdatedAt = at
			return nil
		})
	})
	close(release)
	wg.Wait()
	if raiseErr != nil {
		t.Fatalf("UpdateUser(raise epoch) = %v", raiseErr)
	}
	for i, err := range errs {
		id := fmt.Sprintf("s%02d", i)
		switch {
		case err == nil:
			if got := mustSession(t, grants, id); !got.RevokedAt.Equal(at) {
				t.Errorf("grant %s of epoch 0 stored and not revoked by the raise: RevokedAt %v, want %v", id, got.RevokedAt, at)
			}
		case errors.Is(err, storage.ErrGrantStale):
			assertNoSession(t, grants, id)
		default:
			t.Errorf("CreateSession(%s) = %v, want nil or ErrGrantStale", id, err)
		}
	}
	for _, s := range []storage.Store{grants, raiser} {
		if live, err := s.ListSessions(t.Context(), u.ID, at); err != nil || len(live) != 0 {
			t.Errorf("ListSessions(alice, %v) = %d sessions, %v; want none of the old epoch", at, len(live), err)
		}
	}
}
