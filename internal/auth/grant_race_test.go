package auth

import (
	"context"
	"testing"

	"github.com/gatehouse/gatehouse/internal/users"
)

// accountChanges are the account events that must end every token the
// user holds, including those of a grant in flight (RFC 9700 §4.14.2).
var accountChanges = []struct {
	name   string
	change func(ctx context.Context, f *fixture, u *users.User) error
}{
	{"password_change", func(ctx context.Context, f *fixture, u *users.User) error {
		return f.users.ChangePassword(ctx, u.ID, "correct horse", "battery staple")
	}},
	{"password_reset_by_admin", func(ctx context.Context, f *fixture, u *users.User) error {
		_, err := f.users.Update(ctx, users.CLIActor(), u.Username, users.Patch{Password: ptr("battery staple")})
		return err
	}},
	{"disable", func(ctx context.Context, f *fixture, u *users.User) error {
		_, err := f.users.Update(ctx, users.CLIActor(), u.Username, users.Patch{Disabled: ptr(true)})
		return err
	}},
	{"delete", func(ctx context.Context, f *fixture, u *users.User) error {
		return f.users.Delete(ctx, users.CLIActor(), u.Username)
	}},
	{"scope_removal", func(ctx context.Context, f *fixture, u *users.User) error {
		_, err := f.users.Update(ctx, users.CLIActor(), u.Username, users.Patch{Scopes: &[]string{"me"}})
		return err
	}},
}

// inFlight makes the next grant run change once, after the grant was
// authorised and before the store write that issues it.
func (f *fixture) inFlight(t *testing.T, u *users.User, change func(context.Context, *fixture, *users.User) error) {
	t.Helper()
	f.issuer.testHookBeforeStore = func(ctx context.Context) {
		f.issuer.testHookBeforeStore = nil
		if err := change(ctx, f, u); err != nil {
			t.Errorf("account change in flight: %v", err)
		}
	}
}

// wantNoLiveSession checks that the user holds no session a refresh token
// could still use: the failed grant stored none, or the change ended it.
func (f *fixture) wantNoLiveSession(t *testing.T, u *users.User) {
	t.Helper()
	list, err := f.store.ListSessions(context.Background(), u.ID, f.now)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Errorf("the user has %d live sessions after the change: the grant outlived it", len(list))
	}
}

func TestPasswordGrant_rfc9700_4_14_2_a_login_in_flight_does_not_survive_the_account_change(t *testing.T) {
	for _, tc := range accountChanges {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, AlgRS256, nil)
			u := f.createUser(t, "dave", "correct horse", "me", "users:read")
			f.inFlight(t, u, tc.change)

			_, err := f.issuer.Token(context.Background(), TokenRequest{GrantType: GrantPassword, Username: "dave", Password: "correct horse"})
			wantOAuthError(t, err, CodeInvalidGrant, 400)
			f.wantNoLiveSession(t, u)
		})
	}
}

func TestRefreshGrant_rfc9700_4_14_2_a_refresh_in_flight_does_not_survive_the_account_change(t *testing.T) {
	for _, tc := range accountChanges {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, AlgRS256, nil)
			u := f.createUser(t, "dave", "correct horse", "me", "users:read")
			login := f.grant(t, TokenRequest{GrantType: GrantPassword, Username: "dave", Password: "correct horse"})
			f.inFlight(t, u, tc.change)

			_, err := f.refresh(login.RefreshToken, "", "")
			wantOAuthError(t, err, CodeInvalidGrant, 400)
			f.wantNoLiveSession(t, u)
			f.wantRevoked(t, login.AccessToken)
		})
	}
}

func TestPasswordGrant_an_unrelated_change_in_flight_keeps_the_login(t *testing.T) {
	// Adding a scope ends no session, so a login in flight goes through.
	f := newFixture(t, AlgRS256, nil)
	u := f.createUser(t, "dave", "correct horse", "me")
	f.inFlight(t, u, func(ctx context.Context, f *fixture, u *users.User) error {
		_, err := f.users.Update(ctx, users.CLIActor(), u.Username, users.Patch{Scopes: &[]string{"me", "users:read"}})
		return err
	})
	r := f.grant(t, TokenRequest{GrantType: GrantPassword, Username: "dave", Password: "correct horse"})
	f.wantActive(t, r.AccessToken)
	if _, err := f.refresh(r.RefreshToken, "", ""); err != nil {
		t.Fatalf("refresh after the login: %v", err)
	}
}
