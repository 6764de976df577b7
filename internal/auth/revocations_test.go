package auth

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/users"
)

func TestRevocations_same_second_a_token_before_the_change_is_refused_and_one_after_it_accepted(t *testing.T) {
	// The clock does not move: the old login, the password change and
	// the new login all happen in one instant. Revocation is by session,
	// not by comparing times, so the order is exact.
	f := newFixture(t, AlgRS256, nil)
	u := f.createUser(t, "dave", "correct horse", "me")
	before := f.grant(t, TokenRequest{GrantType: GrantPassword, Username: "dave", Password: "correct horse"})
	if err := f.users.ChangePassword(context.Background(), u.ID, "correct horse", "battery staple"); err != nil {
		t.Fatal(err)
	}
	after := f.grant(t, TokenRequest{GrantType: GrantPassword, Username: "dave", Password: "battery staple"})
	f.wantRevoked(t, before.AccessToken)
	f.wantActive(t, after.AccessToken)
	if _, err := f.refresh(after.RefreshToken, "", ""); err != nil {
		t.Fatalf("refresh of the login after the change: %v", err)
	}
}

func TestRevocations_another_process_learns_a_revocation_from_the_change_log(t *testing.T) {
	f := newFixture(t, AlgRS256, nil)
	f.createUser(t, "dave", "correct horse", "me")
	r := f.grant(t, TokenRequest{GrantType: GrantPassword, Username: "dave", Password: "correct horse"})
	// A second process over the same store, loaded before the revocation.
	other := NewRevocations(f.store, RevocationsConfig{Now: func() time.Time { return f.now }})
	if err := other.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	claims, err := f.validator.Verify(r.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.issuer.Revoke(context.Background(), RevocationRequest{Token: r.RefreshToken}); err != nil {
		t.Fatal(err)
	}
	// This process refuses it as soon as Revoke returns.
	f.wantRevoked(t, r.AccessToken)
	if other.SessionRevoked(claims.SessionID) {
		t.Fatal("the other process knew before reading the log")
	}
	if err := other.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !other.SessionRevoked(claims.SessionID) {
		t.Error("the other process did not learn the revoked session from the change log")
	}
	// A fresh process loads it with the state.
	fresh := NewRevocations(f.store, RevocationsConfig{Now: func() time.Time { return f.now }})
	if err := fresh.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !fresh.SessionRevoked(claims.SessionID) {
		t.Error("a process started after the revocation does not load it")
	}
}

func TestRevocations_an_account_change_invalidates_the_user_view(t *testing.T) {
	f := newFixture(t, AlgRS256, nil)
	u := f.createUser(t, "dave", "correct horse", "me")
	if got, err := f.view.Get(context.Background(), u.ID); err != nil || got == nil || got.Disabled {
		t.Fatalf("view before: %+v, %v", got, err)
	}
	if _, err := f.users.Update(context.Background(), users.CLIActor(), "dave", users.Patch{Disabled: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	if got, err := f.view.Get(context.Background(), u.ID); err != nil || got == nil || !got.Disabled {
		t.Errorf("view after disabling: %+v, %v; want disabled", got, err)
	}
	if err := f.users.Delete(context.Background(), users.CLIActor(), "dave"); err != nil {
		t.Fatal(err)
	}
	if got, err := f.view.Get(context.Background(), u.ID); err != nil || got != nil {
		t.Errorf("view after deleting: %+v, %v; want none", got, err)
	}
}

func TestVerify_a_token_without_a_session_is_refused(t *testing.T) {
	// Tokens issued before sessions (an upgrade) carry no sid: nothing
	// could revoke them, so they are refused.
	f := newFixture(t, AlgRS256, nil)
	kid, method, key := f.keys.Signer()
	tok := forge(t, method, key, f.claims(func(c *Claims) { c.SessionID = "" }), map[string]any{"kid": kid})
	_, err := f.validator.Verify(tok)
	wantInvalidToken(t, err, "sid")
	withSID := forge(t, method, key, f.claims(nil), map[string]any{"kid": kid})
	if _, err := f.validator.Verify(withSID); err != nil {
		t.Fatalf("the same token with a sid: %v", err)
	}
}

func TestRefreshGrant_rfc9700_4_14_2_a_token_forged_from_the_sid_is_unknown_and_revokes_nothing(t *testing.T) {
	// Resource servers see the session id in every access token; with it
	// alone an attacker can build a token of any "older generation", which
	// must not pass for reuse and end the victim's login.
	f := newFixture(t, AlgRS256, nil)
	f.createUser(t, "dave", "correct horse", "me")
	login := f.grant(t, TokenRequest{GrantType: GrantPassword, Username: "dave", Password: "correct horse"})
	next, err := f.refresh(login.RefreshToken, "", "")
	if err != nil {
		t.Fatal(err)
	}
	sid := decodeSegment(t, next.AccessToken, 1)["sid"].(string)
	for _, gen := range []int64{0, 1, 2} {
		forged := formatRefreshToken(sid, gen, newRefreshSecret())
		_, err := f.refresh(forged, "", "")
		wantOAuthError(t, err, CodeInvalidGrant, 400)
		if err := f.issuer.Revoke(context.Background(), RevocationRequest{Token: forged}); err != nil {
			t.Fatalf("revoking a forged token: %v", err)
		}
	}
	if s, err := f.store.Session(context.Background(), sid); err != nil || !s.RevokedAt.IsZero() {
		t.Fatalf("session after forged tokens = %+v, %v; want it live", s, err)
	}
	f.wantActive(t, next.AccessToken)
	if _, err := f.refresh(next.RefreshToken, "", ""); err != nil {
		t.Fatalf("the genuine holder's refresh after the forgeries: %v", err)
	}
}

func TestLoadRefreshKey_encrypts_a_plain_chain_key_at_rest_when_a_key_encryption_key_is_set(t *testing.T) {
	ctx := context.Background()
	store := openTestStore(t)
	plain, err := LoadRefreshKey(ctx, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	kek := bytes.Repeat([]byte{7}, 32)
	sealed, err := LoadRefreshKey(ctx, store, kek)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(plain.chain.key, sealed.chain.key) {
		t.Fatal("encrypting at rest changed the chain key: every refresh token would break")
	}
	stored, err := store.EnsureSecret(ctx, refreshKeySecret, func() ([]byte, error) { return nil, errors.New("gone") })
	if err != nil || !isEnvelope(stored) {
		t.Fatalf("stored chain key: envelope %t, %v; want encrypted at rest", isEnvelope(stored), err)
	}
	if _, err := LoadRefreshKey(ctx, store, nil); !errors.Is(err, ErrKeyEncrypted) {
		t.Errorf("loading the encrypted chain key without the key = %v, want ErrKeyEncrypted", err)
	}
}
