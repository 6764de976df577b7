package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// Refresh tokens carry the session id, a generation and a secret, as one
// opaque base64url string (RFC 6749 §1.5). A login's secrets form a chain: generation 0 is 256
// random bits, and each rotation's secret is a keyed hash of the one
// before it,
//
//	secret(n+1) = HMAC-SHA-256(K, sid ‖ n+1 ‖ secret(n)),
//
// with K a server secret kept in the store (refreshKeySecret). The session
// row stores only the SHA-256 of the current secret, so:
//
//   - a presented secret of generation n is genuine exactly when walking
//     the chain forward from it reaches the stored hash: an older
//     generation is recognised as reuse (RFC 9700 §4.14.2) without storing
//     any former token;
//   - someone who knows the session id (every resource server sees it as
//     `sid`) but never held a secret of the chain cannot build one that
//     walks to the stored hash, so cannot revoke the session by "reusing"
//     a forged token;
//   - the child of the immediate parent can be derived again from the
//     parent, so the grace window answers the same child to concurrent or
//     retried refreshes without storing anything retrievable; and a copy
//     of the database (which holds K and the hash, never a secret) does
//     not let anyone derive a live token either.
const refreshSecretBytes = 32

// refreshKeySecret is the name of K in the store's secrets.
const refreshKeySecret = "refresh-token-chain-key"

// maxChainWalk bounds the work one presented token can cause: a session
// refreshed every 15 minutes for 90 days has about 8,600 generations.
const maxChainWalk = 1 << 16

// refreshChain derives and checks refresh secrets with the key K.
type refreshChain struct{ key []byte }

func (c refreshChain) next(sid string, gen int64, secret []byte) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(sid))
	var n [9]byte
	n[0] = 0 // separator: a session id never contains NUL
	binary.BigEndian.PutUint64(n[1:], uint64(gen+1))
	m.Write(n[:])
	m.Write(secret)
	return m.Sum(nil)
}

// newRefreshSecret returns generation 0 of a new login's chain.
func newRefreshSecret() []byte {
	b := make([]byte, refreshSecretBytes)
	rand.Read(b) // never fails; it crashes the program instead
	return b
}

// secretHash is the stored form of a refresh secret: hex SHA-256.
func secretHash(secret []byte) string {
	sum := sha256.Sum256(secret)
	return hex.EncodeToString(sum[:])
}

// age tells how many rotations ago the presented secret of generation gen
// was current in session s: 0 for the current one, 1 for its parent, and
// so on. ok is false for a secret that is not of this session's chain
// (forged, or a generation the session never reached).
func (c refreshChain) age(s *storage.Session, gen int64, secret []byte) (age int64, ok bool) {
	if gen < 0 || gen > s.Generation || s.Generation-gen > maxChainWalk {
		return 0, false
	}
	t := secret
	for n := gen; n < s.Generation; n++ {
		t = c.next(s.ID, n, t)
	}
	want, err := hex.DecodeString(s.SecretHash)
	if err != nil {
		return 0, false
	}
	got := sha256.Sum256(t)
	if subtle.ConstantTimeCompare(got[:], want) != 1 {
		return 0, false
	}
	return s.Generation - gen, true
}

// refreshTokenVersion leads every refresh token's bytes.
const refreshTokenVersion = 1

// refreshTokenBytes is a refresh token's length before base64url: the
// version, the session id, the generation and the secret.
const refreshTokenBytes = 1 + sessionIDBytes + 8 + refreshSecretBytes

