package auth

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/users"
)

func (f *fixture) grant(t *testing.T, req TokenRequest) *TokenResponse {
	t.Helper()
	resp, err := f.issuer.Token(context.Background(), req)
	if err != nil {
		t.Fatalf("token %+v: %v", req.GrantType, err)
	}
	return resp
}

func (f *fixture) refresh(refresh, scope, clientID string) (*TokenResponse, error) {
	return f.issuer.Token(context.Background(), TokenRequest{GrantType: GrantRefreshToken, RefreshToken: refresh, Scope: scope, ClientID: clientID})
}

func (f *fixture) wantActive(t *testing.T, access string) {
	t.Helper()
	if _, err := f.validator.Verify(access); err != nil {
		t.Fatalf("access token refused: %v", err)
	}
}

func (f *fixture) wantRevoked(t *testing.T, access string) {
	t.Helper()
	_, err := f.validator.Verify(access)
	var be *BearerError
	if !errors.As(err, &be) || be.Code != BearerInvalidToken {
		t.Fatalf("got %v, want invalid_token for a revoked access token", err)
	}
}

func TestRefreshGrant(t *testing.T) {
	f := newFixture(t, AlgRS256, nil)
	f.createUser(t, "alice", "correct horse", "me", "users:read")
	login := func(t *testing.T) *TokenResponse {
		t.Helper()
		return f.grant(t, TokenRequest{GrantType: GrantPassword, Username: "alice", Password: "correct horse"})
	}

	t.Run("rfc6749_5.1_password_grant_returns_a_refresh_token", func(t *testing.T) {
		if r := login(t); len(r.RefreshToken) < 43 {
			t.Fatalf("got refresh token %q, want 256 random bits", r.RefreshToken)
		}
	})

	t.Run("rfc6749_6_refresh_rotates_the_refresh_token", func(t *testing.T) {
		first := login(t)
		second, err := f.refresh(first.RefreshToken, "", "")
		if err != nil {
			t.Fatal(err)
		}
		if second.RefreshToken == "" || second.RefreshToken == first.RefreshToken || second.AccessToken == first.AccessToken {
			t.Fatal("refresh did not return a new refresh and access token")
		}
		if second.Scope != "me users:read" {
			t.Errorf("got scope %q, want the original scope", second.Scope)
		}
		f.wantActive(t, second.AccessToken)
	})

	t.Run("rfc9700_4.14.2_reuse_after_the_window_revokes_the_session", func(t *testing.T) {
		first := login(t)
		second, err := f.refresh(first.RefreshToken, "", "")
		if err != nil {
			t.Fatal(err)
		}
		f.now = f.now.Add(DefaultReuseWindow)
		defer func() { f.now = f.now.Add(-DefaultReuseWindow) }()
		_, err = f.refresh(first.RefreshToken, "", "")
		wantOAuthError(t, err, CodeInvalidGrant, 400)
		// The legitimate holder's current token dies with the family.
		_, err = f.refresh(second.RefreshToken, "", "")
		wantOAuthError(t, err, CodeInvalidGrant, 400)
		f.wantRevoked(t, second.AccessToken)
		f.wantRevoked(t, first.AccessToken)
	})

	t.Run("rfc6749_6_narrower_scope_is_granted_and_the_refresh_token_keeps_its_scope", func(t *testing.T) {
		narrowed, err := f.refresh(login(t).RefreshToken, "me", "")
		if err != nil {
			t.Fatal(err)
		}
		if narrowed.Scope != "me" {
			t.Errorf("got scope %q, want me", narrowed.Scope)
		}
		again, err := f.refresh(narrowed.RefreshToken, "", "")
		if err != nil {
			t.Fatal(err)
		}
		if again.Scope != "me users:read" {
			t.Errorf("got scope %q after a plain refresh, want the original me users:read", again.Scope)
		}
	})

	t.Run("rfc6749_6_wider_scope_is_invalid_scope_and_does_not_burn_the_token", func(t *testing.T) {
		r := f.grant(t, TokenRequest{GrantType: GrantPassword, Username: "alice", Password: "correct horse", Scope: "me"})
		_, err := f.refresh(r.RefreshToken, "me users:read", "")
		wantOAuthError(t, err, CodeInvalidScope, 400)
		if _, err := f.refresh(r.RefreshToken, "", ""); err != nil {
			t.Fatalf("the refused request burned the token: %v", err)
		}
	})

	t.Run("rfc6749_6_refresh_token_is_bound_to_its_client", func(t *testing.T) {
		r := f.grant(t, TokenRequest{GrantType: GrantPassword, Username: "alice", Password: "correct horse", ClientID: "app-one"})
		_, err := f.refresh(r.RefreshToken, "", "app-two")
		wantOAuthError(t, err, CodeInvalidGrant, 400)
		if _, err := f.refresh(r.RefreshToken, "", "app-one"); err != nil {
			t.Fatalf("own client: %v", err)
		}
	})

	for _, tc := range []struct{ name, token string }{
		{"rfc6749_5.2_unknown_refresh_token_is_invalid_grant", "not-a-token-we-issued"},
		{"rfc6749_5.2_access_token_as_refresh_token_is_invalid_grant", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			token := tc.token
			if token == "" {
				token = login(t).AccessToken
			}
			_, err := f.refresh(token, "", "")
			wantOAuthError(t, err, CodeInvalidGrant, 400)
		})
	}

	t.Run("rfc6749_5.2_missing_refresh_token_is_invalid_request", func(t *testing.T) {
		_, err := f.refresh("", "", "")
		wantOAuthError(t, err, CodeInvalidRequest, 400)
	})

	t.Run("rfc9700_4.14.2_50_concurrent_refreshes_of_one_token_converge_on_one_child", func(t *testing.T) {
		r := login(t)
		const n = 50
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			children = map[string]int{}
		)
		for range n {
			wg.Go(func() {
				next, err := f.refresh(r.RefreshToken, "", "")
				if err != nil {
					t.Errorf("a concurrent refresh failed: %v", err)
					return
				}
				f.wantActive(t, next.AccessToken)
				mu.Lock()
				children[next.RefreshToken]++
				mu.Unlock()
			})
		}
		wg.Wait()
		if len(children) != 1 {
			t.Fatalf("got %d different refresh tokens from %d concurrent refreshes, want 1", len(children), n)
		}
		var child string
		for c := range children {
			child = c
		}
		sid, _, _, _ := parseRefreshToken(child)
		s, err := f.store.Session(context.Background(), sid)
		if err != nil || s.Generation != 1 {
			t.Fatalf("session after the race: %+v, %v; want one rotation (generation 1)", s, err)
		}
		// The one child works; the parent after the window is reuse.
		grandchild, err := f.refresh(child, "", "")
		if err != nil {
			t.Fatalf("refreshing the converged child: %v", err)
		}
		f.now = f.now.Add(DefaultReuseWindow)
		defer func() { f.now = f.now.Add(-DefaultReuseWindow) }()
		_, err = f.refresh(r.RefreshToken, "", "")
		wantOAuthError(t, err, CodeInvalidGrant, 400)
		_, err = f.refresh(grandchild.RefreshToken, "", "")
		wantOAuthError(t, err, CodeInvalidGrant, 400)
	})
}

