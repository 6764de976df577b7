package users

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

var (
	testScopes = []string{"users:write", "me", "users:read", "tokens:introspect"}
	testNow    = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
)

// newTestService returns a Service on a fresh SQLite store with cheap
// argon2 parameters and a fixed clock.
func newTestService(t *testing.T) (*Service, Store) {
	t.Helper()
	store := openTestStore(t)
	return newTestServiceOn(t, store), store
}

func newTestServiceOn(t *testing.T, store Store) *Service {
	t.Helper()
	s, err := NewService(store, Options{Hasher: testHasher, Scopes: testScopes, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatalf("NewService() = %v", err)
	}
	return s
}

func mustCreateUser(t *testing.T, s *Service, nu NewUser) *User {
	t.Helper()
	u, err := s.Create(t.Context(), CLIActor(), nu)
	if err != nil {
		t.Fatalf("Create(%q) = %v", nu.Username, err)
	}
	return u
}

// wantValidation fails unless err is a *ValidationError for field.
func wantValidation(t *testing.T, err error, field, call string) {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Errorf("%s = %v, want *ValidationError for %q", call, err, field)
		return
	}
	if ve.Field != field {
		t.Errorf("%s = ValidationError for %q (%s), want field %q", call, ve.Field, ve.Message, field)
	}
}

func TestNewService_rejects_bad_options(t *testing.T) {
	store := openTestStore(t)
	tests := []struct {
		name string
		opts Options
	}{
		{"hasher with memory below 8 KiB per lane", Options{Hasher: Hasher{Memory: 8, Iterations: 1, Parallelism: 4}}},
		{"scope with a space", Options{Hasher: testHasher, Scopes: []string{"users read"}}},
		{"empty scope", Options{Hasher: testHasher, Scopes: []string{""}}},
	}
	for _, tt := range tests {
		if _, err := NewService(store, tt.opts); err == nil {
			t.Errorf("NewService(%s) = nil error, want one", tt.name)
		}
	}
	if _, err := NewService(nil, Options{Hasher: testHasher}); err == nil {
		t.Errorf("NewService(nil store) = nil error, want one")
	}
}

func TestNewService_dummy_hash_uses_the_configured_parameters(t *testing.T) {
	s, _ := newTestService(t)
	p, err := parseArgon2id(s.dummyHash)
	if err != nil {
		t.Fatalf("dummy hash %q: %v", s.dummyHash, err)
	}
	got := Hasher{Memory: p.memory, Iterations: p.iterations, Parallelism: p.parallelism}
	if got != testHasher {
		t.Errorf("dummy hash parameters = %+v, want %+v, so unknown users cost what known ones do", got, testHasher)
	}
}

func TestService_KnownScopes_are_sorted_copies(t *testing.T) {
	s, _ := newTestService(t)
	got := s.KnownScopes()
	want := []string{"me", "tokens:introspect", "users:read", "users:write"}
	if !slices.Equal(got, want) {
		t.Errorf("KnownScopes() = %v, want %v", got, want)
	}
	got[0] = "changed"
	if again := s.KnownScopes(); again[0] != "me" {
		t.Errorf("KnownScopes() after mutating a result = %v, want it unaffected", again)
	}
}

func TestAuthenticate(t *testing.T) {
	s, _ := newTestService(t)
	alice := mustCreateUser(t, s, NewUser{Username: "alice", Password: "alice-password", Scopes: []string{"me"}})
	mustCreateUser(t, s, NewUser{Username: "mallory", Password: "mallory-password"})
	if _, err := s.Update(t.Context(), CLIActor(), "mallory", Patch{Disabled: new(true)}); err != nil {
		t.Fatalf("disabling mallory: %v", err)
	}
	tests := []struct {
		name               string
		username, password string
		wantErr            error
	}{
		{"rfc6749_4.3.2_right_password_authenticates", "alice", "alice-password", nil},
		{"username_is_case_insensitive", "ALICE", "alice-password", nil},
		{"rfc6749_4.3.2_wrong_password_is_invalid_credentials", "alice", "alice-passwordx", ErrInvalidCredentials},
		{"unknown_user_is_invalid_credentials_like_a_wrong_password", "bob", "alice-password", ErrInvalidCredentials},
		{"invalid_username_is_invalid_credentials", "a!", "alice-password", ErrInvalidCredentials},
		{"empty_username_is_invalid_credentials", "", "alice-password", ErrInvalidCredentials},
		{"empty_password_is_invalid_credentials", "alice", "", ErrInvalidCredentials},
		{"password_over_max_bytes_is_invalid_credentials", "alice", strings.Repeat("x", MaxPasswordBytes+1), ErrInvalidCredentials},
		{"disabled_user_with_right_password_is_disabled", "mallory", "mallory-password", ErrDisabled},
		{"disabled_user_with_wrong_password_is_invalid_credentials", "mallory", "wrong-password", ErrInvalidCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Authenticate(t.Context(), tt.username, tt.password)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("Authenticate(%q, %q) = %v, want %v", tt.username, tt.password, err, tt.wantErr)
			}
			if tt.wantErr == nil && got.ID != alice.ID {
				t.Errorf("Authenticate(%q) = user %q, want %q", tt.username, got.ID, alice.ID)
			}
			if tt.wantErr != nil && got != nil {
				t.Errorf("Authenticate(%q, %q) returned user %+v with error %v", tt.username, tt.password, got, err)
			}
		})
	}
}

