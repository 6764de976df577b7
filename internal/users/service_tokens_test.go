package users

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// newRevokingService returns a Service like newTestService's whose
// AfterRevoke counts its calls.
func newRevokingService(t *testing.T) (*Service, Store, *atomic.Int32) {
	t.Helper()
	store := openTestSQLite(t)
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

// seedLogin stores a refresh token hash and an access token jti for
// userID's login through clientID, issued at testNow.
func seedLogin(t *testing.T, store Store, userID, clientID, hash, jti string) {
	t.Helper()
	family := "fam-" + hash
	mustCreateRefreshToken(t, store, &RefreshToken{
		Hash:            hash,
		FamilyID:        family,
		UserID:          userID,
		ClientID:        clientID,
		Scopes:          []string{"me"},
		IssuedAt:        testNow,
		ExpiresAt:       testNow.Add(time.Hour),
		FamilyExpiresAt: testNow.Add(24 * time.Hour),
	})
	mustRecordAccessToken(t, store, &AccessToken{JTI: jti, UserID: userID, FamilyID: family, ClientID: clientID, ExpiresAt: testNow.Add(15 * time.Minute)})
}

func TestAccountEvents_revoke_the_users_tokens(t *testing.T) {
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
			if tt.disabled {
				// Straight through the store, so that revokes nothing.
				if _, err := store.UpdateUser(t.Context(), "alice", func(u *User) error { u.Disabled = true; return nil }); err != nil {
					t.Fatalf("disabling alice: %v", err)
				}
			}
			seedLogin(t, store, alice.ID, "web", "rt-alice", "at-alice")
			seedLogin(t, store, bob.ID, "web", "rt-bob", "at-bob")

			tt.event(t, s, alice)

			wantAt, wantJTIs, wantCalls := time.Time{}, []string{}, int32(0)
			if tt.wantRevoked {
				wantAt, wantJTIs, wantCalls = testNow, []string{"at-alice"}, 1
			}
			if got := mustRefreshToken(t, store, "rt-alice").RevokedAt; !got.Equal(wantAt) {
				t.Errorf("alice's refresh token RevokedAt = %v, want %v", got, wantAt)
			}
			if got := revokedJTIs(t, store, testNow); !slices.Equal(got, wantJTIs) {
				t.Errorf("RevokedAccessTokens() = %v, want %v", got, wantJTIs)
			}
			if got := calls.Load(); got != wantCalls {
				t.Errorf("AfterRevoke called %d times, want %d", got, wantCalls)
			}
			if got := mustRefreshToken(t, store, "rt-bob").RevokedAt; !got.IsZero() {
				t.Errorf("bob's refresh token RevokedAt = %v, want zero: alice's event is not bob's", got)
			}
		})
	}
}

// mustUpdate applies p to alice through s.
func mustUpdate(t *testing.T, s *Service, p Patch) {
	t.Helper()
	if _, err := s.Update(t.Context(), CLIActor(), "alice", p); err != nil {
		t.Fatalf("Update(alice) = %v", err)
	}
}

