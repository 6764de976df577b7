package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse/gatehouse/internal/users"
)

// Signing algorithms gatehouse can be configured with.
const (
	AlgRS256 = "RS256"
	AlgHS256 = "HS256"
)

// MinHMACSecretBytes is the shortest HS256 secret accepted: RFC 7518 §3.2
// requires a key at least as long as the hash output.
const MinHMACSecretBytes = 32

const rsaKeyBits = 2048

// KeyStore is what the key set needs from the store.
type KeyStore interface {
	SigningKeys(ctx context.Context) ([]users.SigningKey, error)
	EnsureSigningKey(ctx context.Context, alg string, create func() (users.SigningKey, error)) (users.SigningKey, error)
}

// key is one signing or verification key, pinned to one algorithm so a token
// naming that key with any other alg is rejected (no HS256-with-public-key).
type key struct {
	id     string
	method jwt.SigningMethod
	sign   any
	verify any
}

// Keys holds the key tokens are signed with and every key they may be
// verified with, looked up by `kid`. It is built once at start.
type Keys struct {
	signing *key
	byID    map[string]*key
	algs    []string
}

// LoadKeys prepares the keys for alg. For RS256 the newest stored RSA key
// signs, generated and persisted on first start so restarts and replicas
// share it; for HS256 hmacSecret signs and is never stored.
func LoadKeys(ctx context.Context, store KeyStore, alg string, hmacSecret []byte) (*Keys, error) {
	ks := &Keys{byID: map[string]*key{}}
	stored, err := store.SigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("load signing keys: %w", err)
	}
	for _, sk := range stored {
		k, err := parseStoredKey(sk)
		if err != nil {
			return nil, err
		}
		ks.add(k)
	}

	switch alg {
	case AlgRS256:
		sk, err := store.EnsureSigningKey(ctx, AlgRS256, newRSAKey)
		if err != nil {
			return nil, fmt.Errorf("ensure signing key: %w", err)
		}
		k, err := parseStoredKey(sk)
		if err != nil {
			return nil, err
		}
		ks.add(k)
		ks.signing = ks.byID[k.id]
	case AlgHS256:
		if len(hmacSecret) < MinHMACSecretBytes {
			return nil, fmt.Errorf("HS256 secret must be at least %d bytes", MinHMACSecretBytes)
		}
		secret := append([]byte(nil), hmacSecret...)
		k := &key{id: hmacKeyID(secret), method: jwt.SigningMethodHS256, sign: secret, verify: secret}
		ks.add(k)
		ks.signing = k
	default:
		return nil, fmt.Errorf("unsupported signing algorithm %q", alg)
	}
	return ks, nil
}

func (ks *Keys) add(k *key) {
	if _, ok := ks.byID[k.id]; ok {
		return
	}
	ks.byID[k.id] = k
	for _, a := range ks.algs {
		if a == k.method.Alg() {
			return
		}
	}
	ks.algs = append(ks.algs, k.method.Alg())
}

// SigningKeyID is the `kid` new tokens carry.
func (ks *Keys) SigningKeyID() string { return ks.signing.id }

// Algorithm is the `alg` new tokens carry.
func (ks *Keys) Algorithm() string { return ks.signing.method.Alg() }

func (ks *Keys) lookup(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	k, ok := ks.byID[kid]
	if !ok {
		return nil, errors.New("unknown key id")
	}
	if t.Method.Alg() != k.method.Alg() {
		return nil, errors.New("algorithm does not match the key")
	}
	return k.verify, nil
}

func newRSAKey() (users.SigningKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, rsaKeyBits)
	if err != nil {
		return users.SigningKey{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return users.SigningKey{}, err
	}
	return users.SigningKey{
		ID:        rsaThumbprint(&priv.PublicKey),
		Algorithm: AlgRS256,
		Private:   der,
		CreatedAt: time.Now().UTC(),
	}, nil
}

func parseStoredKey(sk users.SigningKey) (*key, error) {
	if sk.Algorithm != AlgRS256 {
		return nil, fmt.Errorf("stored key %s: unsupported algorithm %q", sk.ID, sk.Algorithm)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(sk.Private)
	if err != nil {
		return nil, fmt.Errorf("stored key %s: %w", sk.ID, err)
	}
	priv, ok := parsed.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("stored key %s: not an RSA key", sk.ID)
	}
	return &key{id: sk.ID, method: jwt.SigningMethodRS256, sign: priv, verify: &priv.PublicKey}, nil
}

// rsaThumbprint is the RFC 7638 JWK thumbprint of pub, used as its `kid`.
func rsaThumbprint(pub *rsa.PublicKey) string {
	b64 := base64.RawURLEncoding.EncodeToString
	// RFC 7638 §3.2: required members only, in lexicographic order, no spaces.
	canonical, _ := json.Marshal(struct {
		E   string `json:"e"`
		Kty string `json:"kty"`
		N   string `json:"n"`
	}{b64(big.NewInt(int64(pub.E)).Bytes()), "RSA", b64(pub.N.Bytes())})
	sum := sha256.Sum256(canonical)
	return b64(sum[:])
}

// hmacKeyID names an HMAC secret without revealing it.
func hmacKeyID(secret []byte) string {
	sum := sha256.Sum256(append([]byte("gatehouse hs256 kid\x00"), secret...))
	return "hs256-" + base64.RawURLEncoding.EncodeToString(sum[:12])
}
