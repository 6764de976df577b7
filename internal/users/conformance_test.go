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
		if err := s.DeleteUser(ctx, "alice", time.Now()); err != nil {
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
			{"DeleteUser", func(ctx context.Context) error { return s.DeleteUser(ctx, "nobody", time.Now()) }},
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
		if err := s.DeleteUser(ctx, "alice", time.Now()); err != nil {
			t.Fatalf("DeleteUser(alice) = %v", err)
		}
		if _, err := s.UserByID(ctx, u.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("UserByID after delete = %v, want ErrNotFound", err)
		}
		if err := s.DeleteUser(ctx, "alice", time.Now()); !errors.Is(err, ErrNotFound) {
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
		if err := s.DeleteUser(ctx, "alice", time.Now()); err != nil {
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
			want := k
			want.ActivatesAt = k.CreatedAt // a zero ActivatesAt is set to CreatedAt
			if !reflect.DeepEqual(got, want) {
				t.Errorf("EnsureSigningKey(%s) = %+v, want %+v", k.Algorithm, got, want)
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

	runSigningKeyRotationTests(t, newStore)
	runRefreshTokenTests(t, newStore)
	runRevocationTests(t, newStore)
	runClientStoreTests(t, newStore)
	runLoginAttemptTests(t, newStore)
	runAccountStateTests(t, newStore)
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

func runSigningKeyRotationTests(t *testing.T, newStore func(t *testing.T) Store) {
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	zone := time.FixedZone("UTC-3", -3*3600)

	t.Run("create_signing_key_round_trips_activates_at_and_is_newest", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		first, err := s.EnsureSigningKey(ctx, "EdDSA", func() (SigningKey, error) {
			return SigningKey{ID: "k1", Private: []byte("one"), CreatedAt: base}, nil
		})
		if err != nil {
			t.Fatalf("EnsureSigningKey(EdDSA) = %v", err)
		}
		// A rotation: published now, signing from a day later.
		rotated := SigningKey{
			ID:          "k2",
			Algorithm:   "EdDSA",
			Private:     []byte("two"),
			CreatedAt:   base.Add(time.Hour).In(zone),
			ActivatesAt: base.Add(25 * time.Hour).In(zone),
		}
		if err := s.CreateSigningKey(ctx, rotated); err != nil {
			t.Fatalf("CreateSigningKey(k2) = %v", err)
		}
		keys, err := s.SigningKeys(ctx)
		if err != nil {
			t.Fatalf("SigningKeys() = %v", err)
		}
		if len(keys) != 2 {
			t.Fatalf("SigningKeys() = %+v, want k2 then k1", keys)
		}
		got := keys[0]
		if got.ID != "k2" || !slices.Equal(got.Private, rotated.Private) ||
			!got.CreatedAt.Equal(rotated.CreatedAt) || !got.ActivatesAt.Equal(rotated.ActivatesAt) ||
			got.CreatedAt.Location() != time.UTC || got.ActivatesAt.Location() != time.UTC {
			t.Errorf("SigningKeys()[0] = %+v, want %+v with times in UTC", got, rotated)
		}
		if !reflect.DeepEqual(keys[1], first) {
			t.Errorf("SigningKeys()[1] = %+v, want %+v", keys[1], first)
		}
		newest, err := s.EnsureSigningKey(ctx, "EdDSA", func() (SigningKey, error) {
			t.Error("create called although EdDSA keys exist")
			return SigningKey{}, errors.New("unexpected")
		})
		if err != nil || newest.ID != "k2" {
			t.Errorf("EnsureSigningKey(EdDSA) after rotation = %+v, %v; want the newest key k2", newest, err)
		}
	})

	t.Run("create_signing_key_sets_zero_times_from_created_at_and_the_clock", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		k := SigningKey{ID: "k1", Algorithm: "RS256", Private: []byte("p"), CreatedAt: base}
		if err := s.CreateSigningKey(ctx, k); err != nil {
			t.Fatalf("CreateSigningKey(k1) = %v", err)
		}
		keys, err := s.SigningKeys(ctx)
		if err != nil || len(keys) != 1 {
			t.Fatalf("SigningKeys() = %+v, %v; want one key", keys, err)
		}
		if !keys[0].ActivatesAt.Equal(base) {
			t.Errorf("ActivatesAt = %v, want CreatedAt %v", keys[0].ActivatesAt, base)
		}
		// No times at all: the store's clock sets CreatedAt, and ActivatesAt follows.
		if err := s.CreateSigningKey(ctx, SigningKey{ID: "k2", Algorithm: "RS256", Private: []byte("q")}); err != nil {
			t.Fatalf("CreateSigningKey(k2 without times) = %v", err)
		}
		keys, err = s.SigningKeys(ctx)
		if err != nil || len(keys) != 2 {
			t.Fatalf("SigningKeys() = %+v, %v; want two keys", keys, err)
		}
		if k2 := keys[0]; k2.ID != "k2" || k2.CreatedAt.IsZero() || !k2.ActivatesAt.Equal(k2.CreatedAt) {
			t.Errorf("key created without times = %+v, want k2 newest, CreatedAt set, ActivatesAt = CreatedAt", k2)
		}
		for _, bad := range []SigningKey{
			{Algorithm: "RS256", Private: []byte("p")},
			{ID: "x", Private: []byte("p")},
			{ID: "x", Algorithm: "RS256"},
		} {
			if err := s.CreateSigningKey(ctx, bad); err == nil {
				t.Errorf("CreateSigningKey(%+v) = nil, want an error for the missing field", bad)
			}
		}
	})

	t.Run("create_signing_key_with_a_taken_id_fails_and_keeps_the_first", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		k := SigningKey{ID: "k1", Algorithm: "RS256", Private: []byte("first"), CreatedAt: base}
		if err := s.CreateSigningKey(ctx, k); err != nil {
			t.Fatalf("CreateSigningKey(k1) = %v", err)
		}
		dup := SigningKey{ID: "k1", Algorithm: "RS256", Private: []byte("second"), CreatedAt: base.Add(time.Hour)}
		if err := s.CreateSigningKey(ctx, dup); err == nil {
			t.Errorf("second CreateSigningKey(k1) = nil, want an error")
		}
		keys, err := s.SigningKeys(ctx)
		if err != nil || len(keys) != 1 || string(keys[0].Private) != "first" {
			t.Errorf("SigningKeys() = %+v, %v; want only the first k1", keys, err)
		}
	})

	t.Run("delete_signing_key_removes_only_that_key", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		for i, id := range []string{"old", "new"} {
			k := SigningKey{ID: id, Algorithm: "ES256", Private: []byte(id), CreatedAt: base.Add(time.Duration(i) * time.Hour)}
			if err := s.CreateSigningKey(ctx, k); err != nil {
				t.Fatalf("CreateSigningKey(%s) = %v", id, err)
			}
		}
		if err := s.DeleteSigningKey(ctx, "old"); err != nil {
			t.Fatalf("DeleteSigningKey(old) = %v", err)
		}
		keys, err := s.SigningKeys(ctx)
		if err != nil || len(keys) != 1 || keys[0].ID != "new" {
			t.Errorf("SigningKeys() after deleting old = %+v, %v; want [new]", keys, err)
		}
		for _, id := range []string{"old", "never-existed"} {
			if err := s.DeleteSigningKey(ctx, id); !errors.Is(err, ErrNotFound) {
				t.Errorf("DeleteSigningKey(%s) = %v, want ErrNotFound", id, err)
			}
		}
	})
}

