package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// runUserTests is the UserStore part of the suite.
func runUserTests(t *testing.T, newStore func(t *testing.T) storage.Store) {
	t.Run("keep_refuses_taking_a_scope_from_its_last_enabled_holder", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		for _, name := range []string{"root", "ops", "retired"} {
			u := newUser(t, name)
			u.Scopes = []string{"admin", "me"}
			u.Disabled = name == "retired" // a disabled holder does not count
			mustCreateUser(t, s, u)
		}
		narrow := func(u *storage.User) error { u.Scopes = []string{"me"}; return nil }
		disable := func(u *storage.User) error { u.Disabled = true; return nil }
		// Two enabled holders: one may go.
		if _, err := s.UpdateUser(ctx, "ops", narrow, "admin"); err != nil {
			t.Fatalf("UpdateUser(ops, narrow, keep admin) with root holding it = %v", err)
		}
		// root is now the last: no narrowing, disabling or deleting it.
		for what, fn := range map[string]func(*storage.User) error{"narrow": narrow, "disable": disable} {
			if _, err := s.UpdateUser(ctx, "root", fn, "other", "admin"); !errors.Is(err, storage.ErrLastHolder) {
				t.Errorf("UpdateUser(root, %s, keep admin) = %v, want ErrLastHolder", what, err)
			}
		}
		if err := s.DeleteUser(ctx, "root", base, nil, "admin"); !errors.Is(err, storage.ErrLastHolder) {
			t.Errorf("DeleteUser(root, keep admin) = %v, want ErrLastHolder", err)
		}
		if got := mustUser(t, s, "root"); !got.Holds("admin") || got.TokenEpoch != 0 {
			t.Errorf("root after the refusals = %+v, want unchanged", got)
		}
		// A change that keeps the scope, or one without keep, goes through.
		if _, err := s.UpdateUser(ctx, "root", func(u *storage.User) error { u.Scopes = append(u.Scopes, "x"); return nil }, "admin"); err != nil {
			t.Errorf("UpdateUser(root, add a scope, keep admin) = %v", err)
		}
		if _, err := s.UpdateUser(ctx, "retired", func(u *storage.User) error { u.Scopes = nil; return nil }, "admin"); err != nil {
			t.Errorf("UpdateUser(retired, narrow, keep admin): retired holds nothing enabled = %v", err)
		}
		if _, err := s.UpdateUser(ctx, "root", narrow); err != nil {
			t.Errorf("UpdateUser(root, narrow) without keep = %v", err)
		}
	})

	t.Run("delete_check_sees_the_stored_user_and_its_error_deletes_nothing", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		u := newUser(t, "alice")
		mustCreateUser(t, s, u)
		refuse := errors.New("refused")
		var saw *storage.User
		err := s.DeleteUser(ctx, "alice", base, func(got *storage.User) error { saw = got; return refuse })
		if !errors.Is(err, refuse) {
			t.Errorf("DeleteUser(alice) with a refusing check = %v, want its error", err)
		}
		if saw == nil || saw.ID != u.ID || !slices.Equal(saw.Scopes, u.Scopes) {
			t.Errorf("the check saw %+v, want alice as stored", saw)
		}
		mustUser(t, s, "alice")
		if err := s.DeleteUser(ctx, "alice", base, func(*storage.User) error { return nil }); err != nil {
			t.Fatalf("DeleteUser(alice) with an accepting check = %v", err)
		}
		if _, err := s.UserByUsername(ctx, "alice"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("alice after the delete: %v, want ErrNotFound", err)
		}
	})

	t.Run("create_then_get_by_username_and_id_round_trips_every_field", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		want := newUser(t, "alice")
		want.CreatedAt, want.UpdatedAt = time.Time{}, time.Time{}
		want.Scopes = []string{"me", "users:read"}
		want.Disabled = true
		want.TokenEpoch = 3
		if err := s.CreateUser(ctx, want); err != nil {
			t.Fatalf("CreateUser(alice) = %v", err)
		}
		// Zero times come from the store's clock, and u holds them as stored.
		if want.CreatedAt.IsZero() || want.UpdatedAt.IsZero() {
			t.Errorf("CreateUser left times zero: created %v, updated %v", want.CreatedAt, want.UpdatedAt)
		}
		got := mustUser(t, s, "alice")
		if !reflect.DeepEqual(got, want) {
			t.Errorf("UserByUsername(alice) = %+v, want %+v", got, want)
		}
		got, err := s.UserByID(ctx, want.ID)
		if err != nil {
			t.Fatalf("UserByID(%q) = %v", want.ID, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("UserByID(%q) = %+v, want %+v", want.ID, got, want)
		}
	})

	t.Run("times_round_trip_as_the_same_instant_in_utc", func(t *testing.T) {
		s := newStore(t)
		zone := time.FixedZone("UTC+5:30", 5*3600+1800)
		created := time.Date(2024, 2, 29, 23, 59, 58, 123456789, zone)
		updated := created.Add(90 * time.Minute)
		u := newUser(t, "alice")
		u.CreatedAt, u.UpdatedAt = created, updated
		mustCreateUser(t, s, u)
		got := mustUser(t, s, "alice")
		assertUTC(t, "CreatedAt", got.CreatedAt, created)
		assertUTC(t, "UpdatedAt", got.UpdatedAt, updated)
	})

	t.Run("no_scopes_round_trip_as_empty_slice", func(t *testing.T) {
		s := newStore(t)
		u := newUser(t, "alice")
		u.Scopes = nil
		mustCreateUser(t, s, u)
		if got := mustUser(t, s, "alice"); got.Scopes == nil || len(got.Scopes) != 0 {
			t.Errorf("Scopes = %#v, want []string{}", got.Scopes)
		}
	})

	t.Run("duplicate_username_is_ErrUsernameTaken", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		first := newUser(t, "alice")
		mustCreateUser(t, s, first)
		if got := s.CreateUser(ctx, newUser(t, "alice")); !errors.Is(got, storage.ErrUsernameTaken) {
			t.Errorf("second CreateUser(alice) = %v, want ErrUsernameTaken", got)
		}
		if got := mustUser(t, s, "alice"); got.ID != first.ID {
			t.Errorf("alice has ID %q after the refused create, want the first %q", got.ID, first.ID)
		}
		if n, err := s.CountUsers(ctx); err != nil || n != 1 {
			t.Errorf("CountUsers() = %d, %v; want 1, nil", n, err)
		}
	})

	t.Run("create_users_stores_all_in_one_transaction", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		batch := []*storage.User{newUser(t, "alice"), newUser(t, "bob")}
		batch[1].Disabled, batch[1].Scopes = true, []string{"me"}
		if err := s.CreateUsers(ctx, batch); err != nil {
			t.Fatalf("CreateUsers = %v", err)
		}
		for _, want := range batch {
			if got := mustUser(t, s, want.Username); !reflect.DeepEqual(got, want) {
				t.Errorf("UserByUsername(%s) = %+v, want %+v", want.Username, got, want)
			}
		}
	})

	t.Run("create_users_with_a_taken_username_stores_none_and_names_it", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		mustCreateUser(t, s, newUser(t, "carol"))
		err := s.CreateUsers(ctx, []*storage.User{newUser(t, "alice"), newUser(t, "bob"), newUser(t, "carol"), newUser(t, "dave")})
		var item *storage.ItemError
		if !errors.As(err, &item) || item.Index != 2 || !errors.Is(err, storage.ErrUsernameTaken) {
			t.Fatalf("CreateUsers = %v, want an *ItemError for index 2 wrapping ErrUsernameTaken", err)
		}
		if n, err := s.CountUsers(ctx); err != nil || n != 1 {
			t.Errorf("CountUsers() = %d, %v after the refused batch; want 1 (carol alone)", n, err)
		}
		// Two of the same name in one batch: the second is the one named.
		err = s.CreateUsers(ctx, []*storage.User{newUser(t, "erin"), newUser(t, "erin")})
		if !errors.As(err, &item) || item.Index != 1 || !errors.Is(err, storage.ErrUsernameTaken) {
			t.Fatalf("CreateUsers(erin, erin) = %v, want index 1 taken", err)
		}
		if _, err := s.UserByUsername(ctx, "erin"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("erin after the refused batch: %v, want ErrNotFound", err)
		}
	})

	t.Run("rename_onto_existing_username_is_ErrUsernameTaken", func(t *testing.T) {
		s := newStore(t)
		mustCreateUser(t, s, newUser(t, "alice"))
		mustCreateUser(t, s, newUser(t, "bob"))
		_, err := s.UpdateUser(t.Context(), "bob", func(u *storage.User) error {
			u.Username = "alice"
			return nil
		})
		if !errors.Is(err, storage.ErrUsernameTaken) {
			t.Errorf("UpdateUser(bob → alice) = %v, want ErrUsernameTaken", err)
		}
		if got := mustUser(t, s, "bob"); got.Username != "bob" {
			t.Errorf("bob after the refused rename = %+v", got)
		}
	})

	t.Run("rename_moves_the_user_to_its_new_username", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		u := newUser(t, "alice")
		mustCreateUser(t, s, u)
		mustUpdateUser(t, s, "alice", func(u *storage.User) error { u.Username = "alicia"; return nil })
		if got := mustUser(t, s, "alicia"); got.ID != u.ID {
			t.Errorf("UserByUsername(alicia).ID = %q, want %q", got.ID, u.ID)
		}
		if _, err := s.UserByUsername(ctx, "alice"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("UserByUsername(alice) after the rename = %v, want ErrNotFound", err)
		}
		// The old name is free again.
		mustCreateUser(t, s, newUser(t, "alice"))
	})

	t.Run("missing_user_is_ErrNotFound", func(t *testing.T) {
		s := newStore(t)
		mustCreateUser(t, s, newUser(t, "alice"))
		tests := []struct {
			name string
			op   func(ctx context.Context) error
		}{
			{"UserByUsername", func(ctx context.Context) error { _, err := s.UserByUsername(ctx, "nobody"); return err }},
			{"UserByID", func(ctx context.Context) error { _, err := s.UserByID(ctx, "no-such-id"); return err }},
			{"UpdateUser", func(ctx context.Context) error {
				_, err := s.UpdateUser(ctx, "nobody", func(*storage.User) error {
					t.Error("UpdateUser(nobody) called fn")
					return nil
				})
				return err
			}},
			{"DeleteUser", func(ctx context.Context) error { return s.DeleteUser(ctx, "nobody", base, nil) }},
		}
		for _, tt := range tests {
			cursor := lastChange(t, s)
			if got := tt.op(t.Context()); !errors.Is(got, storage.ErrNotFound) {
				t.Errorf("%s(nobody) = %v, want ErrNotFound", tt.name, got)
			}
			assertNoChanges(t, s, cursor, tt.name+"(nobody)")
		}
	})

	t.Run("delete_removes_the_user", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		u := newUser(t, "alice")
		mustCreateUser(t, s, u)
		mustCreateUser(t, s, newUser(t, "bob"))
		if err := s.DeleteUser(ctx, "alice", base, nil); err != nil {
			t.Fatalf("DeleteUser(alice) = %v", err)
		}
		if _, err := s.UserByID(ctx, u.ID); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("UserByID after delete = %v, want ErrNotFound", err)
		}
		if _, err := s.UserByUsername(ctx, "alice"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("UserByUsername after delete = %v, want ErrNotFound", err)
		}
		if err := s.DeleteUser(ctx, "alice", base, nil); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("second DeleteUser(alice) = %v, want ErrNotFound", err)
		}
		mustUser(t, s, "bob")
	})

	t.Run("list_orders_by_username_and_pages_after", func(t *testing.T) {
		s := newStore(t)
		for _, name := range []string{"dave", "alice", "carol", "erin", "bob"} {
			mustCreateUser(t, s, newUser(t, name))
		}
		tests := []struct {
			after string
			limit int
			want  []string
		}{
			{"", 2, []string{"alice", "bob"}},
			{"bob", 2, []string{"carol", "dave"}},
			{"dave", 2, []string{"erin"}},
			{"erin", 2, []string{}},
			{"", 10, []string{"alice", "bob", "carol", "dave", "erin"}},
			{"b", 1, []string{"bob"}}, // after need not be an existing username
			{"", 0, []string{}},
		}
		for _, tt := range tests {
			got := listUsernames(t, s, tt.after, tt.limit)
			if !slices.Equal(got, tt.want) {
				t.Errorf("ListUsers(%q, %d) = %v, want %v", tt.after, tt.limit, got, tt.want)
			}
		}
	})

	t.Run("list_orders_usernames_bytewise_not_by_collation", func(t *testing.T) {
		s := newStore(t)
		for _, name := range []string{"bob", "élan", "Bob", "alice", "_x", "Zed"} {
			mustCreateUser(t, s, newUser(t, name))
		}
		tests := []struct {
			after string
			limit int
			want  []string
		}{
			{"", 10, []string{"Bob", "Zed", "_x", "alice", "bob", "élan"}},
			{"Zed", 2, []string{"_x", "alice"}},
			{"bob", 10, []string{"élan"}},
			{"a", 10, []string{"alice", "bob", "élan"}},
		}
		for _, tt := range tests {
			if got := listUsernames(t, s, tt.after, tt.limit); !slices.Equal(got, tt.want) {
				t.Errorf("ListUsers(%q, %d) = %v, want %v (bytewise)", tt.after, tt.limit, got, tt.want)
			}
		}
	})

	t.Run("count_follows_creates_and_deletes", func(t *testing.T) {
		s := newStore(t)
		assertUserCount(t, s, 0)
		mustCreateUser(t, s, newUser(t, "alice"))
		mustCreateUser(t, s, newUser(t, "bob"))
		assertUserCount(t, s, 2)
		if err := s.DeleteUser(t.Context(), "alice", base, nil); err != nil {
			t.Fatalf("DeleteUser(alice) = %v", err)
		}
		assertUserCount(t, s, 1)
	})

	t.Run("count_enabled_with_scope_counts_exact_scopes_of_enabled_users", func(t *testing.T) {
		s := newStore(t)
		for _, u := range []struct {
			name     string
			scopes   []string
			disabled bool
		}{
			{"admin", []string{"me", "users:write"}, false},
			{"other", []string{"users:write"}, false},
			{"off", []string{"users:write"}, true},
			{"near", []string{"users:writer", "xusers:write", "users:writ"}, false},
			{"plain", []string{"me"}, false},
		} {
			nu := newUser(t, u.name)
			nu.Scopes, nu.Disabled = u.scopes, u.disabled
			mustCreateUser(t, s, nu)
		}
		tests := []struct {
			scope string
			want  int
		}{
			{"users:write", 2},
			{"users:writer", 1},
			{"me", 2},
			{"keys:write", 0},
			{"users%", 0}, // no pattern: a LIKE wildcard matches nothing
			{"users_write", 0},
			{"", 0},
		}
		for _, tt := range tests {
			got, err := s.CountEnabledWithScope(t.Context(), tt.scope)
			if err != nil || got != tt.want {
				t.Errorf("CountEnabledWithScope(%q) = %d, %v; want %d, nil", tt.scope, got, err, tt.want)
			}
		}
	})

	t.Run("update_saves_fn_changes_and_sets_updated_at", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		u := newUser(t, "alice")
		mustCreateUser(t, s, u)
		var seen *storage.User
		got, err := s.UpdateUser(ctx, "alice", func(u *storage.User) error {
			seen = cloneUser(u)
			u.Disabled = true
			u.Scopes = []string{"me", "users:read"}
			u.PasswordHash = "new-hash"
			return nil
		})
		if err != nil {
			t.Fatalf("UpdateUser(alice) = %v", err)
		}
		if !reflect.DeepEqual(seen, u) {
			t.Errorf("fn got %+v, want the stored %+v", seen, u)
		}
		// An unchanged UpdatedAt comes from the store's clock.
		if !got.UpdatedAt.After(u.UpdatedAt) || got.UpdatedAt.Location() != time.UTC {
			t.Errorf("UpdatedAt = %v, want after %v in UTC", got.UpdatedAt, u.UpdatedAt)
		}
		stored := mustUser(t, s, "alice")
		if !reflect.DeepEqual(stored, got) {
			t.Errorf("stored %+v, UpdateUser returned %+v", stored, got)
		}
		if !stored.Disabled || stored.PasswordHash != "new-hash" || !slices.Equal(stored.Scopes, []string{"me", "users:read"}) {
			t.Errorf("stored %+v, want disabled, new-hash, [me users:read]", stored)
		}

		// An UpdatedAt set by fn (a caller's clock) is kept.
		at := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
		got = mustUpdateUser(t, s, "alice", func(u *storage.User) error { u.UpdatedAt = at; return nil })
		if !got.UpdatedAt.Equal(at) || !mustUser(t, s, "alice").UpdatedAt.Equal(at) {
			t.Errorf("UpdatedAt = %v, want fn's %v", got.UpdatedAt, at)
		}
	})

	t.Run("update_cannot_change_id_or_created_at", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		u := newUser(t, "alice")
		mustCreateUser(t, s, u)
		got, err := s.UpdateUser(ctx, "alice", func(u *storage.User) error {
			u.ID = "another-id"
			u.CreatedAt = base.Add(time.Hour)
			return nil
		})
		// Refusing the update or ignoring the change both keep the contract.
		if err == nil && (got.ID != u.ID || !got.CreatedAt.Equal(u.CreatedAt)) {
			t.Errorf("UpdateUser returned ID %q, CreatedAt %v; want %q, %v", got.ID, got.CreatedAt, u.ID, u.CreatedAt)
		}
		if stored := mustUser(t, s, "alice"); stored.ID != u.ID || !stored.CreatedAt.Equal(u.CreatedAt) {
			t.Errorf("stored ID %q, CreatedAt %v; want %q, %v", stored.ID, stored.CreatedAt, u.ID, u.CreatedAt)
		}
		if _, err := s.UserByID(ctx, "another-id"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("UserByID(another-id) = %v, want ErrNotFound", err)
		}
	})

	t.Run("update_fn_error_is_returned_unchanged_and_nothing_is_written", func(t *testing.T) {
		s := newStore(t)
		mustCreateUser(t, s, newUser(t, "alice"))
		mustCreateSession(t, s, newSession(t, "s1", mustUser(t, s, "alice"), "web"), 0)
		before := mustUser(t, s, "alice")
		cursor := lastChange(t, s)
		errVeto := errors.New("veto")
		_, err := s.UpdateUser(t.Context(), "alice", func(u *storage.User) error {
			u.Disabled = true
			u.PasswordHash = "changed"
			u.Scopes = []string{"users:write"}
			u.TokenEpoch++
			return errVeto
		})
		if err != errVeto {
			t.Errorf("UpdateUser with failing fn = %v, want fn's error unchanged", err)
		}
		if after := mustUser(t, s, "alice"); !reflect.DeepEqual(after, before) {
			t.Errorf("after the failed update %+v, want unchanged %+v", after, before)
		}
		if got := mustSession(t, s, "s1"); !got.RevokedAt.IsZero() {
			t.Errorf("the failed epoch raise revoked s1 at %v", got.RevokedAt)
		}
		assertNoChanges(t, s, cursor, "UpdateUser with failing fn")
	})

	t.Run("rfc9700_4.14.2_the_token_epoch_cannot_go_down", func(t *testing.T) {
		s := newStore(t)
		u := newUser(t, "alice")
		u.TokenEpoch = 5
		mustCreateUser(t, s, u)
		if got := mustUser(t, s, "alice"); got.TokenEpoch != 5 {
			t.Fatalf("TokenEpoch = %d after CreateUser, want 5", got.TokenEpoch)
		}
		for _, lower := range []int64{4, 0} {
			got, err := s.UpdateUser(t.Context(), "alice", func(u *storage.User) error { u.TokenEpoch = lower; return nil })
			// Refusing the update or keeping the epoch both keep the contract.
			if err == nil && got.TokenEpoch != 5 {
				t.Errorf("UpdateUser(TokenEpoch = %d) returned epoch %d, want 5", lower, got.TokenEpoch)
			}
			if got := mustUser(t, s, "alice"); got.TokenEpoch != 5 {
				t.Errorf("TokenEpoch = %d after an update to %d, want 5", got.TokenEpoch, lower)
			}
		}
	})

	t.Run("rfc9700_4.14.2_raising_the_epoch_revokes_every_live_session_in_the_same_update", func(t *testing.T) {
		s := newStore(t)
		alice, bob := newUser(t, "alice"), newUser(t, "bob")
		mustCreateUser(t, s, alice)
		mustCreateUser(t, s, bob)
		for _, sess := range []*storage.Session{
			newSession(t, "a1", alice, "web"),
			newSession(t, "a2", alice, "cli"),
			newSession(t, "a3", alice, "web"),
			newSession(t, "b1", bob, "web"),
		} {
			mustCreateSession(t, s, sess, 0)
		}
		earlier := base.Add(10 * time.Second)
		mustRevoke(t, s, alice, "a3", earlier)
		cursor := lastChange(t, s)

		at := base.Add(time.Minute)
		got := raiseEpoch(t, s, "alice", at)
		if got.TokenEpoch != 1 || !got.UpdatedAt.Equal(at) {
			t.Errorf("UpdateUser(raise epoch) = epoch %d, UpdatedAt %v; want 1, %v", got.TokenEpoch, got.UpdatedAt, at)
		}
		for _, tt := range []struct {
			id   string
			want time.Time
		}{
			{"a1", at},
			{"a2", at},
			{"a3", earlier}, // a set RevokedAt is kept
			{"b1", time.Time{}},
		} {
			if got := mustSession(t, s, tt.id).RevokedAt; !got.Equal(tt.want) {
				t.Errorf("Session(%s).RevokedAt = %v, want %v", tt.id, got, tt.want)
			}
		}
		appended := changesAfter(t, s, cursor)
		want := append(entryNames(storage.ChangeSession, "a1", "a2"), entryNames(storage.ChangeUser, alice.ID)...)
		slices.Sort(want)
		if got := entries(appended); !slices.Equal(got, want) {
			t.Errorf("raising the epoch appended %v, want %v", got, want)
		}
		assertChangesAt(t, appended, storage.ChangeSession, at)
		assertChangesAt(t, appended, storage.ChangeUser, at)
		live := liveRevocations(t, s, at)
		for _, id := range []string{"a1", "a2", "a3"} {
			if !slices.Contains(live, storage.ChangeSession+":"+id) {
				t.Errorf("LiveRevocations(%v) = %v, want it to hold session %s", at, live, id)
			}
		}
		if slices.Contains(live, storage.ChangeSession+":b1") {
			t.Errorf("LiveRevocations(%v) = %v holds bob's session", at, live)
		}
	})

	t.Run("rfc9700_4.14.2_an_epoch_raise_on_the_store_clock_revokes_at_the_updated_at_it_set", func(t *testing.T) {
		s := newStore(t)
		alice := newUser(t, "alice")
		mustCreateUser(t, s, alice)
		sess := newSession(t, "a1", alice, "web")
		// Live on the store's clock, which this raise runs on.
		sess.IdleExpiresAt, sess.ExpiresAt = time.Now().Add(time.Hour), time.Now().Add(24*time.Hour)
		mustCreateSession(t, s, sess, 0)
		cursor := lastChange(t, s)
		got := mustUpdateUser(t, s, "alice", func(u *storage.User) error { u.TokenEpoch++; return nil })
		if !got.UpdatedAt.After(alice.UpdatedAt) {
			t.Fatalf("UpdatedAt = %v, want the store's clock, after %v", got.UpdatedAt, alice.UpdatedAt)
		}
		if revoked := mustSession(t, s, "a1").RevokedAt; !revoked.Equal(got.UpdatedAt) {
			t.Errorf("Session(a1).RevokedAt = %v, want the raise's UpdatedAt %v", revoked, got.UpdatedAt)
		}
		appended := changesAfter(t, s, cursor)
		want := append(entryNames(storage.ChangeSession, "a1"), entryNames(storage.ChangeUser, alice.ID)...)
		slices.Sort(want)
		if got := entries(appended); !slices.Equal(got, want) {
			t.Errorf("raising the epoch appended %v, want %v", got, want)
		}
		assertChangesAt(t, appended, storage.ChangeSession, got.UpdatedAt)
	})

	t.Run("update_that_keeps_the_epoch_revokes_nothing_and_appends_a_user_change", func(t *testing.T) {
		s := newStore(t)
		alice := newUser(t, "alice")
		mustCreateUser(t, s, alice)
		mustCreateSession(t, s, newSession(t, "a1", alice, "web"), 0)
		cursor := lastChange(t, s)
		at := base.Add(time.Minute)
		mustUpdateUser(t, s, "alice", func(u *storage.User) error {
			u.Scopes = []string{"me", "users:read"}
			u.UpdatedAt = at
			return nil
		})
		if got := mustSession(t, s, "a1"); !got.RevokedAt.IsZero() {
			t.Errorf("an update that kept the epoch revoked a1 at %v", got.RevokedAt)
		}
		appended := changesAfter(t, s, cursor)
		if got, want := entries(appended), entryNames(storage.ChangeUser, alice.ID); !slices.Equal(got, want) {
			t.Errorf("UpdateUser(scopes) appended %v, want %v", got, want)
		}
		assertChangesAt(t, appended, storage.ChangeUser, at)
	})

	t.Run("every_successful_update_sets_updated_at_and_appends_a_user_change", func(t *testing.T) {
		tests := []struct {
			name string
			fn   func(*storage.User) error
		}{
			{"a_new_password", func(u *storage.User) error { u.PasswordHash = "new-hash"; return nil }},
			{"no_change_at_all", func(*storage.User) error { return nil }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s := newStore(t)
				alice := newUser(t, "alice")
				mustCreateUser(t, s, alice)
				cursor := lastChange(t, s)
				got := mustUpdateUser(t, s, "alice", tt.fn)
				// UpdatedAt was left unchanged: the store's clock sets it.
				if !got.UpdatedAt.After(alice.UpdatedAt) {
					t.Errorf("UpdatedAt = %v, want the store's clock, after %v", got.UpdatedAt, alice.UpdatedAt)
				}
				if stored := mustUser(t, s, "alice"); !stored.UpdatedAt.Equal(got.UpdatedAt) {
					t.Errorf("stored UpdatedAt = %v, UpdateUser returned %v", stored.UpdatedAt, got.UpdatedAt)
				}
				if got, want := entries(changesAfter(t, s, cursor)), entryNames(storage.ChangeUser, alice.ID); !slices.Equal(got, want) {
					t.Errorf("UpdateUser(%s) appended %v, want %v", tt.name, got, want)
				}
			})
		}
	})

	t.Run("delete_user_revokes_its_live_sessions_and_appends_the_changes_in_one_transaction", func(t *testing.T) {
		s := newStore(t)
		alice, bob := newUser(t, "alice"), newUser(t, "bob")
		mustCreateUser(t, s, alice)
		mustCreateUser(t, s, bob)
		idle := newSession(t, "a4", alice, "web")
		idle.IdleExpiresAt = base.Add(30 * time.Second)
		for _, sess := range []*storage.Session{
			newSession(t, "a1", alice, "web"),
			newSession(t, "a2", alice, "cli"),
			newSession(t, "a3", alice, "web"),
			idle,
			newSession(t, "b1", bob, "web"),
		} {
			mustCreateSession(t, s, sess, 0)
		}
		earlier := base.Add(10 * time.Second)
		mustRevoke(t, s, alice, "a3", earlier)
		cursor := lastChange(t, s)

		now := base.Add(time.Minute)
		if err := s.DeleteUser(t.Context(), "alice", now, nil); err != nil {
			t.Fatalf("DeleteUser(alice) = %v", err)
		}
		// The sessions outlive their user, revoked.
		for _, tt := range []struct {
			id   string
			want time.Time
		}{
			{"a1", now},
			{"a2", now},
			{"a3", earlier},
			{"a4", time.Time{}}, // it had ended: not live, not revoked
			{"b1", time.Time{}},
		} {
			if got := mustSession(t, s, tt.id).RevokedAt; !got.Equal(tt.want) {
				t.Errorf("Session(%s).RevokedAt = %v, want %v", tt.id, got, tt.want)
			}
		}
		appended := changesAfter(t, s, cursor)
		want := append(entryNames(storage.ChangeSession, "a1", "a2"), entryNames(storage.ChangeUser, alice.ID)...)
		slices.Sort(want)
		if got := entries(appended); !slices.Equal(got, want) {
			t.Errorf("DeleteUser appended %v, want %v", got, want)
		}
		assertChangesAt(t, appended, storage.ChangeSession, now)
		assertChangesAt(t, appended, storage.ChangeUser, now)
	})

	t.Run("concurrent_updates_lose_no_write", func(t *testing.T) {
		s := newStore(t)
		concurrentUpdatesLoseNoWrite(t, []storage.Store{s})
	})
}