func TestAuthenticate_outdated_hash_is_upgraded_to_current_argon2id(t *testing.T) {
	oldArgon := Hasher{Memory: 32, Iterations: 1, Parallelism: 1}
	tests := []struct {
		name string
		hash func(t *testing.T, password string) string
	}{
		{"bcrypt_import", mustBcrypt},
		{"argon2id_with_old_parameters", func(t *testing.T, pw string) string { return mustHash(t, oldArgon, pw) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, store := newTestService(t)
			u := testUser(t, "imported")
			u.PasswordHash = tt.hash(t, "imported-password")
			mustCreate(t, store, u)

			got, err := s.Authenticate(t.Context(), "imported", "imported-password")
			if err != nil {
				t.Fatalf("Authenticate(imported) = %v", err)
			}
			stored := mustGet(t, store, "imported")
			if !strings.HasPrefix(stored.PasswordHash, "$argon2id$v=19$m=64,t=1,p=1$") {
				t.Errorf("stored hash after login = %q, want argon2id with current parameters", stored.PasswordHash)
			}
			if got.PasswordHash != stored.PasswordHash {
				t.Errorf("Authenticate returned hash %q, store has %q", got.PasswordHash, stored.PasswordHash)
			}
			ok, rehash, err := testHasher.Verify(stored.PasswordHash, "imported-password")
			if !ok || rehash || err != nil {
				t.Errorf("Verify(upgraded hash) = %v, %v, %v; want true, false, nil", ok, rehash, err)
			}
			if _, err := s.Authenticate(t.Context(), "imported", "imported-password"); err != nil {
				t.Errorf("second Authenticate(imported) = %v", err)
			}
		})
	}
}

// failingUpdateStore is a Store whose UpdateUser always fails.
type failingUpdateStore struct {
	Store
	calls int
}

func (f *failingUpdateStore) UpdateUser(context.Context, string, func(*User) error, ...string) (*User, error) {
	f.calls++
	return nil, errors.New("disk full")
}

func TestAuthenticate_failed_rehash_does_not_fail_the_login(t *testing.T) {
	store := &failingUpdateStore{Store: openTestStore(t)}
	s := newTestServiceOn(t, store)
	u := testUser(t, "imported")
	u.PasswordHash = mustBcrypt(t, "imported-password")
	mustCreate(t, store, u)

	got, err := s.Authenticate(t.Context(), "imported", "imported-password")
	if err != nil {
		t.Fatalf("Authenticate(imported) with failing UpdateUser = %v, want success", err)
	}
	if got.ID != u.ID {
		t.Errorf("Authenticate(imported) = user %q, want %q", got.ID, u.ID)
	}
	if store.calls != 1 {
		t.Errorf("UpdateUser called %d times, want 1 (the rehash attempt)", store.calls)
	}
}

func TestAuthenticate_corrupt_stored_hash_is_an_error_not_a_login(t *testing.T) {
	s, store := newTestService(t)
	u := testUser(t, "broken")
	u.PasswordHash = "not-a-hash"
	mustCreate(t, store, u)
	got, err := s.Authenticate(t.Context(), "broken", "whatever-password")
	if err == nil || got != nil {
		t.Errorf("Authenticate(broken) = %v, %v; want nil and an error", got, err)
	}
	if errors.Is(err, ErrInvalidCredentials) || errors.Is(err, ErrDisabled) {
		t.Errorf("Authenticate(broken) = %v, want a server-side error, not a credentials one", err)
	}
}

