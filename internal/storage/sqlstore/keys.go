package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/gatehouse/gatehouse/internal/storage"
	"github.com/google/uuid"
)

// keysNewestFirst orders signing keys newest first; the insertion order
// (rowid, translated for PostgreSQL) breaks ties within a nanosecond.
const keysNewestFirst = ` ORDER BY created_at DESC, rowid DESC`

// SigningKeys implements storage.KeyStore.
func (s *store) SigningKeys(ctx context.Context) ([]storage.SigningKey, error) {
	ks, err := queryAll(ctx, s, scanKey, `SELECT `+keyColumns+` FROM signing_keys`+keysNewestFirst)
	return ks, s.fail(ctx, "signing keys", err)
}

const newestKeyOf = `SELECT ` + keyColumns + ` FROM signing_keys WHERE algorithm = ?` + keysNewestFirst + ` LIMIT 1`

// EnsureSigningKey implements storage.KeyStore. A key that exists is read
// without a transaction. Otherwise the writer looks again under the
// flavor's key lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory
// lock, whose holder's second read sees any key committed while it
// waited), and only the one that still finds none calls create, under the
// lock: create should only generate the key. A key without an ID gets a
// random UUID; an empty Algorithm is alg.
func (s *store) EnsureSigningKey(ctx context.Context, alg string, create func() (storage.SigningKey, error)) (storage.SigningKey, error) {
	const op = "ensure signing key"
	if alg == "" {
		return storage.SigningKey{}, errors.New("sqlstore: ensure signing key: empty algorithm")
	}
	k, err := scanKey(s.queryRow(ctx, newestKeyOf, alg))
	if err == nil {
		return k, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return storage.SigningKey{}, s.fail(ctx, op, err)
	}
	err = s.write(ctx, op, func(t *txn) error {
		if l := s.f.lockKeys; l != "" {
			if _, err := t.tx.ExecContext(t.ctx, l); err != nil {
				return err
			}
		}
		var err error
		if k, err = scanKey(t.queryRow(newestKeyOf, alg)); !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if k, err = create(); err != nil {
			return fnErr(err)
		}
		switch k.Algorithm {
		case "":
			k.Algorithm = alg
		case alg:
		default:
			return fmt.Errorf("create returned a %s key, want %s", k.Algorithm, alg)
		}
		if len(k.Private) == 0 {
			return errors.New("create returned no private key")
		}
		if k.ID == "" {
			id, err := uuid.NewRandom()
			if err != nil {
				return err
			}
			k.ID = id.String()
		}
		k, err = t.insertKey(k)
		return err
	})
	if err != nil {
		return storage.SigningKey{}, err
	}
	return k, nil
}

// insertKey stores k (zero CreatedAt: the store's clock; zero
// ActivatesAt: CreatedAt) with its ChangeKeys entry, and returns it as
// stored.
func (t *txn) insertKey(k storage.SigningKey) (storage.SigningKey, error) {
	if k.CreatedAt.IsZero() {
		k.CreatedAt = t.s.now()
	}
	if k.ActivatesAt.IsZero() {
		k.ActivatesAt = k.CreatedAt
	}
	created, err := encodeTime(k.CreatedAt)
	if err != nil {
		return k, err
	}
	activates, err := encodeTime(k.ActivatesAt)
	if err != nil {
		return k, err
	}
	if _, err := t.exec(`INSERT INTO signing_keys (`+keyColumns+`) VALUES (?, ?, ?, ?, ?)`,
		k.ID, k.Algorithm, k.Private, created, activates); err != nil {
		return k, err
	}
	k.CreatedAt, k.ActivatesAt = decodeTime(created), decodeTime(activates)
	t.record(storage.ChangeKeys, k.ID, t.s.now())
	return k, nil
}

// CreateSigningKey implements storage.KeyStore. ID, Algorithm and Private
// are required (k is passed by value: a generated ID could not be
// returned).
func (s *store) CreateSigningKey(ctx context.Context, k storage.SigningKey) error {
	if k.ID == "" || k.Algorithm == "" || len(k.Private) == 0 {
		return errors.New("sqlstore: create signing key: ID, Algorithm and Private are required")
	}
	return s.write(ctx, "create signing key", func(t *txn) error {
		_, err := t.insertKey(k)
		return err
	})
}

// DeleteSigningKey implements storage.KeyStore.
func (s *store) DeleteSigningKey(ctx context.Context, id string) error {
	return s.write(ctx, "delete signing key", func(t *txn) error {
		if err := oneRow(t.exec(`DELETE FROM signing_keys WHERE id = ?`, id)); err != nil {
			return err
		}
		t.record(storage.ChangeKeys, id, s.now())
		return nil
	})
}

// ReplaceSigningKeyPrivate implements storage.KeyStore: a compare and
// swap, so two processes re-encrypting one key cannot both win.
func (s *store) ReplaceSigningKeyPrivate(ctx context.Context, id string, old, next []byte) error {
	if len(next) == 0 {
		return errors.New("sqlstore: replace signing key private: empty private key")
	}
	return s.write(ctx, "replace signing key private", func(t *txn) error {
		if err := oneRow(t.exec(`UPDATE signing_keys SET private = ? WHERE id = ? AND private = ?`, next, id, old)); err != nil {
			return err
		}
		t.record(storage.ChangeKeys, id, s.now())
		return nil
	})
}

// ReplaceSecret implements storage.KeyStore: a compare and swap.
func (s *store) ReplaceSecret(ctx context.Context, name string, old, next []byte) error {
	return s.write(ctx, "replace secret", func(t *txn) error {
		return oneRow(t.exec(`UPDATE secrets SET value = ? WHERE name = ? AND value = ?`, next, name, old))
	})
}

const secretByName = `SELECT value FROM secrets WHERE name = ?`

// EnsureSecret implements storage.KeyStore: read; when missing, create
// with no lock held, insert unless another caller did first (ON CONFLICT
// DO NOTHING) and read what won.
func (s *store) EnsureSecret(ctx context.Context, name string, create func() ([]byte, error)) ([]byte, error) {
	const op = "ensure secret"
	if name == "" {
		return nil, errors.New("sqlstore: ensure secret: empty name")
	}
	var v []byte
	err := s.queryRow(ctx, secretByName, name).Scan(&v)
	if err == nil {
		return v, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, s.fail(ctx, op, err)
	}
	made, err := create()
	if err != nil {
		return nil, err
	}
	if len(made) == 0 {
		return nil, errors.New("sqlstore: ensure secret: create returned no bytes")
	}
	created, err := encodeTime(s.now())
	if err != nil {
		return nil, err
	}
	if _, err := s.execOne(ctx, `INSERT INTO secrets (name, value, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`,
		name, made, created); err != nil {
		return nil, s.fail(ctx, op, err)
	}
	if err := s.queryRow(ctx, secretByName, name).Scan(&v); err != nil {
		return nil, s.fail(ctx, op, err)
	}
	return v, nil
}