func TestRefreshExpiry(t *testing.T) {
	f := newFixture(t, AlgRS256, nil)
	f.issuer.cfg.RefreshTTL = 24 * time.Hour
	f.issuer.cfg.RefreshFamilyTTL = 72 * time.Hour
	f.createUser(t, "bob", "correct horse", "me")
	start := f.now

	t.Run("idle_refresh_token_expires", func(t *testing.T) {
		f.now = start
		r := f.grant(t, TokenRequest{GrantType: GrantPassword, Username: "bob", Password: "correct horse"})
		f.now = start.Add(25 * time.Hour)
		_, err := f.refresh(r.RefreshToken, "", "")
		wantOAuthError(t, err, CodeInvalidGrant, 400)
	})
	t.Run("rotations_extend_the_idle_lifetime_up_to_the_family_lifetime", func(t *testing.T) {
		f.now = start
		r := f.grant(t, TokenRequest{GrantType: GrantPassword, Username: "bob", Password: "correct horse"})
		for day := 1; day <= 2; day++ {
			f.now = start.Add(time.Duration(day) * 23 * time.Hour)
			next, err := f.refresh(r.RefreshToken, "", "")
			if err != nil {
				t.Fatalf("day %d: %v", day, err)
			}
			r = next
		}
		f.now = start.Add(72*time.Hour + time.Second)
		_, err := f.refresh(r.RefreshToken, "", "")
		wantOAuthError(t, err, CodeInvalidGrant, 400)
	})
}