func TestCreate(t *testing.T) {
	s, store := newTestService(t)
	got := mustCreateUser(t, s, NewUser{
		Username: "Alice",
		Password: "alice-password",
		Scopes:   []string{"users:read", "me", "users:read"},
	})
	if got.Username != "alice" {
		t.Errorf("Username = %q, want normalised %q", got.Username, "alice")
	}
	if id, err := uuid.Parse(got.ID); err != nil || id.Version() != 4 || id.String() != got.ID {
		t.Errorf("ID = %q, want a canonical UUID v4", got.ID)
	}
	if want := []string{"me", "users:read"}; !slices.Equal(got.Scopes, want) {
		t.Errorf("Scopes = %v, want sorted and deduplicated %v", got.Scopes, want)
	}
	if !got.CreatedAt.Equal(testNow) || !got.UpdatedAt.Equal(testNow) {
		t.Errorf("CreatedAt, UpdatedAt = %v, %v; want the injected clock's %v", got.CreatedAt, got.UpdatedAt, testNow)
	}
	if !strings.HasPrefix(got.PasswordHash, "$argon2id$") {
		t.Errorf("PasswordHash = %q, want argon2id", got.PasswordHash)
	}
	if stored := mustGet(t, store, "alice"); stored.ID != got.ID {
		t.Errorf("stored ID = %q, want %q", stored.ID, got.ID)
	}

	noScopes := mustCreateUser(t, s, NewUser{Username: "bob", Password: "bob-password"})
	if noScopes.Scopes == nil || len(noScopes.Scopes) != 0 {
		t.Errorf("Create without scopes: Scopes = %#v, want empty", noScopes.Scopes)
	}
	if _, err := s.Create(t.Context(), CLIActor(), NewUser{Username: "ALICE", Password: "other-password"}); !errors.Is(err, ErrUsernameTaken) {
		t.Errorf("Create(ALICE) after alice = %v, want ErrUsernameTaken", err)
	}
}

func TestCreate_validation(t *testing.T) {
	tests := []struct {
		name      string
		nu        NewUser
		wantField string
	}{
		{"username_shorter_than_3", NewUser{Username: "ab", Password: "long-enough"}, "username"},
		{"username_longer_than_64", NewUser{Username: strings.Repeat("a", 65), Password: "long-enough"}, "username"},
		{"username_with_space", NewUser{Username: "al ice", Password: "long-enough"}, "username"},
		{"username_with_at_sign", NewUser{Username: "alice@example.com", Password: "long-enough"}, "username"},
		{"username_starting_with_dot", NewUser{Username: ".alice", Password: "long-enough"}, "username"},
		{"username_non_ascii", NewUser{Username: "álice", Password: "long-enough"}, "username"},
		{"password_shorter_than_8_characters", NewUser{Username: "alice", Password: "short"}, "password"},
		{"password_of_7_multibyte_characters", NewUser{Username: "alice", Password: "ééééééé"}, "password"},
		{"password_over_1024_bytes", NewUser{Username: "alice", Password: strings.Repeat("x", 1025)}, "password"},
		{"unknown_scope", NewUser{Username: "alice", Password: "long-enough", Scopes: []string{"me", "admin"}}, "scopes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, store := newTestService(t)
			_, err := s.Create(t.Context(), CLIActor(), tt.nu)
			wantValidation(t, err, tt.wantField, "Create("+tt.name+")")
			assertCount(t, store, 0)
		})
	}

	valid := []struct {
		name string
		nu   NewUser
		want string
	}{
		{"uppercase_is_normalised", NewUser{Username: "Alice.Smith-2_X", Password: "long-enough"}, "alice.smith-2_x"},
		{"64_characters", NewUser{Username: strings.Repeat("a", 64), Password: "long-enough"}, strings.Repeat("a", 64)},
		{"1024_byte_password", NewUser{Username: "max", Password: strings.Repeat("x", 1024)}, "max"},
	}
	for _, tt := range valid {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestService(t)
			got, err := s.Create(t.Context(), CLIActor(), tt.nu)
			if err != nil {
				t.Fatalf("Create(%q) = %v", tt.nu.Username, err)
			}
			if got.Username != tt.want {
				t.Errorf("Create(%q).Username = %q, want %q", tt.nu.Username, got.Username, tt.want)
			}
		})
	}
}

