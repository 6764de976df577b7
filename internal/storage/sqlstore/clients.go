package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// CreateClient implements storage.ClientStore (RFC 6749 §2).
func (s *store) CreateClient(ctx context.Context, c *storage.Client) error {
	if c.ID == "" {
		return errors.New("sqlstore: create client: ID is required")
	}
	row, err := encodeClient(c)
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
	err = s.write(ctx, "create client", func(t *txn) error {
		_, err := t.exec(`INSERT INTO clients (`+clientColumns+`) VALUES (?, ?, ?, ?, ?)`, c.ID, row.scopes, created, row.service, row.grants)
		if s.f.conflict(err) == "clients.id" {
			return fnErr(storage.ErrClientExists)
		}
		if err != nil {
			return err
		}
		if err := t.insertSecrets(c.ID, c.Secrets, createdAt); err != nil {
			return err
		}
		t.record(storage.ChangeClient, c.ID, createdAt)
		return nil
	})
	if err != nil {
		return err
	}
	c.CreatedAt = decodeTime(created)
	row.decode(c)
	c.Secrets = storedSecrets(c.Secrets, createdAt)
	return nil
}

// insertSecrets stores a client's secrets; a zero CreatedAt becomes at.
func (t *txn) insertSecrets(clientID string, secrets []storage.ClientSecret, at time.Time) error {
	for _, sec := range storedSecrets(secrets, at) {
		created, err := encodeTime(sec.CreatedAt)
		if err != nil {
			return err
		}
		if sec.ID == "" || sec.Hash == "" {
			return errors.New("sqlstore: a client secret needs an ID and a hash")
		}
		if _, err := t.exec(`INSERT INTO client_secrets (`+secretColumns+`) VALUES (?, ?, ?, ?)`, sec.ID, clientID, sec.Hash, created); err != nil {
			return err
		}
	}
	return nil
}

// storedSecrets returns secrets as stored: a zero CreatedAt becomes at,
// and times are rounded as the store keeps them.
func storedSecrets(secrets []storage.ClientSecret, at time.Time) []storage.ClientSecret {
	out := make([]storage.ClientSecret, len(secrets))
	for i, sec := range secrets {
		if sec.CreatedAt.IsZero() {
			sec.CreatedAt = at
		}
		if n, err := encodeTime(sec.CreatedAt); err == nil {
			sec.CreatedAt = decodeTime(n)
		}
		out[i] = sec
	}
	return out
}

// clientJoin reads clients with their secrets in one statement, so a
// concurrent rotation is seen whole or not at all: a client without
// secrets has one row with NULL secret columns.
const clientJoin = `SELECT c.id, c.scopes, c.created_at, c.service_scopes, c.grants, s.id, s.hash, s.created_at
	FROM clients c LEFT JOIN client_secrets s ON s.client_id = c.id`

// ClientByID implements storage.ClientStore.
func (s *store) ClientByID(ctx context.Context, id string) (*storage.Client, error) {
	cs, err := s.queryClients(ctx, clientJoin+` WHERE c.id = ? ORDER BY s.created_at, s.id`, id)
	if err == nil && len(cs) == 0 {
		err = storage.ErrNotFound
	}
	if err != nil {
		return nil, s.fail(ctx, "client by id", err)
	}
	return cs[0], nil
}

// ListClients implements storage.ClientStore; clients.id orders bytewise
// on both engines.
func (s *store) ListClients(ctx context.Context) ([]*storage.Client, error) {
	cs, err := s.queryClients(ctx, clientJoin+` ORDER BY c.id, s.created_at, s.id`)
	return cs, s.fail(ctx, "list clients", err)
}

