package auth

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
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
	"github.com/gatehouse/gatehouse/internal/users"
)

var clientsNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func newTestClients(t *testing.T) (*Clients, storage.Store) {
	t.Helper()
	store := openTestStore(t)
	return NewClients(store, testScopes, func() time.Time { return clientsNow }, nil), store
}

// wantClientValidation fails unless err is a *users.ValidationError for field.
func wantClientValidation(t *testing.T, err error, field string) {
	t.Helper()
	var ve *users.ValidationError
	if !errors.As(err, &ve) || ve.Field != field {
		t.Errorf("got %v, want a *users.ValidationError for %q", err, field)
	}
}

var generatedClientID = regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`)

func TestRegisterClient_confidential_gets_a_generated_id_and_a_secret_shown_once(t *testing.T) {
	s, store := newTestClients(t)
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
	if want := hex.EncodeToString(sum[:]); len(c.Secrets) != 1 || c.Secrets[0].Hash != want || len(c.Secrets[0].ID) != 32 {
		t.Errorf("Secrets = %+v, want one, with a 32-character id and the hex SHA-256 %q of the secret", c.Secrets, want)
	}
	if want := []string{"me", "users:read"}; !slices.Equal(c.Scopes, want) {
		t.Errorf("Scopes = %v, want sorted and deduplicated %v", c.Scopes, want)
	}
	if !c.CreatedAt.Equal(clientsNow) || !c.Confidential() {
		t.Errorf("client = %+v, want confidential, created at the injected clock's %v", c, clientsNow)
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
	s, _ := newTestClients(t)
	c, secret, err := s.RegisterClient(t.Context(), NewClient{ID: "cli"})
	if err != nil {
		t.Fatalf("RegisterClient(cli) = %v", err)
	}
	if secret != "" || len(c.Secrets) != 0 || c.Confidential() || c.ID != "cli" {
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
			s, store := newTestClients(t)
			_, _, err := s.RegisterClient(t.Context(), tt.nc)
			wantClientValidation(t, err, tt.wantField)
			if list, err := store.ListClients(t.Context()); err != nil || len(list) != 0 {
				t.Errorf("ListClients() after rejected RegisterClient = %+v, %v; want none", list, err)
			}
		})
	}

	for _, id := range []string{"a", strings.Repeat("z", 128), "My.App_v2~x-Y"} {
		s, _ := newTestClients(t)
		if c, _, err := s.RegisterClient(t.Context(), NewClient{ID: id}); err != nil || c.ID != id {
			t.Errorf("RegisterClient(%q) = %+v, %v; want the client", id, c, err)
		}
	}
}

func TestRegisterClient_taken_id_is_ErrClientExists(t *testing.T) {
	s, _ := newTestClients(t)
	if _, _, err := s.RegisterClient(t.Context(), NewClient{ID: "web", Confidential: true}); err != nil {
		t.Fatalf("RegisterClient(web) = %v", err)
	}
	if _, _, err := s.RegisterClient(t.Context(), NewClient{ID: "web"}); !errors.Is(err, storage.ErrClientExists) {
		t.Errorf("second RegisterClient(web) = %v, want storage.ErrClientExists", err)
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
		{"rfc6749_2.3.1_confidential_with_a_wrong_secret_is_invalid_credentials", "web", func(w string) string { return w + "x" }, users.ErrInvalidCredentials},
		{"rfc6749_2.3.1_confidential_without_secret_is_invalid_credentials", "web", func(string) string { return "" }, users.ErrInvalidCredentials},
		{"confidential_with_the_stored_hash_as_secret_is_invalid_credentials", "web", func(w string) string { return hashClientSecret(w) }, users.ErrInvalidCredentials},
		{"rfc6749_2.1_public_without_secret", "cli", func(string) string { return "" }, nil},
		{"public_with_a_secret_is_invalid_credentials", "cli", func(w string) string { return w }, users.ErrInvalidCredentials},
		{"unknown_client_is_not_found", "nope", func(w string) string { return w }, storage.ErrNotFound},
		{"impossible_client_id_is_not_found", "bad id!", func(string) string { return "" }, storage.ErrNotFound},
		{"empty_client_id_is_not_found", "", func(string) string { return "" }, storage.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestClients(t)
			_, webSecret, err := s.RegisterClient(t.Context(), NewClient{ID: "web", Confidential: true})
			if err != nil {
				t.Fatalf("RegisterClient(web) = %v", err)
			}
			if _, _, err := s.RegisterClient(t.Context(), NewClient{ID: "cli"}); err != nil {
				t.Fatalf("RegisterClient(cli) = %v", err)
			}
			secret := tt.secret(webSecret)
			got, secretID, err := s.AuthenticateClient(t.Context(), tt.id, secret)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("AuthenticateClient(%q, %q) = %v, want %v", tt.id, secret, err, tt.wantErr)
			}
			if tt.wantErr == nil && got.ID != tt.id {
				t.Errorf("AuthenticateClient(%q) = client %q, want %q", tt.id, got.ID, tt.id)
			}
			if tt.wantErr == nil && got.Confidential() && (len(got.Secrets) != 1 || secretID != got.Secrets[0].ID) {
				t.Errorf("AuthenticateClient(%q) named secret %q, want %+v's", tt.id, secretID, got.Secrets)
			}
			if tt.wantErr != nil && got != nil {
				t.Errorf("AuthenticateClient(%q, %q) returned %+v with error %v", tt.id, secret, got, err)
			}
		})
	}
}

func TestListClients_orders_by_id(t *testing.T) {
	s, _ := newTestClients(t)
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

func TestDeleteClient_revokes_the_clients_sessions(t *testing.T) {
	ctx := t.Context()
	store := openTestStore(t)
	var calls int
	s := NewClients(store, testScopes, func() time.Time { return clientsNow }, func(context.Context) { calls++ })
	for _, id := range []string{"web", "cli"} {
		if _, _, err := s.RegisterClient(ctx, NewClient{ID: id}); err != nil {
			t.Fatalf("RegisterClient(%s) = %v", id, err)
		}
	}
	if calls != 2 {
		t.Errorf("afterChange called %d times by two registrations, want 2", calls)
	}
	calls = 0
	alice := &storage.User{ID: "alice-id", Username: "alice", PasswordHash: "x", Scopes: []string{"me"}}
	if err := store.CreateUser(ctx, alice); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"web", "cli"} {
		sess := &storage.Session{ID: "sess-" + c, UserID: alice.ID, ClientID: c, Scopes: []string{"me"},
			IdleExpiresAt: clientsNow.Add(time.Hour), ExpiresAt: clientsNow.Add(time.Hour), SecretHash: "00"}
		if err := store.CreateSession(ctx, sess, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteClient(ctx, "web"); err != nil {
		t.Fatalf("DeleteClient(web) = %v", err)
	}
	if got, _ := store.Session(ctx, "sess-web"); got.RevokedAt.IsZero() {
		t.Errorf("web's session is still live after DeleteClient")
	}
	if got, _ := store.Session(ctx, "sess-cli"); !got.RevokedAt.IsZero() {
		t.Errorf("cli's session was revoked with web")
	}
	if calls != 1 {
		t.Errorf("afterChange called %d times, want 1", calls)
	}
	if _, err := store.ClientByID(ctx, "web"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("ClientByID(web) after DeleteClient = %v, want ErrNotFound", err)
	}
	for _, id := range []string{"web", "nope", "bad id!"} {
		if err := s.DeleteClient(ctx, id); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("DeleteClient(%q) = %v, want ErrNotFound", id, err)
		}
	}
	if calls != 1 {
		t.Errorf("afterChange called %d times after deleting missing clients, want still 1", calls)
	}
}

func TestRegisterClient_the_public_client_id_is_reserved(t *testing.T) {
	s, _ := newTestClients(t)
	for _, id := range []string{"public", "Public", "PUBLIC"} {
		_, _, err := s.RegisterClient(t.Context(), NewClient{ID: id, Confidential: true})
		wantClientValidation(t, err, "client_id")
	}
}