// tokenNow is when the test tokens are issued. They idle-expire an hour
// later and their family a day later; access tokens live 15 minutes.
var tokenNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func newRefreshToken(t *testing.T, hash, family, userID, clientID string) *RefreshToken {
	t.Helper()
	return &RefreshToken{
		Hash:            hash,
		FamilyID:        family,
		UserID:          userID,
		ClientID:        clientID,
		Scopes:          []string{"me"},
		IssuedAt:        tokenNow,
		ExpiresAt:       tokenNow.Add(time.Hour),
		FamilyExpiresAt: tokenNow.Add(24 * time.Hour),
	}
}

func newAccessToken(t *testing.T, jti, userID, family, clientID string) *AccessToken {
	t.Helper()
	return &AccessToken{JTI: jti, UserID: userID, FamilyID: family, ClientID: clientID, ExpiresAt: tokenNow.Add(15 * time.Minute)}
}

func mustCreateRefreshToken(t *testing.T, s Store, rt *RefreshToken) {
	t.Helper()
	if err := s.CreateRefreshToken(t.Context(), rt); err != nil {
		t.Fatalf("CreateRefreshToken(%q) = %v", rt.Hash, err)
	}
}

func mustRecordAccessToken(t *testing.T, s Store, at *AccessToken) {
	t.Helper()
	if err := s.RecordAccessToken(t.Context(), at); err != nil {
		t.Fatalf("RecordAccessToken(%q) = %v", at.JTI, err)
	}
}

func mustRefreshToken(t *testing.T, s Store, hash string) *RefreshToken {
	t.Helper()
	rt, err := s.RefreshToken(t.Context(), hash)
	if err != nil {
		t.Fatalf("RefreshToken(%q) = %v", hash, err)
	}
	return rt
}

func mustAccessToken(t *testing.T, s Store, jti string) *AccessToken {
	t.Helper()
	at, err := s.AccessToken(t.Context(), jti)
	if err != nil {
		t.Fatalf("AccessToken(%q) = %v", jti, err)
	}
	return at
}

// revokedJTIs returns the jtis RevokedAccessTokens(now) lists, in its order.
func revokedJTIs(t *testing.T, s Store, now time.Time) []string {
	t.Helper()
	revs, err := s.RevokedAccessTokens(t.Context(), now)
	if err != nil {
		t.Fatalf("RevokedAccessTokens(%v) = %v", now, err)
	}
	jtis := []string{}
	for _, r := range revs {
		jtis = append(jtis, r.JTI)
	}
	return jtis
}

// successor returns a RotateRefreshToken fn that issues the token hash at
// now, in the old token's family and with its scopes.
func successor(hash string, now time.Time) func(old *RefreshToken) (*RefreshToken, error) {
	return func(old *RefreshToken) (*RefreshToken, error) {
		return &RefreshToken{
			Hash:            hash,
			FamilyID:        old.FamilyID,
			UserID:          old.UserID,
			ClientID:        old.ClientID,
			Scopes:          old.Scopes,
			IssuedAt:        now,
			ExpiresAt:       now.Add(time.Hour),
			FamilyExpiresAt: old.FamilyExpiresAt,
		}, nil
	}
}

// noRotation is a RotateRefreshToken fn for calls that must not reach it.
func noRotation(t *testing.T) func(*RefreshToken) (*RefreshToken, error) {
	t.Helper()
	return func(old *RefreshToken) (*RefreshToken, error) {
		t.Errorf("fn called for token %q, want the rotation refused before", old.Hash)
		return nil, errors.New("unexpected rotation")
	}
}

func mustRotate(t *testing.T, s Store, hash, next string, now time.Time) *RefreshToken {
	t.Helper()
	rt, err := s.RotateRefreshToken(t.Context(), hash, now, successor(next, now))
	if err != nil {
		t.Fatalf("RotateRefreshToken(%q → %q) = %v", hash, next, err)
	}
	return rt
}