// runUserTwoInstanceTests is the part of the UserStore suite that needs
// two instances on one database.
func runUserTwoInstanceTests(t *testing.T, newPair func(t *testing.T) (a, b storage.Store)) {
	t.Run("concurrent_updates_on_two_instances_lose_no_write", func(t *testing.T) {
		a, b := newPair(t)
		concurrentUpdatesLoseNoWrite(t, []storage.Store{a, b})
	})

	t.Run("a_user_written_on_one_instance_is_read_on_the_other", func(t *testing.T) {
		a, b := newPair(t)
		u := newUser(t, "alice")
		mustCreateUser(t, a, u)
		if got := mustUser(t, b, "alice"); !reflect.DeepEqual(got, u) {
			t.Errorf("UserByUsername(alice) on b = %+v, want %+v", got, u)
		}
		mustUpdateUser(t, b, "alice", func(u *storage.User) error { u.Disabled = true; return nil })
		if got := mustUser(t, a, "alice"); !got.Disabled {
			t.Errorf("alice on a after b disabled her = %+v", got)
		}
		if err := a.DeleteUser(t.Context(), "alice", base, nil); err != nil {
			t.Fatalf("DeleteUser(alice) on a = %v", err)
		}
		if _, err := b.UserByID(t.Context(), u.ID); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("UserByID on b after a deleted alice = %v, want ErrNotFound", err)
		}
	})
}

