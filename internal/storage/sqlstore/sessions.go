package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// CreateSession implements storage.SessionStore. The user's row is read
// FOR SHARE, which conflicts with the FOR UPDATE of UpdateUser and
// DeleteUser: a change that locked it first commits before this read sees
// the row (then the epoch differs or the row is gone), and one that comes
// after waits for this commit and then revokes the session.
func (s *store) CreateSession(ctx context.Context, sess *storage.Session, epoch int64, settle *storage.AttemptUpdate) error {
	if sess.ID == "" || sess.UserID == "" {
		return errors.New("sqlstore: create session: ID and UserID are required")
	}
	if sess.IdleExpiresAt.IsZero() || sess.ExpiresAt.IsZero() {
		return errors.New("sqlstore: create session: IdleExpiresAt and ExpiresAt are required")
	}
	in := cloneSession(sess)
	now := s.now()
	for _, t := range []*time.Time{&in.CreatedAt, &in.LastUsedAt, &in.RotatedAt} {
		if t.IsZero() {
			*t = now
		}
	}
	r, err := encodeSession(in)
	if err != nil {
		return err
	}
	err = s.write(ctx, "create session", func(t *txn) error {
		var (
			have     int64
			disabled bool
		)
		err := t.queryRow(`SELECT token_epoch, disabled FROM users WHERE id = ? FOR SHARE`, in.UserID).Scan(&have, &disabled)
		if errors.Is(err, sql.ErrNoRows) || err == nil && (disabled || have != epoch) {
			return storage.ErrGrantStale
		}
		if err != nil {
			return err
		}
		if settle != nil {
			if err := t.updateAttempts(*settle); err != nil {
				return err
			}
		}
		_, err = t.exec(`INSERT INTO sessions (`+sessionColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			in.ID, in.UserID, in.ClientID, r.scopes, r.created, r.lastUsed, r.idleExpires, r.expires,
			r.generation, r.secretHash, r.rotated, r.graceUses, r.revoked, r.clientAddr, r.userAgent)
		return err
	})
	if err != nil {
		return err
	}
	r.into(in)
	*sess = *in
	return nil
}

// Session implements storage.SessionStore.
func (s *store) Session(ctx context.Context, id string) (*storage.Session, error) {
	sess, err := scanSession(s.queryRow(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = ?`, id))
	return sess, s.fail(ctx, "session", err)
}

// UpdateSession implements storage.SessionStore. It locks the user's row
// FOR SHARE and then the session FOR UPDATE: the order UpdateUser and
// DeleteUser lock them in, so a refresh racing a password change queues
// instead of deadlocking, and concurrent refreshes of one session, in any
// process, queue on the session's row. The fields fn may not change are
// kept as stored, and so is a RevokedAt already set.
func (s *store) UpdateSession(ctx context.Context, id string, fn func(*storage.Session, *storage.User) error) (*storage.Session, *storage.User, error) {
	var (
		outS *storage.Session
		outU *storage.User
	)
	err := s.write(ctx, "update session", func(t *txn) error {
		const userOf = `SELECT ` + userColumns + ` FROM users WHERE id = `
		u, err := scanUser(t.queryRow(userOf+`(SELECT user_id FROM sessions WHERE id = ?) FOR SHARE`, id))
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		cur, err := scanSession(t.queryRow(`SELECT `+sessionColumns+` FROM sessions WHERE id = ? FOR UPDATE`, id))
		if err != nil {
			return err
		}
		if u == nil {
			// No user, or no session yet when the first read ran: look
			// again now that the session is locked.
			if u, err = scanUser(t.queryRow(userOf+`? FOR SHARE`, cur.UserID)); err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		next := cloneSession(cur)
		if err := fn(next, cloneUser(u)); err != nil {
			return fnErr(err)
		}
		next.ID, next.UserID, next.ClientID = cur.ID, cur.UserID, cur.ClientID
		next.CreatedAt, next.ExpiresAt = cur.CreatedAt, cur.ExpiresAt
		next.ClientAddr, next.UserAgent = cur.ClientAddr, cur.UserAgent
		if !cur.RevokedAt.IsZero() {
			next.RevokedAt = cur.RevokedAt
		}
		r, err := encodeSession(next)
		if err != nil {
			return err
		}
		if _, err := t.exec(`
			UPDATE sessions SET scopes = ?, last_used_at = ?, idle_expires_at = ?, generation = ?, secret_hash = ?,
				rotated_at = ?, grace_uses = ?, revoked_at = ?
			WHERE id = ?`,
			r.scopes, r.lastUsed, r.idleExpires, r.generation, r.secretHash, r.rotated, r.graceUses, r.revoked, id); err != nil {
			return err
		}
		r.into(next)
		if cur.RevokedAt.IsZero() && !next.RevokedAt.IsZero() {
			t.record(storage.ChangeSession, id, next.RevokedAt)
		}
		outS, outU = next, u
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return outS, outU, nil
}

// ListSessions implements storage.SessionStore.
func (s *store) ListSessions(ctx context.Context, userID string, now time.Time) ([]*storage.Session, error) {
	at, err := encodeTime(now)
	if err != nil {
		return nil, err
	}
	ss, err := queryAll(ctx, s, scanSession, `
		SELECT `+sessionColumns+` FROM sessions
		WHERE user_id = ? AND revoked_at = 0 AND idle_expires_at > ? AND expires_at > ?
		ORDER BY last_used_at DESC, id`, userID, at, at)
	return ss, s.fail(ctx, "list sessions", err)
}

// RevokeSessions implements storage.SessionStore.
func (s *store) RevokeSessions(ctx context.Context, userID, id, except string, now time.Time) (int, error) {
	var n int
	err := s.write(ctx, "revoke sessions", func(t *txn) error {
		var err error
		n, err = t.revoke(revokeLive+`user_id = ? AND (? = '' OR id = ?) AND id <> ? RETURNING id`, now, userID, id, id, except)
		return err
	})
	return n, err
}

// RevokeClientSessions implements storage.SessionStore.
func (s *store) RevokeClientSessions(ctx context.Context, clientID string, now time.Time) (int, error) {
	var n int
	err := s.write(ctx, "revoke client sessions", func(t *txn) error {
		var err error
		n, err = t.revoke(revokeLive+`client_id = ? RETURNING id`, now, clientID)
		return err
	})
	return n, err
}

// PruneSessions implements storage.SessionStore. A session ended at the
// first of its revocation, idle expiry and expiry.
func (s *store) PruneSessions(ctx context.Context, before time.Time) error {
	at, err := encodeTime(before)
	if err != nil {
		return err
	}
	_, err = s.execOne(ctx, `
		DELETE FROM sessions
		WHERE (revoked_at <> 0 AND revoked_at < ?) OR idle_expires_at < ? OR expires_at < ?`, at, at, at)
	return s.fail(ctx, "prune sessions", err)
}
