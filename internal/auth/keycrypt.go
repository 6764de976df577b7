package auth

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// EncryptionKeyBytes is the length of KeyConfig.EncryptionKey: an AES-256
// key (NIST SP 800-38D GCM under a 256-bit key).
const EncryptionKeyBytes = 32

// encryptionKeyVar names the setting the encryption key comes from, so an
// operator reading an error knows what to fix.
const encryptionKeyVar = "GATEHOUSE_KEY_ENCRYPTION_KEY"

// envelopeV1 starts a private key encrypted at rest. What follows is the
// 12-byte GCM nonce, then the ciphertext and its 16-byte tag. A PKCS #8 DER
// key starts with 0x30 (an ASN.1 SEQUENCE), so the two never clash.
const envelopeV1 = "gatehouse-aes256gcm-v1:"

// envelopeFamily is the prefix every envelope version shares: a stored key
// starting with it but not with a known version was written by a newer
// gatehouse and is refused rather than parsed as DER.
const envelopeFamily = "gatehouse-"

// Errors returned, wrapped with the key id, when a stored private key cannot
// be read. Both name GATEHOUSE_KEY_ENCRYPTION_KEY in their message.
var (
	// ErrKeyEncrypted: the stored key is encrypted at rest and no
	// encryption key is configured.
	ErrKeyEncrypted = errors.New("auth: signing key is encrypted at rest but " + encryptionKeyVar + " is not set (set it to the key it was encrypted with)")
	// ErrKeyDecrypt: the stored key does not open under the configured
	// encryption key. Either the key is not the one it was encrypted with,
	// or the stored row was altered or moved to another key id.
	ErrKeyDecrypt = errors.New("auth: signing key does not decrypt with " + encryptionKeyVar + " (wrong key, or the stored row was altered)")
)

// sealPrivateKey encrypts a PKCS #8 DER key for storage under kid. With no
// encryption key it returns der as is. kid is the GCM additional data, so an
// envelope copied onto another key's row does not open there.
func sealPrivateKey(encKey []byte, kid string, der []byte) ([]byte, error) {
	if len(encKey) == 0 {
		return der, nil
	}
	aead, err := newKeyAEAD(encKey)
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(envelopeV1), len(envelopeV1)+aead.NonceSize()+len(der)+aead.Overhead())
	copy(out, envelopeV1)
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("encrypt signing key %s: %w", kid, err)
	}
	out = append(out, nonce...)
	return aead.Seal(out, nonce, der, envelopeAAD(kid)), nil
}

// openPrivateKey returns the PKCS #8 DER of a stored key: decrypted when it
// is an envelope, unchanged when it was stored in plain (keys written before
// encryption was turned on load, and LoadKeys then encrypts them).
func openPrivateKey(encKey []byte, kid string, stored []byte) ([]byte, error) {
	if !bytes.HasPrefix(stored, []byte(envelopeFamily)) {
		return stored, nil
	}
	if !bytes.HasPrefix(stored, []byte(envelopeV1)) {
		return nil, fmt.Errorf("signing key %s: unsupported encryption envelope (written by a newer gatehouse?)", kid)
	}
	if len(encKey) == 0 {
		return nil, fmt.Errorf("signing key %s: %w", kid, ErrKeyEncrypted)
	}
	aead, err := newKeyAEAD(encKey)
	if err != nil {
		return nil, err
	}
	body := stored[len(envelopeV1):]
	if len(body) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("signing key %s: %w", kid, ErrKeyDecrypt)
	}
	nonce, sealed := body[:aead.NonceSize()], body[aead.NonceSize():]
	der, err := aead.Open(nil, nonce, sealed, envelopeAAD(kid))
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", kid, ErrKeyDecrypt)
	}
	return der, nil
}

// isEnvelope reports whether a stored key is encrypted at rest.
func isEnvelope(stored []byte) bool {
	return bytes.HasPrefix(stored, []byte(envelopeFamily))
}

// envelopeAAD binds the ciphertext to its version and its row's key id.
func envelopeAAD(kid string) []byte {
	return []byte(envelopeV1 + kid)
}

func newKeyAEAD(encKey []byte) (cipher.AEAD, error) {
	if len(encKey) != EncryptionKeyBytes {
		return nil, fmt.Errorf("%s must be %d bytes, got %d", encryptionKeyVar, EncryptionKeyBytes, len(encKey))
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
