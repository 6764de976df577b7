package auth

import (
	"context"
	"errors"
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
// authorised and before its tokens are stored, and reports the refresh
// token the grant was about to answer.
func (f *fixture) inFlight(t *testing.T, u *users.User, change func(context.Context, *fixture, *users.User) error) *string {
	t.Helper()
	var refresh string
	f.issuer.testHookBeforeStore = func(ctx context.Context, raw string) {
		f.issuer.testHookBeforeStore = nil
		refresh = raw
		if err := change(ctx, f, u); err != nil {
			t.Errorf("account change in flight: %v", err)
		}
	}
	return &refresh
}

// wantNoLiveRefresh checks that the refresh token a failed grant was about
// to answer is not usable: never stored, or revoked with the account.
func (f *fixture) wantNoLiveRefresh(t *testing.T, raw string) {
	t.Helper()
	if raw == "" {
		t.Fatal("the hook saw no refresh token")
	}
	rt, err := f.store.RefreshToken(context.Background(), hashToken(raw))
	switch {
	case errors.Is(err, users.ErrNotFound):
	case err != nil:
		t.Fatal(err)
	case rt.RevokedAt.IsZero():
		t.Errorf("the grant's refresh token is stored unrevoked: it would outlive the account change")
	}
	if _, err := f.refresh(raw, "", ""); err == nil {
		t.Errorf("the grant's refresh token still refreshes")
	}
}

func TestPasswordGrant_rfc9700_4_14_2_a_login_in_flight_does_not_survive_the_account_change(t *testing.T) {
	for _, tc := range accountChanges {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, AlgRS256, nil)
			u := f.createUser(t, "dave", "correct horse", "me", "users:read")
			refresh := f.inFlight(t, u, tc.change)

			_, err := f.issuer.Token(context.Background(), TokenRequest{GrantType: GrantPassword, Username: "dave", Password: "correct horse"})
			wantOAuthError(t, err, CodeInvalidGrant, 400)
			f.wantNoLiveRefresh(t, *refresh)
		})
	}
}

func TestRefreshGrant_rfc9700_4_14_2_a_refresh_in_flight_does_not_survive_the_account_change(t *testing.T) {
	for _, tc := range accountChanges {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, AlgRS256, nil)
			u := f.createUser(t, "dave", "correct horse", "me", "users:read")
			login := f.grant(t, TokenRequest{GrantType: GrantPassword, Username: "dave", Password: "correct horse"})
			successor := f.inFlight(t, u, tc.change)

			_, err := f.refresh(login.RefreshToken, "", "")
			wantOAuthError(t, err, CodeInvalidGrant, 400)
			f.wantNoLiveRefresh(t, *successor)
			f.wantRevoked(t, login.AccessToken)
		})
	}
}

func TestPasswordGrant_an_unrelated_change_in_flight_keeps_the_login(t *testing.T) {
	// Adding a scope ends no token, so a login in flight goes through.
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
