package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/storage"
)

// Signing algorithms gatehouse can be configured with (RFC 7518 §3.1,
// RFC 8037 §3.1). Each names the `alg` header of the tokens it signs.
const (
	// AlgRS256 is RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3) over a
	// 2048-bit RSA key; the default.
	AlgRS256 = "RS256"
	// AlgES256 is ECDSA with P-256 and SHA-256 (RFC 7518 §3.4).
	AlgES256 = "ES256"
	// AlgEdDSA is EdDSA over Ed25519 (RFC 8037 §3.1).
	AlgEdDSA = "EdDSA"
	// AlgHS256 is HMAC with SHA-256 (RFC 7518 §3.2) under a configured
	// secret that is never stored nor published.
	AlgHS256 = "HS256"
)

// MinHMACSecretBytes is the shortest HS256 secret accepted: RFC 7518 §3.2
// requires a key at least as long as the hash output.
const MinHMACSecretBytes = 32

// DefaultRefreshInterval is how often Run reloads the keys from the store
// when KeyConfig.RefreshInterval is zero.
const DefaultRefreshInterval = 5 * time.Second

const rsaKeyBits = 2048

// ErrRotationUnsupported is returned by Rotate under HS256: the secret comes
// from configuration, so it is rotated by changing the configuration.
var ErrRotationUnsupported = errors.New("auth: HS256 secrets are rotated by configuration, not by key rotation")

// KeyStore is what the key set needs from the store; the methods have the
// contracts of storage.KeyStore.
type KeyStore interface {
	// SigningKeys returns every stored signing key, newest first.
	SigningKeys(ctx context.Context) ([]storage.SigningKey, error)
	// EnsureSigningKey returns the newest key for alg, calling create and
	// storing its result only when there is none, atomically across
	// processes.
	EnsureSigningKey(ctx context.Context, alg string, create func() (storage.SigningKey, error)) (storage.SigningKey, error)
	// CreateSigningKey stores a rotated key.
	CreateSigningKey(ctx context.Context, k storage.SigningKey) error
	// DeleteSigningKey removes a retired key. Returns storage.ErrNotFound.
	DeleteSigningKey(ctx context.Context, id string) error
	// ReplaceSigningKeyPrivate swaps the stored private form of key id
	// from old to next (its encryption at rest), only while it is still
	// old. Returns storage.ErrNotFound when no key has that id and private
	// form.
	ReplaceSigningKeyPrivate(ctx context.Context, id string, old, next []byte) error
}

var _ KeyStore = storage.KeyStore(nil)

// KeyConfig says which keys sign and how they rotate.
//
// Rotation follows RFC 7517 §5 practice: a new key is published in the JWKS
// first and signs PrePublish later, so resource servers that cache the JWKS
// know it before they meet it; the key it replaces stays published until
// the last token it signed has expired (TokenTTL+Leeway after the successor
// activates), then is retired.
//
// Every replica sharing a store must use the same Algorithm: keys of other
// algorithms only verify, and are retired once newer keys replace them.
type KeyConfig struct {
	// Algorithm is AlgRS256 (when empty), AlgES256, AlgEdDSA or AlgHS256.
	Algorithm string
	// HMACSecret signs under HS256: at least MinHMACSecretBytes long.
	// Ignored for the other algorithms.
	HMACSecret []byte
	// EncryptionKey, when set, is EncryptionKeyBytes long and encrypts
	// private keys at rest with AES-256-GCM. LoadKeys encrypts the keys
	// stored in plain before it was set; keys created from then on are
	// encrypted. Once set it must be kept: encrypted keys do not load
	// without it.
	EncryptionKey []byte
	// PrePublish is the delay between publishing a rotated key and signing
	// with it. It should exceed how long resource servers cache the JWKS.
	PrePublish time.Duration
	// TokenTTL is the access token lifetime (RFC 6749 §5.1 expires_in).
	// Required: it decides when a replaced key can be retired.
	TokenTTL time.Duration
	// Leeway absorbs clock skew between replicas: a replaced key is
	// retired TokenTTL+Leeway after its successor activates.
	Leeway time.Duration
	// RotationInterval is the age at which Run rotates the signing key;
	// 0 turns automatic rotation off. It must exceed PrePublish. HS256
	// does not rotate.
	RotationInterval time.Duration
	// RefreshInterval is how often Run reloads the keys from the store;
	// DefaultRefreshInterval when 0.
	RefreshInterval time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives rotations, retirements and Run's failures; discarded
	// when nil.
	Logger *slog.Logger
	// Audit records each rotation as a key.rotated event; nil discards.
	Audit *audit.Recorder
}

