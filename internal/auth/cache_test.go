package auth

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse/gatehouse/internal/users"
)

// cachingValidator is f's validator with a verified-token cache of size
// entries; *checks counts the signature checks it makes (key lookups).
func (f *fixture) cachingValidator(t *testing.T, size int) (v *Validator, checks *atomic.Int64) {
	t.Helper()
	v = NewValidator(f.keys, ValidatorConfig{
		Issuer: testIssuer, Audience: testAudience, Leeway: DefaultLeeway,
		Now: func() time.Time { return f.now }, Revocations: f.revocations, Users: f.view, CacheSize: size,
	})
	checks = new(atomic.Int64)
	v.lookup = func(tok *jwt.Token) (any, error) {
		checks.Add(1)
		return f.keys.Lookup(tok)
	}
	return v, checks
}

// wantInvalidToken asserts a 401 invalid_token whose description mentions want.
func wantInvalidToken(t *testing.T, err error, want string) {
	t.Helper()
	var be *BearerError
	if !errors.As(err, &be) {
		t.Fatalf("got %v, want an invalid_token *BearerError", err)
	}
	if be.Code != BearerInvalidToken || !strings.Contains(be.Description, want) {
		t.Fatalf("got %s %q, want invalid_token mentioning %q", be.Code, be.Description, want)
	}
}

