// Package envelope encrypts what gatehouse keeps secret at rest (private
// signing keys, the refresh-token chain key, TOTP secrets) under
// GATEHOUSE_KEY_ENCRYPTION_KEY: AES-256-GCM (NIST SP 800-38D) with a
// fresh 12-byte nonce per seal, and additional data that binds each
// envelope to its version and to the row it belongs to, so an envelope
// copied onto another row does not open there.
package envelope

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// KeyBytes is the length of the encryption key: an AES-256 key.
const KeyBytes = 32

// KeyVar names the setting the key comes from, so an operator reading an
// error knows what to fix.
const KeyVar = "GATEHOUSE_KEY_ENCRYPTION_KEY"

// V1 starts an envelope; the 12-byte GCM nonce follows, then the
// ciphertext and its 16-byte tag. A PKCS #8 DER key starts with 0x30 (an
// ASN.1 SEQUENCE), so the two never clash.
const V1 = "gatehouse-aes256gcm-v1:"

// family is the prefix every envelope version shares: one starting with it
// but not with a known version was written by a newer gatehouse.
const family = "gatehouse-"

var (
	// ErrVersion: the envelope is of a version this build does not know.
	ErrVersion = errors.New("unsupported encryption envelope (written by a newer gatehouse?)")
	// ErrOpen: the envelope does not open under the key with that
	// context: another key, or the envelope was altered or moved.
	ErrOpen = errors.New("the envelope does not open with this key")
)

// Seal encrypts plain under key, bound to context (the row's identity).
func Seal(key []byte, context string, plain []byte) ([]byte, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(V1), len(V1)+aead.NonceSize()+len(plain)+aead.Overhead())
	copy(out, V1)
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce) // never returns an error; it crashes the program instead
	out = append(out, nonce...)
	return aead.Seal(out, nonce, plain, aad(context)), nil
}

// Open decrypts an envelope Seal made with the same key and context.
// Returns ErrVersion or ErrOpen.
func Open(key []byte, context string, sealed []byte) ([]byte, error) {
	if !bytes.HasPrefix(sealed, []byte(V1)) {
		return nil, ErrVersion
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	body := sealed[len(V1):]
	if len(body) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrOpen
	}
	plain, err := aead.Open(nil, body[:aead.NonceSize()], body[aead.NonceSize():], aad(context))
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}

// Is reports whether b is an envelope, of any version.
func Is(b []byte) bool { return bytes.HasPrefix(b, []byte(family)) }

// aad binds the ciphertext to its version and its row.
func aad(context string) []byte { return []byte(V1 + context) }

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeyBytes {
		return nil, fmt.Errorf("%s must be %d bytes, got %d", KeyVar, KeyBytes, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