// formatRefreshToken is the token a client holds for generation gen: one
// opaque base64url string (RFC 6749 §1.5) of the version, the session id,
// the generation and the secret.
func formatRefreshToken(sid string, gen int64, secret []byte) string {
	b := make([]byte, 0, refreshTokenBytes)
	b = append(b, refreshTokenVersion)
	id, _ := base64.RawURLEncoding.DecodeString(sid) // sid is newSessionID's
	b = append(b, id...)
	b = binary.BigEndian.AppendUint64(b, uint64(gen))
	b = append(b, secret...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// parseRefreshToken splits a presented refresh token; ok is false for
// anything that cannot be one (then no store lookup is needed).
func parseRefreshToken(token string) (sid string, gen int64, secret []byte, ok bool) {
	if len(token) != base64.RawURLEncoding.EncodedLen(refreshTokenBytes) {
		return "", 0, nil, false
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) != refreshTokenBytes || b[0] != refreshTokenVersion {
		return "", 0, nil, false
	}
	sid = base64.RawURLEncoding.EncodeToString(b[1 : 1+sessionIDBytes])
	g := binary.BigEndian.Uint64(b[1+sessionIDBytes:])
	if g > math.MaxInt64 {
		return "", 0, nil, false
	}
	return sid, int64(g), b[1+sessionIDBytes+8:], true
}

// sessionIDBytes is the randomness of a session id (128 bits).
const sessionIDBytes = 16

// newSessionID returns a random session id in unpadded base64url.
func newSessionID() string {
	b := make([]byte, sessionIDBytes)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// isSessionID reports whether s has the shape of newSessionID's ids.
func isSessionID(s string) bool {
	if len(s) != base64.RawURLEncoding.EncodedLen(sessionIDBytes) {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil
}

// SecretStore keeps server secrets (storage.KeyStore's EnsureSecret and
// ReplaceSecret).
type SecretStore interface {
	EnsureSecret(ctx context.Context, name string, create func() ([]byte, error)) ([]byte, error)
	ReplaceSecret(ctx context.Context, name string, old, next []byte) error
}

// RefreshKey is the key K of every login's refresh-token chain, shared by
// all processes through the store.
type RefreshKey struct{ chain refreshChain }

// LoadRefreshKey reads K from the store, creating it on the first start
// (every replica gets the same). With encKey (GATEHOUSE_KEY_ENCRYPTION_KEY)
// K is stored encrypted like the signing keys (one stored in plain before
// the key was set is encrypted now); an encrypted K needs that key to
// open.
func LoadRefreshKey(ctx context.Context, store SecretStore, encKey []byte) (RefreshKey, error) {
	stored, err := store.EnsureSecret(ctx, refreshKeySecret, func() ([]byte, error) {
		return sealPrivateKey(encKey, refreshKeySecret, newRefreshSecret())
	})
	if err != nil {
		return RefreshKey{}, fmt.Errorf("refresh token key: %w", err)
	}
	if len(encKey) > 0 && !isEnvelope(stored) {
		// Stored before the key-encryption key was set: encrypt it at rest
		// now, as LoadKeys does for signing keys. Another replica doing
		// the same first is not an error.
		sealed, err := sealPrivateKey(encKey, refreshKeySecret, stored)
		if err != nil {
			return RefreshKey{}, fmt.Errorf("refresh token key: %w", err)
		}
		switch err := store.ReplaceSecret(ctx, refreshKeySecret, stored, sealed); {
		case err == nil:
			stored = sealed
		case errors.Is(err, storage.ErrNotFound):
			if stored, err = store.EnsureSecret(ctx, refreshKeySecret, func() ([]byte, error) {
				return nil, errors.New("the refresh token key vanished")
			}); err != nil {
				return RefreshKey{}, fmt.Errorf("refresh token key: %w", err)
			}
		default:
			return RefreshKey{}, fmt.Errorf("refresh token key: encrypt at rest: %w", err)
		}
	}
	key, err := openPrivateKey(encKey, refreshKeySecret, stored)
	if err != nil {
		return RefreshKey{}, fmt.Errorf("refresh token key: %w", err)
	}
	if len(key) != refreshSecretBytes {
		return RefreshKey{}, errors.New("refresh token key: stored key has the wrong length")
	}
	return RefreshKey{chain: refreshChain{key: key}}, nil
}