// check fills in the defaults and reports every problem of c at once.
func (c KeyConfig) check() (KeyConfig, error) {
	var errs []error
	if c.Algorithm == "" {
		c.Algorithm = AlgRS256
	}
	switch c.Algorithm {
	case AlgRS256, AlgES256, AlgEdDSA:
		c.HMACSecret = nil
	case AlgHS256:
		if len(c.HMACSecret) < MinHMACSecretBytes {
			errs = append(errs, fmt.Errorf("HS256 secret must be at least %d bytes", MinHMACSecretBytes))
		}
		if c.RotationInterval > 0 {
			errs = append(errs, errors.New("automatic key rotation does not apply to HS256: rotate the secret by configuration"))
		}
	default:
		errs = append(errs, fmt.Errorf("unsupported signing algorithm %q (want %s, %s, %s or %s)", c.Algorithm, AlgRS256, AlgES256, AlgEdDSA, AlgHS256))
	}
	if n := len(c.EncryptionKey); n != 0 && n != EncryptionKeyBytes {
		errs = append(errs, fmt.Errorf("%s must be %d bytes (AES-256), got %d", encryptionKeyVar, EncryptionKeyBytes, n))
	}
	if c.TokenTTL <= 0 {
		errs = append(errs, errors.New("the token lifetime must be positive: it decides when a replaced signing key is retired"))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"key pre-publication delay", c.PrePublish}, {"leeway", c.Leeway}, {"key rotation interval", c.RotationInterval}, {"key refresh interval", c.RefreshInterval}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("the %s must not be negative", d.name))
		}
	}
	if c.RotationInterval > 0 && c.RotationInterval <= c.PrePublish {
		errs = append(errs, fmt.Errorf("the key rotation interval (%s) must exceed the pre-publication delay (%s)", c.RotationInterval, c.PrePublish))
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = DefaultRefreshInterval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	// Own copies: the caller may wipe or reuse its buffers.
	c.HMACSecret = slices.Clone(c.HMACSecret)
	c.EncryptionKey = slices.Clone(c.EncryptionKey)
	return c, errors.Join(errs...)
}

// Keys holds the key tokens are signed with and every key they may be
// verified with, looked up by `kid`. It is safe for concurrent use: readers
// see an immutable snapshot that Refresh and Rotate replace whole.
type Keys struct {
	store KeyStore
	cfg   KeyConfig
	algs  []string
	// hmac is the HS256 secret as a key, nil for the other algorithms.
	hmac *key
	// mu serialises Refresh and Rotate, so snapshots replace each other in
	// the order they were read.
	mu   sync.Mutex
	snap atomic.Pointer[keySet]
	// outage is Run's record of failed refreshes in a row (only Run's
	// goroutine touches it).
	outage outage
	// parsed counts the stored keys a snapshot could not reuse and
	// parsed again (tests); ks.mu guards it.
	parsed int
}

// outage throttles the log of a failure that repeats every tick: the
// first failure is logged, then at most one record a minute with the
// count, and the recovery once.
type outage struct {
	failures int
	logged   time.Time
}

// failed records a failure at now and reports whether to log it.
func (o *outage) failed(now time.Time) bool {
	o.failures++
	if o.failures > 1 && now.Sub(o.logged) < time.Minute {
		return false
	}
	o.logged = now
	return true
}