func TestRevoke(t *testing.T) {
	f := newFixture(t, AlgRS256, nil)
	f.createUser(t, "carol", "correct horse", "me")
	login := func(t *testing.T, clientID string) *TokenResponse {
		t.Helper()
		return f.grant(t, TokenRequest{GrantType: GrantPassword, Username: "carol", Password: "correct horse", ClientID: clientID})
	}
	revoke := func(token, hint, clientID string) error {
		return f.issuer.Revoke(context.Background(), RevocationRequest{Token: token, TokenTypeHint: hint, ClientID: clientID})
	}

	t.Run("rfc7009_2.1_revoking_a_refresh_token_revokes_its_session", func(t *testing.T) {
		first := login(t, "")
		second, err := f.refresh(first.RefreshToken, "", "")
		if err != nil {
			t.Fatal(err)
		}
		if err := revoke(second.RefreshToken, HintRefreshToken, ""); err != nil {
			t.Fatal(err)
		}
		_, err = f.refresh(second.RefreshToken, "", "")
		wantOAuthError(t, err, CodeInvalidGrant, 400)
		f.wantRevoked(t, second.AccessToken)
	})
	t.Run("rfc7009_2.1_revoked_access_token_is_refused_at_once", func(t *testing.T) {
		r := login(t, "")
		f.wantActive(t, r.AccessToken)
		if err := revoke(r.AccessToken, HintAccessToken, ""); err != nil {
			t.Fatal(err)
		}
		f.wantRevoked(t, r.AccessToken)
		// The refresh token is another grant and stays valid.
		if _, err := f.refresh(r.RefreshToken, "", ""); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("rfc7009_2.1_a_wrong_hint_still_finds_the_token", func(t *testing.T) {
		r := login(t, "")
		if err := revoke(r.AccessToken, HintRefreshToken, ""); err != nil {
			t.Fatal(err)
		}
		f.wantRevoked(t, r.AccessToken)
	})
	t.Run("rfc7009_2.2_unknown_token_is_not_an_error", func(t *testing.T) {
		for _, tok := range []string{"garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30."} {
			if err := revoke(tok, "", ""); err != nil {
				t.Errorf("revoke %q: %v", tok, err)
			}
		}
	})
	t.Run("rfc7009_2.1_revoking_twice_is_not_an_error", func(t *testing.T) {
		r := login(t, "")
		for range 2 {
			if err := revoke(r.RefreshToken, "", ""); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("rfc7009_2.1_a_client_cannot_revoke_another_clients_token", func(t *testing.T) {
		r := login(t, "app-one")
		err := revoke(r.RefreshToken, "", "app-two")
		wantOAuthError(t, err, CodeUnauthorizedClient, 400)
		if _, err := f.refresh(r.RefreshToken, "", "app-one"); err != nil {
			t.Fatalf("the refused revocation took effect: %v", err)
		}
		wantOAuthError(t, revoke(r.AccessToken, "", "app-two"), CodeUnauthorizedClient, 400)
		f.wantActive(t, r.AccessToken)
	})
	t.Run("rfc7009_2.1_missing_token_is_invalid_request", func(t *testing.T) {
		wantOAuthError(t, revoke("", "", ""), CodeInvalidRequest, 400)
	})
}

func TestAccountEventsRevoke(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		event  func(f *fixture, u *users.User) error
		revoke bool
	}{
		{"password_change", func(f *fixture, u *users.User) error {
			return f.users.ChangePassword(ctx, u.ID, "correct horse", "battery staple")
		}, true},
		{"password_reset_by_admin", func(f *fixture, u *users.User) error {
			_, err := f.users.Update(ctx, users.CLIActor(), u.Username, users.Patch{Password: ptr("battery staple")})
			return err
		}, true},
		{"disable", func(f *fixture, u *users.User) error {
			_, err := f.users.Update(ctx, users.CLIActor(), u.Username, users.Patch{Disabled: ptr(true)})
			return err
		}, true},
		{"delete", func(f *fixture, u *users.User) error { return f.users.Delete(ctx, users.CLIActor(), u.Username) }, true},
		{"scope_removal", func(f *fixture, u *users.User) error {
			_, err := f.users.Update(ctx, users.CLIActor(), u.Username, users.Patch{Scopes: &[]string{"me"}})
			return err
		}, true},
		{"scope_addition_keeps_tokens", func(f *fixture, u *users.User) error {
			_, err := f.users.Update(ctx, users.CLIActor(), u.Username, users.Patch{Scopes: &[]string{"me", "users:read", "users:write"}})
			return err
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, AlgRS256, nil)
			u := f.createUser(t, "dave", "correct horse", "me", "users:read")
			r := f.grant(t, TokenRequest{GrantType: GrantPassword, Username: "dave", Password: "correct horse"})
			if err := tc.event(f, u); err != nil {
				t.Fatal(err)
			}
			_, err := f.refresh(r.RefreshToken, "", "")
			if tc.revoke {
				wantOAuthError(t, err, CodeInvalidGrant, 400)
				f.wantRevoked(t, r.AccessToken)
			} else {
				if err != nil {
					t.Fatalf("refresh after %s: %v", tc.name, err)
				}
				f.wantActive(t, r.AccessToken)
			}
		})
	}
}

func TestIntrospect(t *testing.T) {
	f := newFixture(t, AlgRS256, nil)
	u := f.createUser(t, "erin", "correct horse", "me", "users:read")
	r := f.grant(t, TokenRequest{GrantType: GrantPassword, Username: "erin", Password: "correct horse", Scope: "me", ClientID: "cli"})
	introspect := func(token, hint string) *Introspection {
		t.Helper()
		in, err := f.issuer.Introspect(context.Background(), token, hint)
		if err != nil {
			t.Fatal(err)
		}
		return in
	}

	t.Run("rfc7662_2.2_active_access_token", func(t *testing.T) {
		in := introspect(r.AccessToken, "")
		want := Introspection{Active: true, Scope: "me", ClientID: "cli", Username: "erin", TokenType: "Bearer",
			Sub: u.ID, Iss: testIssuer, Aud: testAudience, Exp: f.now.Add(testTTL).Unix(), Iat: f.now.Unix(), Nbf: f.now.Unix(), Jti: in.Jti,
			Sid: decodeSegment(t, r.AccessToken, 1)["sid"].(string)}
		if *in != want || in.Jti == "" {
			t.Errorf("got %+v, want %+v", *in, want)
		}
	})
	t.Run("rfc7662_2.2_active_refresh_token", func(t *testing.T) {
		in := introspect(r.RefreshToken, HintRefreshToken)
		if !in.Active || in.TokenType != "refresh_token" || in.Username != "erin" || in.ClientID != "cli" || in.Scope != "me" || in.Sub != u.ID {
			t.Errorf("got %+v", *in)
		}
	})
	t.Run("rfc7662_2.2_hint_does_not_hide_the_token", func(t *testing.T) {
		if !introspect(r.RefreshToken, HintAccessToken).Active || !introspect(r.AccessToken, HintRefreshToken).Active {
			t.Error("a wrong hint made an active token inactive")
		}
	})
	t.Run("rfc7662_2.2_unknown_and_malformed_are_inactive", func(t *testing.T) {
		for _, tok := range []string{"", "garbage", "a.b.c", r.AccessToken + "x"} {
			if in := introspect(tok, ""); *in != (Introspection{}) {
				t.Errorf("%q: got %+v, want only active:false", tok, *in)
			}
		}
	})
	t.Run("rfc7662_2.2_rotated_and_revoked_are_inactive", func(t *testing.T) {
		next, err := f.refresh(r.RefreshToken, "", "cli")
		if err != nil {
			t.Fatal(err)
		}
		if introspect(r.RefreshToken, "").Active {
			t.Error("a rotated refresh token is active")
		}
		if err := f.issuer.Revoke(context.Background(), RevocationRequest{Token: next.AccessToken, ClientID: "cli"}); err != nil {
			t.Fatal(err)
		}
		if introspect(next.AccessToken, "").Active {
			t.Error("a revoked access token is active")
		}
	})
	t.Run("rfc7662_2.2_expired_access_token_is_inactive", func(t *testing.T) {
		tok := f.grant(t, TokenRequest{GrantType: GrantPassword, Username: "erin", Password: "correct horse"}).AccessToken
		saved := f.now
		f.now = f.now.Add(testTTL + DefaultLeeway + time.Second)
		defer func() { f.now = saved }()
		if introspect(tok, "").Active {
			t.Error("an expired access token is active")
		}
	})
}

func TestRegisteredClients(t *testing.T) {
	f := newFixture(t, AlgRS256, nil)
	f.createUser(t, "frank", "correct horse", "me", "users:read")
	ctx := context.Background()
	conf, secret, err := f.clients.RegisterClient(ctx, NewClient{ID: "backend", Confidential: true, Scopes: []string{"me"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.clients.RegisterClient(ctx, NewClient{ID: "spa"}); err != nil {
		t.Fatal(err)
	}
	pw := func(client, secret, scope string) (*TokenResponse, error) {
		return f.issuer.Token(ctx, TokenRequest{GrantType: GrantPassword, Username: "frank", Password: "correct horse", ClientID: client, ClientSecret: secret, Scope: scope})
	}

	t.Run("rfc6749_2.3.1_confidential_client_with_its_secret", func(t *testing.T) {
		r, err := pw(conf.ID, secret, "")
		if err != nil {
			t.Fatal(err)
		}
		// The client may have only "me": the grant is limited to it.
		if r.Scope != "me" {
			t.Errorf("got scope %q, want me", r.Scope)
		}
		if c := decodeSegment(t, r.AccessToken, 1); c["client_id"] != "backend" {
			t.Errorf("got client_id %v", c["client_id"])
		}
	})
	for _, tc := range []struct{ name, client, secret, scope, code string }{
		{"rfc6749_5.2_wrong_secret_is_invalid_client", "backend", "wrong", "", CodeInvalidClient},
		{"rfc6749_5.2_confidential_client_without_secret_is_invalid_client", "backend", "", "", CodeInvalidClient},
		{"rfc6749_5.2_public_client_with_a_secret_is_invalid_client", "spa", "whatever", "", CodeInvalidClient},
		{"rfc6749_5.2_scope_outside_the_clients_is_invalid_scope", "backend", secret, "users:read", CodeInvalidScope},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pw(tc.client, tc.secret, tc.scope)
			status := 400
			if tc.code == CodeInvalidClient {
				status = 401
			}
			wantOAuthError(t, err, tc.code, status)
		})
	}
	t.Run("registered_public_client_without_secret", func(t *testing.T) {
		if _, err := pw("spa", "", "me users:read"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("rfc6749_6_confidential_client_authenticates_to_refresh", func(t *testing.T) {
		r, err := pw(conf.ID, secret, "")
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.issuer.Token(ctx, TokenRequest{GrantType: GrantRefreshToken, RefreshToken: r.RefreshToken, ClientID: conf.ID})
		wantOAuthError(t, err, CodeInvalidClient, 401)
		if _, err := f.issuer.Token(ctx, TokenRequest{GrantType: GrantRefreshToken, RefreshToken: r.RefreshToken, ClientID: conf.ID, ClientSecret: secret}); err != nil {
			t.Fatal(err)
		}
	})
}
