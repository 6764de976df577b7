package sqlstore

import (
	"context"
	"errors"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// CreateClient implements storage.ClientStore (RFC 6749 §2).
func (s *store) CreateClient(ctx context.Context, c *storage.Client) error {
	if c.ID == "" {
		return errors.New("sqlstore: create client: ID is required")
	}
	scopes, err := encodeScopes(c.Scopes)
	if err != nil {
		return err
	}
	service, err := encodeScopes(c.ServiceScopes)
	if err != nil {
		return err
	}
	createdAt := c.CreatedAt
	if createdAt.IsZero() {
		createdAt = s.now()
	}
	created, err := encodeTime(createdAt)
	if err != nil {
		return err
	}
	_, err = s.execOne(ctx, `INSERT INTO clients (`+clientColumns+`) VALUES (?, ?, ?, ?, ?)`, c.ID, c.SecretHash, scopes, created, service)
	if s.f.conflict(err) == "clients.id" {
		return storage.ErrClientExists
	}
	if err != nil {
		return s.fail(ctx, "create client", err)
	}
	c.Scopes, c.CreatedAt = decodeScopes(scopes), decodeTime(created)
	c.ServiceScopes = decodeScopes(service)
	return nil
}

// ClientByID implements storage.ClientStore.
func (s *store) ClientByID(ctx context.Context, id string) (*storage.Client, error) {
	c, err := scanClient(s.queryRow(ctx, `SELECT `+clientColumns+` FROM clients WHERE id = ?`, id))
	return c, s.fail(ctx, "client by id", err)
}

// ListClients implements storage.ClientStore; clients.id orders bytewise
// on both engines.
func (s *store) ListClients(ctx context.Context) ([]*storage.Client, error) {
	cs, err := queryAll(ctx, s, scanClient, `SELECT `+clientColumns+` FROM clients ORDER BY id`)
	return cs, s.fail(ctx, "list clients", err)
}

// DeleteClient implements storage.ClientStore.
func (s *store) DeleteClient(ctx context.Context, id string, now time.Time) error {
	return s.write(ctx, "delete client", func(t *txn) error {
		if err := oneRow(t.exec(ctx, `DELETE FROM clients WHERE id = ?`, id)); err != nil {
			return err
		}
		_, err := t.revoke(ctx, revokeLive+`client_id = ? RETURNING id`, now, id)
		return err
	})
}