// queryClients runs a clientJoin ordered by client, never nil.
func (s *store) queryClients(ctx context.Context, query string, args ...any) ([]*storage.Client, error) {
	rows, err := s.db.QueryContext(ctx, s.f.q(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return scanClients(rows)
}

func scanClients(rows *sql.Rows) ([]*storage.Client, error) {
	out := []*storage.Client{}
	for rows.Next() {
		var (
			c              storage.Client
			r              clientRow
			created        int64
			secretID, hash sql.NullString
			secretCreated  sql.NullInt64
		)
		if err := rows.Scan(&c.ID, &r.scopes, &created, &r.service, &r.grants, &secretID, &hash, &secretCreated); err != nil {
			return nil, err
		}
		if n := len(out); n == 0 || out[n-1].ID != c.ID {
			c.CreatedAt = decodeTime(created)
			r.decode(&c)
			c.Secrets = []storage.ClientSecret{}
			out = append(out, &c)
		}
		if secretID.Valid {
			last := out[len(out)-1]
			last.Secrets = append(last.Secrets, storage.ClientSecret{ID: secretID.String, Hash: hash.String, CreatedAt: decodeTime(secretCreated.Int64)})
		}
	}
	return out, rows.Err()
}

// UpdateClient implements storage.ClientStore. The row is read FOR UPDATE,
// so two rotations of one client run one after the other.
func (s *store) UpdateClient(ctx context.Context, id string, fn func(*storage.Client) error) (*storage.Client, error) {
	var out *storage.Client
	err := s.write(ctx, "update client", func(t *txn) error {
		// Lock the row first: the read of its secrets then sees what the
		// last updater committed.
		var locked string
		if err := t.queryRow(`SELECT id FROM clients WHERE id = ? FOR UPDATE`, id).Scan(&locked); err != nil {
			return err
		}
		rows, err := t.query(clientJoin+` WHERE c.id = ? ORDER BY s.created_at, s.id`, id)
		if err != nil {
			return err
		}
		cs, err := scanClients(rows)
		rows.Close()
		if err != nil {
			return err
		}
		if len(cs) == 0 {
			return storage.ErrNotFound
		}
		old := cs[0]
		c := cloneClient(old)
		if err := fn(c); err != nil {
			return fnErr(err)
		}
		if c.ID != old.ID {
			return errors.New("the ID cannot change")
		}
		c.CreatedAt = old.CreatedAt
		row, err := encodeClient(c)
		if err != nil {
			return err
		}
		if _, err := t.exec(`UPDATE clients SET scopes = ?, service_scopes = ?, grants = ? WHERE id = ?`, row.scopes, row.service, row.grants, id); err != nil {
			return err
		}
		now := s.now()
		if _, err := t.exec(`DELETE FROM client_secrets WHERE client_id = ?`, id); err != nil {
			return err
		}
		if err := t.insertSecrets(id, c.Secrets, now); err != nil {
			return err
		}
		row.decode(c)
		c.Secrets = storedSecrets(c.Secrets, now)
		t.record(storage.ChangeClient, id, now)
		out = c
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteClient implements storage.ClientStore.
func (s *store) DeleteClient(ctx context.Context, id string, now time.Time) error {
	return s.write(ctx, "delete client", func(t *txn) error {
		if err := oneRow(t.exec(`DELETE FROM clients WHERE id = ?`, id)); err != nil {
			return err
		}
		if _, err := t.exec(`DELETE FROM client_secrets WHERE client_id = ?`, id); err != nil {
			return err
		}
		if _, err := t.revoke(revokeLive+`client_id = ? RETURNING id`, now, id); err != nil {
			return err
		}
		t.record(storage.ChangeClient, id, now)
		return nil
	})
}

// clientRow is the stored form of a client's lists.
type clientRow struct{ scopes, service, grants string }

func encodeClient(c *storage.Client) (clientRow, error) {
	var (
		r   clientRow
		err error
	)
	if r.scopes, err = encodeScopes(c.Scopes); err != nil {
		return r, err
	}
	if r.service, err = encodeScopes(c.ServiceScopes); err != nil {
		return r, err
	}
	r.grants, err = encodeScopes(c.Grants)
	return r, err
}

func (r clientRow) decode(c *storage.Client) {
	c.Scopes, c.ServiceScopes, c.Grants = decodeScopes(r.scopes), decodeScopes(r.service), decodeScopes(r.grants)
}

func cloneClient(c *storage.Client) *storage.Client {
	out := *c
	out.Scopes = slices.Clone(c.Scopes)
	out.ServiceScopes = slices.Clone(c.ServiceScopes)
	out.Grants = slices.Clone(c.Grants)
	out.Secrets = slices.Clone(c.Secrets)
	return &out
}