func runRefreshTokenTests(t *testing.T, newStore func(t *testing.T) Store) {
	t.Run("refresh_token_round_trips_in_utc", func(t *testing.T) {
		s := newStore(t)
		zone := time.FixedZone("UTC+9", 9*3600)
		rt := &RefreshToken{
			Hash:            "h1",
			FamilyID:        "fam",
			UserID:          "alice-id",
			ClientID:        "web",
			Scopes:          []string{"me", "users:read"},
			IssuedAt:        time.Date(2025, 6, 1, 21, 0, 0, 123456789, zone),
			ExpiresAt:       time.Date(2025, 6, 1, 22, 0, 0, 123456789, zone),
			FamilyExpiresAt: time.Date(2025, 6, 2, 21, 0, 0, 123456789, zone),
		}
		want := *rt
		mustCreateRefreshToken(t, s, rt)
		got := mustRefreshToken(t, s, "h1")
		if !reflect.DeepEqual(got, rt) {
			t.Errorf("RefreshToken(h1) = %+v, CreateRefreshToken left %+v; want them equal", got, rt)
		}
		for _, c := range []struct {
			name      string
			got, want time.Time
		}{
			{"IssuedAt", got.IssuedAt, want.IssuedAt},
			{"ExpiresAt", got.ExpiresAt, want.ExpiresAt},
			{"FamilyExpiresAt", got.FamilyExpiresAt, want.FamilyExpiresAt},
		} {
			if !c.got.Equal(c.want) || c.got.Location() != time.UTC {
				t.Errorf("%s = %v, want %v in UTC", c.name, c.got, c.want.UTC())
			}
		}
		if got.Hash != want.Hash || got.FamilyID != want.FamilyID || got.UserID != want.UserID ||
			got.ClientID != want.ClientID || !slices.Equal(got.Scopes, want.Scopes) {
			t.Errorf("RefreshToken(h1) = %+v, want %+v", got, want)
		}
		if !got.RotatedAt.IsZero() || !got.RevokedAt.IsZero() {
			t.Errorf("new token RotatedAt, RevokedAt = %v, %v; want both zero", got.RotatedAt, got.RevokedAt)
		}
	})

	t.Run("refresh_token_without_scopes_round_trips_as_empty_slice", func(t *testing.T) {
		s := newStore(t)
		rt := newRefreshToken(t, "h1", "fam", "alice-id", "")
		rt.Scopes = nil
		mustCreateRefreshToken(t, s, rt)
		if got := mustRefreshToken(t, s, "h1"); got.Scopes == nil || len(got.Scopes) != 0 || got.ClientID != "" {
			t.Errorf("RefreshToken(h1) = %+v, want no scopes as []string{} and no client", got)
		}
	})

	t.Run("refresh_token_without_identity_or_lifetime_is_refused", func(t *testing.T) {
		tests := []struct {
			name  string
			clear func(rt *RefreshToken)
		}{
			{"no_hash", func(rt *RefreshToken) { rt.Hash = "" }},
			{"no_family", func(rt *RefreshToken) { rt.FamilyID = "" }},
			{"no_user", func(rt *RefreshToken) { rt.UserID = "" }},
			{"no_issued_at", func(rt *RefreshToken) { rt.IssuedAt = time.Time{} }},
			{"no_expires_at", func(rt *RefreshToken) { rt.ExpiresAt = time.Time{} }},
			{"no_family_expires_at", func(rt *RefreshToken) { rt.FamilyExpiresAt = time.Time{} }},
			{"scope_with_a_space", func(rt *RefreshToken) { rt.Scopes = []string{"users read"} }},
		}
		s := newStore(t)
		for _, tt := range tests {
			rt := newRefreshToken(t, "h-"+tt.name, "fam", "alice-id", "web")
			tt.clear(rt)
			if err := s.CreateRefreshToken(t.Context(), rt); err == nil {
				t.Errorf("CreateRefreshToken(%s) = nil, want an error", tt.name)
			}
		}
		if err := s.CreateRefreshToken(t.Context(), nil); err == nil {
			t.Errorf("CreateRefreshToken(nil) = nil, want an error")
		}
	})

	t.Run("refresh_token_hash_taken_is_an_error", func(t *testing.T) {
		s := newStore(t)
		mustCreateRefreshToken(t, s, newRefreshToken(t, "h1", "fam", "alice-id", "web"))
		if err := s.CreateRefreshToken(t.Context(), newRefreshToken(t, "h1", "other", "bob-id", "web")); err == nil {
			t.Errorf("second CreateRefreshToken(h1) = nil, want an error")
		}
		if got := mustRefreshToken(t, s, "h1"); got.UserID != "alice-id" {
			t.Errorf("RefreshToken(h1).UserID = %q, want the first token's alice-id", got.UserID)
		}
	})

	t.Run("unknown_refresh_token_is_ErrNotFound", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.RefreshToken(t.Context(), "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("RefreshToken(nope) = %v, want ErrNotFound", err)
		}
		if _, err := s.RotateRefreshToken(t.Context(), "nope", tokenNow, noRotation(t)); !errors.Is(err, ErrNotFound) {
			t.Errorf("RotateRefreshToken(nope) = %v, want ErrNotFound", err)
		}
	})

	t.Run("rfc9700_rotation_marks_the_old_token_rotated_and_stores_the_successor_in_its_family", func(t *testing.T) {
		s := newStore(t)
		first := newRefreshToken(t, "h1", "fam", "alice-id", "web")
		first.Scopes = []string{"me", "users:read"}
		mustCreateRefreshToken(t, s, first)
		at := tokenNow.Add(10 * time.Minute)
		var seen *RefreshToken
		// The successor leaves FamilyID and FamilyExpiresAt zero: the
		// store fills them in from the old token.
		got, err := s.RotateRefreshToken(t.Context(), "h1", at, func(old *RefreshToken) (*RefreshToken, error) {
			seen = copyRefreshToken(old)
			return &RefreshToken{
				Hash:      "h2",
				UserID:    old.UserID,
				ClientID:  old.ClientID,
				Scopes:    old.Scopes,
				IssuedAt:  at,
				ExpiresAt: at.Add(time.Hour),
			}, nil
		})
		if err != nil {
			t.Fatalf("RotateRefreshToken(h1) = %v", err)
		}
		if !reflect.DeepEqual(seen, first) {
			t.Errorf("fn got old token %+v, want the stored %+v", seen, first)
		}
		want := &RefreshToken{
			Hash:            "h2",
			FamilyID:        "fam",
			UserID:          "alice-id",
			ClientID:        "web",
			Scopes:          []string{"me", "users:read"},
			IssuedAt:        at,
			ExpiresAt:       at.Add(time.Hour),
			FamilyExpiresAt: first.FamilyExpiresAt,
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("RotateRefreshToken(h1) = %+v, want %+v", got, want)
		}
		if stored := mustRefreshToken(t, s, "h2"); !reflect.DeepEqual(stored, want) {
			t.Errorf("RefreshToken(h2) = %+v, want %+v", stored, want)
		}
		old := mustRefreshToken(t, s, "h1")
		if !old.RotatedAt.Equal(at) || !old.RevokedAt.IsZero() {
			t.Errorf("old token RotatedAt, RevokedAt = %v, %v; want %v, zero", old.RotatedAt, old.RevokedAt, at)
		}
		// The successor rotates in turn.
		third := mustRotate(t, s, "h2", "h3", at.Add(time.Minute))
		if third.FamilyID != "fam" {
			t.Errorf("third token FamilyID = %q, want fam", third.FamilyID)
		}
	})

	t.Run("rfc9700_rotation_refuses_a_successor_outside_the_family_and_changes_nothing", func(t *testing.T) {
		tests := []struct {
			name string
			fn   func(old *RefreshToken) (*RefreshToken, error)
		}{
			{"another_family", func(old *RefreshToken) (*RefreshToken, error) {
				next, _ := successor("h2", tokenNow)(old)
				next.FamilyID = "other-fam"
				return next, nil
			}},
			{"extended_family_lifetime", func(old *RefreshToken) (*RefreshToken, error) {
				next, _ := successor("h2", tokenNow)(old)
				next.FamilyExpiresAt = old.FamilyExpiresAt.Add(time.Hour)
				return next, nil
			}},
			{"the_old_hash", func(old *RefreshToken) (*RefreshToken, error) {
				next, _ := successor("h1", tokenNow)(old)
				return next, nil
			}},
			{"no_successor", func(*RefreshToken) (*RefreshToken, error) { return nil, nil }},
			{"successor_without_user", func(old *RefreshToken) (*RefreshToken, error) {
				next, _ := successor("h2", tokenNow)(old)
				next.UserID = ""
				return next, nil
			}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s := newStore(t)
				mustCreateRefreshToken(t, s, newRefreshToken(t, "h1", "fam", "alice-id", "web"))
				before := mustRefreshToken(t, s, "h1")
				_, err := s.RotateRefreshToken(t.Context(), "h1", tokenNow.Add(time.Minute), tt.fn)
				if err == nil || errors.Is(err, ErrTokenReused) || errors.Is(err, ErrTokenInactive) || errors.Is(err, ErrNotFound) {
					t.Errorf("RotateRefreshToken(h1, %s) = %v, want a plain error", tt.name, err)
				}
				if after := mustRefreshToken(t, s, "h1"); !reflect.DeepEqual(after, before) {
					t.Errorf("after refused rotation h1 = %+v, want unchanged %+v", after, before)
				}
				mustRotate(t, s, "h1", "h2", tokenNow.Add(2*time.Minute))
			})
		}
	})

	t.Run("rotation_fn_may_build_the_successor_from_its_argument", func(t *testing.T) {
		s := newStore(t)
		mustCreateRefreshToken(t, s, newRefreshToken(t, "h1", "fam", "alice-id", "web"))
		at := tokenNow.Add(time.Minute)
		got, err := s.RotateRefreshToken(t.Context(), "h1", at, func(old *RefreshToken) (*RefreshToken, error) {
			old.Hash, old.IssuedAt, old.ExpiresAt = "h2", at, at.Add(time.Hour)
			return old, nil
		})
		if err != nil {
			t.Fatalf("RotateRefreshToken(h1) with fn reusing its argument = %v", err)
		}
		if got.Hash != "h2" || got.FamilyID != "fam" {
			t.Errorf("successor = %+v, want h2 in family fam", got)
		}
		if old := mustRefreshToken(t, s, "h1"); !old.RotatedAt.Equal(at) {
			t.Errorf("old token RotatedAt = %v, want %v", old.RotatedAt, at)
		}
	})

	t.Run("rotation_fn_error_is_returned_and_changes_nothing", func(t *testing.T) {
		s := newStore(t)
		mustCreateRefreshToken(t, s, newRefreshToken(t, "h1", "fam", "alice-id", "web"))
		before := mustRefreshToken(t, s, "h1")
		errVeto := errors.New("user disabled meanwhile")
		_, err := s.RotateRefreshToken(t.Context(), "h1", tokenNow.Add(time.Minute), func(old *RefreshToken) (*RefreshToken, error) {
			old.Scopes = append(old.Scopes, "users:write") // must not leak into the store
			return nil, errVeto
		})
		if err != errVeto {
			t.Errorf("RotateRefreshToken with failing fn = %v, want fn's error unchanged", err)
		}
		if after := mustRefreshToken(t, s, "h1"); !reflect.DeepEqual(after, before) {
			t.Errorf("after failed rotation h1 = %+v, want unchanged %+v", after, before)
		}
		mustRotate(t, s, "h1", "h2", tokenNow.Add(2*time.Minute))
	})

	t.Run("rfc9700_4.14.2_reused_token_is_ErrTokenReused_and_revokes_its_family", func(t *testing.T) {
		s := newStore(t)
		mustCreateRefreshToken(t, s, newRefreshToken(t, "h1", "fam", "alice-id", "web"))
		mustRecordAccessToken(t, s, newAccessToken(t, "at1", "alice-id", "fam", "web"))
		mustRotate(t, s, "h1", "h2", tokenNow.Add(time.Minute))
		mustRecordAccessToken(t, s, newAccessToken(t, "at2", "alice-id", "fam", "web"))
		// The same user's other login and a token without a family stay.
		mustCreateRefreshToken(t, s, newRefreshToken(t, "other", "other-fam", "alice-id", "web"))
		mustRecordAccessToken(t, s, newAccessToken(t, "at-other", "alice-id", "other-fam", "web"))
		mustRecordAccessToken(t, s, newAccessToken(t, "at-nofam", "alice-id", "", "web"))

		reuseAt := tokenNow.Add(2 * time.Minute)
		if _, err := s.RotateRefreshToken(t.Context(), "h1", reuseAt, noRotation(t)); !errors.Is(err, ErrTokenReused) {
			t.Fatalf("RotateRefreshToken(rotated h1) = %v, want ErrTokenReused", err)
		}
		for _, hash := range []string{"h1", "h2"} {
			if got := mustRefreshToken(t, s, hash).RevokedAt; !got.Equal(reuseAt) {
				t.Errorf("RefreshToken(%s).RevokedAt = %v, want %v", hash, got, reuseAt)
			}
		}
		if got := mustRefreshToken(t, s, "other").RevokedAt; !got.IsZero() {
			t.Errorf("other family's token RevokedAt = %v, want zero", got)
		}
		if got, want := revokedJTIs(t, s, reuseAt), []string{"at1", "at2"}; !slices.Equal(got, want) {
			t.Errorf("RevokedAccessTokens() = %v, want the family's %v", got, want)
		}
		// The successor, which the attacker or the client may hold, is dead.
		if _, err := s.RotateRefreshToken(t.Context(), "h2", reuseAt, noRotation(t)); !errors.Is(err, ErrTokenInactive) {
			t.Errorf("RotateRefreshToken(successor h2) after reuse = %v, want ErrTokenInactive", err)
		}
		// Presenting it again is still reuse, and keeps the first revocation time.
		if _, err := s.RotateRefreshToken(t.Context(), "h1", reuseAt.Add(time.Minute), noRotation(t)); !errors.Is(err, ErrTokenReused) {
			t.Errorf("third RotateRefreshToken(h1) = %v, want ErrTokenReused", err)
		}
		if got := mustRefreshToken(t, s, "h2").RevokedAt; !got.Equal(reuseAt) {
			t.Errorf("RefreshToken(h2).RevokedAt after second reuse = %v, want the first %v", got, reuseAt)
		}
	})

	t.Run("inactive_token_is_ErrTokenInactive", func(t *testing.T) {
		expires := tokenNow.Add(time.Hour)
		tests := []struct {
			name    string
			token   func(rt *RefreshToken)
			revoke  bool
			now     time.Time
			wantErr error
		}{
			{"one_nanosecond_before_ExpiresAt_rotates", nil, false, expires.Add(-time.Nanosecond), nil},
			{"at_ExpiresAt", nil, false, expires, ErrTokenInactive},
			{"after_ExpiresAt", nil, false, expires.Add(time.Second), ErrTokenInactive},
			{"after_FamilyExpiresAt_though_idle_valid", func(rt *RefreshToken) {
				rt.FamilyExpiresAt = tokenNow.Add(30 * time.Minute)
			}, false, tokenNow.Add(45 * time.Minute), ErrTokenInactive},
			{"revoked", nil, true, tokenNow.Add(time.Minute), ErrTokenInactive},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s := newStore(t)
				rt := newRefreshToken(t, "h1", "fam", "alice-id", "web")
				if tt.token != nil {
					tt.token(rt)
				}
				mustCreateRefreshToken(t, s, rt)
				if tt.revoke {
					if err := s.RevokeRefreshFamily(t.Context(), "fam", tokenNow); err != nil {
						t.Fatalf("RevokeRefreshFamily(fam) = %v", err)
					}
				}
				before := mustRefreshToken(t, s, "h1")
				fn := successor("h2", tt.now)
				if tt.wantErr != nil {
					fn = noRotation(t)
				}
				_, err := s.RotateRefreshToken(t.Context(), "h1", tt.now, fn)
				if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
					t.Fatalf("RotateRefreshToken(h1) at %v = %v, want %v", tt.now, err, tt.wantErr)
				}
				if tt.wantErr == nil {
					return
				}
				if after := mustRefreshToken(t, s, "h1"); !reflect.DeepEqual(after, before) {
					t.Errorf("after refused rotation h1 = %+v, want unchanged %+v", after, before)
				}
			})
		}
	})

	t.Run("concurrent_rotations_of_one_token_exactly_one_succeeds", func(t *testing.T) {
		s := newStore(t)
		mustCreateRefreshToken(t, s, newRefreshToken(t, "h1", "fam", "alice-id", "web"))
		const n = 20
		at := tokenNow.Add(time.Minute)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				_, errs[i] = s.RotateRefreshToken(context.Background(), "h1", at, successor(fmt.Sprintf("next-%02d", i), at))
			})
		}
		close(start)
		wg.Wait()
		var won []int
		for i, err := range errs {
			switch {
			case err == nil:
				won = append(won, i)
			case !errors.Is(err, ErrTokenReused):
				t.Errorf("RotateRefreshToken #%d = %v, want nil or ErrTokenReused", i, err)
			}
		}
		if len(won) != 1 {
			t.Fatalf("%d of %d concurrent rotations succeeded (%v), want exactly 1", len(won), n, won)
		}
		for i := range n {
			_, err := s.RefreshToken(t.Context(), fmt.Sprintf("next-%02d", i))
			if stored := err == nil; stored != (i == won[0]) {
				t.Errorf("successor next-%02d stored = %v (%v), want only the winner's", i, stored, err)
			}
		}
		// The losers presented a rotated token: the family is revoked.
		if got := mustRefreshToken(t, s, fmt.Sprintf("next-%02d", won[0])); got.RevokedAt.IsZero() {
			t.Errorf("winner's successor not revoked after %d reuses", n-1)
		}
	})
}