func TestGet_and_Delete(t *testing.T) {
	s, _ := newTestService(t)
	alice := mustCreateUser(t, s, NewUser{Username: "alice", Password: "alice-password"})
	got, err := s.Get(t.Context(), "ALICE")
	if err != nil || got.ID != alice.ID {
		t.Errorf("Get(ALICE) = %v, %v; want alice", got, err)
	}
	if got, err := s.ByID(t.Context(), alice.ID); err != nil || got.Username != "alice" {
		t.Errorf("ByID(%q) = %v, %v; want alice", alice.ID, got, err)
	}
	for _, name := range []string{"bob", "a!", ""} {
		if _, err := s.Get(t.Context(), name); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", name, err)
		}
		if err := s.Delete(t.Context(), CLIActor(), name); !errors.Is(err, ErrNotFound) {
			t.Errorf("Delete(%q) = %v, want ErrNotFound", name, err)
		}
	}
	if _, err := s.ByID(t.Context(), "no-such-id"); !errors.Is(err, ErrNotFound) {
		t.Errorf("ByID(no-such-id) = %v, want ErrNotFound", err)
	}
	if err := s.Delete(t.Context(), CLIActor(), "Alice"); err != nil {
		t.Fatalf("Delete(Alice) = %v", err)
	}
	if _, err := s.Get(t.Context(), "alice"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(alice) after delete = %v, want ErrNotFound", err)
	}
}

func TestList_and_Count(t *testing.T) {
	s, _ := newTestService(t)
	for _, name := range []string{"carol", "alice", "bob"} {
		mustCreateUser(t, s, NewUser{Username: name, Password: "long-enough"})
	}
	page, err := s.List(t.Context(), "alice", 1)
	if err != nil || len(page) != 1 || page[0].Username != "bob" {
		t.Errorf("List(alice, 1) = %v, %v; want [bob]", page, err)
	}
	if n, err := s.Count(t.Context()); err != nil || n != 3 {
		t.Errorf("Count() = %d, %v; want 3, nil", n, err)
	}
	for _, limit := range []int{0, -1, MaxListLimit + 1} {
		_, err := s.List(t.Context(), "", limit)
		wantValidation(t, err, "limit", "List(limit)")
	}
}