// recovered ends the outage and returns how many ticks failed in it.
func (o *outage) recovered() int {
	n := o.failures
	*o = outage{}
	return n
}

// keySet is one immutable snapshot of the keys.
type keySet struct {
	// signers are the keys of the configured algorithm, newest first; the
	// first one active signs. Under HS256 it is the secret alone.
	signers []*key
	// byID holds every key that verifies, the HS256 secret included.
	byID map[string]*key
	// published are the stored (asymmetric) keys, newest first.
	published []*key
	// newest is the CreatedAt of the newest key of the configured
	// algorithm, which Run compares with RotationInterval.
	newest time.Time
}

// key is one signing and verification key, pinned to one algorithm so a
// token naming that key with any other alg is rejected (no HS256 keyed with
// an RSA public key, RFC 8725 §2.1).
type key struct {
	id          string
	method      jwt.SigningMethod
	sign        any
	verify      any
	jwk         *JWK // nil for the HS256 secret
	activatesAt time.Time
	// retireAt is when the key stops verifying: TokenTTL+Leeway after a
	// successor activated. Zero while it has none.
	retireAt time.Time
	// row is the SHA-256 of the stored row parse read (algorithm and
	// private form): a refresh that finds the same row again reuses the
	// parsed key instead of decrypting and parsing it anew.
	row [sha256.Size]byte
}

func (k *key) retired(now time.Time) bool {
	return !k.retireAt.IsZero() && now.After(k.retireAt)
}

// LoadKeys loads the signing keys for cfg. For the asymmetric algorithms the
// newest active stored key of that algorithm signs; on first start one is
// generated (RSA 2048, P-256 or Ed25519, stored as PKCS #8) with its
// RFC 7638 thumbprint as kid, so restarts and replicas share it. Under HS256
// the configured secret signs and is never stored. Stored keys of every
// algorithm verify until retired, and keys already due for retirement are
// deleted. With an EncryptionKey, keys still stored in plain are encrypted
// at rest first (see encryptAtRest); they stay the same keys. A stored key
// that cannot be read (encrypted without the right EncryptionKey, corrupt,
// unknown algorithm) fails the load.
func LoadKeys(ctx context.Context, store KeyStore, cfg KeyConfig) (*Keys, error) {
	cfg, err := cfg.check()
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	ks := &Keys{store: store, cfg: cfg}
	if cfg.Algorithm == AlgHS256 {
		ks.hmac = &key{id: hmacKeyID(cfg.HMACSecret), method: jwt.SigningMethodHS256, sign: cfg.HMACSecret, verify: cfg.HMACSecret}
	} else {
		_, err := store.EnsureSigningKey(ctx, cfg.Algorithm, func() (storage.SigningKey, error) {
			now := cfg.Now()
			return ks.generate(now, now)
		})
		if err != nil {
			return nil, fmt.Errorf("ensure signing key: %w", err)
		}
	}
	stored, err := store.SigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("load signing keys: %w", err)
	}
	if stored, err = ks.encryptAtRest(ctx, stored); err != nil {
		return nil, err
	}
	ks.algs = []string{cfg.Algorithm}
	for _, sk := range stored {
		if !slices.Contains(ks.algs, sk.Algorithm) {
			ks.algs = append(ks.algs, sk.Algorithm)
		}
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if err := ks.install(ctx, stored); err != nil {
		return nil, err
	}
	return ks, nil
}

// encryptAtRestAttempts bounds how often encryptAtRest reads the keys again
// after another process changed one it was encrypting.
const encryptAtRestAttempts = 3

