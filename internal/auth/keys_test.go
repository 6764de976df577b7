package auth

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// memKeyStore is an in-memory KeyStore with the storage.Store contracts:
// newest first, ties broken by insertion order (the later insert is newer).
type memKeyStore struct {
	mu   sync.Mutex
	keys []storage.SigningKey // in insertion order
	// created, when set, receives every key CreateSigningKey stores.
	created chan storage.SigningKey
	// listErr, when set, fails SigningKeys.
	listErr error
	// beforeDelete, when set, runs before DeleteSigningKey looks for the
	// key, as a concurrent deleter would.
	beforeDelete func(id string)
	deleted      []string
}

var _ KeyStore = (*memKeyStore)(nil)

func cloneSigningKey(k storage.SigningKey) storage.SigningKey {
	k.Private = bytes.Clone(k.Private)
	return k
}

func (m *memKeyStore) SigningKeys(context.Context) ([]storage.SigningKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.listErr != nil {
		return nil, m.listErr
	}
	out := make([]storage.SigningKey, 0, len(m.keys))
	for i := len(m.keys) - 1; i >= 0; i-- {
		out = append(out, cloneSigningKey(m.keys[i]))
	}
	slices.SortStableFunc(out, func(a, b storage.SigningKey) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out, nil
}

func (m *memKeyStore) EnsureSigningKey(_ context.Context, alg string, create func() (storage.SigningKey, error)) (storage.SigningKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var newest *storage.SigningKey
	for i := range m.keys {
		if k := &m.keys[i]; k.Algorithm == alg && (newest == nil || !k.CreatedAt.Before(newest.CreatedAt)) {
			newest = k
		}
	}
	if newest != nil {
		return cloneSigningKey(*newest), nil
	}
	k, err := create()
	if err != nil {
		return storage.SigningKey{}, err
	}
	if k.ActivatesAt.IsZero() {
		k.ActivatesAt = k.CreatedAt
	}
	m.keys = append(m.keys, cloneSigningKey(k))
	return k, nil
}

func (m *memKeyStore) CreateSigningKey(_ context.Context, k storage.SigningKey) error {
	m.mu.Lock()
	for _, have := range m.keys {
		if have.ID == k.ID {
			m.mu.Unlock()
			return errors.New("duplicate key id " + k.ID)
		}
	}
	if k.ActivatesAt.IsZero() {
		k.ActivatesAt = k.CreatedAt
	}
	m.keys = append(m.keys, cloneSigningKey(k))
	created := m.created
	m.mu.Unlock()
	if created != nil {
		created <- cloneSigningKey(k)
	}
	return nil
}

func (m *memKeyStore) DeleteSigningKey(_ context.Context, id string) error {
	if m.beforeDelete != nil {
		m.beforeDelete(id)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, k := range m.keys {
		if k.ID == id {
			m.keys = slices.Delete(m.keys, i, i+1)
			m.deleted = append(m.deleted, id)
			return nil
		}
	}
	return storage.ErrNotFound
}

// ReplaceSigningKeyPrivate swaps the private form only while it is still
// old, as storage.Store does.
func (m *memKeyStore) ReplaceSigningKeyPrivate(_ context.Context, id string, old, next []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.keys {
		if m.keys[i].ID == id && bytes.Equal(m.keys[i].Private, old) {
			m.keys[i].Private = bytes.Clone(next)
			return nil
		}
	}
	return storage.ErrNotFound
}

// ids lists the stored key ids, newest first.
func (m *memKeyStore) ids(t *testing.T) []string {
	t.Helper()
	keys, err := m.SigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range keys {
		out = append(out, k.ID)
	}
	return out
}

func (m *memKeyStore) stored(t *testing.T, id string) storage.SigningKey {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range m.keys {
		if k.ID == id {
			return cloneSigningKey(k)
		}
	}
	t.Fatalf("key %s is not stored", id)
	return storage.SigningKey{}
}

// keyClock is a clock that moves only when told.
type keyClock struct {
	mu  sync.Mutex
	now time.Time
}

func newKeyClock() *keyClock {
	return &keyClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *keyClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *keyClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

const (
	keyTestTTL        = 15 * time.Minute
	keyTestLeeway     = 30 * time.Second
	keyTestPrePublish = 10 * time.Minute
)

var (
	keyTestHMACSecret    = []byte("0123456789abcdef0123456789abcdef")
	keyTestEncryptionKey = bytes.Repeat([]byte{0x42}, EncryptionKeyBytes)
)

func keyConfig(alg string, clock *keyClock) KeyConfig {
	cfg := KeyConfig{
		Algorithm:  alg,
		PrePublish: keyTestPrePublish,
		TokenTTL:   keyTestTTL,
		Leeway:     keyTestLeeway,
		Now:        clock.Now,
	}
	if alg == AlgHS256 {
		cfg.HMACSecret = keyTestHMACSecret
	}
	return cfg
}

func mustLoadKeys(t *testing.T, store KeyStore, cfg KeyConfig) *Keys {
	t.Helper()
	ks, err := LoadKeys(context.Background(), store, cfg)
	if err != nil {
		t.Fatalf("LoadKeys(%s): %v", cfg.Algorithm, err)
	}
	return ks
}

// signWithKeys signs a token the way the token endpoint does, with Signer.
func signWithKeys(t *testing.T, ks *Keys, subject string) string {
	t.Helper()
	kid, method, key := ks.Signer()
	tok := jwt.NewWithClaims(method, jwt.RegisteredClaims{Subject: subject})
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign with %s key %s: %v", method.Alg(), kid, err)
	}
	return s
}

// verifyWithKeys checks a token the way the bearer validator does: the
// parser allow-list is Algorithms, the key comes from Lookup.
func verifyWithKeys(ks *Keys, token string) error {
	_, err := jwt.NewParser(jwt.WithValidMethods(ks.Algorithms())).Parse(token, ks.Lookup)
	return err
}

// jwsHeader returns the JOSE header of a compact JWS (RFC 7515 §7.1).
func jwsHeader(t *testing.T, token string) map[string]any {
	t.Helper()
	parsed, _, err := jwt.NewParser().ParseUnverified(token, &jwt.RegisteredClaims{})
	if err != nil {
		t.Fatal(err)
	}
	return parsed.Header
}

func jwsKID(t *testing.T, token string) string {
	t.Helper()
	kid, _ := jwsHeader(t, token)["kid"].(string)
	return kid
}

func jwksIDs(ks *Keys) []string {
	var out []string
	for _, k := range ks.JWKS().Keys {
		out = append(out, k.Kid)
	}
	return out
}

func TestKeysSignAndVerify(t *testing.T) {
	tests := []struct {
		name, alg string
		wantKey   any
	}{
		{"rfc7518_3.3_RS256", AlgRS256, (*rsa.PublicKey)(nil)},
		{"rfc7518_3.4_ES256", AlgES256, (*ecdsa.PublicKey)(nil)},
		{"rfc8037_3.1_EdDSA", AlgEdDSA, ed25519.PublicKey(nil)},
		{"rfc7518_3.2_HS256", AlgHS256, []byte(nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks := mustLoadKeys(t, &memKeyStore{}, keyConfig(tt.alg, newKeyClock()))
			if got := ks.Algorithm(); got != tt.alg {
				t.Errorf("got Algorithm %s, want %s", got, tt.alg)
			}
			if got := ks.Algorithms(); !slices.Equal(got, []string{tt.alg}) {
				t.Errorf("got Algorithms %v, want [%s]", got, tt.alg)
			}
			token := signWithKeys(t, ks, "alice")
			if got := jwsHeader(t, token)["alg"]; got != tt.alg {
				t.Errorf("got alg header %v, want %s", got, tt.alg)
			}
			if got := jwsKID(t, token); got != ks.SigningKeyID() {
				t.Errorf("got kid header %s, want SigningKeyID %s", got, ks.SigningKeyID())
			}
			if err := verifyWithKeys(ks, token); err != nil {
				t.Fatalf("verify %s token: %v", tt.alg, err)
			}
			parsed, _, err := jwt.NewParser().ParseUnverified(token, &jwt.RegisteredClaims{})
			if err != nil {
				t.Fatal(err)
			}
			key, err := ks.Lookup(parsed)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := fmt.Sprintf("%T", key), fmt.Sprintf("%T", tt.wantKey); got != want {
				t.Errorf("got Lookup key %s, want %s", got, want)
			}
		})
	}
}

func TestKeyIDIsRFC7638Thumbprint(t *testing.T) {
	t.Run("rfc7638_3.1_example_rsa_key", func(t *testing.T) {
		// The RSA key of RFC 7638 §3.1; kid, alg and use do not count (§3.3).
		j := JWK{
			Kty: "RSA",
			Kid: "2011-04-29",
			Alg: AlgRS256,
			N:   "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
			E:   "AQAB",
		}
		got, err := thumbprint(j)
		if err != nil {
			t.Fatal(err)
		}
		if want := "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; got != want {
			t.Errorf("got thumbprint %s, want %s", got, want)
		}
		// The same key as a Go key gives the same kid.
		n, err := b64url.DecodeString(j.N)
		if err != nil {
			t.Fatal(err)
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: 65537}
		fromKey, err := publicJWK(AlgRS256, pub)
		if err != nil {
			t.Fatal(err)
		}
		if fromKey.Kid != got || fromKey.N != j.N || fromKey.E != j.E {
			t.Errorf("got JWK %+v from the Go key, want n, e and kid %s of the RFC example", fromKey, got)
		}
	})

	t.Run("rfc8037_A.3_example_ed25519_key", func(t *testing.T) {
		// RFC 8037 A.1 private key (its "d" is the seed); A.3 gives the
		// thumbprint of its public key.
		seed, err := b64url.DecodeString("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
		if err != nil {
			t.Fatal(err)
		}
		j, err := publicJWK(AlgEdDSA, ed25519.NewKeyFromSeed(seed).Public())
		if err != nil {
			t.Fatal(err)
		}
		if want := "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"; j.X != want {
			t.Errorf("got x %s, want %s", j.X, want)
		}
		if want := "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"; j.Kid != want {
			t.Errorf("got kid %s, want %s", j.Kid, want)
		}
	})

	t.Run("rfc7638_3.2_ec_members_in_lexicographic_order", func(t *testing.T) {
		// The P-256 key of RFC 7515 A.3.
		x, y := "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
		point := []byte{4}
		for _, c := range []string{x, y} {
			b, err := b64url.DecodeString(c)
			if err != nil {
				t.Fatal(err)
			}
			point = append(point, b...)
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
		if err != nil {
			t.Fatal(err)
		}
		j, err := publicJWK(AlgES256, pub)
		if err != nil {
			t.Fatal(err)
		}
		canonical := `{"crv":"P-256","kty":"EC","x":"` + x + `","y":"` + y + `"}`
		want := sha256B64(canonical)
		if j.Kid != want {
			t.Errorf("got kid %s, want SHA-256 of %s = %s", j.Kid, canonical, want)
		}
	})

	for _, alg := range []string{AlgRS256, AlgES256, AlgEdDSA} {
		t.Run("generated_"+alg+"_key_id_is_its_thumbprint", func(t *testing.T) {
			store := &memKeyStore{}
			ks := mustLoadKeys(t, store, keyConfig(alg, newKeyClock()))
			set := ks.JWKS()
			if len(set.Keys) != 1 {
				t.Fatalf("got %d published keys, want 1", len(set.Keys))
			}
			got, err := thumbprint(set.Keys[0])
			if err != nil {
				t.Fatal(err)
			}
			if got != ks.SigningKeyID() || got != set.Keys[0].Kid || !slices.Equal(store.ids(t), []string{got}) {
				t.Errorf("got thumbprint %s, SigningKeyID %s, JWK kid %s, stored %v; want all equal",
					got, ks.SigningKeyID(), set.Keys[0].Kid, store.ids(t))
			}
		})
	}

	t.Run("stored_key_under_another_id_is_refused", func(t *testing.T) {
		store := &memKeyStore{}
		ks := mustLoadKeys(t, store, keyConfig(AlgES256, newKeyClock()))
		store.keys[0].ID = "not-the-thumbprint"
		_, err := LoadKeys(context.Background(), store, keyConfig(AlgES256, newKeyClock()))
		if err == nil || !strings.Contains(err.Error(), "RFC 7638 thumbprint") {
			t.Errorf("got %v, want a thumbprint mismatch for key %s stored under another id", err, ks.SigningKeyID())
		}
	})
}

func sha256B64(s string) string {
	sum := sha256.Sum256([]byte(s))
	return b64url.EncodeToString(sum[:])
}

func TestKeysPersistAcrossLoadKeys(t *testing.T) {
	for _, alg := range []string{AlgRS256, AlgES256, AlgEdDSA} {
		t.Run(alg, func(t *testing.T) {
			store := &memKeyStore{}
			clock := newKeyClock()
			first := mustLoadKeys(t, store, keyConfig(alg, clock))
			token := signWithKeys(t, first, "alice")
			clock.Advance(time.Minute)
			again := mustLoadKeys(t, store, keyConfig(alg, clock))
			if got, want := again.SigningKeyID(), first.SigningKeyID(); got != want {
				t.Errorf("got kid %s after reload, want %s", got, want)
			}
			if got := store.ids(t); len(got) != 1 {
				t.Errorf("got stored keys %v, want one", got)
			}
			if err := verifyWithKeys(again, token); err != nil {
				t.Errorf("token signed before the reload: %v", err)
			}
		})
	}

	t.Run("hs256_secret_is_never_stored_and_stored_keys_still_verify", func(t *testing.T) {
		store := &memKeyStore{}
		clock := newKeyClock()
		rsaKeys := mustLoadKeys(t, store, keyConfig(AlgRS256, clock))
		rsaToken := signWithKeys(t, rsaKeys, "alice")
		hs := mustLoadKeys(t, store, keyConfig(AlgHS256, clock))
		if got := store.ids(t); !slices.Equal(got, []string{rsaKeys.SigningKeyID()}) {
			t.Errorf("got stored keys %v, want only the RSA key", got)
		}
		if got, want := hs.Algorithms(), []string{AlgHS256, AlgRS256}; !slices.Equal(got, want) {
			t.Errorf("got Algorithms %v, want %v", got, want)
		}
		if err := verifyWithKeys(hs, rsaToken); err != nil {
			t.Errorf("RS256 token under HS256 configuration: %v", err)
		}
		if err := verifyWithKeys(hs, signWithKeys(t, hs, "bob")); err != nil {
			t.Errorf("HS256 token: %v", err)
		}
	})
}

func TestLoadKeysConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(*KeyConfig)
		want string // substring of the error
	}{
		{"rfc8725_3.1_none_is_not_an_algorithm", func(c *KeyConfig) { c.Algorithm = "none" }, "unsupported signing algorithm"},
		{"rfc7518_3.2_hs256_secret_shorter_than_the_hash", func(c *KeyConfig) { c.Algorithm, c.HMACSecret = AlgHS256, []byte("too short") }, "at least 32 bytes"},
		{"encryption_key_is_256_bits", func(c *KeyConfig) { c.EncryptionKey = make([]byte, 16) }, "GATEHOUSE_KEY_ENCRYPTION_KEY must be 32 bytes"},
		{"token_ttl_is_required", func(c *KeyConfig) { c.TokenTTL = 0 }, "token lifetime"},
		{"rotation_interval_exceeds_pre_publication", func(c *KeyConfig) { c.RotationInterval = c.PrePublish }, "must exceed the pre-publication delay"},
		{"hs256_does_not_rotate", func(c *KeyConfig) {
			c.Algorithm, c.HMACSecret, c.RotationInterval = AlgHS256, keyTestHMACSecret, time.Hour
		}, "does not apply to HS256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := keyConfig(AlgRS256, newKeyClock())
			tt.cfg(&cfg)
			store := &memKeyStore{}
			_, err := LoadKeys(context.Background(), store, cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
			if got := store.ids(t); len(got) != 0 {
				t.Errorf("got stored keys %v after a configuration error, want none", got)
			}
		})
	}

	t.Run("default_algorithm_is_RS256", func(t *testing.T) {
		cfg := keyConfig("", newKeyClock())
		ks := mustLoadKeys(t, &memKeyStore{}, cfg)
		if got := ks.Algorithm(); got != AlgRS256 {
			t.Errorf("got %s, want RS256", got)
		}
	})
}

func TestKeyLookupRejects(t *testing.T) {
	clock := newKeyClock()
	store := &memKeyStore{}
	rsaKeys := mustLoadKeys(t, store, keyConfig(AlgRS256, clock))
	// Under HS256 the parser allows both HS256 and RS256: the case where
	// only the key's own alg keeps the RSA public key from being an HMAC
	// secret.
	hs := mustLoadKeys(t, store, keyConfig(AlgHS256, clock))
	rsaKID := rsaKeys.SigningKeyID()
	_, _, priv := rsaKeys.Signer()
	pubDER, err := x509.MarshalPKIXPublicKey(&priv.(*rsa.PrivateKey).PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})

	sign := func(t *testing.T, method jwt.SigningMethod, key any, kid any) string {
		t.Helper()
		tok := jwt.NewWithClaims(method, jwt.RegisteredClaims{Subject: "mallory"})
		if kid != nil {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tests := []struct {
		name  string
		token string
	}{
		{"rfc8725_2.1_hs256_keyed_with_the_rsa_public_key_pem", sign(t, jwt.SigningMethodHS256, pubPEM, rsaKID)},
		{"rfc8725_2.1_hs256_keyed_with_the_rsa_public_key_der", sign(t, jwt.SigningMethodHS256, pubDER, rsaKID)},
		{"rs256_naming_the_hmac_secret", sign(t, jwt.SigningMethodRS256, priv, hs.SigningKeyID())},
		{"rfc7515_4.1.4_unknown_kid", sign(t, jwt.SigningMethodHS256, keyTestHMACSecret, "no-such-key")},
		{"rfc7515_4.1.4_missing_kid", sign(t, jwt.SigningMethodHS256, keyTestHMACSecret, nil)},
		{"kid_that_is_not_a_string", sign(t, jwt.SigningMethodHS256, keyTestHMACSecret, 42)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parsed, _, err := jwt.NewParser().ParseUnverified(tt.token, &jwt.RegisteredClaims{})
			if err != nil {
				t.Fatal(err)
			}
			if key, err := hs.Lookup(parsed); err == nil {
				t.Errorf("got Lookup key %T, want an error", key)
			}
			if err := verifyWithKeys(hs, tt.token); err == nil {
				t.Error("got a verified token, want it refused")
			}
		})
	}
}

func TestJWKS(t *testing.T) {
	privateMembers := []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
	tests := []struct {
		name, alg, kty, crv string
		members             []string // public members present, besides kty, kid, use, alg
	}{
		{"rfc7518_6.3.1_rsa", AlgRS256, "RSA", "", []string{"n", "e"}},
		{"rfc7518_6.2.1_ec_p256", AlgES256, "EC", "P-256", []string{"crv", "x", "y"}},
		{"rfc8037_2_okp_ed25519", AlgEdDSA, "OKP", "Ed25519", []string{"crv", "x"}},
	}
	all := []string{"n", "e", "crv", "x", "y"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks := mustLoadKeys(t, &memKeyStore{}, keyConfig(tt.alg, newKeyClock()))
			raw, err := json.Marshal(ks.JWKS())
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Keys []map[string]any `json:"keys"`
			}
			if err := json.Unmarshal(raw, &doc); err != nil {
				t.Fatal(err)
			}
			if len(doc.Keys) != 1 {
				t.Fatalf("got %s, want one key", raw)
			}
			m := doc.Keys[0]
			want := map[string]any{"kty": tt.kty, "kid": ks.SigningKeyID(), "use": "sig", "alg": tt.alg}
			if tt.crv != "" {
				want["crv"] = tt.crv
			}
			for k, v := range want {
				if m[k] != v {
					t.Errorf("got %s = %v, want %v in %s", k, m[k], v, raw)
				}
			}
			for _, member := range all {
				_, has := m[member]
				if wantHas := slices.Contains(tt.members, member); has != wantHas {
					t.Errorf("got member %q present=%v, want %v in %s", member, has, wantHas, raw)
				}
			}
			for _, member := range privateMembers {
				if _, has := m[member]; has {
					t.Errorf("got private member %q in %s", member, raw)
				}
			}
			// A resource server rebuilding the key from the JWK verifies
			// the server's tokens with it.
			token := signWithKeys(t, ks, "alice")
			pub := publicKeyFromJWK(t, ks.JWKS().Keys[0])
			if _, err := jwt.NewParser(jwt.WithValidMethods([]string{tt.alg})).Parse(token, func(*jwt.Token) (any, error) { return pub, nil }); err != nil {
				t.Errorf("token does not verify with the published key: %v", err)
			}
		})
	}

	t.Run("rfc7518_3.2_hs256_secret_is_never_published", func(t *testing.T) {
		store := &memKeyStore{}
		clock := newKeyClock()
		hs := mustLoadKeys(t, store, keyConfig(AlgHS256, clock))
		raw, err := json.Marshal(hs.JWKS())
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(raw), `{"keys":[]}`; got != want {
			t.Errorf("got %s, want %s", got, want)
		}
		// Stored keys from an earlier asymmetric configuration still are.
		rsaKeys := mustLoadKeys(t, store, keyConfig(AlgRS256, clock))
		hs = mustLoadKeys(t, store, keyConfig(AlgHS256, clock))
		if got, want := jwksIDs(hs), []string{rsaKeys.SigningKeyID()}; !slices.Equal(got, want) {
			t.Errorf("got published %v, want %v", got, want)
		}
		raw, err = json.Marshal(hs.JWKS())
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte(b64url.EncodeToString(keyTestHMACSecret))) || bytes.Contains(raw, []byte(`"oct"`)) || bytes.Contains(raw, []byte(hs.SigningKeyID())) {
			t.Errorf("got the HMAC secret or its kid published: %s", raw)
		}
	})
}