var generatedClientID = regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`)

func TestRegisterClient_confidential_gets_a_generated_id_and_a_secret_shown_once(t *testing.T) {
	s, store := newTestService(t)
	c, secret, err := s.RegisterClient(t.Context(), NewClient{Confidential: true, Scopes: []string{"users:read", "me", "me"}})
	if err != nil {
		t.Fatalf("RegisterClient(confidential) = %v", err)
	}
	if !generatedClientID.MatchString(c.ID) {
		t.Errorf("generated ID = %q, want 16 bytes of unpadded base64url", c.ID)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(secret); err != nil || len(raw) != 32 {
		t.Errorf("secret = %q (%v), want 32 bytes of unpadded base64url", secret, err)
	}
	sum := sha256.Sum256([]byte(secret))
	if want := hex.EncodeToString(sum[:]); c.SecretHash != want {
		t.Errorf("SecretHash = %q, want hex SHA-256 of the secret %q", c.SecretHash, want)
	}
	if want := []string{"me", "users:read"}; !slices.Equal(c.Scopes, want) {
		t.Errorf("Scopes = %v, want sorted and deduplicated %v", c.Scopes, want)
	}
	if !c.CreatedAt.Equal(testNow) || !c.Confidential() {
		t.Errorf("client = %+v, want confidential, created at the injected clock's %v", c, testNow)
	}
	if stored, err := store.ClientByID(t.Context(), c.ID); err != nil || !reflect.DeepEqual(stored, c) {
		t.Errorf("ClientByID(%q) = %+v, %v; want %+v", c.ID, stored, err, c)
	}
	other, otherSecret, err := s.RegisterClient(t.Context(), NewClient{Confidential: true})
	if err != nil {
		t.Fatalf("second RegisterClient = %v", err)
	}
	if other.ID == c.ID || otherSecret == secret {
		t.Errorf("two registrations share ID %q or secret", c.ID)
	}
	if other.Scopes == nil || len(other.Scopes) != 0 {
		t.Errorf("client without scopes has Scopes %#v, want empty (any scope)", other.Scopes)
	}
}

func TestRegisterClient_public_client_has_no_secret(t *testing.T) {
	s, _ := newTestService(t)
	c, secret, err := s.RegisterClient(t.Context(), NewClient{ID: "cli"})
	if err != nil {
		t.Fatalf("RegisterClient(cli) = %v", err)
	}
	if secret != "" || c.SecretHash != "" || c.Confidential() || c.ID != "cli" {
		t.Errorf("RegisterClient(public cli) = %+v, secret %q; want ID cli, no secret", c, secret)
	}
}

func TestRegisterClient_validation(t *testing.T) {
	tests := []struct {
		name      string
		nc        NewClient
		wantField string
	}{
		{"id_longer_than_128", NewClient{ID: strings.Repeat("a", 129)}, "client_id"},
		{"id_with_space", NewClient{ID: "my app"}, "client_id"},
		{"id_with_slash", NewClient{ID: "a/b"}, "client_id"},
		{"id_with_colon_breaks_basic_auth", NewClient{ID: "a:b"}, "client_id"},
		{"id_non_ascii", NewClient{ID: "ápp"}, "client_id"},
		{"unknown_scope", NewClient{ID: "web", Scopes: []string{"me", "admin"}}, "scopes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, store := newTestService(t)
			_, _, err := s.RegisterClient(t.Context(), tt.nc)
			wantValidation(t, err, tt.wantField, "RegisterClient("+tt.name+")")
			if list, err := store.ListClients(t.Context()); err != nil || len(list) != 0 {
				t.Errorf("ListClients() after rejected RegisterClient = %+v, %v; want none", list, err)
			}
		})
	}

	for _, id := range []string{"a", strings.Repeat("z", 128), "My.App_v2~x-Y"} {
		s, _ := newTestService(t)
		if c, _, err := s.RegisterClient(t.Context(), NewClient{ID: id}); err != nil || c.ID != id {
			t.Errorf("RegisterClient(%q) = %+v, %v; want the client", id, c, err)
		}
	}
}

func TestRegisterClient_taken_id_is_ErrClientExists(t *testing.T) {
	s, _ := newTestService(t)
	if _, _, err := s.RegisterClient(t.Context(), NewClient{ID: "web", Confidential: true}); err != nil {
		t.Fatalf("RegisterClient(web) = %v", err)
	}
	if _, _, err := s.RegisterClient(t.Context(), NewClient{ID: "web"}); !errors.Is(err, ErrClientExists) {
		t.Errorf("second RegisterClient(web) = %v, want ErrClientExists", err)
	}
}

func TestAuthenticateClient(t *testing.T) {
	tests := []struct {
		name    string
		id      string
		secret  func(webSecret string) string
		wantErr error
	}{
		{"rfc6749_2.3.1_confidential_with_its_secret", "web", func(w string) string { return w }, nil},
		{"rfc6749_2.3.1_confidential_with_a_wrong_secret_is_invalid_credentials", "web", func(w string) string { return w + "x" }, ErrInvalidCredentials},
		{"rfc6749_2.3.1_confidential_without_secret_is_invalid_credentials", "web", func(string) string { return "" }, ErrInvalidCredentials},
		{"confidential_with_the_stored_hash_as_secret_is_invalid_credentials", "web", func(w string) string { return hashClientSecret(w) }, ErrInvalidCredentials},
		{"rfc6749_2.1_public_without_secret", "cli", func(string) string { return "" }, nil},
		{"public_with_a_secret_is_invalid_credentials", "cli", func(w string) string { return w }, ErrInvalidCredentials},
		{"unknown_client_is_not_found", "nope", func(w string) string { return w }, ErrNotFound},
		{"impossible_client_id_is_not_found", "bad id!", func(string) string { return "" }, ErrNotFound},
		{"empty_client_id_is_not_found", "", func(string) string { return "" }, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestService(t)
			_, webSecret, err := s.RegisterClient(t.Context(), NewClient{ID: "web", Confidential: true})
			if err != nil {
				t.Fatalf("RegisterClient(web) = %v", err)
			}
			if _, _, err := s.RegisterClient(t.Context(), NewClient{ID: "cli"}); err != nil {
				t.Fatalf("RegisterClient(cli) = %v", err)
			}
			secret := tt.secret(webSecret)
			got, err := s.AuthenticateClient(t.Context(), tt.id, secret)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("AuthenticateClient(%q, %q) = %v, want %v", tt.id, secret, err, tt.wantErr)
			}
			if tt.wantErr == nil && got.ID != tt.id {
				t.Errorf("AuthenticateClient(%q) = client %q, want %q", tt.id, got.ID, tt.id)
			}
			if tt.wantErr != nil && got != nil {
				t.Errorf("AuthenticateClient(%q, %q) returned %+v with error %v", tt.id, secret, got, err)
			}
		})
	}
}

func TestListClients_orders_by_id(t *testing.T) {
	s, _ := newTestService(t)
	for _, id := range []string{"web", "cli", "batch"} {
		if _, _, err := s.RegisterClient(t.Context(), NewClient{ID: id}); err != nil {
			t.Fatalf("RegisterClient(%s) = %v", id, err)
		}
	}
	list, err := s.ListClients(t.Context())
	if err != nil {
		t.Fatalf("ListClients() = %v", err)
	}
	var got []string
	for _, c := range list {
		got = append(got, c.ID)
	}
	if want := []string{"batch", "cli", "web"}; !slices.Equal(got, want) {
		t.Errorf("ListClients() IDs = %v, want %v", got, want)
	}
}

func TestDeleteClient_revokes_the_clients_tokens(t *testing.T) {
	ctx := t.Context()
	s, store, calls := newRevokingService(t)
	for _, id := range []string{"web", "cli"} {
		if _, _, err := s.RegisterClient(ctx, NewClient{ID: id}); err != nil {
			t.Fatalf("RegisterClient(%s) = %v", id, err)
		}
	}
	alice := mustCreateUser(t, s, NewUser{Username: "alice", Password: "alice-password"})
	seedLogin(t, store, alice.ID, "web", "rt-web", "at-web")
	seedLogin(t, store, alice.ID, "cli", "rt-cli", "at-cli")

	if err := s.DeleteClient(ctx, "web"); err != nil {
		t.Fatalf("DeleteClient(web) = %v", err)
	}
	if got := mustRefreshToken(t, store, "rt-web").RevokedAt; !got.Equal(testNow) {
		t.Errorf("web's refresh token RevokedAt = %v, want %v", got, testNow)
	}
	if got := mustRefreshToken(t, store, "rt-cli").RevokedAt; !got.IsZero() {
		t.Errorf("cli's refresh token RevokedAt = %v, want zero", got)
	}
	if got := revokedJTIs(t, store, testNow); !slices.Equal(got, []string{"at-web"}) {
		t.Errorf("RevokedAccessTokens() = %v, want [at-web]", got)
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("AfterRevoke called %d times, want 1", got)
	}
	if _, err := store.ClientByID(ctx, "web"); !errors.Is(err, ErrNotFound) {
		t.Errorf("ClientByID(web) after DeleteClient = %v, want ErrNotFound", err)
	}
	for _, id := range []string{"web", "nope", "bad id!"} {
		if err := s.DeleteClient(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("DeleteClient(%q) = %v, want ErrNotFound", id, err)
		}
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("AfterRevoke called %d times after deleting missing clients, want still 1", got)
	}
}
