package sqlstore

import (
	"context"
	"errors"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// appendChanges writes the entries t recorded, as its last statements:
// the flavor's change-log lock first (PostgreSQL: the appenders take
// turns from their first seq to their commit, so a reader that applied
// seq n never later finds a smaller one committed; SQLite's one writer
// gives that already), then the rows, then the notification, which
// PostgreSQL delivers on commit. Nothing is locked after the change-log
// lock, so it cannot be part of a deadlock.
func (t *txn) appendChanges() error {
	if len(t.changes) == 0 {
		return nil
	}
	if l := t.s.f.lockChanges; l != "" {
		if _, err := t.tx.ExecContext(t.ctx, l); err != nil {
			return err
		}
	}
	for _, c := range t.changes {
		at, err := encodeTime(c.at)
		if err != nil {
			return err
		}
		exp, err := encodeTime(c.exp)
		if err != nil {
			return err
		}
		if _, err := t.exec(`INSERT INTO changes (kind, subject, at, expires_at) VALUES (?, ?, ?, ?)`,
			c.kind, c.subject, at, exp); err != nil {
			return err
		}
	}
	if n := t.s.f.notify; n != "" {
		if _, err := t.tx.ExecContext(t.ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// RevokeToken implements storage.ChangeLog (RFC 7009 §2.2: the token is
// refused from now on, by every process once it applies the entry).
func (s *store) RevokeToken(ctx context.Context, jti string, exp, now time.Time) error {
	if jti == "" {
		return errors.New("sqlstore: revoke token: empty jti")
	}
	return s.write(ctx, "revoke token", func(t *txn) error {
		t.record(storage.ChangeToken, jti, now, exp)
		return nil
	})
}

// LastChange implements storage.ChangeLog.
func (s *store) LastChange(ctx context.Context) (int64, error) {
	var seq int64
	err := s.queryRow(ctx, `SELECT COALESCE(MAX(seq), 0) FROM changes`).Scan(&seq)
	return seq, s.fail(ctx, "last change", err)
}

// Changes implements storage.ChangeLog. A limit below 1 returns none.
func (s *store) Changes(ctx context.Context, after int64, limit int) ([]storage.Change, error) {
	if limit < 1 {
		return []storage.Change{}, nil
	}
	cs, err := queryAll(ctx, s, scanChange,
		`SELECT `+changeColumns+` FROM changes WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	return cs, s.fail(ctx, "changes", err)
}

// LiveRevocations implements storage.ChangeLog.
func (s *store) LiveRevocations(ctx context.Context, now time.Time) ([]storage.Change, error) {
	at, err := encodeTime(now)
	if err != nil {
		return nil, err
	}
	cs, err := queryAll(ctx, s, scanChange, `
		SELECT `+changeColumns+` FROM changes
		WHERE expires_at > ? AND kind IN (?, ?)
		ORDER BY seq`, at, storage.ChangeSession, storage.ChangeToken)
	return cs, s.fail(ctx, "live revocations", err)
}

// PruneChanges implements storage.ChangeLog.
func (s *store) PruneChanges(ctx context.Context, before time.Time) error {
	at, err := encodeTime(before)
	if err != nil {
		return err
	}
	_, err = s.execOne(ctx, `DELETE FROM changes WHERE expires_at < ?`, at)
	return s.fail(ctx, "prune changes", err)
}
