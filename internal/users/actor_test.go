package users

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func wantForbidden(t *testing.T, err error, call string) {
	t.Helper()
	var fe *ForbiddenError
	if !errors.As(err, &fe) {
		t.Errorf("%s = %v, want *ForbiddenError", call, err)
	}
}

func TestService_privilege_the_caller_acts_within_what_both_its_token_and_its_account_hold(t *testing.T) {
	s, _, _ := newRevokingService(t)
	ctx := t.Context()
	mallory := mustCreateUser(t, s, NewUser{Username: "mallory", Password: "mallory-password", Scopes: []string{"me", "users:write"}})
	mustCreateUser(t, s, NewUser{Username: "root", Password: "root-password", Scopes: testScopes})
	mustCreateUser(t, s, NewUser{Username: "plain", Password: "plain-password", Scopes: []string{"me"}})
	as := TokenActor(mallory.ID, "me users:write")

	_, err := s.Create(ctx, as, NewUser{Username: "sock", Password: "sock-password", Scopes: []string{"me", "users:read"}})
	wantForbidden(t, err, "Create(sock, a scope mallory lacks)")
	_, err = s.Update(ctx, as, "root", Patch{Password: new("taken-over")})
	wantForbidden(t, err, "Update(root, password)")
	wantForbidden(t, s.Delete(ctx, as, "root"), "Delete(root)")
	_, err = s.Update(ctx, as, "mallory", Patch{Scopes: &[]string{"me", "users:write", "users:read"}})
	wantForbidden(t, err, "Update(mallory, widen own scopes)")
	if _, err := s.Update(ctx, as, "plain", Patch{Disabled: new(true)}); err != nil {
		t.Errorf("Update(plain, disable) = %v, want allowed: plain holds only what mallory holds", err)
	}

	// A token carrying a scope the account no longer holds grants nothing
	// through it.
	if _, err := s.Update(ctx, CLIActor(), "mallory", Patch{Scopes: &[]string{"users:write"}}); err != nil {
		t.Fatal(err)
	}
	_, err = s.Create(ctx, as, NewUser{Username: "sock", Password: "sock-password", Scopes: []string{"me"}})
	wantForbidden(t, err, "Create(sock, me) after me was removed from mallory")

	// A disabled or deleted caller can do nothing, whatever its token says.
	if _, err := s.Update(ctx, CLIActor(), "mallory", Patch{Disabled: new(true)}); err != nil {
		t.Fatal(err)
	}
	_, err = s.Create(ctx, as, NewUser{Username: "sock", Password: "sock-password", Scopes: []string{}})
	wantForbidden(t, err, "Create as a disabled caller")

	// The CLI is unrestricted.
	if _, err := s.Update(ctx, CLIActor(), "root", Patch{Scopes: &[]string{"me"}}); err != nil {
		t.Errorf("CLI Update(root) = %v", err)
	}
	if got, _ := s.Get(ctx, "root"); !slices.Equal(got.Scopes, []string{"me"}) {
		t.Errorf("root scopes = %v after the CLI change", got.Scopes)
	}
}

func TestService_the_last_enabled_manager_cannot_lose_users_write(t *testing.T) {
	s, _, _ := newRevokingService(t)
	ctx := t.Context()
	root := mustCreateUser(t, s, NewUser{Username: "root", Password: "root-password", Scopes: testScopes})
	mustCreateUser(t, s, NewUser{Username: "retired", Password: "retired-password", Scopes: testScopes})
	if _, err := s.Update(ctx, CLIActor(), "retired", Patch{Disabled: new(true)}); err != nil {
		t.Fatal(err) // a disabled holder does not count
	}
	as := TokenActor(root.ID, strings.Join(testScopes, " "))
	for name, err := range map[string]error{
		"narrow":  func() error { _, err := s.Update(ctx, as, "root", Patch{Scopes: &[]string{"me"}}); return err }(),
		"disable": func() error { _, err := s.Update(ctx, as, "root", Patch{Disabled: new(true)}); return err }(),
	} {
		if !errors.Is(err, ErrLastAdmin) {
			t.Errorf("%s the last manager = %v, want ErrLastAdmin", name, err)
		}
	}
	if err := s.Delete(ctx, as, "root"); !errors.Is(err, ErrLastAdmin) {
		t.Errorf("Delete(root) as itself = %v, want ErrLastAdmin", err)
	}
	// The CLI may still do it: it is the recovery path.
	if _, err := s.Update(ctx, CLIActor(), "root", Patch{Scopes: &[]string{"me"}}); err != nil {
		t.Errorf("CLI narrowing the last manager = %v", err)
	}
}

