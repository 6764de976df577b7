package storetest

import (
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// runMFATests is the second-factor part of the suite: a user's TOTP
// factor round trips, and an MFA token is taken at most once.
func runMFATests(t *testing.T, newStore func(t *testing.T) storage.Store) {
	t.Run("rfc6238_a_users_factor_round_trips_through_update", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		alice := newUser(t, "alice")
		mustCreateUser(t, s, alice)
		if got, err := s.UserByID(ctx, alice.ID); err != nil || got.TOTP.Enforced() || got.TOTP.RecoveryCodes == nil || len(got.TOTP.RecoveryCodes) != 0 {
			t.Fatalf("a new user's factor = %+v, %v; want none, with an empty (non-nil) list of recovery codes", got.TOTP, err)
		}
		want := storage.TOTP{Secret: "sealed:abc", Confirmed: true, LastStep: 59_000_123, RecoveryCodes: []string{hashOf("one"), hashOf("two")}}
		if _, err := s.UpdateUser(ctx, "alice", func(u *storage.User) error {
			u.TOTP = want
			return nil
		}); err != nil {
			t.Fatalf("UpdateUser setting the factor = %v", err)
		}
		for name, read := range map[string]func() (*storage.User, error){
			"UserByID":       func() (*storage.User, error) { return s.UserByID(ctx, alice.ID) },
			"UserByUsername": func() (*storage.User, error) { return s.UserByUsername(ctx, "alice") },
		} {
			got, err := read()
			if err != nil || !reflect.DeepEqual(got.TOTP, want) || !got.TOTP.Enforced() {
				t.Errorf("%s: factor = %+v, %v; want %+v, enforced", name, got.TOTP, err, want)
			}
		}
		// An unconfirmed factor is stored and not enforced.
		if _, err := s.UpdateUser(ctx, "alice", func(u *storage.User) error {
			u.TOTP = storage.TOTP{Secret: "sealed:pending"}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.UserByID(ctx, alice.ID); got.TOTP.Secret != "sealed:pending" || got.TOTP.Enforced() || len(got.TOTP.RecoveryCodes) != 0 {
			t.Errorf("pending factor = %+v, want stored, not enforced, without recovery codes", got.TOTP)
		}
	})

	t.Run("an_mfa_token_is_taken_once", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		tok := &storage.MFAToken{ID: "m1", SecretHash: hashOf("secret"), UserID: "alice-id", ClientID: "web", Scopes: []string{"me"},
			Epoch: 3, CreatedAt: base, ExpiresAt: base.Add(5 * time.Minute)}
		if err := s.CreateMFAToken(ctx, tok); err != nil {
			t.Fatalf("CreateMFAToken = %v", err)
		}
		const takers = 8
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			got   []*storage.MFAToken
			other []error
		)
		for range takers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m, err := s.TakeMFAToken(ctx, "m1")
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					got = append(got, m)
				case !errors.Is(err, storage.ErrNotFound):
					other = append(other, err)
				}
			}()
		}
		wg.Wait()
		if len(got) != 1 || len(other) != 0 {
			t.Fatalf("%d concurrent takers: %d got the token, other errors %v; want exactly one", takers, len(got), other)
		}
		if !reflect.DeepEqual(got[0], tok) {
			t.Errorf("TakeMFAToken = %+v, want %+v", got[0], tok)
		}
		if _, err := s.TakeMFAToken(ctx, "m1"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("TakeMFAToken again = %v, want ErrNotFound", err)
		}
	})

	t.Run("prune_mfa_tokens_drops_only_expired_ones", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		for i, exp := range []time.Time{base, base.Add(time.Hour)} {
			id := []string{"old", "live"}[i]
			if err := s.CreateMFAToken(ctx, &storage.MFAToken{ID: id, SecretHash: "00", UserID: "u", CreatedAt: base.Add(-time.Minute), ExpiresAt: exp}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.PruneMFATokens(ctx, base.Add(time.Minute)); err != nil {
			t.Fatalf("PruneMFATokens = %v", err)
		}
		if _, err := s.TakeMFAToken(ctx, "old"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("the expired token after pruning: %v, want ErrNotFound", err)
		}
		if _, err := s.TakeMFAToken(ctx, "live"); err != nil {
			t.Errorf("the live token after pruning: %v", err)
		}
	})
}