func TestUpdate(t *testing.T) {
	later := testNow.Add(time.Hour)
	tests := []struct {
		name  string
		patch Patch
		check func(t *testing.T, s *Service, got *User)
	}{
		{"disable", Patch{Disabled: new(true)}, func(t *testing.T, s *Service, got *User) {
			if !got.Disabled {
				t.Errorf("Disabled = false, want true")
			}
			if _, err := s.Authenticate(t.Context(), "alice", "alice-password"); !errors.Is(err, ErrDisabled) {
				t.Errorf("Authenticate after disable = %v, want ErrDisabled", err)
			}
		}},
		{"replace_scopes_sorted_and_deduplicated", Patch{Scopes: &[]string{"users:write", "me", "me"}}, func(t *testing.T, s *Service, got *User) {
			if want := []string{"me", "users:write"}; !slices.Equal(got.Scopes, want) {
				t.Errorf("Scopes = %v, want %v", got.Scopes, want)
			}
		}},
		{"clear_scopes", Patch{Scopes: &[]string{}}, func(t *testing.T, s *Service, got *User) {
			if len(got.Scopes) != 0 {
				t.Errorf("Scopes = %v, want none", got.Scopes)
			}
		}},
		{"reset_password", Patch{Password: new("brand-new-password")}, func(t *testing.T, s *Service, got *User) {
			if _, err := s.Authenticate(t.Context(), "alice", "brand-new-password"); err != nil {
				t.Errorf("Authenticate with new password = %v", err)
			}
			if _, err := s.Authenticate(t.Context(), "alice", "alice-password"); !errors.Is(err, ErrInvalidCredentials) {
				t.Errorf("Authenticate with old password = %v, want ErrInvalidCredentials", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := testNow
			store := openTestStore(t)
			s, err := NewService(store, Options{Hasher: testHasher, Scopes: testScopes, Now: func() time.Time { return clock }})
			if err != nil {
				t.Fatalf("NewService() = %v", err)
			}
			before := mustCreateUser(t, s, NewUser{Username: "alice", Password: "alice-password", Scopes: []string{"me"}})
			clock = later
			got, err := s.Update(t.Context(), CLIActor(), "Alice", tt.patch)
			if err != nil {
				t.Fatalf("Update(alice, %s) = %v", tt.name, err)
			}
			if !got.UpdatedAt.Equal(later) || !got.CreatedAt.Equal(before.CreatedAt) {
				t.Errorf("CreatedAt, UpdatedAt = %v, %v; want %v, %v", got.CreatedAt, got.UpdatedAt, before.CreatedAt, later)
			}
			tt.check(t, s, got)
		})
	}
}

func TestUpdate_rejections(t *testing.T) {
	tests := []struct {
		name      string
		username  string
		patch     Patch
		wantErr   error
		wantField string
	}{
		{"unknown_user_is_not_found", "bob", Patch{Disabled: new(true)}, ErrNotFound, ""},
		{"invalid_username_is_not_found", "a!", Patch{Disabled: new(true)}, ErrNotFound, ""},
		{"empty_patch_of_unknown_user_is_not_found", "bob", Patch{}, ErrNotFound, ""},
		{"unknown_scope", "alice", Patch{Scopes: &[]string{"admin"}}, nil, "scopes"},
		{"short_password", "alice", Patch{Password: new("short")}, nil, "password"},
		{"password_over_1024_bytes", "alice", Patch{Password: new(strings.Repeat("x", 1025))}, nil, "password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, store := newTestService(t)
			mustCreateUser(t, s, NewUser{Username: "alice", Password: "alice-password", Scopes: []string{"me"}})
			before := mustGet(t, store, "alice")
			_, err := s.Update(t.Context(), CLIActor(), tt.username, tt.patch)
			if tt.wantField != "" {
				wantValidation(t, err, tt.wantField, "Update("+tt.name+")")
			} else if !errors.Is(err, tt.wantErr) {
				t.Errorf("Update(%q, %s) = %v, want %v", tt.username, tt.name, err, tt.wantErr)
			}
			if after := mustGet(t, store, "alice"); after.PasswordHash != before.PasswordHash ||
				!slices.Equal(after.Scopes, before.Scopes) || after.Disabled != before.Disabled {
				t.Errorf("after rejected Update alice = %+v, want unchanged %+v", after, before)
			}
		})
	}
}

func TestChangePassword(t *testing.T) {
	tests := []struct {
		name          string
		id            func(u *User) string
		current, next string
		disable       bool
		wantErr       error
		wantField     string
	}{
		{"wrong_current_is_invalid_credentials", nil, "not-my-password", "brand-new-password", false, ErrInvalidCredentials, ""},
		{"current_over_1024_bytes_is_invalid_credentials", nil, strings.Repeat("x", 1025), "brand-new-password", false, ErrInvalidCredentials, ""},
		{"short_new_password", nil, "alice-password", "short", false, nil, "new_password"},
		{"new_password_over_1024_bytes", nil, "alice-password", strings.Repeat("x", 1025), false, nil, "new_password"},
		{"unknown_id_is_not_found", func(*User) string { return "no-such-id" }, "alice-password", "brand-new-password", false, ErrNotFound, ""},
		{"disabled_user_is_disabled", nil, "alice-password", "brand-new-password", true, ErrDisabled, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, store := newTestService(t)
			u := mustCreateUser(t, s, NewUser{Username: "alice", Password: "alice-password"})
			if tt.disable {
				if _, err := s.Update(t.Context(), CLIActor(), "alice", Patch{Disabled: new(true)}); err != nil {
					t.Fatalf("disabling alice: %v", err)
				}
			}
			id := u.ID
			if tt.id != nil {
				id = tt.id(u)
			}
			err := s.ChangePassword(t.Context(), id, tt.current, tt.next)
			if tt.wantField != "" {
				wantValidation(t, err, tt.wantField, "ChangePassword("+tt.name+")")
			} else if !errors.Is(err, tt.wantErr) {
				t.Errorf("ChangePassword(%s) = %v, want %v", tt.name, err, tt.wantErr)
			}
			if got := mustGet(t, store, "alice").PasswordHash; got != u.PasswordHash {
				t.Errorf("password hash changed by a rejected ChangePassword")
			}
		})
	}

	t.Run("right_current_sets_the_new_password", func(t *testing.T) {
		s, _ := newTestService(t)
		u := mustCreateUser(t, s, NewUser{Username: "alice", Password: "alice-password"})
		if err := s.ChangePassword(t.Context(), u.ID, "alice-password", "brand-new-password"); err != nil {
			t.Fatalf("ChangePassword(right current) = %v", err)
		}
		if _, err := s.Authenticate(t.Context(), "alice", "brand-new-password"); err != nil {
			t.Errorf("Authenticate with new password = %v", err)
		}
		if _, err := s.Authenticate(t.Context(), "alice", "alice-password"); !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("Authenticate with old password = %v, want ErrInvalidCredentials", err)
		}
	})
}