// racingStore runs between once, just before the first UpdateUser or
// DeleteUser the service calls: whatever the service read or counted
// before its write is stale by then, as when another request commits in
// between. The change between makes goes straight to the store.
type racingStore struct {
	Store
	between func()
	ran     bool
}

func (r *racingStore) race() {
	if !r.ran {
		r.ran = true
		r.between()
	}
}

func (r *racingStore) UpdateUser(ctx context.Context, username string, fn func(*User) error, keep ...string) (*User, error) {
	r.race()
	return r.Store.UpdateUser(ctx, username, fn, keep...)
}

func (r *racingStore) DeleteUser(ctx context.Context, username string, now time.Time, check func(*User) error, keep ...string) error {
	r.race()
	return r.Store.DeleteUser(ctx, username, now, check, keep...)
}

// Two managers stepping down at the same time: the second to write finds
// itself the last enabled manager, whatever it counted before.
func TestService_managers_stepping_down_together_leave_one(t *testing.T) {
	for _, step := range []struct {
		name string
		down func(s *Service, as Actor) error
	}{
		{"narrow", func(s *Service, as Actor) error {
			_, err := s.Update(t.Context(), as, "ops", Patch{Scopes: &[]string{"me"}})
			return err
		}},
		{"disable", func(s *Service, as Actor) error {
			_, err := s.Update(t.Context(), as, "ops", Patch{Disabled: new(true)})
			return err
		}},
		{"delete", func(s *Service, as Actor) error { return s.Delete(t.Context(), as, "ops") }},
	} {
		t.Run(step.name, func(t *testing.T) {
			store := &racingStore{Store: openTestStore(t)}
			s := newTestServiceOn(t, store)
			root := mustCreateUser(t, s, NewUser{Username: "root", Password: "root-password", Scopes: testScopes})
			ops := mustCreateUser(t, s, NewUser{Username: "ops", Password: "ops-password", Scopes: testScopes})
			all := strings.Join(testScopes, " ")
			store.between = func() {
				// root steps down first, while ops is still a manager.
				if _, err := s.Update(t.Context(), TokenActor(root.ID, all), "root", Patch{Scopes: &[]string{"me"}}); err != nil {
					t.Errorf("root stepping down while ops manages = %v, want allowed", err)
				}
			}
			if err := step.down(s, TokenActor(ops.ID, all)); !errors.Is(err, ErrLastAdmin) {
				t.Errorf("ops stepping down (%s) after root did = %v, want ErrLastAdmin", step.name, err)
			}
			got, err := store.UserByUsername(t.Context(), "ops")
			if err != nil {
				t.Fatalf("ops after the refusal: %v, want kept", err)
			}
			if !got.Holds(ManageScope) {
				t.Errorf("ops after the refusal: scopes %v, disabled %v; want an enabled holder of %s", got.Scopes, got.Disabled, ManageScope)
			}
		})
	}
}

// A delete is decided against the user as it is when the delete is
// written: a user granted a scope the caller lacks meanwhile stays.
func TestService_delete_is_decided_against_the_stored_user(t *testing.T) {
	store := &racingStore{Store: openTestStore(t)}
	s := newTestServiceOn(t, store)
	mallory := mustCreateUser(t, s, NewUser{Username: "mallory", Password: "mallory-password", Scopes: []string{"me", "users:write"}})
	mustCreateUser(t, s, NewUser{Username: "plain", Password: "plain-password", Scopes: []string{"me"}})
	store.between = func() {
		if _, err := s.Update(t.Context(), CLIActor(), "plain", Patch{Scopes: &[]string{"me", "users:read"}}); err != nil {
			t.Errorf("granting plain users:read = %v", err)
		}
	}
	wantForbidden(t, s.Delete(t.Context(), TokenActor(mallory.ID, "me users:write"), "plain"), "Delete(plain) after plain gained users:read")
	if _, err := store.UserByUsername(t.Context(), "plain"); err != nil {
		t.Errorf("plain after the refused delete: %v, want kept", err)
	}
}