func TestVerifyCache(t *testing.T) {
	t.Run("a_hit_returns_the_same_claims_without_a_signature_check", func(t *testing.T) {
		f := newFixture(t, AlgRS256, nil)
		f.createUser(t, "alice", "correct horse", "me")
		tok := f.login(t, "alice", "correct horse", "")
		v, checks := f.cachingValidator(t, 10)

		first, err := v.Verify(tok)
		if err != nil {
			t.Fatal(err)
		}
		second, err := v.Verify(tok)
		if err != nil {
			t.Fatal(err)
		}
		if got := checks.Load(); got != 1 {
			t.Errorf("got %d signature checks for two uses of one token, want 1", got)
		}
		if fmt.Sprint(*second) != fmt.Sprint(*first) {
			t.Errorf("got claims %+v from the cache, want %+v", *second, *first)
		}
		if hits, misses, size := v.CacheStats(); hits != 1 || misses != 1 || size != 1 {
			t.Errorf("got hits=%d misses=%d size=%d, want 1 1 1", hits, misses, size)
		}
	})

	t.Run("each_hit_gets_its_own_copy_of_the_claims", func(t *testing.T) {
		f := newFixture(t, AlgRS256, nil)
		f.createUser(t, "alice", "correct horse", "me")
		tok := f.login(t, "alice", "correct horse", "")
		v, _ := f.cachingValidator(t, 10)
		for range 2 {
			c, err := v.Verify(tok)
			if err != nil {
				t.Fatal(err)
			}
			if c.Scope != "me" {
				t.Fatalf("got scope %q, want me: a caller's change leaked into the cache", c.Scope)
			}
			c.Scope = "me users:write"
		}
	})

	t.Run("rfc7009_revoked_after_caching_is_refused_on_the_next_hit", func(t *testing.T) {
		f := newFixture(t, AlgRS256, nil)
		f.createUser(t, "alice", "correct horse", "me")
		tok := f.login(t, "alice", "correct horse", "")
		v, checks := f.cachingValidator(t, 10)
		c, err := v.Verify(tok)
		if err != nil {
			t.Fatal(err)
		}
		f.revokeJTI(t, c.ID, c.ExpiresAt.Time)
		for range 2 {
			_, err = v.Verify(tok)
			wantInvalidToken(t, err, "revoked")
		}
		if got := checks.Load(); got != 1 {
			t.Errorf("got %d signature checks, want 1: a revoked cached token is refused from the cache", got)
		}
	})

	// Account events (password change, disabling, losing a scope) revoke the
	// user's sessions in the store, and the revocation view learns it
	// (AfterRevoke): a hit consults it, so the cache never outlives them.
	for _, ev := range []struct {
		name string
		do   func(ctx context.Context, f *fixture, u *users.User) error
	}{
		{"rfc9700_4.14.2_password_change", func(ctx context.Context, f *fixture, u *users.User) error {
			return f.users.ChangePassword(ctx, u.ID, "correct horse", "battery staple")
		}},
		{"user_disabled", func(ctx context.Context, f *fixture, u *users.User) error {
			_, err := f.users.Update(ctx, users.CLIActor(), u.Username, users.Patch{Disabled: new(true)})
			return err
		}},
		{"scope_removed", func(ctx context.Context, f *fixture, u *users.User) error {
			_, err := f.users.Update(ctx, users.CLIActor(), u.Username, users.Patch{Scopes: &[]string{"users:read"}})
			return err
		}},
		{"user_deleted", func(ctx context.Context, f *fixture, u *users.User) error {
			return f.users.Delete(ctx, users.CLIActor(), u.Username)
		}},
	} {
		t.Run(ev.name+"_refuses_the_users_cached_tokens", func(t *testing.T) {
			f := newFixture(t, AlgRS256, nil)
			u := f.createUser(t, "alice", "correct horse", "me", "users:read")
			tok := f.login(t, "alice", "correct horse", "")
			v, _ := f.cachingValidator(t, 10)
			if _, err := v.Verify(tok); err != nil {
				t.Fatal(err)
			}
			if _, _, size := v.CacheStats(); size != 1 {
				t.Fatalf("got cache size %d, want the token cached", size)
			}
			if err := ev.do(context.Background(), f, u); err != nil {
				t.Fatal(err)
			}
			_, err := v.Verify(tok)
			wantInvalidToken(t, err, "revoked")
		})
	}

	t.Run("rfc7519_4.1.4_expired_after_caching_is_refused_and_dropped", func(t *testing.T) {
		f := newFixture(t, AlgRS256, nil)
		f.createUser(t, "alice", "correct horse", "me")
		tok := f.login(t, "alice", "correct horse", "")
		v, checks := f.cachingValidator(t, 10)
		if _, err := v.Verify(tok); err != nil {
			t.Fatal(err)
		}
		// Within the leeway the parser still accepts it, and so does the cache.
		f.now = f.now.Add(testTTL + DefaultLeeway - time.Second)
		if _, err := v.Verify(tok); err != nil {
			t.Fatalf("within the leeway: %v", err)
		}
		f.now = f.now.Add(time.Second)
		_, err := v.Verify(tok)
		wantInvalidToken(t, err, "expired")
		if got := checks.Load(); got != 2 {
			t.Errorf("got %d signature checks, want 2: an expired entry is a miss", got)
		}
		if hits, misses, size := v.CacheStats(); hits != 1 || misses != 2 || size != 0 {
			t.Errorf("got hits=%d misses=%d size=%d, want 1 2 0", hits, misses, size)
		}
	})

	t.Run("rfc7519_4.1.5_not_yet_valid_when_the_clock_goes_back_is_refused", func(t *testing.T) {
		f := newFixture(t, AlgRS256, nil)
		f.createUser(t, "alice", "correct horse", "me")
		tok := f.login(t, "alice", "correct horse", "")
		v, _ := f.cachingValidator(t, 10)
		if _, err := v.Verify(tok); err != nil {
			t.Fatal(err)
		}
		f.now = f.now.Add(-DefaultLeeway - time.Second)
		_, err := v.Verify(tok)
		wantInvalidToken(t, err, "not valid yet")
	})

	t.Run("rfc7517_a_retired_keys_cached_tokens_are_refused", func(t *testing.T) {
		f := newFixture(t, AlgRS256, nil)
		_, _, signKey := f.keys.Signer()
		oldKID := f.keys.SigningKeyID()
		// A lifetime longer than the key's: only the key's retirement can
		// refuse it.
		tok := forge(t, jwt.SigningMethodRS256, signKey.(*rsa.PrivateKey), f.claims(func(c *Claims) {
			c.ExpiresAt = jwt.NewNumericDate(f.now.Add(24 * time.Hour))
		}), map[string]any{"kid": oldKID})
		v, _ := f.cachingValidator(t, 10)
		if _, err := v.Verify(tok); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if _, err := f.keys.Rotate(ctx); err != nil {
			t.Fatal(err)
		}
		f.now = f.now.Add(f.keys.RetireAfter() + time.Second)
		if err := f.keys.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if f.keys.SigningKeyID() == oldKID {
			t.Fatal("the key did not rotate")
		}
		_, err := v.Verify(tok)
		wantInvalidToken(t, err, "invalid")
	})

	t.Run("failures_are_not_cached", func(t *testing.T) {
		f := newFixture(t, AlgRS256, nil)
		v, checks := f.cachingValidator(t, 10)
		_, _, signKey := f.keys.Signer()
		wrongIssuer := forge(t, jwt.SigningMethodRS256, signKey, f.claims(func(c *Claims) { c.Issuer = "https://evil.test" }),
			map[string]any{"kid": f.keys.SigningKeyID()})
		for range 3 {
			_, err := v.Verify(wrongIssuer)
			wantInvalidToken(t, err, "issuer")
		}
		if got := checks.Load(); got != 3 {
			t.Errorf("got %d signature checks for three uses of a refused token, want 3", got)
		}
		if _, _, size := v.CacheStats(); size != 0 {
			t.Errorf("got cache size %d, want 0", size)
		}
	})

	t.Run("size_0_turns_the_cache_off", func(t *testing.T) {
		f := newFixture(t, AlgRS256, nil)
		f.createUser(t, "alice", "correct horse", "me")
		tok := f.login(t, "alice", "correct horse", "")
		v, checks := f.cachingValidator(t, 0)
		for range 3 {
			if _, err := v.Verify(tok); err != nil {
				t.Fatal(err)
			}
		}
		if got := checks.Load(); got != 3 {
			t.Errorf("got %d signature checks, want 3", got)
		}
		if hits, misses, size := v.CacheStats(); hits != 0 || misses != 0 || size != 0 {
			t.Errorf("got %d %d %d, want zeros", hits, misses, size)
		}
	})

	t.Run("eviction_keeps_the_size_within_the_bound", func(t *testing.T) {
		secret := []byte(strings.Repeat("s", 32))
		f := newFixture(t, AlgHS256, secret)
		kid := f.keys.SigningKeyID()
		for _, size := range []int{1, 3, 10, 100} {
			v, _ := f.cachingValidator(t, size)
			for i := range 4 * size {
				tok := forge(t, jwt.SigningMethodHS256, secret, f.claims(func(c *Claims) { c.ID = fmt.Sprintf("jti-%d", i) }), map[string]any{"kid": kid})
				if _, err := v.Verify(tok); err != nil {
					t.Fatal(err)
				}
				if _, _, got := v.CacheStats(); got > size {
					t.Fatalf("CacheSize %d: got %d entries after %d tokens", size, got, i+1)
				}
			}
			if _, _, got := v.CacheStats(); got == 0 {
				t.Errorf("CacheSize %d: got an empty cache after %d tokens", size, 4*size)
			}
		}
	})

	t.Run("eviction_prefers_expired_entries", func(t *testing.T) {
		secret := []byte(strings.Repeat("s", 32))
		f := newFixture(t, AlgHS256, secret)
		kid := f.keys.SigningKeyID()
		v, checks := f.cachingValidator(t, 1)
		short := forge(t, jwt.SigningMethodHS256, secret, f.claims(func(c *Claims) {
			c.ID = "short"
			c.ExpiresAt = jwt.NewNumericDate(f.now.Add(time.Minute))
		}), map[string]any{"kid": kid})
		long := forge(t, jwt.SigningMethodHS256, secret, f.claims(func(c *Claims) { c.ID = "long" }), map[string]any{"kid": kid})
		if _, err := v.Verify(short); err != nil {
			t.Fatal(err)
		}
		f.now = f.now.Add(time.Minute + DefaultLeeway)
		if _, err := v.Verify(long); err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(long); err != nil {
			t.Fatal(err)
		}
		if got := checks.Load(); got != 2 {
			t.Errorf("got %d signature checks, want 2: the expired entry should have made room", got)
		}
	})

	t.Run("concurrent_hits_misses_and_revocations", func(t *testing.T) {
		secret := []byte(strings.Repeat("s", 32))
		f := newFixture(t, AlgHS256, secret)
		kid := f.keys.SigningKeyID()
		v, _ := f.cachingValidator(t, 16)
		tokens := make([]string, 64)
		for i := range tokens {
			tokens[i] = forge(t, jwt.SigningMethodHS256, secret, f.claims(func(c *Claims) { c.ID = fmt.Sprintf("jti-%d", i) }), map[string]any{"kid": kid})
		}
		exp := f.now.Add(testTTL)
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 500 {
					n := (g*7 + i*13) % len(tokens)
					c, err := v.Verify(tokens[n])
					if n%8 == 7 {
						// Revoked concurrently: either outcome is right
						// before the revocation lands, none after.
						if err == nil && c.ID != fmt.Sprintf("jti-%d", n) {
							t.Errorf("token %d: got claims of %s", n, c.ID)
						}
						continue
					}
					if err != nil {
						t.Errorf("token %d: %v", n, err)
						return
					}
					if want := fmt.Sprintf("jti-%d", n); c.ID != want {
						t.Errorf("token %d: got jti %s, want %s", n, c.ID, want)
						return
					}
				}
			})
		}
		wg.Go(func() {
			for n := 7; n < len(tokens); n += 8 {
				f.revokeJTI(t, fmt.Sprintf("jti-%d", n), exp)
				v.CacheStats()
			}
		})
		wg.Wait()
		for n := 7; n < len(tokens); n += 8 {
			_, err := v.Verify(tokens[n])
			wantInvalidToken(t, err, "revoked")
		}
		hits, misses, size := v.CacheStats()
		if size > 16 || hits == 0 || misses == 0 {
			t.Errorf("got hits=%d misses=%d size=%d, want both counted and size ≤ 16", hits, misses, size)
		}
	})
}

// revokeJTI revokes one access token (RFC 7009) in the store and makes
// the fixture's view learn it.
func (f *fixture) revokeJTI(t *testing.T, jti string, exp time.Time) {
	t.Helper()
	if err := f.store.RevokeToken(context.Background(), jti, exp, f.now); err != nil {
		t.Error(err)
	}
	if err := f.revocations.Sync(context.Background()); err != nil {
		t.Error(err)
	}
}
