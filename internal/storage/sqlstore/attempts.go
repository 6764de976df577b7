package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// lockAttempt creates a key's row or locks the existing one, and returns
// it, in one statement. ON CONFLICT DO UPDATE guarantees one of the two
// under concurrency; a separate INSERT … DO NOTHING then SELECT … FOR
// UPDATE finds no row when a concurrent success deletes it in between.
const lockAttempt = `
	INSERT INTO login_attempts (key, failures, window_start, blocked_until, last_success, updated_at)
	VALUES (?, 0, 0, 0, 0, ?)
	ON CONFLICT (key) DO UPDATE SET key = EXCLUDED.key
	RETURNING ` + attemptColumns

// updateAttempts applies up in t: it locks the keys' rows in key order
// (so updaters of overlapping keys queue without deadlocking), calls
// up.Fn and saves the states, deleting those left empty.
func (t *txn) updateAttempts(up storage.AttemptUpdate) error {
	now := t.s.now()
	updated, err := encodeTime(now)
	if err != nil {
		return err
	}
	order := slices.Compact(slices.Sorted(slices.Values(up.Keys)))
	locked := make(map[string]storage.LoginAttempts, len(order))
	for _, key := range order {
		a, err := scanAttempts(t.queryRow(lockAttempt, key, updated), key)
		if err != nil {
			return err
		}
		locked[key] = a
	}
	states := make([]storage.LoginAttempts, len(up.Keys))
	for i, key := range up.Keys {
		states[i] = locked[key]
	}
	if up.Fn != nil {
		if err := up.Fn(states); err != nil {
			return fnErr(err)
		}
	}
	for i := range states {
		a := &states[i]
		a.Key = up.Keys[i]
		if a.Empty() {
			if _, err := t.exec(`DELETE FROM login_attempts WHERE key = ?`, a.Key); err != nil {
				return err
			}
			continue
		}
		if a.Failures < 0 {
			return errors.New("negative failure count")
		}
		window, err := encodeOptionalTime(a.WindowStart)
		if err != nil {
			return err
		}
		blocked, err := encodeOptionalTime(a.BlockedUntil)
		if err != nil {
			return err
		}
		success, err := encodeOptionalTime(a.LastSuccess)
		if err != nil {
			return err
		}
		if _, err := t.exec(`
			UPDATE login_attempts SET failures = ?, window_start = ?, blocked_until = ?, last_success = ?, updated_at = ?
			WHERE key = ?`, a.Failures, window, blocked, success, updated, a.Key); err != nil {
			return err
		}
	}
	return nil
}

// UpdateLoginAttempts implements storage.AttemptStore.
func (s *store) UpdateLoginAttempts(ctx context.Context, up storage.AttemptUpdate) error {
	return s.write(ctx, "update login attempts", func(t *txn) error {
		return t.updateAttempts(up)
	})
}

// ReserveLogin implements storage.AttemptStore.
func (s *store) ReserveLogin(ctx context.Context, up storage.AttemptUpdate, username string) (*storage.User, error) {
	var u *storage.User
	err := s.write(ctx, "reserve login", func(t *txn) error {
		if err := t.updateAttempts(up); err != nil {
			return err
		}
		u = nil
		if username == "" {
			return nil
		}
		var err error
		u, err = scanUser(t.queryRow(`SELECT `+userColumns+` FROM users WHERE username = ?`, username))
		if errors.Is(err, sql.ErrNoRows) {
			u, err = nil, nil
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// PruneLoginAttempts implements storage.AttemptStore.
func (s *store) PruneLoginAttempts(ctx context.Context, before time.Time) error {
	at, err := encodeTime(before)
	if err != nil {
		return err
	}
	_, err = s.execOne(ctx, `DELETE FROM login_attempts WHERE updated_at < ?`, at)
	return s.fail(ctx, "prune login attempts", err)
}
