package auth

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/gatehouse/gatehouse/internal/envelope"
)

// EncryptionKeyBytes is the length of KeyConfig.EncryptionKey: an AES-256
// key (package envelope).
const EncryptionKeyBytes = envelope.KeyBytes

// encryptionKeyVar names the setting the encryption key comes from, so an
// operator reading an error knows what to fix.
const encryptionKeyVar = envelope.KeyVar

// envelopeV1 starts a private key encrypted at rest (package envelope).
const envelopeV1 = envelope.V1

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
// encryption key it returns der as is. kid is the envelope's context, so an
// envelope copied onto another key's row does not open there.
func sealPrivateKey(encKey []byte, kid string, der []byte) ([]byte, error) {
	if len(encKey) == 0 {
		return der, nil
	}
	return envelope.Seal(encKey, kid, der)
}

// openPrivateKey returns the PKCS #8 DER of a stored key: decrypted when it
// is an envelope, unchanged when it was stored in plain (keys written before
// encryption was turned on load, and LoadKeys then encrypts them).
func openPrivateKey(encKey []byte, kid string, stored []byte) ([]byte, error) {
	if !envelope.Is(stored) {
		return stored, nil
	}
	if len(encKey) == 0 {
		if !bytes.HasPrefix(stored, []byte(envelopeV1)) {
			return nil, fmt.Errorf("signing key %s: %w", kid, envelope.ErrVersion)
		}
		return nil, fmt.Errorf("signing key %s: %w", kid, ErrKeyEncrypted)
	}
	der, err := envelope.Open(encKey, kid, stored)
	switch {
	case errors.Is(err, envelope.ErrOpen):
		return nil, fmt.Errorf("signing key %s: %w", kid, ErrKeyDecrypt)
	case errors.Is(err, envelope.ErrVersion):
		return nil, fmt.Errorf("signing key %s: %w", kid, err)
	case err != nil:
		return nil, err
	}
	return der, nil
}

// isEnvelope reports whether a stored key is encrypted at rest.
func isEnvelope(stored []byte) bool { return envelope.Is(stored) }