// encryptAtRest encrypts under EncryptionKey every key of stored still
// kept in plain (written before the key was set) and returns the keys as
// they are now stored; without an EncryptionKey it returns stored as is.
//
// Only the stored form changes: the key, its kid and its JWK stay the
// same, so tokens it signed keep verifying. Each row is swapped only while
// it still holds the plain form read here, so replicas starting at once do
// not overwrite each other's envelope: the one that loses sees
// storage.ErrNotFound and reads the keys again. Nothing is written while a
// key already encrypted does not open under EncryptionKey: a replica
// started with another key fails rather than split the store between
// two. A plain key that does not parse is left as stored, for install to
// report (or retire).
func (ks *Keys) encryptAtRest(ctx context.Context, stored []storage.SigningKey) ([]storage.SigningKey, error) {
	if len(ks.cfg.EncryptionKey) == 0 {
		return stored, nil
	}
	stored = slices.Clone(stored)
	var sealed []string
	for attempt := 1; ; attempt++ {
		if !slices.ContainsFunc(stored, func(sk storage.SigningKey) bool { return !isEnvelope(sk.Private) }) {
			break
		}
		// Encrypt nothing under a key that does not open the keys already
		// encrypted: the store would end up split between two keys.
		for _, sk := range stored {
			if isEnvelope(sk.Private) {
				if _, err := openPrivateKey(ks.cfg.EncryptionKey, sk.ID, sk.Private); err != nil {
					return nil, err
				}
			}
		}
		raced := false
		for i, sk := range stored {
			if isEnvelope(sk.Private) {
				continue
			}
			if _, err := ks.parse(sk); err != nil {
				continue
			}
			next, err := sealPrivateKey(ks.cfg.EncryptionKey, sk.ID, sk.Private)
			if err != nil {
				return nil, fmt.Errorf("encrypt signing key %s at rest: %w", sk.ID, err)
			}
			switch err := ks.store.ReplaceSigningKeyPrivate(ctx, sk.ID, sk.Private, next); {
			case err == nil:
				stored[i].Private = next
				sealed = append(sealed, sk.ID)
			case errors.Is(err, storage.ErrNotFound):
				// Another replica encrypted or retired it first.
				raced = true
			default:
				return nil, fmt.Errorf("encrypt signing key %s at rest: %w", sk.ID, err)
			}
		}
		if !raced {
			break
		}
		if attempt == encryptAtRestAttempts {
			return nil, fmt.Errorf("encrypt signing keys at rest: gave up after %d attempts, the stored keys kept changing", attempt)
		}
		var err error
		if stored, err = ks.store.SigningKeys(ctx); err != nil {
			return nil, fmt.Errorf("load signing keys: %w", err)
		}
	}
	if len(sealed) > 0 {
		// Key ids only: they are public (the JWKS lists them).
		ks.cfg.Logger.Info("encrypted signing keys at rest", "count", len(sealed), "kids", sealed)
	}
	return stored, nil
}

// SigningKeyID is the `kid` new tokens carry (RFC 7515 §4.1.4).
func (ks *Keys) SigningKeyID() string { return ks.current().id }

// Algorithm is the `alg` new tokens carry (RFC 7515 §4.1.1): the configured
// algorithm.
func (ks *Keys) Algorithm() string { return ks.cfg.Algorithm }

// Signer returns the key new tokens are signed with: the newest key of the
// configured algorithm whose activation time has come, or the HS256 secret.
func (ks *Keys) Signer() (kid string, method jwt.SigningMethod, key any) {
	k := ks.current()
	return k.id, k.method, k.sign
}

func (ks *Keys) current() *key {
	s := ks.snap.Load()
	now := ks.cfg.Now()
	for _, k := range s.signers {
		if !k.activatesAt.After(now) {
			return k
		}
	}
	// Only when the clock went back past every activation: the oldest key
	// is the one that signed before.
	return s.signers[len(s.signers)-1]
}

// Algorithms is the allow-list of `alg` values a token may carry
// (RFC 8725 §3.1): the configured algorithm and those of the keys stored at
// LoadKeys. It never holds "none".
func (ks *Keys) Algorithms() []string { return slices.Clone(ks.algs) }

