package sqlstore

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// CreateUser implements storage.UserStore.
func (s *store) CreateUser(ctx context.Context, u *storage.User) error {
	args, err := s.userRow(u)
	if err != nil {
		return err
	}
	_, err = s.execOne(ctx, insertUser, args...)
	if s.f.conflict(err) == "users.username" {
		return storage.ErrUsernameTaken
	}
	if err != nil {
		return s.fail(ctx, "create user", err)
	}
	s.stored(u, args)
	return nil
}

// CreateUsers implements storage.UserStore: every insert in one
// transaction.
func (s *store) CreateUsers(ctx context.Context, us []*storage.User) error {
	rows := make([][]any, len(us))
	for i, u := range us {
		args, err := s.userRow(u)
		if err != nil {
			return &storage.ItemError{Index: i, Err: err}
		}
		rows[i] = args
	}
	err := s.write(ctx, "create users", func(t *txn) error {
		for i, args := range rows {
			_, err := t.exec(insertUser, args...)
			if s.f.conflict(err) == "users.username" {
				return fnErr(&storage.ItemError{Index: i, Err: storage.ErrUsernameTaken})
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, u := range us {
		s.stored(u, rows[i])
	}
	return nil
}

const insertUser = `INSERT INTO users (` + userColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// userRow is u as insertUser's arguments, its zero times set from the
// store's clock.
func (s *store) userRow(u *storage.User) ([]any, error) {
	if u.ID == "" || u.Username == "" || u.PasswordHash == "" {
		return nil, errors.New("sqlstore: create user: ID, Username and PasswordHash are required")
	}
	scopes, err := encodeScopes(u.Scopes)
	if err != nil {
		return nil, err
	}
	createdAt, updatedAt := u.CreatedAt, u.UpdatedAt
	if createdAt.IsZero() {
		createdAt = s.now()
	}
	if updatedAt.IsZero() {
		updatedAt = createdAt
	}
	created, err := encodeTime(createdAt)
	if err != nil {
		return nil, err
	}
	updated, err := encodeTime(updatedAt)
	if err != nil {
		return nil, err
	}
	recovery, err := encodeScopes(u.TOTP.RecoveryCodes)
	if err != nil {
		return nil, err
	}
	return []any{u.ID, u.Username, u.PasswordHash, scopes, u.Disabled, created, updated, u.TokenEpoch,
		u.TOTP.Secret, u.TOTP.Confirmed, u.TOTP.LastStep, recovery}, nil
}

// stored sets u's scopes and times to what userRow's args stored.
func (s *store) stored(u *storage.User, args []any) {
	u.Scopes = decodeScopes(args[3].(string))
	u.CreatedAt, u.UpdatedAt = decodeTime(args[5].(int64)), decodeTime(args[6].(int64))
	u.TOTP.RecoveryCodes = decodeScopes(args[11].(string))
}

// UserByUsername implements storage.UserStore.
func (s *store) UserByUsername(ctx context.Context, username string) (*storage.User, error) {
	u, err := scanUser(s.queryRow(ctx, `SELECT `+userColumns+` FROM users WHERE username = ?`, username))
	return u, s.fail(ctx, "user by username", err)
}

// UserByID implements storage.UserStore.
func (s *store) UserByID(ctx context.Context, id string) (*storage.User, error) {
	u, err := scanUser(s.queryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id))
	return u, s.fail(ctx, "user by id", err)
}

// ListUsers implements storage.UserStore: keyset pagination on the unique
// username, stable under concurrent inserts and deletes, unlike OFFSET.
// users.username orders bytewise on both engines (SQLite's BINARY,
// PostgreSQL's "C" collation). A limit below 1 returns none.
func (s *store) ListUsers(ctx context.Context, after string, limit int) ([]*storage.User, error) {
	if limit < 1 {
		return []*storage.User{}, nil
	}
	us, err := queryAll(ctx, s, scanUser,
		`SELECT `+userColumns+` FROM users WHERE username > ? ORDER BY username LIMIT ?`, after, limit)
	return us, s.fail(ctx, "list users", err)
}

// CountUsers implements storage.UserStore.
func (s *store) CountUsers(ctx context.Context) (int, error) {
	var n int
	err := s.queryRow(ctx, `SELECT count(*) FROM users`).Scan(&n)
	return n, s.fail(ctx, "count users", err)
}

// countHolders counts the enabled users holding a scope. Scopes are
// stored space separated, so the scope padded with spaces matches one
// entry exactly (instr is case-sensitive, unlike SQLite's LIKE).
const countHolders = `SELECT count(*) FROM users WHERE instr(' ' || scopes || ' ', ?) > 0 AND disabled = ?`

// CountEnabledWithScope implements storage.UserStore.
func (s *store) CountEnabledWithScope(ctx context.Context, scope string) (int, error) {
	var n int
	err := s.queryRow(ctx, countHolders, " "+scope+" ", false).Scan(&n)
	return n, s.fail(ctx, "count users with scope", err)
}

// lockHolders begins a change that must keep each scope of keep with an
// enabled holder: it takes the flavor's turn for such changes. Run first
// in the transaction, before any row is locked.
func (t *txn) lockHolders(keep []string) error {
	if len(keep) == 0 || t.s.f.lockHolders == "" {
		return nil
	}
	_, err := t.tx.ExecContext(t.ctx, t.s.f.lockHolders)
	return err
}

// soleHolder returns the first scope of keep that u is the only enabled
// holder of, or "".
func (t *txn) soleHolder(u *storage.User, keep []string) (string, error) {
	for _, sc := range keep {
		if !u.Holds(sc) {
			continue
		}
		var n int
		if err := t.queryRow(countHolders, " "+sc+" ", false).Scan(&n); err != nil {
			return "", err
		}
		if n <= 1 {
			return sc, nil
		}
	}
	return "", nil
}

// revokeLive is the head of the UPDATE that revokes sessions live at the
// instant of revocation; its three parameters are that instant.
const revokeLive = `UPDATE sessions SET revoked_at = ? WHERE revoked_at = 0 AND idle_expires_at > ? AND expires_at > ? AND `

// revoke runs query, revokeLive with its conditions and RETURNING id, and
// records a ChangeSession entry per session it revoked, in ID order.
func (t *txn) revoke(query string, at time.Time, args ...any) (int, error) {
	ns, err := encodeTime(at)
	if err != nil {
		return 0, err
	}
	rows, err := t.query(query, append([]any{ns, ns, ns}, args...)...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return 0, err
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	slices.Sort(ids)
	for _, id := range ids {
		t.record(storage.ChangeSession, id, at)
	}
	return len(ids), nil
}

// UpdateUser implements storage.UserStore. The row is read FOR UPDATE: a
// concurrent updater, or CreateSession (FOR SHARE), waits until this one
// commits, then reads the saved row. Every successful update saves and
// appends its ChangeUser entry, even one where fn changed nothing.
func (s *store) UpdateUser(ctx context.Context, username string, fn func(*storage.User) error, keep ...string) (*storage.User, error) {
	var out *storage.User
	err := s.write(ctx, "update user", func(t *txn) error {
		if err := t.lockHolders(keep); err != nil {
			return err
		}
		old, err := scanUser(t.queryRow(`SELECT `+userColumns+` FROM users WHERE username = ? FOR UPDATE`, username))
		if err != nil {
			return err
		}
		sole, err := t.soleHolder(old, keep)
		if err != nil {
			return err
		}
		u := cloneUser(old)
		if err := fn(u); err != nil {
			return fnErr(err)
		}
		if sole != "" && !u.Holds(sole) {
			return fnErr(storage.ErrLastHolder)
		}
		if u.ID != old.ID {
			return errors.New("the ID cannot change")
		}
		if u.TokenEpoch < old.TokenEpoch {
			return errors.New("the token epoch cannot go down")
		}
		u.CreatedAt = old.CreatedAt
		if u.UpdatedAt.IsZero() || u.UpdatedAt.Equal(old.UpdatedAt) {
			u.UpdatedAt = s.now()
		}
		scopes, err := encodeScopes(u.Scopes)
		if err != nil {
			return err
		}
		updated, err := encodeTime(u.UpdatedAt)
		if err != nil {
			return err
		}
		recovery, err := encodeScopes(u.TOTP.RecoveryCodes)
		if err != nil {
			return err
		}
		_, err = t.exec(`
			UPDATE users SET username = ?, password_hash = ?, scopes = ?, disabled = ?, updated_at = ?, token_epoch = ?,
				totp_secret = ?, totp_confirmed = ?, totp_last_step = ?, recovery_codes = ?
			WHERE id = ?`, u.Username, u.PasswordHash, scopes, u.Disabled, updated, u.TokenEpoch,
			u.TOTP.Secret, u.TOTP.Confirmed, u.TOTP.LastStep, recovery, u.ID)
		if s.f.conflict(err) == "users.username" {
			return storage.ErrUsernameTaken
		}
		if err != nil {
			return err
		}
		u.Scopes, u.UpdatedAt = decodeScopes(scopes), decodeTime(updated)
		u.TOTP.RecoveryCodes = decodeScopes(recovery)
		if u.TokenEpoch > old.TokenEpoch {
			// The sessions end when the change that ended them was made.
			if _, err := t.revoke(revokeLive+`user_id = ? RETURNING id`, u.UpdatedAt, u.ID); err != nil {
				return err
			}
		}
		t.record(storage.ChangeUser, u.ID, u.UpdatedAt)
		out = u
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteUser implements storage.UserStore. The row is locked first (after
// the holders' turn when keep is set), so a CreateSession of the user
// (FOR SHARE) either committed before and its session is revoked here, or
// waits and finds the user gone.
func (s *store) DeleteUser(ctx context.Context, username string, now time.Time, check func(*storage.User) error, keep ...string) error {
	return s.write(ctx, "delete user", func(t *txn) error {
		if err := t.lockHolders(keep); err != nil {
			return err
		}
		u, err := scanUser(t.queryRow(`SELECT `+userColumns+` FROM users WHERE username = ? FOR UPDATE`, username))
		if err != nil {
			return err
		}
		if check != nil {
			if err := check(cloneUser(u)); err != nil {
				return fnErr(err)
			}
		}
		if sole, err := t.soleHolder(u, keep); err != nil {
			return err
		} else if sole != "" {
			return fnErr(storage.ErrLastHolder)
		}
		id := u.ID
		if _, err := t.revoke(revokeLive+`user_id = ? RETURNING id`, now, id); err != nil {
			return err
		}
		if _, err := t.exec(`DELETE FROM users WHERE id = ?`, id); err != nil {
			return err
		}
		t.record(storage.ChangeUser, id, now)
		return nil
	})
}