func publicKeyFromJWK(t *testing.T, j JWK) any {
	t.Helper()
	dec := func(s string) []byte {
		t.Helper()
		b, err := b64url.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	switch j.Kty {
	case "RSA":
		return &rsa.PublicKey{N: new(big.Int).SetBytes(dec(j.N)), E: int(new(big.Int).SetBytes(dec(j.E)).Int64())}
	case "EC":
		x, y := dec(j.X), dec(j.Y)
		if len(x) != 32 || len(y) != 32 {
			t.Fatalf("got x, y of %d and %d bytes, want 32 (RFC 7518 §6.2.1.2)", len(x), len(y))
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			t.Fatal(err)
		}
		return pub
	case "OKP":
		return ed25519.PublicKey(dec(j.X))
	}
	t.Fatalf("unexpected kty %q", j.Kty)
	return nil
}

func TestKeyEncryptionAtRest(t *testing.T) {
	encrypted := func(t *testing.T) (*memKeyStore, *Keys) {
		t.Helper()
		store := &memKeyStore{}
		cfg := keyConfig(AlgES256, newKeyClock())
		cfg.EncryptionKey = keyTestEncryptionKey
		return store, mustLoadKeys(t, store, cfg)
	}

	t.Run("stored_private_key_is_an_envelope_not_the_der", func(t *testing.T) {
		store, ks := encrypted(t)
		_, _, priv := ks.Signer()
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		stored := store.stored(t, ks.SigningKeyID()).Private
		if !bytes.HasPrefix(stored, []byte(envelopeV1)) {
			t.Errorf("got stored bytes starting %q, want the %q envelope", stored[:min(len(stored), 24)], envelopeV1)
		}
		if bytes.Equal(stored, der) || bytes.Contains(stored, der) {
			t.Error("got the plain PKCS #8 DER inside the stored bytes")
		}
		opened, err := openPrivateKey(keyTestEncryptionKey, ks.SigningKeyID(), stored)
		if err != nil || !bytes.Equal(opened, der) {
			t.Errorf("got %v opening the envelope, want the PKCS #8 DER back", err)
		}
	})

	t.Run("reload_with_the_same_encryption_key", func(t *testing.T) {
		store, ks := encrypted(t)
		cfg := keyConfig(AlgES256, newKeyClock())
		cfg.EncryptionKey = bytes.Clone(keyTestEncryptionKey)
		again := mustLoadKeys(t, store, cfg)
		if got, want := again.SigningKeyID(), ks.SigningKeyID(); got != want {
			t.Errorf("got kid %s, want %s", got, want)
		}
		if err := verifyWithKeys(again, signWithKeys(t, ks, "alice")); err != nil {
			t.Error(err)
		}
	})

	failures := []struct {
		name    string
		encKey  []byte
		wantErr error
	}{
		{"reload_without_the_encryption_key_fails", nil, ErrKeyEncrypted},
		{"reload_with_a_wrong_encryption_key_fails", bytes.Repeat([]byte{0x17}, EncryptionKeyBytes), ErrKeyDecrypt},
	}
	for _, tt := range failures {
		t.Run(tt.name, func(t *testing.T) {
			store, _ := encrypted(t)
			cfg := keyConfig(AlgES256, newKeyClock())
			cfg.EncryptionKey = tt.encKey
			_, err := LoadKeys(context.Background(), store, cfg)
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), "GATEHOUSE_KEY_ENCRYPTION_KEY") {
				t.Errorf("got %v, want %v naming GATEHOUSE_KEY_ENCRYPTION_KEY", err, tt.wantErr)
			}
		})
	}

	t.Run("envelope_is_bound_to_its_key_id", func(t *testing.T) {
		store, ks := encrypted(t)
		if _, err := ks.Rotate(context.Background()); err != nil {
			t.Fatal(err)
		}
		// Swap the private parts of the two rows.
		store.keys[0].Private, store.keys[1].Private = store.keys[1].Private, store.keys[0].Private
		cfg := keyConfig(AlgES256, newKeyClock())
		cfg.EncryptionKey = keyTestEncryptionKey
		if _, err := LoadKeys(context.Background(), store, cfg); !errors.Is(err, ErrKeyDecrypt) {
			t.Errorf("got %v, want %v for swapped rows", err, ErrKeyDecrypt)
		}
	})

	t.Run("refresh_fails_and_keeps_the_keys_when_a_key_does_not_decrypt", func(t *testing.T) {
		store, ks := encrypted(t)
		kid := ks.SigningKeyID()
		// Another process with another encryption key rotated.
		other := keyConfig(AlgES256, newKeyClock())
		other.EncryptionKey = bytes.Repeat([]byte{0x17}, EncryptionKeyBytes)
		foreign := &Keys{cfg: other}
		sk, err := foreign.generate(other.Now(), other.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := store.CreateSigningKey(context.Background(), sk); err != nil {
			t.Fatal(err)
		}
		if err := ks.Refresh(context.Background()); !errors.Is(err, ErrKeyDecrypt) {
			t.Errorf("got %v, want %v", err, ErrKeyDecrypt)
		}
		if got := ks.SigningKeyID(); got != kid {
			t.Errorf("got kid %s after a failed refresh, want %s", got, kid)
		}
		if err := verifyWithKeys(ks, signWithKeys(t, ks, "alice")); err != nil {
			t.Error(err)
		}
	})

	t.Run("plaintext_keys_are_encrypted_at_load_and_new_keys_are_encrypted", func(t *testing.T) {
		store := &memKeyStore{}
		clock := newKeyClock()
		plain := mustLoadKeys(t, store, keyConfig(AlgEdDSA, clock))
		cfg := keyConfig(AlgEdDSA, clock)
		cfg.EncryptionKey = keyTestEncryptionKey
		ks := mustLoadKeys(t, store, cfg)
		if got, want := ks.SigningKeyID(), plain.SigningKeyID(); got != want {
			t.Errorf("got kid %s, want the plaintext key %s", got, want)
		}
		rotated, err := ks.Rotate(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got := store.stored(t, rotated.ID).Private; !isEnvelope(got) {
			t.Error("got the rotated key stored in plain, want encrypted")
		}
		if got := store.stored(t, plain.SigningKeyID()).Private; !isEnvelope(got) {
			t.Error("got the key stored before the encryption key was set still in plain, want it encrypted at load")
		}
	})
}

func TestKeyRotation(t *testing.T) {
	ctx := context.Background()
	clock := newKeyClock()
	store := &memKeyStore{}
	ks := mustLoadKeys(t, store, keyConfig(AlgRS256, clock))
	oldKID := ks.SigningKeyID()
	oldToken := signWithKeys(t, ks, "alice")

	clock.Advance(time.Hour)
	rotated, err := ks.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	newKID := rotated.ID
	if newKID == oldKID || rotated.Algorithm != AlgRS256 || rotated.Private != nil {
		t.Errorf("got rotated key %s/%s with %d private bytes, want a new RS256 key without its private part", newKID, rotated.Algorithm, len(rotated.Private))
	}
	if got, want := rotated.ActivatesAt, clock.Now().Add(keyTestPrePublish); !got.Equal(want) || !rotated.CreatedAt.Equal(clock.Now()) {
		t.Errorf("got created %s activates %s, want created now and activating at %s", rotated.CreatedAt, got, want)
	}

	t.Run("rfc7517_5_rotated_key_is_published_before_it_signs", func(t *testing.T) {
		if got, want := jwksIDs(ks), []string{newKID, oldKID}; !slices.Equal(got, want) {
			t.Errorf("got published %v, want %v", got, want)
		}
		if got := ks.SigningKeyID(); got != oldKID {
			t.Errorf("got signing kid %s, want the old %s until PrePublish passed", got, oldKID)
		}
	})

	clock.Advance(keyTestPrePublish)
	newToken := signWithKeys(t, ks, "bob")
	t.Run("rotated_key_signs_once_pre_publication_passed", func(t *testing.T) {
		if got := jwsKID(t, newToken); got != newKID {
			t.Errorf("got tokens signed with %s, want the new %s", got, newKID)
		}
		if got, want := jwksIDs(ks), []string{newKID, oldKID}; !slices.Equal(got, want) {
			t.Errorf("got published %v, want both %v", got, want)
		}
		for _, tok := range []string{oldToken, newToken} {
			if err := verifyWithKeys(ks, tok); err != nil {
				t.Errorf("token of %s: %v", jwsKID(t, tok), err)
			}
		}
	})

	clock.Advance(keyTestTTL + keyTestLeeway)
	t.Run("old_key_stays_until_its_last_token_expired", func(t *testing.T) {
		if err := ks.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if err := verifyWithKeys(ks, oldToken); err != nil {
			t.Errorf("got %v exactly TokenTTL+Leeway after the successor activated, want the old key valid", err)
		}
		if got := store.ids(t); !slices.Equal(got, []string{newKID, oldKID}) {
			t.Errorf("got stored %v, want both keys", got)
		}
	})

	clock.Advance(time.Second)
	t.Run("old_key_is_retired_after_token_ttl_and_leeway", func(t *testing.T) {
		if err := ks.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if got, want := jwksIDs(ks), []string{newKID}; !slices.Equal(got, want) {
			t.Errorf("got published %v, want %v", got, want)
		}
		if err := verifyWithKeys(ks, oldToken); err == nil {
			t.Error("got the retired key's token verified, want it refused")
		}
		if got, want := store.ids(t), []string{newKID}; !slices.Equal(got, want) {
			t.Errorf("got stored %v, want %v", got, want)
		}
		if got, want := store.deleted, []string{oldKID}; !slices.Equal(got, want) {
			t.Errorf("got deleted %v, want %v", got, want)
		}
		if err := verifyWithKeys(ks, newToken); err != nil {
			t.Errorf("current key's token: %v", err)
		}
	})
}

func TestKeyRetirement(t *testing.T) {
	ctx := context.Background()

	t.Run("retired_key_stops_verifying_before_the_next_refresh", func(t *testing.T) {
		clock := newKeyClock()
		ks := mustLoadKeys(t, &memKeyStore{}, keyConfig(AlgEdDSA, clock))
		oldToken := signWithKeys(t, ks, "alice")
		if _, err := ks.Rotate(ctx); err != nil {
			t.Fatal(err)
		}
		clock.Advance(keyTestPrePublish + ks.RetireAfter() + time.Second)
		if err := verifyWithKeys(ks, oldToken); err == nil {
			t.Error("got the token verified, want its key retired")
		}
		if got := len(ks.JWKS().Keys); got != 1 {
			t.Errorf("got %d published keys, want 1", got)
		}
	})

	t.Run("concurrent_deleter_is_not_an_error", func(t *testing.T) {
		clock := newKeyClock()
		store := &memKeyStore{}
		ks := mustLoadKeys(t, store, keyConfig(AlgES256, clock))
		old := ks.SigningKeyID()
		if _, err := ks.Rotate(ctx); err != nil {
			t.Fatal(err)
		}
		clock.Advance(keyTestPrePublish + ks.RetireAfter() + time.Second)
		store.beforeDelete = func(id string) {
			store.beforeDelete = nil
			if err := store.DeleteSigningKey(ctx, id); err != nil {
				t.Errorf("the other deleter: %v", err)
			}
		}
		if err := ks.Refresh(ctx); err != nil {
			t.Errorf("got %v, want storage.ErrNotFound from the second deleter ignored", err)
		}
		if got := store.deleted; !slices.Equal(got, []string{old}) {
			t.Errorf("got deleted %v, want %v once", got, []string{old})
		}
	})

	t.Run("current_signing_key_is_never_retired", func(t *testing.T) {
		// A replica configured for ES256 added a newer key; this one
		// still signs with RS256, whose key must stay however long ago
		// the newer key activated.
		clock := newKeyClock()
		store := &memKeyStore{}
		rs := mustLoadKeys(t, store, keyConfig(AlgRS256, clock))
		kid := rs.SigningKeyID()
		clock.Advance(time.Minute)
		es := mustLoadKeys(t, store, keyConfig(AlgES256, clock))
		clock.Advance(10 * rs.RetireAfter())
		if err := rs.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if got := rs.SigningKeyID(); got != kid {
			t.Errorf("got signing kid %s, want %s", got, kid)
		}
		if err := verifyWithKeys(rs, signWithKeys(t, rs, "alice")); err != nil {
			t.Error(err)
		}
		if got, want := store.ids(t), []string{es.SigningKeyID(), kid}; !slices.Equal(got, want) {
			t.Errorf("got stored %v, want %v", got, want)
		}
	})

	t.Run("refresh_failure_keeps_the_previous_keys", func(t *testing.T) {
		clock := newKeyClock()
		store := &memKeyStore{}
		ks := mustLoadKeys(t, store, keyConfig(AlgES256, clock))
		kid := ks.SigningKeyID()
		store.listErr = errors.New("database is locked")
		if err := ks.Refresh(ctx); err == nil || !strings.Contains(err.Error(), "database is locked") {
			t.Errorf("got %v, want the store's error", err)
		}
		if got := ks.SigningKeyID(); got != kid {
			t.Errorf("got kid %s, want %s", got, kid)
		}
		if got := jwksIDs(ks); !slices.Equal(got, []string{kid}) {
			t.Errorf("got published %v, want [%s]", got, kid)
		}
	})
}

func TestRefreshPicksUpKeyRotatedElsewhere(t *testing.T) {
	ctx := context.Background()
	clock := newKeyClock()
	store := &memKeyStore{}
	server := mustLoadKeys(t, store, keyConfig(AlgES256, clock))
	// `server keys rotate` against the same store.
	cli := mustLoadKeys(t, store, keyConfig(AlgES256, clock))
	rotated, err := cli.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := jwksIDs(server); slices.Contains(got, rotated.ID) {
		t.Fatalf("got %v published before Refresh, want the key unknown yet", got)
	}
	if err := server.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := jwksIDs(server); !slices.Contains(got, rotated.ID) {
		t.Errorf("got published %v after Refresh, want %s among them", got, rotated.ID)
	}
	clock.Advance(keyTestPrePublish)
	if got := server.SigningKeyID(); got != rotated.ID {
		t.Errorf("got signing kid %s, want the rotated %s", got, rotated.ID)
	}
	if err := verifyWithKeys(server, signWithKeys(t, cli, "alice")); err != nil {
		t.Errorf("token signed by the other instance: %v", err)
	}
}

func TestRunRotatesWhenRotationIntervalElapsed(t *testing.T) {
	clock := newKeyClock()
	store := &memKeyStore{created: make(chan storage.SigningKey, 1)}
	cfg := keyConfig(AlgEdDSA, clock)
	cfg.RotationInterval = 24 * time.Hour
	cfg.RefreshInterval = time.Millisecond
	ks := mustLoadKeys(t, store, cfg)
	old := ks.SigningKeyID()

	// Not due yet: Run refreshes but does not rotate.
	clock.Advance(cfg.RotationInterval - time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		ks.Run(ctx)
		close(done)
	}()
	if err := ks.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := store.ids(t); !slices.Equal(got, []string{old}) {
		t.Fatalf("got stored %v before the interval elapsed, want [%s]", got, old)
	}

	clock.Advance(time.Second)
	rotated := <-store.created
	cancel()
	<-done

	if rotated.ID == old || rotated.Algorithm != AlgEdDSA {
		t.Errorf("got rotated key %s/%s, want a new EdDSA key", rotated.ID, rotated.Algorithm)
	}
	if got, want := rotated.ActivatesAt, clock.Now().Add(cfg.PrePublish); !got.Equal(want) {
		t.Errorf("got activation %s, want %s", got, want)
	}
	if got, want := store.ids(t), []string{rotated.ID, old}; !slices.Equal(got, want) {
		t.Errorf("got stored %v, want exactly one rotation %v", got, want)
	}
	if got, want := jwksIDs(ks), []string{rotated.ID, old}; !slices.Equal(got, want) {
		t.Errorf("got published %v, want %v", got, want)
	}
}

func TestKeysConcurrentUse(t *testing.T) {
	ctx := context.Background()
	clock := newKeyClock()
	store := &memKeyStore{}
	cfg := keyConfig(AlgES256, clock)
	cfg.PrePublish = 0
	ks := mustLoadKeys(t, store, cfg)
	other := mustLoadKeys(t, store, cfg)

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 4 {
		wg.Go(func() {
			for range 50 {
				kid, method, key := ks.Signer()
				tok := jwt.NewWithClaims(method, jwt.RegisteredClaims{Subject: "alice"})
				tok.Header["kid"] = kid
				token, err := tok.SignedString(key)
				if err != nil {
					errs <- err
					return
				}
				if err := verifyWithKeys(ks, token); err != nil {
					errs <- err
					return
				}
				_ = ks.JWKS()
				_ = ks.Algorithm()
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			if err := ks.Refresh(ctx); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Go(func() {
		for range 5 {
			if _, err := ks.Rotate(ctx); err != nil {
				errs <- err
				return
			}
			if _, err := other.Rotate(ctx); err != nil {
				errs <- err
				return
			}
			clock.Advance(time.Second)
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := len(store.ids(t)); got != 11 {
		t.Errorf("got %d stored keys, want 11 (none retired within the token lifetime)", got)
	}
}

// A store outage fails every tick of Run: its log is the first failure,
// then one record a minute with the count, and the recovery once.
func TestKeys_refresh_failures_are_logged_once_a_minute(t *testing.T) {
	clock := newKeyClock()
	store := &memKeyStore{}
	var logs bytes.Buffer
	cfg := keyConfig(AlgEdDSA, clock)
	cfg.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	ks := mustLoadKeys(t, store, cfg)
	count := func(msg string) int { return strings.Count(logs.String(), `"msg":"`+msg+`"`) }

	store.mu.Lock()
	store.listErr = errors.New("store unreachable")
	store.mu.Unlock()
	for range 120 { // two minutes of one-second ticks
		ks.tick(t.Context())
		clock.Advance(time.Second)
	}
	if got := count("refresh signing keys"); got != 2 {
		t.Errorf("two minutes of failing ticks logged %d failures, want 2 (the first, then a minute later):\n%s", got, logs.String())
	}
	if !strings.Contains(logs.String(), `"failures":61`) {
		t.Errorf("the minute-later record should count 61 failures:\n%s", logs.String())
	}

	store.mu.Lock()
	store.listErr = nil
	store.mu.Unlock()
	ks.tick(t.Context())
	ks.tick(t.Context())
	if got := count("signing keys refreshed again"); got != 1 || !strings.Contains(logs.String(), `"failures":120`) {
		t.Errorf("recovery logged %d times, want once with 120 failures:\n%s", got, logs.String())
	}
	// A new outage starts its log afresh.
	store.mu.Lock()
	store.listErr = errors.New("store unreachable")
	store.mu.Unlock()
	ks.tick(t.Context())
	if got := count("refresh signing keys"); got != 3 {
		t.Errorf("a new outage's first failure: %d failure records in all, want 3", got)
	}
}

func TestRefresh_reuses_the_keys_whose_row_is_unchanged(t *testing.T) {
	ctx := context.Background()
	clock := newKeyClock()
	store := &memKeyStore{}
	server := mustLoadKeys(t, store, keyConfig(AlgRS256, clock))
	first := server.SigningKeyID()
	base := server.parsed
	for range 3 {
		if err := server.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := server.parsed - base; got != 0 {
		t.Errorf("three refreshes of an unchanged store parsed %d keys, want 0", got)
	}
	if err := verifyWithKeys(server, signWithKeys(t, server, "alice")); err != nil {
		t.Errorf("a token signed after the refreshes: %v", err)
	}

	// A key rotated by another instance is the one key parsed.
	cli := mustLoadKeys(t, store, keyConfig(AlgRS256, clock))
	rotated, err := cli.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := server.parsed - base; got != 1 {
		t.Errorf("a refresh after one rotation parsed %d keys, want 1", got)
	}
	if got := jwksIDs(server); !slices.Contains(got, rotated.ID) || !slices.Contains(got, first) {
		t.Errorf("got published %v, want %s and %s", got, first, rotated.ID)
	}

	// A row whose private form changed under the same id is read and
	// checked again: here it holds another key, which the thumbprint
	// check refuses, and the previous keys stay in use.
	old := store.stored(t, first)
	other := store.stored(t, rotated.ID)
	if err := store.ReplaceSigningKeyPrivate(ctx, first, old.Private, other.Private); err != nil {
		t.Fatal(err)
	}
	err = server.Refresh(ctx)
	if err == nil || !strings.Contains(err.Error(), "thumbprint") {
		t.Fatalf("got %v refreshing a row swapped for another key, want the thumbprint refused", err)
	}
	if got := server.parsed - base; got != 2 {
		t.Errorf("got %d keys parsed in all, want 2 (the rotated key, the swapped row)", got)
	}
	if got := jwksIDs(server); !slices.Contains(got, first) {
		t.Errorf("got published %v after the refused refresh, want the previous keys kept", got)
	}
}
