package users

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// runStoreTests is the conformance suite every Store implementation passes.
// newStore returns an empty store and arranges for it to be closed.
func runStoreTests(t *testing.T, newStore func(t *testing.T) Store) {
	t.Run("create_then_get_by_username_and_id", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		want := testUser(t, "alice")
		want.Scopes = []string{"me", "users:read"}
		want.Disabled = true
		if err := s.CreateUser(ctx, want); err != nil {
			t.Fatalf("CreateUser(%q) = %v", want.Username, err)
		}
		if want.CreatedAt.IsZero() || want.UpdatedAt.IsZero() {
			t.Errorf("CreateUser left times zero: created %v, updated %v", want.CreatedAt, want.UpdatedAt)
		}
		byName, err := s.UserByUsername(ctx, "alice")
		if err != nil {
			t.Fatalf("UserByUsername(alice) = %v", err)
		}
		if !reflect.DeepEqual(byName, want) {
			t.Errorf("UserByUsername(alice) = %+v, want %+v", byName, want)
		}
		byID, err := s.UserByID(ctx, want.ID)
		if err != nil {
			t.Fatalf("UserByID(%q) = %v", want.ID, err)
		}
		if !reflect.DeepEqual(byID, want) {
			t.Errorf("UserByID(%q) = %+v, want %+v", want.ID, byID, want)
		}
	})

	t.Run("no_scopes_round_trip_as_empty_slice", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		u := testUser(t, "alice")
		u.Scopes = nil
		mustCreate(t, s, u)
		got := mustGet(t, s, "alice")
		if got.Scopes == nil || len(got.Scopes) != 0 {
			t.Errorf("Scopes = %#v, want []string{}", got.Scopes)
		}
		if err := s.DeleteUser(ctx, "alice"); err != nil {
			t.Fatalf("DeleteUser(alice) = %v", err)
		}
	})

	t.Run("duplicate_username_is_ErrUsernameTaken", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		mustCreate(t, s, testUser(t, "alice"))
		dup := testUser(t, "alice")
		if got := s.CreateUser(ctx, dup); !errors.Is(got, ErrUsernameTaken) {
			t.Errorf("second CreateUser(alice) = %v, want ErrUsernameTaken", got)
		}
		if n, err := s.CountUsers(ctx); err != nil || n != 1 {
			t.Errorf("CountUsers() = %d, %v; want 1, nil", n, err)
		}
	})

	t.Run("rename_onto_existing_username_is_ErrUsernameTaken", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		mustCreate(t, s, testUser(t, "alice"))
		mustCreate(t, s, testUser(t, "bob"))
		_, err := s.UpdateUser(ctx, "bob", func(u *User) error {
			u.Username = "alice"
			return nil
		})
		if !errors.Is(err, ErrUsernameTaken) {
			t.Errorf("UpdateUser(bob → alice) = %v, want ErrUsernameTaken", err)
		}
	})

	t.Run("missing_user_is_ErrNotFound", func(t *testing.T) {
		s := newStore(t)
		mustCreate(t, s, testUser(t, "alice"))
		tests := []struct {
			name string
			op   func(ctx context.Context) error
		}{
			{"UserByUsername", func(ctx context.Context) error { _, err := s.UserByUsername(ctx, "nobody"); return err }},
			{"UserByID", func(ctx context.Context) error { _, err := s.UserByID(ctx, "no-such-id"); return err }},
			{"UpdateUser", func(ctx context.Context) error {
				_, err := s.UpdateUser(ctx, "nobody", func(*User) error { return nil })
				return err
			}},
			{"DeleteUser", func(ctx context.Context) error { return s.DeleteUser(ctx, "nobody") }},
		}
		for _, tt := range tests {
			if got := tt.op(t.Context()); !errors.Is(got, ErrNotFound) {
				t.Errorf("%s(nobody) = %v, want ErrNotFound", tt.name, got)
			}
		}
	})

	t.Run("delete_removes_the_user", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		u := testUser(t, "alice")
		mustCreate(t, s, u)
		if err := s.DeleteUser(ctx, "alice"); err != nil {
			t.Fatalf("DeleteUser(alice) = %v", err)
		}
		if _, err := s.UserByID(ctx, u.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("UserByID after delete = %v, want ErrNotFound", err)
		}
		if err := s.DeleteUser(ctx, "alice"); !errors.Is(err, ErrNotFound) {
			t.Errorf("second DeleteUser(alice) = %v, want ErrNotFound", err)
		}
	})

	t.Run("list_orders_by_username_and_pages_after", func(t *testing.T) {
		s := newStore(t)
		for _, name := range []string{"dave", "alice", "carol", "erin", "bob"} {
			mustCreate(t, s, testUser(t, name))
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
			users, err := s.ListUsers(t.Context(), tt.after, tt.limit)
			if err != nil {
				t.Fatalf("ListUsers(%q, %d) = %v", tt.after, tt.limit, err)
			}
			got := []string{}
			for _, u := range users {
				got = append(got, u.Username)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ListUsers(%q, %d) = %v, want %v", tt.after, tt.limit, got, tt.want)
			}
		}
	})

	t.Run("count_follows_creates_and_deletes", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		assertCount(t, s, 0)
		mustCreate(t, s, testUser(t, "alice"))
		mustCreate(t, s, testUser(t, "bob"))
		assertCount(t, s, 2)
		if err := s.DeleteUser(ctx, "alice"); err != nil {
			t.Fatalf("DeleteUser(alice) = %v", err)
		}
		assertCount(t, s, 1)
	})

	t.Run("times_round_trip_as_the_same_instant_in_utc", func(t *testing.T) {
		s := newStore(t)
		zone := time.FixedZone("UTC+5:30", 5*3600+1800)
		created := time.Date(2024, 2, 29, 23, 59, 58, 123456789, zone)
		updated := created.Add(90 * time.Minute)
		u := testUser(t, "alice")
		u.CreatedAt, u.UpdatedAt = created, updated
		mustCreate(t, s, u)
		got := mustGet(t, s, "alice")
		for _, c := range []struct {
			name      string
			got, want time.Time
		}{
			{"CreatedAt", got.CreatedAt, created},
			{"UpdatedAt", got.UpdatedAt, updated},
		} {
			if !c.got.Equal(c.want) || c.got.Location() != time.UTC {
				t.Errorf("%s = %v, want %v in UTC", c.name, c.got, c.want.UTC())
			}
		}
	})

	t.Run("update_saves_fn_changes_and_sets_updated_at", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		u := testUser(t, "alice")
		u.CreatedAt = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
		u.UpdatedAt = u.CreatedAt
		mustCreate(t, s, u)
		got, err := s.UpdateUser(ctx, "alice", func(u *User) error {
			u.Disabled = true
			u.Scopes = []string{"me"}
			u.PasswordHash = "new-hash"
			return nil
		})
		if err != nil {
			t.Fatalf("UpdateUser(alice) = %v", err)
		}
		if !got.UpdatedAt.After(u.UpdatedAt) {
			t.Errorf("UpdatedAt = %v, want after %v", got.UpdatedAt, u.UpdatedAt)
		}
		if !got.CreatedAt.Equal(u.CreatedAt) {
			t.Errorf("CreatedAt = %v, want unchanged %v", got.CreatedAt, u.CreatedAt)
		}
		stored := mustGet(t, s, "alice")
		if !reflect.DeepEqual(stored, got) {
			t.Errorf("stored %+v, UpdateUser returned %+v", stored, got)
		}
		if !stored.Disabled || stored.PasswordHash != "new-hash" || !slices.Equal(stored.Scopes, []string{"me"}) {
			t.Errorf("stored %+v, want disabled, new-hash, [me]", stored)
		}

		// An UpdatedAt set by fn (a caller's clock) is kept.
		at := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
		got, err = s.UpdateUser(ctx, "alice", func(u *User) error { u.UpdatedAt = at; return nil })
		if err != nil {
			t.Fatalf("UpdateUser(alice) = %v", err)
		}
		if !got.UpdatedAt.Equal(at) || !mustGet(t, s, "alice").UpdatedAt.Equal(at) {
			t.Errorf("UpdatedAt = %v, want fn's %v", got.UpdatedAt, at)
		}
	})

	t.Run("update_fn_error_is_returned_and_leaves_the_row_unchanged", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		mustCreate(t, s, testUser(t, "alice"))
		before := mustGet(t, s, "alice")
		errVeto := errors.New("veto")
		_, err := s.UpdateUser(ctx, "alice", func(u *User) error {
			u.Disabled = true
			u.PasswordHash = "changed"
			u.Scopes = []string{"users:write"}
			return errVeto
		})
		if err != errVeto {
			t.Errorf("UpdateUser with failing fn = %v, want fn's error unchanged", err)
		}
		if after := mustGet(t, s, "alice"); !reflect.DeepEqual(after, before) {
			t.Errorf("after failed update %+v, want unchanged %+v", after, before)
		}
	})

	t.Run("concurrent_updates_lose_no_write", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		u := testUser(t, "alice")
		u.Scopes = []string{}
		mustCreate(t, s, u)
		const n = 20
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				scope := fmt.Sprintf("scope%02d", i)
				_, err := s.UpdateUser(ctx, "alice", func(u *User) error {
					u.Scopes = append(u.Scopes, scope)
					slices.Sort(u.Scopes)
					return nil
				})
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("concurrent UpdateUser = %v", err)
			}
		}
		got := mustGet(t, s, "alice").Scopes
		var want []string
		for i := range n {
			want = append(want, fmt.Sprintf("scope%02d", i))
		}
		if !slices.Equal(got, want) {
			t.Errorf("after %d concurrent appends Scopes = %v, want %v", n, got, want)
		}
	})

	t.Run("ensure_signing_key_concurrent_callers_share_one_key", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		const n = 20
		var created atomic.Int32
		create := func() (SigningKey, error) {
			i := created.Add(1)
			return SigningKey{ID: fmt.Sprintf("key-%d", i), Algorithm: "EdDSA", Private: []byte{byte(i)}}, nil
		}
		var wg sync.WaitGroup
		keys := make([]SigningKey, n)
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() { keys[i], errs[i] = s.EnsureSigningKey(ctx, "EdDSA", create) })
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("EnsureSigningKey #%d = %v", i, errs[i])
			}
			if !reflect.DeepEqual(keys[i], keys[0]) {
				t.Errorf("EnsureSigningKey #%d = %+v, want the same key as #0 %+v", i, keys[i], keys[0])
			}
		}
		if got := created.Load(); got != 1 {
			t.Errorf("create called %d times, want 1", got)
		}
		stored, err := s.SigningKeys(ctx)
		if err != nil {
			t.Fatalf("SigningKeys() = %v", err)
		}
		if len(stored) != 1 || !reflect.DeepEqual(stored[0], keys[0]) {
			t.Errorf("SigningKeys() = %+v, want exactly [%+v]", stored, keys[0])
		}
	})

	t.Run("ensure_signing_key_create_error_stores_nothing", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		errBoom := errors.New("boom")
		_, err := s.EnsureSigningKey(ctx, "RS256", func() (SigningKey, error) { return SigningKey{}, errBoom })
		if !errors.Is(err, errBoom) {
			t.Errorf("EnsureSigningKey with failing create = %v, want %v", err, errBoom)
		}
		if keys, err := s.SigningKeys(ctx); err != nil || len(keys) != 0 {
			t.Errorf("SigningKeys() = %v, %v; want none", keys, err)
		}
	})

	t.Run("signing_keys_newest_first", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		for _, k := range []SigningKey{
			{ID: "rs", Algorithm: "RS256", Private: []byte("r"), CreatedAt: base},
			{ID: "es", Algorithm: "ES256", Private: []byte("e"), CreatedAt: base.Add(time.Hour)},
			{ID: "ed", Algorithm: "EdDSA", Private: []byte("d"), CreatedAt: base.Add(-time.Hour)},
		} {
			got, err := s.EnsureSigningKey(ctx, k.Algorithm, func() (SigningKey, error) { return k, nil })
			if err != nil {
				t.Fatalf("EnsureSigningKey(%s) = %v", k.Algorithm, err)
			}
			if !reflect.DeepEqual(got, k) {
				t.Errorf("EnsureSigningKey(%s) = %+v, want %+v", k.Algorithm, got, k)
			}
		}
		keys, err := s.SigningKeys(ctx)
		if err != nil {
			t.Fatalf("SigningKeys() = %v", err)
		}
		var got []string
		for _, k := range keys {
			got = append(got, k.ID)
		}
		if want := []string{"es", "rs", "ed"}; !slices.Equal(got, want) {
			t.Errorf("SigningKeys() IDs = %v, want %v", got, want)
		}
		// An existing key is returned without calling create.
		again, err := s.EnsureSigningKey(ctx, "RS256", func() (SigningKey, error) {
			t.Error("create called although an RS256 key exists")
			return SigningKey{}, errors.New("unexpected")
		})
		if err != nil || again.ID != "rs" {
			t.Errorf("EnsureSigningKey(RS256) again = %+v, %v; want key rs", again, err)
		}
	})

	t.Run("ping", func(t *testing.T) {
		if err := newStore(t).Ping(t.Context()); err != nil {
			t.Errorf("Ping() = %v", err)
		}
	})
}

var testUserSeq atomic.Int64

// testUser returns a user with a unique ID and the given username, ready
// for Store.CreateUser.
func testUser(t *testing.T, username string) *User {
	t.Helper()
	return &User{
		ID:           fmt.Sprintf("id-%s-%d", username, testUserSeq.Add(1)),
		Username:     username,
		PasswordHash: "hash-of-" + username,
		Scopes:       []string{"me"},
	}
}

func mustCreate(t *testing.T, s Store, u *User) {
	t.Helper()
	if err := s.CreateUser(t.Context(), u); err != nil {
		t.Fatalf("CreateUser(%q) = %v", u.Username, err)
	}
}

func mustGet(t *testing.T, s Store, username string) *User {
	t.Helper()
	u, err := s.UserByUsername(t.Context(), username)
	if err != nil {
		t.Fatalf("UserByUsername(%q) = %v", username, err)
	}
	return u
}

func assertCount(t *testing.T, s Store, want int) {
	t.Helper()
	got, err := s.CountUsers(t.Context())
	if err != nil || got != want {
		t.Errorf("CountUsers() = %d, %v; want %d, nil", got, err, want)
	}
}
