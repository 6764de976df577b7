package users

import (
	"errors"
	"slices"
	"strings"
	"testing"
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
