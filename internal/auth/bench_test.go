package auth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse/gatehouse/internal/storage"
	"github.com/gatehouse/gatehouse/internal/users"
)

// Benchmarks of the token side. They assert nothing about time; see
// BENCHMARKS.md and scripts/bench.sh for how they are run and read.
//
//	go test -run '^$' -bench . -benchtime 1s ./internal/auth/

// benchFixture is a token endpoint and validators over a real SQLite store,
// with the small argon2id parameters of the tests unless hasher says
// otherwise.
type benchFixture struct {
	store  storage.Store
	users  *users.Service
	keys   *Keys
	deny   *Revocations
	issuer *Issuer
}

func newBenchFixture(b *testing.B, alg string, hasher users.Hasher) *benchFixture {
	b.Helper()
	ctx := context.Background()
	store := openTestStore(b)
	f := &benchFixture{store: store, deny: NewRevocations(store, RevocationsConfig{})}
	if err := f.deny.Load(ctx); err != nil {
		b.Fatal(err)
	}
	var err error
	f.users, err = users.NewService(store, users.Options{
		Hasher:      hasher,
		Scopes:      testScopes,
		AfterRevoke: func(ctx context.Context) { _ = f.deny.Sync(ctx) },
	})
	if err != nil {
		b.Fatal(err)
	}
	var secret []byte
	if alg == AlgHS256 {
		secret = []byte(strings.Repeat("s", MinHMACSecretBytes))
	}
	f.keys, err = LoadKeys(ctx, store, KeyConfig{Algorithm: alg, HMACSecret: secret, TokenTTL: testTTL, Leeway: DefaultLeeway})
	if err != nil {
		b.Fatal(err)
	}
	refresh, err := LoadRefreshKey(ctx, store, nil)
	if err != nil {
		b.Fatal(err)
	}
	f.issuer = NewIssuer(IssuerDeps{
		Users: f.users, Clients: NewClients(store, testScopes, nil, nil), Sessions: store, Keys: f.keys,
		Refresh: refresh, Validator: f.validator(0), Revocations: f.deny,
		Throttle: NewThrottle(store, DefaultThrottle()),
	}, IssuerConfig{Issuer: testIssuer, Audience: testAudience, TTL: testTTL, Scopes: testScopes})
	return f
}

func (f *benchFixture) validator(cacheSize int) *Validator {
	return NewValidator(f.keys, ValidatorConfig{
		Issuer: testIssuer, Audience: testAudience, Leeway: DefaultLeeway,
		Revocations: f.deny, CacheSize: cacheSize,
	})
}

