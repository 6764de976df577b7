package users

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// runAccountStateTests is the part of the conformance suite that makes
// issuing atomic with the account state that authorised it: the token
// epoch, IssueTokens, and the revocations of UpdateUser and DeleteUser.
func runAccountStateTests(t *testing.T, newStore func(t *testing.T) Store) {
	issue := func(u *User, n int, epoch int64) Issue {
		family := fmt.Sprintf("fam-%s-%d", u.Username, n)
		return Issue{
			Epoch:   epoch,
			Refresh: newRefreshToken(t, fmt.Sprintf("rt-%s-%d", u.Username, n), family, u.ID, "web"),
			Access:  newAccessToken(t, fmt.Sprintf("at-%s-%d", u.Username, n), u.ID, family, "web"),
		}
	}

	t.Run("issue_tokens_stores_both_under_the_current_epoch", func(t *testing.T) {
		s := newStore(t)
		u := testUser(t, "alice")
		mustCreate(t, s, u)
		if err := s.IssueTokens(t.Context(), issue(u, 1, 0)); err != nil {
			t.Fatalf("IssueTokens() = %v", err)
		}
		if rt := mustRefreshToken(t, s, "rt-alice-1"); rt.UserID != u.ID || !rt.RevokedAt.IsZero() {
			t.Errorf("stored refresh token %+v", rt)
		}
		if at := mustAccessToken(t, s, "at-alice-1"); at.FamilyID != "fam-alice-1" || !at.RevokedAt.IsZero() {
			t.Errorf("stored access token %+v", at)
		}
		// An access token alone (a refresh) is stored the same way.
		only := issue(u, 2, 0)
		only.Refresh = nil
		if err := s.IssueTokens(t.Context(), only); err != nil {
			t.Fatalf("IssueTokens(access only) = %v", err)
		}
		mustAccessToken(t, s, "at-alice-2")
	})

	t.Run("rfc9700_4.14.2_issue_tokens_refuses_a_grant_the_account_changed_under", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			change func(t *testing.T, s Store, u *User)
		}{
			{"epoch_raised", func(t *testing.T, s Store, u *User) {
				if _, err := s.UpdateUser(t.Context(), u.Username, func(u *User) error { u.TokenEpoch++; return nil }); err != nil {
					t.Fatal(err)
				}
			}},
			{"disabled", func(t *testing.T, s Store, u *User) {
				if _, err := s.UpdateUser(t.Context(), u.Username, func(u *User) error { u.Disabled = true; return nil }); err != nil {
					t.Fatal(err)
				}
			}},
			{"deleted", func(t *testing.T, s Store, u *User) {
				if err := s.DeleteUser(t.Context(), u.Username, tokenNow); err != nil {
					t.Fatal(err)
				}
			}},
			{"deleted_and_recreated_under_the_name", func(t *testing.T, s Store, u *User) {
				if err := s.DeleteUser(t.Context(), u.Username, tokenNow); err != nil {
					t.Fatal(err)
				}
				mustCreate(t, s, testUser(t, u.Username))
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s := newStore(t)
				u := testUser(t, "alice")
				mustCreate(t, s, u)
				tc.change(t, s, u)
				if err := s.IssueTokens(t.Context(), issue(u, 1, u.TokenEpoch)); !errors.Is(err, ErrGrantStale) {
					t.Fatalf("IssueTokens() = %v, want ErrGrantStale", err)
				}
				if _, err := s.RefreshToken(t.Context(), "rt-alice-1"); !errors.Is(err, ErrNotFound) {
					t.Errorf("a refused grant left its refresh token: %v", err)
				}
				if _, err := s.AccessToken(t.Context(), "at-alice-1"); !errors.Is(err, ErrNotFound) {
					t.Errorf("a refused grant left its access token: %v", err)
				}
			})
		}
	})

	t.Run("issue_tokens_refuses_a_refresh_token_of_another_user", func(t *testing.T) {
		s := newStore(t)
		alice, bob := testUser(t, "alice"), testUser(t, "bob")
		mustCreate(t, s, alice)
		mustCreate(t, s, bob)
		is := issue(alice, 1, 0)
		is.Refresh.UserID = bob.ID
		if err := s.IssueTokens(t.Context(), is); err == nil {
			t.Fatal("IssueTokens() stored a refresh token of another user")
		}
	})

	t.Run("rfc9700_4.14.2_raising_the_epoch_revokes_every_token_in_the_same_update", func(t *testing.T) {
		s := newStore(t)
		alice, bob := testUser(t, "alice"), testUser(t, "bob")
		mustCreate(t, s, alice)
		mustCreate(t, s, bob)
		for _, is := range []Issue{issue(alice, 1, 0), issue(alice, 2, 0), issue(bob, 1, 0)} {
			if err := s.IssueTokens(t.Context(), is); err != nil {
				t.Fatal(err)
			}
		}
		at := tokenNow.Add(time.Minute)
		got, err := s.UpdateUser(t.Context(), "alice", func(u *User) error { u.TokenEpoch++; u.UpdatedAt = at; return nil })
		if err != nil || got.TokenEpoch != 1 {
			t.Fatalf("UpdateUser(raise epoch) = %+v, %v", got, err)
		}
		for _, n := range []string{"1", "2"} {
			if rt := mustRefreshToken(t, s, "rt-alice-"+n); !rt.RevokedAt.Equal(at) {
				t.Errorf("rt-alice-%s RevokedAt = %v, want %v", n, rt.RevokedAt, at)
			}
			if a := mustAccessToken(t, s, "at-alice-"+n); !a.RevokedAt.Equal(at) {
				t.Errorf("at-alice-%s RevokedAt = %v, want %v", n, a.RevokedAt, at)
			}
		}
		if rt := mustRefreshToken(t, s, "rt-bob-1"); !rt.RevokedAt.IsZero() {
			t.Errorf("bob's token revoked by alice's change: %+v", rt)
		}
		// A change that leaves the epoch revokes nothing more.
		if err := s.IssueTokens(t.Context(), issue(alice, 3, 1)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.UpdateUser(t.Context(), "alice", func(u *User) error { u.Scopes = []string{"me", "users:read"}; return nil }); err != nil {
			t.Fatal(err)
		}
		if rt := mustRefreshToken(t, s, "rt-alice-3"); !rt.RevokedAt.IsZero() {
			t.Errorf("a change that kept the epoch revoked %+v", rt)
		}
	})

	t.Run("the_token_epoch_cannot_go_down", func(t *testing.T) {
		s := newStore(t)
		u := testUser(t, "alice")
		u.TokenEpoch = 5
		mustCreate(t, s, u)
		if got := mustGet(t, s, "alice"); got.TokenEpoch != 5 {
			t.Fatalf("TokenEpoch = %d, want 5", got.TokenEpoch)
		}
		if _, err := s.UpdateUser(t.Context(), "alice", func(u *User) error { u.TokenEpoch = 4; return nil }); err == nil {
			t.Fatal("UpdateUser lowered the token epoch")
		}
		if got := mustGet(t, s, "alice"); got.TokenEpoch != 5 {
			t.Errorf("TokenEpoch = %d after the refused update, want 5", got.TokenEpoch)
		}
	})

	t.Run("delete_user_revokes_its_tokens_in_the_same_transaction", func(t *testing.T) {
		s := newStore(t)
		u := testUser(t, "alice")
		mustCreate(t, s, u)
		if err := s.IssueTokens(t.Context(), issue(u, 1, 0)); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteUser(t.Context(), "alice", tokenNow); err != nil {
			t.Fatal(err)
		}
		if rt := mustRefreshToken(t, s, "rt-alice-1"); !rt.RevokedAt.Equal(tokenNow) {
			t.Errorf("refresh token RevokedAt = %v, want %v", rt.RevokedAt, tokenNow)
		}
		if got := revokedJTIs(t, s, tokenNow); len(got) != 1 || got[0] != "at-alice-1" {
			t.Errorf("RevokedAccessTokens() = %v, want [at-alice-1]", got)
		}
	})

	t.Run("concurrent_grants_and_an_epoch_raise_leave_no_live_token_of_the_old_epoch", func(t *testing.T) {
		// Either a grant is stored before the raise, which revokes it, or
		// it comes after and is refused: never a live token of epoch 0.
		s := newStore(t)
		u := testUser(t, "alice")
		mustCreate(t, s, u)
		const grants = 20
		var wg sync.WaitGroup
		stale := make([]bool, grants)
		for n := range grants {
			wg.Go(func() {
				err := s.IssueTokens(t.Context(), issue(u, n, 0))
				if err != nil && !errors.Is(err, ErrGrantStale) {
					t.Errorf("IssueTokens(%d) = %v", n, err)
				}
				stale[n] = err != nil
			})
		}
		wg.Go(func() {
			if _, err := s.UpdateUser(t.Context(), "alice", func(u *User) error { u.TokenEpoch++; u.UpdatedAt = tokenNow; return nil }); err != nil {
				t.Errorf("UpdateUser() = %v", err)
			}
		})
		wg.Wait()
		for n := range grants {
			if stale[n] {
				continue
			}
			if rt := mustRefreshToken(t, s, fmt.Sprintf("rt-alice-%d", n)); rt.RevokedAt.IsZero() {
				t.Errorf("grant %d of the old epoch is still live", n)
			}
		}
	})

	t.Run("count_enabled_with_scope_counts_exact_scopes_of_enabled_users", func(t *testing.T) {
		s := newStore(t)
		for _, u := range []struct {
			name     string
			scopes   []string
			disabled bool
		}{
			{"admin", []string{"me", "users:write"}, false},
			{"other", []string{"users:write"}, false},
			{"off", []string{"users:write"}, true},
			{"near", []string{"users:writer", "xusers:write"}, false},
		} {
			nu := testUser(t, u.name)
			nu.Scopes, nu.Disabled = u.scopes, u.disabled
			mustCreate(t, s, nu)
		}
		if n, err := s.CountEnabledWithScope(t.Context(), "users:write"); err != nil || n != 2 {
			t.Errorf("CountEnabledWithScope(users:write) = %d, %v; want 2", n, err)
		}
		if n, err := s.CountEnabledWithScope(t.Context(), "keys:write"); err != nil || n != 0 {
			t.Errorf("CountEnabledWithScope(keys:write) = %d, %v; want 0", n, err)
		}
	})

	t.Run("replace_signing_key_private_swaps_only_the_expected_form", func(t *testing.T) {
		s := newStore(t)
		k := SigningKey{ID: "k1", Algorithm: "EdDSA", Private: []byte("plain"), CreatedAt: tokenNow}
		if err := s.CreateSigningKey(t.Context(), k); err != nil {
			t.Fatal(err)
		}
		if err := s.ReplaceSigningKeyPrivate(t.Context(), "k1", []byte("other"), []byte("sealed")); !errors.Is(err, ErrNotFound) {
			t.Errorf("replace from a stale form = %v, want ErrNotFound", err)
		}
		if err := s.ReplaceSigningKeyPrivate(t.Context(), "nope", []byte("plain"), []byte("sealed")); !errors.Is(err, ErrNotFound) {
			t.Errorf("replace of an unknown key = %v, want ErrNotFound", err)
		}
		if err := s.ReplaceSigningKeyPrivate(t.Context(), "k1", []byte("plain"), []byte("sealed")); err != nil {
			t.Fatalf("replace = %v", err)
		}
		keys, err := s.SigningKeys(t.Context())
		if err != nil || len(keys) != 1 || !bytes.Equal(keys[0].Private, []byte("sealed")) {
			t.Errorf("SigningKeys() = %+v, %v; want k1 sealed", keys, err)
		}
	})
}
