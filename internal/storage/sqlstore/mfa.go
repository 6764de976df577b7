package sqlstore

import (
	"context"
	"errors"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// CreateMFAToken implements storage.MFATokenStore.
func (s *store) CreateMFAToken(ctx context.Context, t *storage.MFAToken) error {
	if t.ID == "" || t.SecretHash == "" || t.UserID == "" {
		return errors.New("sqlstore: create mfa token: ID, SecretHash and UserID are required")
	}
	scopes, err := encodeScopes(t.Scopes)
	if err != nil {
		return err
	}
	created, err := encodeTime(t.CreatedAt)
	if err != nil {
		return err
	}
	expires, err := encodeTime(t.ExpiresAt)
	if err != nil {
		return err
	}
	_, err = s.execOne(ctx, `INSERT INTO mfa_tokens (`+mfaColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.SecretHash, t.UserID, t.ClientID, scopes, t.Epoch, created, expires)
	return s.fail(ctx, "create mfa token", err)
}

// TakeMFAToken implements storage.MFATokenStore: one DELETE … RETURNING,
// so of two concurrent takers one gets the row and the other ErrNotFound.
func (s *store) TakeMFAToken(ctx context.Context, id string) (*storage.MFAToken, error) {
	var out *storage.MFAToken
	err := s.write(ctx, "take mfa token", func(t *txn) error {
		tok, err := scanMFAToken(t.queryRow(`DELETE FROM mfa_tokens WHERE id = ? RETURNING `+mfaColumns, id))
		out = tok
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PruneMFATokens implements storage.MFATokenStore.
func (s *store) PruneMFATokens(ctx context.Context, before time.Time) error {
	b, err := encodeTime(before)
	if err != nil {
		return err
	}
	_, err = s.execOne(ctx, `DELETE FROM mfa_tokens WHERE expires_at < ?`, b)
	return s.fail(ctx, "prune mfa tokens", err)
}