// sign makes an access token as the issuer does, with its own jti.
func (f *benchFixture) sign(b *testing.B, jti string) string {
	b.Helper()
	now := time.Now().Truncate(time.Second)
	kid, method, key := f.keys.Signer()
	tok := jwt.NewWithClaims(method, &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: testIssuer, Subject: "0b6b7c5e-3f0e-4d55-9a0b-7d2f0f7b1c11", Audience: jwt.ClaimStrings{testAudience},
			ExpiresAt: jwt.NewNumericDate(now.Add(testTTL)), NotBefore: jwt.NewNumericDate(now), IssuedAt: jwt.NewNumericDate(now),
			ID: jti,
		},
		ClientID: PublicClientID, Scope: "me users:read", PreferredUsername: "alice", SessionID: "bench-session",
	})
	tok.Header["typ"] = AccessTokenType
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkVerify measures Validator.Verify per signing algorithm:
//
//   - no_cache: the cache off (CacheSize 0), every use checks the signature;
//   - cache_miss: the cache on, every token new to it: SHA-256, lookup,
//     signature check, insert and an eviction (a one-entry cache cycled
//     through 64 tokens);
//   - cache_hit: the same token again: SHA-256, lookup, the exp/nbf, key
//     and deny-list checks, and a copy of the claims.
func BenchmarkVerify(b *testing.B) {
	for _, alg := range []string{AlgRS256, AlgES256, AlgEdDSA, AlgHS256} {
		b.Run(alg, func(b *testing.B) {
			f := newBenchFixture(b, alg, users.Hasher{Memory: 64, Iterations: 1, Parallelism: 1})
			tokens := make([]string, 64)
			for i := range tokens {
				tokens[i] = f.sign(b, fmt.Sprintf("jti-%d", i))
			}
			// A few revocations, as a live process holds.
			for i := range 100 {
				if err := f.store.RevokeToken(context.Background(), fmt.Sprintf("revoked-%d", i), time.Now().Add(time.Hour), time.Now()); err != nil {
					b.Fatal(err)
				}
			}
			if err := f.deny.Sync(context.Background()); err != nil {
				b.Fatal(err)
			}
			run := func(b *testing.B, v *Validator, next func(i int) string) {
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					if _, err := v.Verify(next(i)); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.Run("no_cache", func(b *testing.B) {
				run(b, f.validator(0), func(int) string { return tokens[0] })
			})
			b.Run("cache_miss", func(b *testing.B) {
				v := f.validator(1)
				run(b, v, func(i int) string { return tokens[i%len(tokens)] })
				if hits, _, _ := v.CacheStats(); hits != 0 {
					b.Fatalf("got %d hits, want only misses", hits)
				}
			})
			b.Run("cache_hit", func(b *testing.B) {
				v := f.validator(DefaultCacheSize)
				run(b, v, func(int) string { return tokens[0] })
			})
		})
	}
}

// BenchmarkCacheKey compares the two ways of keying the cache: hashing an
// RS256 token with SHA-256 (what the cache did) against using the token
// string as the map key (what it does). Either is far below a signature
// check, but the hash was a twentieth of a cached request.
func BenchmarkCacheKey(b *testing.B) {
	f := newBenchFixture(b, AlgRS256, users.Hasher{Memory: 64, Iterations: 1, Parallelism: 1})
	token := f.sign(b, "jti-0")
	b.Run("sha256_key_lookup", func(b *testing.B) {
		m := map[[32]byte]int{sha256.Sum256([]byte(token)): 1}
		b.ReportAllocs()
		for b.Loop() {
			if m[sha256.Sum256([]byte(token))] != 1 {
				b.Fatal("miss")
			}
		}
	})
	b.Run("string_key_lookup", func(b *testing.B) {
		// A different string with the same bytes, as each request brings.
		m := map[string]int{strings.Clone(token): 1}
		b.ReportAllocs()
		for b.Loop() {
			if m[token] != 1 {
				b.Fatal("miss")
			}
		}
	})
}

// BenchmarkIssue measures a successful password grant (RFC 6749 §4.3)
// end to end below HTTP, with RS256: the throttle reservation with the
// user lookup, the password check, the session with the settlement,
// signing. With
// small argon2id parameters it shows what a login costs besides hashing;
// BenchmarkArgon2id gives the hashing itself at the default parameters.
func BenchmarkIssue(b *testing.B) {
	f := newBenchFixture(b, AlgRS256, users.Hasher{Memory: 64, Iterations: 1, Parallelism: 1})
	ctx := context.Background()
	if _, err := f.users.Create(ctx, users.CLIActor(), users.NewUser{Username: "alice", Password: "correct horse", Scopes: []string{"me"}}); err != nil {
		b.Fatal(err)
	}
	req := TokenRequest{GrantType: GrantPassword, Username: "alice", Password: "correct horse", ClientAddr: "127.0.0.1"}
	b.Run("password_grant_small_argon2", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := f.issuer.Token(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkArgon2id is the reference rate for POST /token: one password
// check (what a login does) at the default parameters (m=19456 KiB, t=2,
// p=1). serial is one check's latency; parallel runs one check per
// GOMAXPROCS at once, the machine's password-check throughput
// (1e9/ns_per_op checks per second).
func BenchmarkArgon2id(b *testing.B) {
	h := users.DefaultHasher()
	hash, err := h.Hash("correct horse")
	if err != nil {
		b.Fatal(err)
	}
	check := func() error {
		if ok, _, err := h.Verify(hash, "correct horse"); !ok || err != nil {
			return fmt.Errorf("verify: %v %v", ok, err)
		}
		return nil
	}
	b.Run("default/serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := check(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("default/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := check(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkRefresh measures the refresh grant with rotation (RFC 6749 §6,
// RFC 9700 §4.14.2) end to end below HTTP, per signing algorithm: each
// iteration presents the refresh token the previous one returned, so it
// is the whole grant, the session's read-modify-write transaction
// committed to a real SQLite file (never :memory:, which would hide the
// commit's sync) and the access token's signature. BenchmarkSign is the
// signature alone; scripts/bench.sh compares the two on one core (-cpu 1).
func BenchmarkRefresh(b *testing.B) {
	for _, alg := range []string{AlgRS256, AlgEdDSA} {
		b.Run(alg, func(b *testing.B) {
			f := newBenchFixture(b, alg, users.Hasher{Memory: 64, Iterations: 1, Parallelism: 1})
			ctx := context.Background()
			if _, err := f.users.Create(ctx, users.CLIActor(), users.NewUser{Username: "alice", Password: "correct horse", Scopes: []string{"me"}}); err != nil {
				b.Fatal(err)
			}
			resp, err := f.issuer.Token(ctx, TokenRequest{GrantType: GrantPassword, Username: "alice", Password: "correct horse", ClientAddr: "127.0.0.1"})
			if err != nil {
				b.Fatal(err)
			}
			refresh := resp.RefreshToken
			b.ReportAllocs()
			for b.Loop() {
				resp, err := f.issuer.Token(ctx, TokenRequest{GrantType: GrantRefreshToken, RefreshToken: refresh})
				if err != nil {
					b.Fatal(err)
				}
				refresh = resp.RefreshToken
			}
		})
	}
}
