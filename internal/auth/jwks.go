package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
)

// JWKSet is a JWK Set (RFC 7517 §5): the document served at jwks_uri
// (RFC 8414 §2). Keys is never nil, so it encodes as "keys": [].
type JWKSet struct {
	Keys []JWK `json:"keys"`
}

// JWK is a public JSON Web Key (RFC 7517 §4). Only public members exist
// here: RSA n and e (RFC 7518 §6.3.1), EC crv, x and y (RFC 7518 §6.2.1),
// OKP crv and x (RFC 8037 §2). There is no field a private part or an HMAC
// secret ("d", "p", "k", ...) could be put in.
type JWK struct {
	// Kty is the key type: "RSA", "EC" or "OKP" (RFC 7517 §4.1).
	Kty string `json:"kty"`
	// Kid is the key id tokens carry in their header, the key's RFC 7638
	// thumbprint (RFC 7517 §4.5).
	Kid string `json:"kid"`
	// Use is always "sig" (RFC 7517 §4.2).
	Use string `json:"use"`
	// Alg is the one algorithm the key is used with (RFC 7517 §4.4).
	Alg string `json:"alg"`
	// N is the RSA modulus (RFC 7518 §6.3.1.1).
	N string `json:"n,omitempty"`
	// E is the RSA public exponent (RFC 7518 §6.3.1.2).
	E string `json:"e,omitempty"`
	// Crv is the curve: "P-256" (RFC 7518 §6.2.1.1) or "Ed25519"
	// (RFC 8037 §2).
	Crv string `json:"crv,omitempty"`
	// X is the EC x coordinate (RFC 7518 §6.2.1.2) or the Ed25519 public
	// key (RFC 8037 §2).
	X string `json:"x,omitempty"`
	// Y is the EC y coordinate (RFC 7518 §6.2.1.3).
	Y string `json:"y,omitempty"`
}

// JWKS returns the public keys that verify tokens (RFC 7517 §5): every
// stored key not retired, newest first, including a rotated key that does
// not sign yet, so resource servers can fetch it before they meet it. An
// HS256 secret is never published.
func (ks *Keys) JWKS() JWKSet {
	s := ks.snap.Load()
	now := ks.cfg.Now()
	set := JWKSet{Keys: make([]JWK, 0, len(s.published))}
	for _, k := range s.published {
		if !k.retired(now) {
			set.Keys = append(set.Keys, *k.jwk)
		}
	}
	return set
}

var b64url = base64.RawURLEncoding

// publicJWK describes pub as a JWK for alg, with its RFC 7638 thumbprint as
// kid.
func publicJWK(alg string, pub crypto.PublicKey) (JWK, error) {
	j := JWK{Use: "sig", Alg: alg}
	switch alg {
	case AlgRS256:
		p, ok := pub.(*rsa.PublicKey)
		if !ok {
			return JWK{}, fmt.Errorf("%s key is a %T, want RSA", alg, pub)
		}
		// RFC 7518 §6.3.1: Base64urlUInt, the minimal big-endian octets.
		j.Kty, j.N, j.E = "RSA", b64url.EncodeToString(p.N.Bytes()), b64url.EncodeToString(big.NewInt(int64(p.E)).Bytes())
	case AlgES256:
		p, ok := pub.(*ecdsa.PublicKey)
		if !ok || p.Curve != elliptic.P256() {
			return JWK{}, fmt.Errorf("%s key is a %T, want ECDSA P-256", alg, pub)
		}
		// SEC 1 uncompressed point 0x04 || X || Y, each coordinate already
		// the full 32 octets that RFC 7518 §6.2.1.2 requires.
		point, err := p.Bytes()
		if err != nil {
			return JWK{}, err
		}
		size := (len(point) - 1) / 2
		j.Kty, j.Crv = "EC", "P-256"
		j.X, j.Y = b64url.EncodeToString(point[1:1+size]), b64url.EncodeToString(point[1+size:])
	case AlgEdDSA:
		p, ok := pub.(ed25519.PublicKey)
		if !ok || len(p) != ed25519.PublicKeySize {
			return JWK{}, fmt.Errorf("%s key is a %T, want Ed25519", alg, pub)
		}
		j.Kty, j.Crv, j.X = "OKP", "Ed25519", b64url.EncodeToString(p)
	default:
		return JWK{}, fmt.Errorf("no public key form for algorithm %q", alg)
	}
	kid, err := thumbprint(j)
	if err != nil {
		return JWK{}, err
	}
	j.Kid = kid
	return j, nil
}

// thumbprint is the RFC 7638 JWK thumbprint of j with SHA-256, base64url
// without padding: the hash of the JSON object of the key type's required
// members only, in lexicographic order, without whitespace (§3.2, and
// RFC 8037 §2 for OKP). Optional members such as kid, use and alg do not
// count (§3.3).
func thumbprint(j JWK) (string, error) {
	var members any
	// Struct fields marshal in declaration order, which is the
	// lexicographic order §3.2 requires; base64url and the curve names
	// contain nothing encoding/json would escape.
	switch j.Kty {
	case "RSA":
		members = struct {
			E   string `json:"e"`
			Kty string `json:"kty"`
			N   string `json:"n"`
		}{j.E, j.Kty, j.N}
	case "EC":
		members = struct {
			Crv string `json:"crv"`
			Kty string `json:"kty"`
			X   string `json:"x"`
			Y   string `json:"y"`
		}{j.Crv, j.Kty, j.X, j.Y}
	case "OKP":
		members = struct {
			Crv string `json:"crv"`
			Kty string `json:"kty"`
			X   string `json:"x"`
		}{j.Crv, j.Kty, j.X}
	default:
		return "", fmt.Errorf("no RFC 7638 thumbprint for key type %q", j.Kty)
	}
	canonical, err := json.Marshal(members)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(canonical)
	return b64url.EncodeToString(sum[:]), nil
}