// concurrentUpdatesLoseNoWrite has 20 goroutines, spread over stores,
// each add a scope to one user: every one must be kept.
func concurrentUpdatesLoseNoWrite(t *testing.T, stores []storage.Store) {
	t.Helper()
	u := newUser(t, "alice")
	u.Scopes = []string{}
	mustCreateUser(t, stores[0], u)
	const n = 20
	errs := make([]error, n)
	release := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-release
			scope := fmt.Sprintf("scope%02d", i)
			_, errs[i] = stores[i%len(stores)].UpdateUser(t.Context(), "alice", func(u *storage.User) error {
				u.Scopes = append(u.Scopes, scope)
				slices.Sort(u.Scopes)
				return nil
			})
		})
	}
	close(release)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent UpdateUser #%d = %v", i, err)
		}
	}
	want := []string{}
	for i := range n {
		want = append(want, fmt.Sprintf("scope%02d", i))
	}
	for i, s := range stores {
		if got := mustUser(t, s, "alice").Scopes; !slices.Equal(got, want) {
			t.Errorf("after %d concurrent appends, store %d reads Scopes %v, want %v", n, i, got, want)
		}
	}
}

func listUsernames(t *testing.T, s storage.Store, after string, limit int) []string {
	t.Helper()
	users, err := s.ListUsers(t.Context(), after, limit)
	if err != nil {
		t.Fatalf("ListUsers(%q, %d) = %v", after, limit, err)
	}
	got := []string{}
	for _, u := range users {
		got = append(got, u.Username)
	}
	return got
}

func assertUserCount(t *testing.T, s storage.Store, want int) {
	t.Helper()
	if got, err := s.CountUsers(t.Context()); err != nil || got != want {
		t.Errorf("CountUsers() = %d, %v; want %d, nil", got, err, want)
	}
}