func runRevocationTests(t *testing.T, newStore func(t *testing.T) Store) {
	// seed stores alice's two logins (web and cli) and bob's one (web),
	// each with an access token, and an access token bob got without a
	// refresh token.
	seed := func(t *testing.T, s Store) {
		t.Helper()
		mustCreateRefreshToken(t, s, newRefreshToken(t, "rt-alice-web", "fam-alice-web", "alice-id", "web"))
		mustCreateRefreshToken(t, s, newRefreshToken(t, "rt-alice-cli", "fam-alice-cli", "alice-id", "cli"))
		mustCreateRefreshToken(t, s, newRefreshToken(t, "rt-bob-web", "fam-bob-web", "bob-id", "web"))
		mustRecordAccessToken(t, s, newAccessToken(t, "at-alice-web", "alice-id", "fam-alice-web", "web"))
		mustRecordAccessToken(t, s, newAccessToken(t, "at-alice-cli", "alice-id", "fam-alice-cli", "cli"))
		mustRecordAccessToken(t, s, newAccessToken(t, "at-bob-web", "bob-id", "fam-bob-web", "web"))
		mustRecordAccessToken(t, s, newAccessToken(t, "at-bob-nofam", "bob-id", "", "cli"))
	}
	refreshHashes := []string{"rt-alice-web", "rt-alice-cli", "rt-bob-web"}
	accessJTIs := []string{"at-alice-web", "at-alice-cli", "at-bob-web", "at-bob-nofam"}

	t.Run("revocations_affect_only_their_own_tokens", func(t *testing.T) {
		tests := []struct {
			name   string
			revoke func(ctx context.Context, s Store, now time.Time) error
			want   []string // revoked refresh hashes and access jtis
		}{
			{"user_alice", func(ctx context.Context, s Store, now time.Time) error {
				return s.RevokeUserTokens(ctx, "alice-id", now)
			}, []string{"rt-alice-web", "rt-alice-cli", "at-alice-web", "at-alice-cli"}},
			{"client_web", func(ctx context.Context, s Store, now time.Time) error {
				return s.RevokeClientTokens(ctx, "web", now)
			}, []string{"rt-alice-web", "rt-bob-web", "at-alice-web", "at-bob-web"}},
			{"family_of_alice_web", func(ctx context.Context, s Store, now time.Time) error {
				return s.RevokeRefreshFamily(ctx, "fam-alice-web", now)
			}, []string{"rt-alice-web", "at-alice-web"}},
			{"unknown_family_is_no_error", func(ctx context.Context, s Store, now time.Time) error {
				return s.RevokeRefreshFamily(ctx, "no-such-family", now)
			}, nil},
			{"empty_family_names_no_family", func(ctx context.Context, s Store, now time.Time) error {
				return s.RevokeRefreshFamily(ctx, "", now)
			}, nil},
			{"unknown_user", func(ctx context.Context, s Store, now time.Time) error {
				return s.RevokeUserTokens(ctx, "no-such-user", now)
			}, nil},
			{"unknown_client", func(ctx context.Context, s Store, now time.Time) error {
				return s.RevokeClientTokens(ctx, "no-such-client", now)
			}, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				ctx := t.Context()
				s := newStore(t)
				seed(t, s)
				first := tokenNow.Add(time.Minute)
				if err := tt.revoke(ctx, s, first); err != nil {
					t.Fatalf("revoke %s = %v", tt.name, err)
				}
				// Revoking again is no error and keeps the first time.
				if err := tt.revoke(ctx, s, first.Add(time.Minute)); err != nil {
					t.Fatalf("second revoke %s = %v", tt.name, err)
				}
				check := func(id string, revokedAt time.Time) {
					t.Helper()
					want := time.Time{}
					if slices.Contains(tt.want, id) {
						want = first
					}
					if !revokedAt.Equal(want) {
						t.Errorf("after revoking %s: %s RevokedAt = %v, want %v", tt.name, id, revokedAt, want)
					}
				}
				for _, h := range refreshHashes {
					check(h, mustRefreshToken(t, s, h).RevokedAt)
				}
				for _, jti := range accessJTIs {
					check(jti, mustAccessToken(t, s, jti).RevokedAt)
				}
			})
		}
	})

	t.Run("access_token_round_trips_and_revokes_idempotently", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		zone := time.FixedZone("UTC+1", 3600)
		at := &AccessToken{JTI: "jti-1", UserID: "alice-id", ClientID: "web", ExpiresAt: time.Date(2025, 6, 1, 13, 15, 0, 987654321, zone)}
		want := *at
		mustRecordAccessToken(t, s, at)
		got := mustAccessToken(t, s, "jti-1")
		if !reflect.DeepEqual(got, at) {
			t.Errorf("AccessToken(jti-1) = %+v, RecordAccessToken left %+v; want them equal", got, at)
		}
		if got.JTI != want.JTI || got.UserID != want.UserID || got.FamilyID != "" || got.ClientID != want.ClientID ||
			!got.ExpiresAt.Equal(want.ExpiresAt) || got.ExpiresAt.Location() != time.UTC || !got.RevokedAt.IsZero() {
			t.Errorf("AccessToken(jti-1) = %+v, want %+v in UTC, not revoked", got, want)
		}
		if _, err := s.AccessToken(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("AccessToken(nope) = %v, want ErrNotFound", err)
		}
		if err := s.RevokeAccessToken(ctx, "nope", tokenNow); !errors.Is(err, ErrNotFound) {
			t.Errorf("RevokeAccessToken(nope) = %v, want ErrNotFound", err)
		}
		first := tokenNow.Add(time.Minute)
		if err := s.RevokeAccessToken(ctx, "jti-1", first); err != nil {
			t.Fatalf("RevokeAccessToken(jti-1) = %v", err)
		}
		if err := s.RevokeAccessToken(ctx, "jti-1", first.Add(time.Minute)); err != nil {
			t.Errorf("second RevokeAccessToken(jti-1) = %v, want nil", err)
		}
		if got := mustAccessToken(t, s, "jti-1").RevokedAt; !got.Equal(first) {
			t.Errorf("RevokedAt after two revocations = %v, want the first %v", got, first)
		}
	})

	t.Run("access_token_record_needs_jti_user_and_expiry_and_a_free_jti", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		for _, at := range []*AccessToken{
			{UserID: "alice-id", ExpiresAt: tokenNow},
			{JTI: "j", ExpiresAt: tokenNow},
			{JTI: "j", UserID: "alice-id"},
			nil,
		} {
			if err := s.RecordAccessToken(ctx, at); err == nil {
				t.Errorf("RecordAccessToken(%+v) = nil, want an error", at)
			}
		}
		mustRecordAccessToken(t, s, newAccessToken(t, "j", "alice-id", "", "web"))
		if err := s.RecordAccessToken(ctx, newAccessToken(t, "j", "bob-id", "", "web")); err == nil {
			t.Errorf("second RecordAccessToken(j) = nil, want an error")
		}
	})

	t.Run("revoked_access_tokens_lists_only_revoked_unexpired_ones_soonest_first", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		now := tokenNow.Add(10 * time.Minute)
		if got := revokedJTIs(t, s, now); len(got) != 0 {
			t.Errorf("RevokedAccessTokens() on an empty store = %v, want none", got)
		}
		for _, tok := range []struct {
			jti     string
			expires time.Time
			revoke  bool
		}{
			{"revoked-live-later", now.Add(time.Hour), true},
			{"revoked-live", now.Add(5 * time.Minute), true},
			{"revoked-expired", now.Add(-time.Minute), true},
			{"revoked-expiring-now", now, true},
			{"live-not-revoked", now.Add(5 * time.Minute), false},
		} {
			at := newAccessToken(t, tok.jti, "alice-id", "", "web")
			at.ExpiresAt = tok.expires
			mustRecordAccessToken(t, s, at)
			if tok.revoke {
				if err := s.RevokeAccessToken(ctx, tok.jti, tokenNow); err != nil {
					t.Fatalf("RevokeAccessToken(%s) = %v", tok.jti, err)
				}
			}
		}
		got, err := s.RevokedAccessTokens(ctx, now)
		if err != nil {
			t.Fatalf("RevokedAccessTokens() = %v", err)
		}
		want := []Revocation{
			{JTI: "revoked-live", ExpiresAt: now.Add(5 * time.Minute)},
			{JTI: "revoked-live-later", ExpiresAt: now.Add(time.Hour)},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("RevokedAccessTokens(%v) = %+v, want %+v", now, got, want)
		}
	})

	t.Run("prune_removes_expired_access_tokens_and_ended_families_only", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		now := tokenNow.Add(2 * time.Hour)
		mustCreate(t, s, testUser(t, "alice"))
		if err := s.CreateClient(ctx, &Client{ID: "web", CreatedAt: tokenNow}); err != nil {
			t.Fatalf("CreateClient(web) = %v", err)
		}
		access := []struct {
			jti     string
			expires time.Time
			revoke  bool
			kept    bool
		}{
			{"expired", now.Add(-time.Nanosecond), false, false},
			{"expired-revoked", now.Add(-time.Minute), true, false},
			{"expiring-now", now, false, false},
			{"live", now.Add(time.Nanosecond), false, true},
			{"live-revoked", now.Add(time.Minute), true, true},
		}
		for _, a := range access {
			at := newAccessToken(t, a.jti, "alice-id", "", "web")
			at.ExpiresAt = a.expires
			mustRecordAccessToken(t, s, at)
			if a.revoke {
				if err := s.RevokeAccessToken(ctx, a.jti, tokenNow); err != nil {
					t.Fatalf("RevokeAccessToken(%s) = %v", a.jti, err)
				}
			}
		}
		refresh := []struct {
			hash                   string
			expires, familyExpires time.Time
			kept                   bool
		}{
			{"family-ended", now.Add(-2 * time.Hour), now.Add(-time.Second), false},
			{"family-ends-now", now.Add(-time.Hour), now, false},
			// Idle-expired but its family lives: kept for reuse detection.
			{"idle-expired-family-alive", now.Add(-time.Hour), now.Add(time.Hour), true},
			{"live", now.Add(time.Hour), now.Add(24 * time.Hour), true},
		}
		for i, r := range refresh {
			rt := newRefreshToken(t, r.hash, fmt.Sprintf("fam-%d", i), "alice-id", "web")
			rt.IssuedAt = r.expires.Add(-time.Hour)
			rt.ExpiresAt, rt.FamilyExpiresAt = r.expires, r.familyExpires
			mustCreateRefreshToken(t, s, rt)
		}
		if err := s.PruneTokens(ctx, now); err != nil {
			t.Fatalf("PruneTokens(%v) = %v", now, err)
		}
		for _, a := range access {
			_, err := s.AccessToken(ctx, a.jti)
			if kept := err == nil; kept != a.kept || (!kept && !errors.Is(err, ErrNotFound)) {
				t.Errorf("after PruneTokens, AccessToken(%s) = %v; want kept = %v", a.jti, err, a.kept)
			}
		}
		for _, r := range refresh {
			_, err := s.RefreshToken(ctx, r.hash)
			if kept := err == nil; kept != r.kept || (!kept && !errors.Is(err, ErrNotFound)) {
				t.Errorf("after PruneTokens, RefreshToken(%s) = %v; want kept = %v", r.hash, err, r.kept)
			}
		}
		if got := revokedJTIs(t, s, now); !slices.Equal(got, []string{"live-revoked"}) {
			t.Errorf("RevokedAccessTokens() after prune = %v, want [live-revoked]", got)
		}
		mustGet(t, s, "alice")
		if _, err := s.ClientByID(ctx, "web"); err != nil {
			t.Errorf("ClientByID(web) after PruneTokens = %v, want the client kept", err)
		}
	})

	t.Run("token_records_outlive_their_deleted_user", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		u := testUser(t, "alice")
		mustCreate(t, s, u)
		mustCreateRefreshToken(t, s, newRefreshToken(t, "h1", "fam", u.ID, "web"))
		mustRecordAccessToken(t, s, newAccessToken(t, "at1", u.ID, "fam", "web"))
		if err := s.DeleteUser(ctx, "alice", time.Now()); err != nil {
			t.Fatalf("DeleteUser(alice) = %v", err)
		}
		if err := s.RevokeUserTokens(ctx, u.ID, tokenNow); err != nil {
			t.Fatalf("RevokeUserTokens(deleted alice) = %v", err)
		}
		if got := mustRefreshToken(t, s, "h1"); got.RevokedAt.IsZero() {
			t.Errorf("deleted user's refresh token not revoked: %+v", got)
		}
		if got := revokedJTIs(t, s, tokenNow); !slices.Equal(got, []string{"at1"}) {
			t.Errorf("RevokedAccessTokens() = %v, want the deleted user's [at1]", got)
		}
	})
}

