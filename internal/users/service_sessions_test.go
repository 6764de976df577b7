package users

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
	"github.com/gatehouse/gatehouse/internal/storage/sqlstore"
)

// openTestStore opens a SQLite store in a fresh directory below
// t.TempDir() and closes it after the test.
func openTestStore(t *testing.T) storage.Store {
	t.Helper()
	s, err := sqlstore.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "data", "gatehouse.db"), sqlstore.Options{})
	if err != nil {
		t.Fatalf("OpenSQLite = %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return s
}

// newRevokingService returns a Service with the test hasher and clock
// whose AfterRevoke counts its calls.
func newRevokingService(t *testing.T) (*Service, storage.Store, *atomic.Int32) {
	t.Helper()
	store := openTestStore(t)
	var calls atomic.Int32
	s, err := NewService(store, Options{
		Hasher:      testHasher,
		Scopes:      testScopes,
		Now:         func() time.Time { return testNow },
		AfterRevoke: func(context.Context) { calls.Add(1) },
	})
	if err != nil {
		t.Fatalf("NewService() = %v", err)
	}
	return s, store, &calls
}

var farFuture = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)

// seedSession stores a live session of u with that id, as a login does.
func seedSession(t *testing.T, store storage.Store, u *User, id string) {
	t.Helper()
	s := &storage.Session{
		ID: id, UserID: u.ID, ClientID: "web", Scopes: []string{"me"},
		CreatedAt: testNow, LastUsedAt: testNow, RotatedAt: testNow,
		// Far ahead: live whatever clock the store judges it by.
		IdleExpiresAt: farFuture, ExpiresAt: farFuture,
		SecretHash: "00",
	}
	cur, err := store.UserByID(t.Context(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.CreateSession(t.Context(), s, cur.TokenEpoch, nil); err != nil {
		t.Fatalf("CreateSession(%s) = %v", id, err)
	}
}

func mustSession(t *testing.T, store storage.Store, id string) *storage.Session {
	t.Helper()
	s, err := store.Session(t.Context(), id)
	if err != nil {
		t.Fatalf("Session(%s) = %v", id, err)
	}
	return s
}

// revokedSessions lists the sessions the change log says were revoked.
func revokedSessions(t *testing.T, store storage.Store) []string {
	t.Helper()
	live, err := store.LiveRevocations(t.Context(), testNow)
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, c := range live {
		if c.Kind == storage.ChangeSession {
			out = append(out, c.Subject)
		}
	}
	slices.Sort(out)
	return out
}

func TestAccountEvents_revoke_the_users_sessions(t *testing.T) {
	tests := []struct {
		name        string
		scopes      []string // alice's scopes before the event
		disabled    bool     // alice is disabled before the event
		event       func(t *testing.T, s *Service, alice *User)
		wantRevoked bool
	}{
		{"rfc9700_admin_password_reset_revokes", []string{"me"}, false, func(t *testing.T, s *Service, _ *User) {
			mustUpdate(t, s, Patch{Password: new("brand-new-password")})
		}, true},
		{"rfc9700_change_password_revokes", []string{"me"}, false, func(t *testing.T, s *Service, alice *User) {
			if err := s.ChangePassword(t.Context(), alice.ID, "alice-password", "brand-new-password"); err != nil {
				t.Fatalf("ChangePassword(alice) = %v", err)
			}
		}, true},
		{"disabling_revokes", []string{"me"}, false, func(t *testing.T, s *Service, _ *User) {
			mustUpdate(t, s, Patch{Disabled: new(true)})
		}, true},
		{"removing_a_scope_revokes", []string{"me", "users:read"}, false, func(t *testing.T, s *Service, _ *User) {
			mustUpdate(t, s, Patch{Scopes: &[]string{"me"}})
		}, true},
		{"swapping_a_scope_for_another_revokes", []string{"me", "users:read"}, false, func(t *testing.T, s *Service, _ *User) {
			mustUpdate(t, s, Patch{Scopes: &[]string{"me", "users:write"}})
		}, true},
		{"clearing_scopes_revokes", []string{"me"}, false, func(t *testing.T, s *Service, _ *User) {
			mustUpdate(t, s, Patch{Scopes: &[]string{}})
		}, true},
		{"deleting_the_user_revokes", []string{"me"}, false, func(t *testing.T, s *Service, _ *User) {
			if err := s.Delete(t.Context(), CLIActor(), "alice"); err != nil {
				t.Fatalf("Delete(alice) = %v", err)
			}
		}, true},
		{"adding_a_scope_does_not_revoke", []string{"me"}, false, func(t *testing.T, s *Service, _ *User) {
			mustUpdate(t, s, Patch{Scopes: &[]string{"me", "users:read"}})
		}, false},
		{"same_scopes_in_another_order_do_not_revoke", []string{"me", "users:read"}, false, func(t *testing.T, s *Service, _ *User) {
			mustUpdate(t, s, Patch{Scopes: &[]string{"users:read", "me"}})
		}, false},
		{"re_enabling_does_not_revoke", []string{"me"}, true, func(t *testing.T, s *Service, _ *User) {
			mustUpdate(t, s, Patch{Disabled: new(false)})
		}, false},
		{"empty_patch_does_not_revoke", []string{"me"}, false, func(t *testing.T, s *Service, _ *User) {
			mustUpdate(t, s, Patch{})
		}, false},
		{"rejected_patch_does_not_revoke", []string{"me"}, false, func(t *testing.T, s *Service, _ *User) {
			_, err := s.Update(t.Context(), CLIActor(), "alice", Patch{Password: new("short"), Disabled: new(true)})
			wantValidation(t, err, "password", "Update(alice, short password)")
		}, false},
		{"change_password_with_wrong_current_does_not_revoke", []string{"me"}, false, func(t *testing.T, s *Service, alice *User) {
			if err := s.ChangePassword(t.Context(), alice.ID, "wrong-password", "brand-new-password"); !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("ChangePassword(wrong current) = %v, want ErrInvalidCredentials", err)
			}
		}, false},
		{"deleting_an_unknown_user_does_not_revoke", []string{"me"}, false, func(t *testing.T, s *Service, _ *User) {
			if err := s.Delete(t.Context(), CLIActor(), "carol"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Delete(carol) = %v, want ErrNotFound", err)
			}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, store, calls := newRevokingService(t)
			alice := mustCreateUser(t, s, NewUser{Username: "alice", Password: "alice-password", Scopes: tt.scopes})
			bob := mustCreateUser(t, s, NewUser{Username: "bob", Password: "bob-password"})
			seedSession(t, store, alice, "sess-alice")
			seedSession(t, store, bob, "sess-bob")
			if tt.disabled {
				// Straight through the store, keeping the epoch, so that
				// revokes nothing.
				if _, err := store.UpdateUser(t.Context(), "alice", func(u *User) error { u.Disabled = true; return nil }); err != nil {
					t.Fatalf("disabling alice: %v", err)
				}
			}

			tt.event(t, s, alice)

			wantAt, wantRevoked, wantCalls := time.Time{}, []string{}, int32(0)
			if tt.wantRevoked {
				wantAt, wantRevoked, wantCalls = testNow, []string{"sess-alice"}, 1
			}
			if got := mustSession(t, store, "sess-alice").RevokedAt; got.IsZero() != wantAt.IsZero() {
				t.Errorf("alice's session RevokedAt = %v, want revoked %t", got, !wantAt.IsZero())
			}
			if got := revokedSessions(t, store); !slices.Equal(got, wantRevoked) {
				t.Errorf("revoked sessions in the change log = %v, want %v", got, wantRevoked)
			}
			if got := calls.Load(); got != wantCalls {
				t.Errorf("AfterRevoke called %d times, want %d", got, wantCalls)
			}
			if got := mustSession(t, store, "sess-bob").RevokedAt; !got.IsZero() {
				t.Errorf("bob's session RevokedAt = %v, want zero: alice's event is not bob's", got)
			}
		})
	}
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

// mustUpdate applies p to alice through s.
func mustUpdate(t *testing.T, s *Service, p Patch) {
	t.Helper()
	if _, err := s.Update(t.Context(), CLIActor(), "alice", p); err != nil {
		t.Fatalf("Update(alice) = %v", err)
	}
}

func assertCount(t *testing.T, s Store, want int) {
	t.Helper()
	got, err := s.CountUsers(t.Context())
	if err != nil || got != want {
		t.Errorf("CountUsers() = %d, %v; want %d, nil", got, err, want)
	}
}
