package storetest

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// runClientTests is the ClientStore part of the suite.
func runClientTests(t *testing.T, newStore func(t *testing.T) storage.Store) {
	t.Run("rfc6749_2_client_create_get_list_delete", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		if got, err := s.ListClients(ctx); err != nil || got == nil || len(got) != 0 {
			t.Errorf("ListClients() on an empty store = %#v, %v; want an empty slice", got, err)
		}
		zone := time.FixedZone("UTC-7", -7*3600)
		created := time.Date(2025, 5, 1, 8, 30, 0, 42, zone)
		web := &storage.Client{
			ID:        "web",
			Secrets:   []storage.ClientSecret{{ID: "s1", Hash: hashOf("web secret"), CreatedAt: created}},
			Scopes:    []string{"me", "users:read"},
			CreatedAt: created,
			// Held by the client itself, kept apart from Scopes.
			ServiceScopes: []string{"tokens:introspect"},
			Grants:        []string{"client_credentials"},
		}
		wantWeb := *web
		wantWeb.CreatedAt = web.CreatedAt.UTC()
		wantWeb.Secrets = []storage.ClientSecret{{ID: "s1", Hash: hashOf("web secret"), CreatedAt: created.UTC()}}
		cursor := lastChange(t, s)
		if err := s.CreateClient(ctx, web); err != nil {
			t.Fatalf("CreateClient(web) = %v", err)
		}
		if got, want := entries(changesAfter(t, s, cursor)), entryNames(storage.ChangeClient, "web"); !slices.Equal(got, want) {
			t.Errorf("CreateClient(web) appended %v, want %v", got, want)
		}
		// A public client that may ask for any scope, on the store's clock.
		if err := s.CreateClient(ctx, &storage.Client{ID: "cli", Scopes: []string{}}); err != nil {
			t.Fatalf("CreateClient(cli) = %v", err)
		}
		cli, err := s.ClientByID(ctx, "cli")
		if err != nil {
			t.Fatalf("ClientByID(cli) = %v", err)
		}
		if cli.CreatedAt.IsZero() || cli.CreatedAt.Location() != time.UTC || cli.Secrets == nil || len(cli.Secrets) != 0 || len(cli.Scopes) != 0 ||
			cli.ServiceScopes == nil || len(cli.ServiceScopes) != 0 || cli.Grants == nil || len(cli.Grants) != 0 {
			t.Errorf("ClientByID(cli) = %+v, want CreatedAt from the store's clock in UTC, and empty (non-nil) lists of secrets, scopes, service scopes and grants", cli)
		}
		if got, err := s.ClientByID(ctx, "web"); err != nil || !reflect.DeepEqual(got, &wantWeb) {
			t.Errorf("ClientByID(web) = %+v, %v; want %+v", got, err, &wantWeb)
		}
		if !wantWeb.Confidential() || cli.Confidential() {
			t.Errorf("Confidential() web, cli = %v, %v; want true, false", wantWeb.Confidential(), cli.Confidential())
		}
		list, err := s.ListClients(ctx)
		if err != nil {
			t.Fatalf("ListClients() = %v", err)
		}
		if want := []*storage.Client{cli, &wantWeb}; !reflect.DeepEqual(list, want) {
			t.Errorf("ListClients() = %+v, want %+v ordered by ID", list, want)
		}
		if err := s.DeleteClient(ctx, "web", base); err != nil {
			t.Fatalf("DeleteClient(web) = %v", err)
		}
		if _, err := s.ClientByID(ctx, "web"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("ClientByID(web) after delete = %v, want ErrNotFound", err)
		}
		if list, err := s.ListClients(ctx); err != nil || len(list) != 1 || list[0].ID != "cli" {
			t.Errorf("ListClients() after delete = %+v, %v; want [cli]", list, err)
		}
	})

	t.Run("client_without_scopes_round_trips_as_empty_slice", func(t *testing.T) {
		s := newStore(t)
		if err := s.CreateClient(t.Context(), &storage.Client{ID: "cli", CreatedAt: base}); err != nil {
			t.Fatalf("CreateClient(cli) = %v", err)
		}
		if got, err := s.ClientByID(t.Context(), "cli"); err != nil || got.Scopes == nil || len(got.Scopes) != 0 {
			t.Errorf("ClientByID(cli) = %#v, %v; want Scopes []string{}", got, err)
		}
	})

	t.Run("duplicate_client_id_is_ErrClientExists_not_ErrUsernameTaken", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		if err := s.CreateClient(ctx, &storage.Client{ID: "web", Secrets: []storage.ClientSecret{{ID: "s1", Hash: "aa"}}, CreatedAt: base}); err != nil {
			t.Fatalf("CreateClient(web) = %v", err)
		}
		err := s.CreateClient(ctx, &storage.Client{ID: "web", Secrets: []storage.ClientSecret{{ID: "s2", Hash: "bb"}}, CreatedAt: base})
		if !errors.Is(err, storage.ErrClientExists) || errors.Is(err, storage.ErrUsernameTaken) {
			t.Errorf("second CreateClient(web) = %v, want ErrClientExists only", err)
		}
		if got, err := s.ClientByID(ctx, "web"); err != nil || len(got.Secrets) != 1 || got.Secrets[0].Hash != "aa" {
			t.Errorf("ClientByID(web) = %+v, %v; want the first client kept", got, err)
		}
		// A client and a user may share a name.
		mustCreateUser(t, s, newUser(t, "web"))
	})

	t.Run("missing_client_is_ErrNotFound", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.ClientByID(t.Context(), "nope"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("ClientByID(nope) = %v, want ErrNotFound", err)
		}
		if err := s.DeleteClient(t.Context(), "nope", base); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("DeleteClient(nope) = %v, want ErrNotFound", err)
		}
		assertNoChanges(t, s, 0, "DeleteClient(nope)")
	})

	t.Run("rfc7009_2.1_delete_client_revokes_its_live_sessions_in_the_same_transaction", func(t *testing.T) {
		s := newStore(t)
		for _, id := range []string{"web", "cli"} {
			if err := s.CreateClient(t.Context(), &storage.Client{ID: id, CreatedAt: base}); err != nil {
				t.Fatalf("CreateClient(%s) = %v", id, err)
			}
		}
		alice, bob := newUser(t, "alice"), newUser(t, "bob")
		mustCreateUser(t, s, alice)
		mustCreateUser(t, s, bob)
		for _, sess := range []*storage.Session{
			newSession(t, "a1", alice, "web"),
			newSession(t, "a2", alice, "cli"),
			newSession(t, "b1", bob, "web"),
			newSession(t, "b2", bob, "web"),
		} {
			mustCreateSession(t, s, sess, 0)
		}
		earlier := base.Add(10 * time.Second)
		mustRevoke(t, s, bob, "b2", earlier)
		cursor := lastChange(t, s)
		now := base.Add(time.Minute)
		if err := s.DeleteClient(t.Context(), "web", now); err != nil {
			t.Fatalf("DeleteClient(web) = %v", err)
		}
		if _, err := s.ClientByID(t.Context(), "web"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("ClientByID(web) after delete = %v, want ErrNotFound", err)
		}
		for _, tt := range []struct {
			id   string
			want time.Time
		}{
			{"a1", now},
			{"a2", time.Time{}},
			{"b1", now},
			{"b2", earlier},
		} {
			if got := mustSession(t, s, tt.id).RevokedAt; !got.Equal(tt.want) {
				t.Errorf("Session(%s).RevokedAt = %v, want %v", tt.id, got, tt.want)
			}
		}
		appended := changesAfter(t, s, cursor)
		if got, want := entries(appended), append(entryNames(storage.ChangeClient, "web"), entryNames(storage.ChangeSession, "a1", "b1")...); !slices.Equal(got, want) {
			t.Errorf("DeleteClient(web) appended %v, want %v", got, want)
		}
		assertChangesAt(t, appended, storage.ChangeSession, now)
	})

	t.Run("update_client_saves_lists_and_secrets_with_a_change_entry", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		old := storage.ClientSecret{ID: "s1", Hash: hashOf("one"), CreatedAt: base}
		if err := s.CreateClient(ctx, &storage.Client{ID: "svc", Secrets: []storage.ClientSecret{old}, CreatedAt: base}); err != nil {
			t.Fatalf("CreateClient(svc) = %v", err)
		}
		cursor := lastChange(t, s)
		next := storage.ClientSecret{ID: "s2", Hash: hashOf("two"), CreatedAt: base.Add(time.Hour)}
		got, err := s.UpdateClient(ctx, "svc", func(c *storage.Client) error {
			c.Secrets = append(c.Secrets, next)
			c.Grants = []string{"client_credentials"}
			c.ServiceScopes = []string{"tokens:introspect", "users:read"}
			c.Scopes = []string{"me"}
			return nil
		})
		if err != nil {
			t.Fatalf("UpdateClient(svc) = %v", err)
		}
		want := &storage.Client{ID: "svc", Secrets: []storage.ClientSecret{old, next}, Grants: []string{"client_credentials"},
			ServiceScopes: []string{"tokens:introspect", "users:read"}, Scopes: []string{"me"}, CreatedAt: base}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("UpdateClient(svc) = %+v, want %+v", got, want)
		}
		if read, err := s.ClientByID(ctx, "svc"); err != nil || !reflect.DeepEqual(read, want) {
			t.Errorf("ClientByID(svc) after the update = %+v, %v; want %+v", read, err, want)
		}
		if got, want := entries(changesAfter(t, s, cursor)), entryNames(storage.ChangeClient, "svc"); !slices.Equal(got, want) {
			t.Errorf("UpdateClient(svc) appended %v, want %v", got, want)
		}

		// Removing the old secret leaves the new one only.
		if _, err := s.UpdateClient(ctx, "svc", func(c *storage.Client) error {
			c.Secrets = c.Secrets[1:]
			return nil
		}); err != nil {
			t.Fatalf("UpdateClient(svc) removing s1 = %v", err)
		}
		if read, err := s.ClientByID(ctx, "svc"); err != nil || !reflect.DeepEqual(read.Secrets, []storage.ClientSecret{next}) {
			t.Errorf("ClientByID(svc).Secrets after removing s1 = %+v, %v; want [s2]", read, err)
		}

		// fn's error is returned unchanged and nothing is written.
		refused := errors.New("refused")
		cursor = lastChange(t, s)
		if _, err := s.UpdateClient(ctx, "svc", func(c *storage.Client) error {
			c.Secrets = nil
			return refused
		}); err != refused {
			t.Errorf("UpdateClient with a refusing fn = %v, want its error unchanged", err)
		}
		if read, err := s.ClientByID(ctx, "svc"); err != nil || len(read.Secrets) != 1 {
			t.Errorf("ClientByID(svc) after a refused update = %+v, %v; want s2 kept", read, err)
		}
		assertNoChanges(t, s, cursor, "a refused UpdateClient")
		if _, err := s.UpdateClient(ctx, "nope", func(*storage.Client) error { return nil }); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("UpdateClient(nope) = %v, want ErrNotFound", err)
		}
	})
}