func runClientStoreTests(t *testing.T, newStore func(t *testing.T) Store) {
	t.Run("client_create_get_list_delete", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		if got, err := s.ListClients(ctx); err != nil || got == nil || len(got) != 0 {
			t.Errorf("ListClients() on an empty store = %#v, %v; want an empty slice", got, err)
		}
		zone := time.FixedZone("UTC-7", -7*3600)
		web := &Client{
			ID:         "web",
			SecretHash: "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8",
			Scopes:     []string{"me", "users:read"},
			CreatedAt:  time.Date(2025, 5, 1, 8, 30, 0, 42, zone),
		}
		createdAt := web.CreatedAt
		if err := s.CreateClient(ctx, web); err != nil {
			t.Fatalf("CreateClient(web) = %v", err)
		}
		if !web.CreatedAt.Equal(createdAt) || web.CreatedAt.Location() != time.UTC {
			t.Errorf("CreatedAt = %v, want %v in UTC", web.CreatedAt, createdAt.UTC())
		}
		cli := &Client{ID: "cli"} // public, any scope, the store's clock
		if err := s.CreateClient(ctx, cli); err != nil {
			t.Fatalf("CreateClient(cli) = %v", err)
		}
		if cli.CreatedAt.IsZero() || cli.Scopes == nil || len(cli.Scopes) != 0 {
			t.Errorf("CreateClient(cli) left %+v, want CreatedAt set and Scopes []string{}", cli)
		}
		for _, want := range []*Client{web, cli} {
			got, err := s.ClientByID(ctx, want.ID)
			if err != nil {
				t.Fatalf("ClientByID(%s) = %v", want.ID, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("ClientByID(%s) = %+v, want %+v", want.ID, got, want)
			}
		}
		if !web.Confidential() || cli.Confidential() {
			t.Errorf("Confidential() web, cli = %v, %v; want true, false", web.Confidential(), cli.Confidential())
		}
		list, err := s.ListClients(ctx)
		if err != nil {
			t.Fatalf("ListClients() = %v", err)
		}
		if want := []*Client{cli, web}; !reflect.DeepEqual(list, want) {
			t.Errorf("ListClients() = %+v, want %+v ordered by ID", list, want)
		}
		if err := s.DeleteClient(ctx, "web"); err != nil {
			t.Fatalf("DeleteClient(web) = %v", err)
		}
		if _, err := s.ClientByID(ctx, "web"); !errors.Is(err, ErrNotFound) {
			t.Errorf("ClientByID(web) after delete = %v, want ErrNotFound", err)
		}
		if list, err := s.ListClients(ctx); err != nil || len(list) != 1 || list[0].ID != "cli" {
			t.Errorf("ListClients() after delete = %+v, %v; want [cli]", list, err)
		}
	})

	t.Run("duplicate_client_id_is_ErrClientExists_not_ErrUsernameTaken", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		if err := s.CreateClient(ctx, &Client{ID: "web", SecretHash: "aa", CreatedAt: tokenNow}); err != nil {
			t.Fatalf("CreateClient(web) = %v", err)
		}
		err := s.CreateClient(ctx, &Client{ID: "web", CreatedAt: tokenNow})
		if !errors.Is(err, ErrClientExists) || errors.Is(err, ErrUsernameTaken) {
			t.Errorf("second CreateClient(web) = %v, want ErrClientExists only", err)
		}
		if got, err := s.ClientByID(ctx, "web"); err != nil || got.SecretHash != "aa" {
			t.Errorf("ClientByID(web) = %+v, %v; want the first client kept", got, err)
		}
		// A client and a user may share a name: they are different tables.
		mustCreate(t, s, testUser(t, "web"))
	})

	t.Run("missing_client_is_ErrNotFound", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.ClientByID(t.Context(), "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("ClientByID(nope) = %v, want ErrNotFound", err)
		}
		if err := s.DeleteClient(t.Context(), "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("DeleteClient(nope) = %v, want ErrNotFound", err)
		}
	})

	t.Run("client_without_id_or_with_a_bad_scope_is_refused", func(t *testing.T) {
		s := newStore(t)
		for _, c := range []*Client{{CreatedAt: tokenNow}, {ID: "web", Scopes: []string{""}, CreatedAt: tokenNow}, nil} {
			if err := s.CreateClient(t.Context(), c); err == nil || errors.Is(err, ErrClientExists) {
				t.Errorf("CreateClient(%+v) = %v, want a plain error", c, err)
			}
		}
	})
}