// RetireAfter is how long a replaced key keeps verifying once its successor
// signs: TokenTTL+Leeway.
func (ks *Keys) RetireAfter() time.Duration { return ks.cfg.TokenTTL + ks.cfg.Leeway }

// Lookup is the jwt.Keyfunc core: the verification key for the token's
// `kid` (RFC 7515 §4.1.4), refused when the kid is unknown or retired, and
// when the token's alg is not the key's own (RFC 8725 §3.1). The key is an
// *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey or, for HS256, the
// secret as []byte.
func (ks *Keys) Lookup(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, errors.New("the token names no key id")
	}
	k, ok := ks.snap.Load().byID[kid]
	if !ok || k.retired(ks.cfg.Now()) {
		return nil, errors.New("unknown or retired key id")
	}
	if t.Method == nil || t.Method.Alg() != k.method.Alg() {
		return nil, errors.New("algorithm does not match the key")
	}
	return k.verify, nil
}

// Rotate starts a key rotation: it stores a new key of the configured
// algorithm, published at once and signing from now+PrePublish, and
// reloads the keys. The key is returned without its private part. When
// only the reload fails, the key is stored (the next Refresh loads it) and
// returned along with the error. Under HS256 it returns
// ErrRotationUnsupported.
func (ks *Keys) Rotate(ctx context.Context) (storage.SigningKey, error) {
	if ks.cfg.Algorithm == AlgHS256 {
		return storage.SigningKey{}, ErrRotationUnsupported
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	now := ks.cfg.Now()
	sk, err := ks.generate(now, now.Add(ks.cfg.PrePublish))
	if err != nil {
		return storage.SigningKey{}, fmt.Errorf("rotate signing key: %w", err)
	}
	if err := ks.store.CreateSigningKey(ctx, sk); err != nil {
		return storage.SigningKey{}, fmt.Errorf("rotate signing key: %w", err)
	}
	sk.Private = nil
	ks.cfg.Audit.Record(ctx, audit.KeyRotated, audit.OK, slog.String("kid", sk.ID), slog.String("alg", sk.Algorithm), slog.Time("activates_at", sk.ActivatesAt))
	if err := ks.refresh(ctx); err != nil {
		return sk, fmt.Errorf("signing key %s stored, but reloading the keys failed: %w", sk.ID, err)
	}
	return sk, nil
}

// Refresh reloads the keys from the store, where another process may have
// rotated them, and retires every key that a newer key replaced more than
// TokenTTL+Leeway ago: it stops verifying, leaves the JWKS and is deleted
// from the store. The key that signs now is never retired. On error the
// previous keys stay in use, except that a failed deletion is retried by
// the next Refresh after the new snapshot is in place.
func (ks *Keys) Refresh(ctx context.Context) error {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return ks.refresh(ctx)
}

func (ks *Keys) refresh(ctx context.Context) error {
	stored, err := ks.store.SigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	return ks.install(ctx, stored)
}

// install builds a snapshot from stored, swaps it in and deletes the keys
// it retired. ks.mu is held.
func (ks *Keys) install(ctx context.Context, stored []storage.SigningKey) error {
	now := ks.cfg.Now()
	alg := ks.cfg.Algorithm
	// Newest first by CreatedAt; the stable sort keeps the store's
	// tie-break between keys created at the same instant.
	stored = slices.Clone(stored)
	slices.SortStableFunc(stored, func(a, b storage.SigningKey) int { return b.CreatedAt.Compare(a.CreatedAt) })

	// The keys of the current snapshot, to reuse those whose row is
	// unchanged: Run refreshes every few seconds, and parsing an RSA key
	// allocated most of what an idle server allocates.
	var prev map[string]*key
	if cur := ks.snap.Load(); cur != nil {
		prev = cur.byID
	}
	s := &keySet{byID: map[string]*key{}}
	if ks.hmac != nil {
		s.signers = []*key{ks.hmac}
		s.byID[ks.hmac.id] = ks.hmac
	}
	var (
		retire []string
		// Earliest activation among the newer keys seen so far: of any
		// algorithm, and of the configured one.
		nextAny, nextSame time.Time
	)
	for _, sk := range stored {
		if _, dup := s.byID[sk.ID]; dup {
			continue
		}
		activates := sk.ActivatesAt
		if activates.IsZero() {
			activates = sk.CreatedAt
		}
		// A key stops signing when a newer key activates. One of the
		// configured algorithm is replaced only by one of the same
		// algorithm, which is what keeps the current signer from being
		// retired; a key of another algorithm signs no more here, so any
		// newer key replaces it.
		successor := nextAny
		if sk.Algorithm == alg {
			successor = nextSame
		}
		nextAny = earliest(nextAny, activates)
		if sk.Algorithm == alg {
			nextSame = earliest(nextSame, activates)
		}
		var retireAt time.Time
		if !successor.IsZero() {
			retireAt = successor.Add(ks.cfg.TokenTTL + ks.cfg.Leeway)
			if now.After(retireAt) {
				retire = append(retire, sk.ID)
				continue
			}
		}
		k, err := ks.reuseOrParse(prev[sk.ID], sk)
		if err != nil {
			return err
		}
		k.activatesAt, k.retireAt = activates, retireAt
		s.byID[k.id] = k
		s.published = append(s.published, k)
		if sk.Algorithm == alg {
			s.signers = append(s.signers, k)
			if s.newest.IsZero() {
				s.newest = sk.CreatedAt
			}
		}
	}
	if !slices.ContainsFunc(s.signers, func(k *key) bool { return !k.activatesAt.After(now) }) {
		return fmt.Errorf("no active %s signing key in the store", alg)
	}
	ks.snap.Store(s)

	var errs []error
	for _, id := range retire {
		err := ks.store.DeleteSigningKey(ctx, id)
		switch {
		case err == nil:
			ks.cfg.Logger.Info("retired signing key", "kid", id)
		case errors.Is(err, storage.ErrNotFound):
			// Another replica retired it first.
		default:
			errs = append(errs, fmt.Errorf("delete retired signing key %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// Run keeps the keys current until ctx is done: every RefreshInterval it
// calls Refresh, keeping the previous keys on a failure (logged the first
// time, then once a minute during an outage, and its end once), and when
// RotationInterval is set and the newest key of the configured algorithm
// is at least that old, it calls Rotate. Replicas that rotate in the same
// tick each add a key; the newest signs and the others are retired like
// any replaced key.
func (ks *Keys) Run(ctx context.Context) {
	t := time.NewTicker(ks.cfg.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ks.tick(ctx)
	}
}

func (ks *Keys) tick(ctx context.Context) {
	log := ks.cfg.Logger
	if err := ks.Refresh(ctx); err != nil {
		if ctx.Err() == nil && ks.outage.failed(ks.cfg.Now()) {
			log.Error("refresh signing keys", "err", err, "failures", ks.outage.failures)
		}
		// A stale view could rotate a key another replica just rotated.
		return
	}
	if n := ks.outage.recovered(); n > 0 {
		log.Info("signing keys refreshed again", "failures", n)
	}
	if ks.cfg.RotationInterval <= 0 || ks.hmac != nil {
		return
	}
	if ks.cfg.Now().Sub(ks.snap.Load().newest) < ks.cfg.RotationInterval {
		return
	}
	if _, err := ks.Rotate(ctx); err != nil && ctx.Err() == nil {
		log.Error("rotate signing key", "err", err)
	}
}

// generate creates a key of the configured algorithm, sealed for storage
// when an encryption key is set.
func (ks *Keys) generate(createdAt, activatesAt time.Time) (storage.SigningKey, error) {
	alg := ks.cfg.Algorithm
	var (
		priv crypto.Signer
		err  error
	)
	switch alg {
	case AlgRS256:
		priv, err = rsa.GenerateKey(rand.Reader, rsaKeyBits)
	case AlgES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case AlgEdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		err = fmt.Errorf("cannot generate a %q key", alg)
	}
	if err != nil {
		return storage.SigningKey{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return storage.SigningKey{}, err
	}
	jwk, err := publicJWK(alg, priv.Public())
	if err != nil {
		return storage.SigningKey{}, err
	}
	private, err := sealPrivateKey(ks.cfg.EncryptionKey, jwk.Kid, der)
	if err != nil {
		return storage.SigningKey{}, err
	}
	return storage.SigningKey{
		ID:          jwk.Kid,
		Algorithm:   alg,
		Private:     private,
		CreatedAt:   createdAt.UTC(),
		ActivatesAt: activatesAt.UTC(),
	}, nil
}

// reuseOrParse returns a copy of old, the current snapshot's key of sk's
// id, when it was parsed from the same row (same algorithm and private
// form, so the checks parse made hold), and parse(sk) otherwise. The copy
// is the caller's to change: old belongs to a snapshot readers may still
// hold. The HS256 secret (no JWK) is never stored, so never reused here.
func (ks *Keys) reuseOrParse(old *key, sk storage.SigningKey) (*key, error) {
	row := keyRowSum(sk)
	if old != nil && old.jwk != nil && old.row == row {
		k := *old
		return &k, nil
	}
	ks.parsed++
	k, err := ks.parse(sk)
	if err != nil {
		return nil, err
	}
	k.row = row
	return k, nil
}

// keyRowSum is the SHA-256 of a stored key's algorithm and private form.
func keyRowSum(sk storage.SigningKey) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(sk.Algorithm))
	h.Write([]byte{0})
	h.Write(sk.Private)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// parse reads a stored key: decrypts it, checks that the key matches its
// algorithm and that its id is its RFC 7638 thumbprint (so a row's key
// cannot be swapped for another's unnoticed).
func (ks *Keys) parse(sk storage.SigningKey) (*key, error) {
	der, err := openPrivateKey(ks.cfg.EncryptionKey, sk.ID, sk.Private)
	if err != nil {
		return nil, err
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", sk.ID, err)
	}
	k := &key{id: sk.ID}
	var pub crypto.PublicKey
	switch sk.Algorithm {
	case AlgRS256:
		p, ok := parsed.(*rsa.PrivateKey)
		if !ok || p.N.BitLen() < rsaKeyBits {
			return nil, fmt.Errorf("signing key %s: not an RSA key of at least %d bits", sk.ID, rsaKeyBits)
		}
		k.method, k.sign, pub = jwt.SigningMethodRS256, p, &p.PublicKey
	case AlgES256:
		p, ok := parsed.(*ecdsa.PrivateKey)
		if !ok || p.Curve != elliptic.P256() {
			return nil, fmt.Errorf("signing key %s: not an ECDSA P-256 key", sk.ID)
		}
		k.method, k.sign, pub = jwt.SigningMethodES256, p, &p.PublicKey
	case AlgEdDSA:
		p, ok := parsed.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("signing key %s: not an Ed25519 key", sk.ID)
		}
		k.method, k.sign, pub = jwt.SigningMethodEdDSA, p, p.Public()
	default:
		return nil, fmt.Errorf("signing key %s: unsupported algorithm %q", sk.ID, sk.Algorithm)
	}
	jwk, err := publicJWK(sk.Algorithm, pub)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", sk.ID, err)
	}
	if jwk.Kid != sk.ID {
		return nil, fmt.Errorf("signing key %s: the id is not the key's RFC 7638 thumbprint %s", sk.ID, jwk.Kid)
	}
	k.verify, k.jwk = pub, &jwk
	return k, nil
}

// hmacKeyID names an HMAC secret without revealing it.
func hmacKeyID(secret []byte) string {
	sum := sha256.Sum256(append([]byte("gatehouse hs256 kid\x00"), secret...))
	return "hs256-" + base64.RawURLEncoding.EncodeToString(sum[:12])
}
