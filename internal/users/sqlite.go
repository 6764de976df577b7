package users

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/sqlite/*.sql
var sqliteMigrations embed.FS

// sqliteMaxConns bounds the connection pool (readers run in parallel in
// WAL mode; writers take turns).
const sqliteMaxConns = 8

// sqliteBusyTimeout is how long a connection waits for another writer
// (another goroutine's connection or another process) before SQLITE_BUSY.
const sqliteBusyTimeout = 5 * time.Second

// sqliteStore is the Store on an SQLite file, through the pure-Go
// modernc.org/sqlite driver (no cgo).
//
// Every connection runs in WAL mode (readers do not block the writer), with
// foreign keys on and a busy timeout, and begins read-write transactions
// with BEGIN IMMEDIATE: a transaction that reads and then writes takes the
// write lock up front, so two of them serialise instead of one failing with
// SQLITE_BUSY at its first write, and the read-modify-write of UpdateUser,
// EnsureSigningKey and RotateRefreshToken cannot lose an update, also
// across processes.
type sqliteStore struct {
	db  *sql.DB
	now func() time.Time
}

var _ Store = (*sqliteStore)(nil)

// OpenSQLite opens (creating it and its parent directory when missing) the
// SQLite database at path and applies any pending migrations from
// migrations/sqlite in one transaction. path is a file name, not a URI.
func OpenSQLite(ctx context.Context, path string) (Store, error) {
	if path == "" {
		return nil, errors.New("users: sqlite: empty database path")
	}
	// The driver splits its DSN at the first '?': one in the file name
	// would be taken for the start of the parameters.
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("users: sqlite: database path %q must not contain '?'", path)
	}
	// The file holds password hashes and signing keys: owner only. A new
	// directory is 0700; a new file is created 0600 here, before the
	// driver, and SQLite gives its -wal and -shm files the database
	// file's mode. An existing file keeps the mode its owner chose.
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("users: sqlite: %w", err)
	}
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("users: sqlite: %w", err)
	}
	db, err := sql.Open("sqlite", sqliteDSN(path))
	if err != nil {
		return nil, fmt.Errorf("users: sqlite: open %s: %w", path, err)
	}
	// Bound the connections: SQLite serialises writers anyway, and each
	// connection has its own page cache, so a login flood must queue here
	// rather than open one connection per request. No Store method needs a
	// second connection while it holds one (updaters do no store calls).
	db.SetMaxOpenConns(sqliteMaxConns)
	db.SetMaxIdleConns(sqliteMaxConns)
	if err := pingSQLite(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("users: sqlite: open %s: %w", path, err)
	}
	if err := migrateSQLite(ctx, db, time.Now); err != nil {
		db.Close()
		return nil, err
	}
	return &sqliteStore{db: db, now: time.Now}, nil
}

// sqliteDSN returns the driver's data source name for the file at path:
// the pragmas every connection runs, and BEGIN IMMEDIATE for BeginTx.
func sqliteDSN(path string) string {
	q := url.Values{}
	// busy_timeout first: the driver runs it before the other pragmas, and
	// switching to WAL needs a lock another opener may hold.
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	return path + "?" + q.Encode()
}

// pingSQLite opens the first connection, retrying SQLITE_BUSY until the
// busy timeout. Its journal_mode(WAL) pragma turns a new file into a WAL
// database, which upgrades a shared lock to an exclusive one; when two
// processes do that at once SQLite fails one of them with SQLITE_BUSY
// straight away instead of calling the busy handler (waiting could
// deadlock), so the retry is ours to do. Once the file is in WAL mode, the
// pragma on later connections changes nothing and takes no such lock.
func pingSQLite(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(sqliteBusyTimeout)
	for {
		err := db.PingContext(ctx)
		if err == nil || sqliteCode(err)&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// migrateSQLite applies the migrations not yet recorded in
// schema_migrations. It runs in one BEGIN IMMEDIATE transaction, so two
// processes opening a fresh file at once apply each migration once, and a
// failed migration leaves the schema as it was.
func migrateSQLite(ctx context.Context, db *sql.DB, now func() time.Time) error {
	ms, err := loadMigrations(sqliteMigrations, "sqlite")
	if err != nil {
		return err
	}
	return applySQLiteMigrations(ctx, db, ms, now)
}

// applySQLiteMigrations is migrateSQLite with the migrations given, ms
// being in version order: tests use a prefix of them to build an older
// schema.
func applySQLiteMigrations(ctx context.Context, db *sql.DB, ms []migration, now func() time.Time) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("users: sqlite: migrate: %w", err)
	}
	defer tx.Rollback()

	if _, err := tx.ExecContext(ctx, `
		CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER NOT NULL PRIMARY KEY,
			name       TEXT    NOT NULL,
			applied_at INTEGER NOT NULL
		) STRICT`); err != nil {
		return fmt.Errorf("users: sqlite: migrate: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("users: sqlite: migrate: %w", err)
	}
	applied := map[int]bool{}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("users: sqlite: migrate: %w", err)
		}
		applied[v] = true
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("users: sqlite: migrate: %w", err)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("users: sqlite: migrate: %w", err)
	}
	// A schema newer than this binary knows means a downgrade: refuse
	// rather than run old code against tables it does not understand.
	for v := range applied {
		if len(ms) == 0 || v > ms[len(ms)-1].version {
			return fmt.Errorf("users: sqlite: database schema version %d is newer than this program supports", v)
		}
	}
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("users: sqlite: migration %s: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			m.version, m.name, now().UnixNano()); err != nil {
			return fmt.Errorf("users: sqlite: migration %s: %w", m.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("users: sqlite: migrate: %w", err)
	}
	return nil
}

// sqliteCode returns the extended SQLite result code of err, or 0.
func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

// translateSQLite maps driver errors to the package sentinels at the store
// boundary: no rows is ErrNotFound. Anything else is wrapped with op.
// Which constraint a violation means depends on the statement, so call
// sites map those themselves (translateSQLiteConflict).
func translateSQLite(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return ErrNotFound
	case sqliteCode(err)&0xff == sqlite3.SQLITE_BUSY:
		// The write lock stayed taken past the busy timeout: the store is
		// overloaded, which callers answer with 503, not 500.
		return fmt.Errorf("users: sqlite: %s: %w: %w", op, ErrBusy, err)
	default:
		return fmt.Errorf("users: sqlite: %s: %w", op, err)
	}
}

// translateSQLiteConflict is translateSQLite, except that a violation of
// the constraint with extended result code code is returned as taken.
func translateSQLiteConflict(op string, err error, code int, taken error) error {
	if err != nil && sqliteCode(err) == code {
		return taken
	}
	return translateSQLite(op, err)
}

// Column lists in the order of the scan helpers in rows.go.
const (
	sqliteUserColumns         = `id, username, password_hash, scopes, disabled, created_at, updated_at, token_epoch`
	sqliteSigningKeyColumns   = `id, algorithm, private, created_at, activates_at`
	sqliteRefreshTokenColumns = `hash, family_id, user_id, client_id, scopes, issued_at, expires_at, family_expires_at, rotated_at, revoked_at`
	sqliteAccessTokenColumns  = `jti, user_id, family_id, client_id, expires_at, revoked_at`
	sqliteClientColumns       = `id, secret_hash, scopes, created_at`
)

// CreateUser implements Store.
func (s *sqliteStore) CreateUser(ctx context.Context, u *User) error {
	if u.ID == "" || u.Username == "" || u.PasswordHash == "" {
		return errors.New("users: sqlite: create user: ID, Username and PasswordHash are required")
	}
	scopes, err := encodeScopes(u.Scopes)
	if err != nil {
		return err
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
		return err
	}
	updated, err := encodeTime(updatedAt)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `
		INSERT INTO users (`+sqliteUserColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Username, u.PasswordHash, scopes, u.Disabled, created, updated, u.TokenEpoch)
	if err != nil {
		// users.username is the table's only UNIQUE constraint; a clashing
		// ID violates the PRIMARY KEY, a different code.
		return translateSQLiteConflict("create user", err, sqlite3.SQLITE_CONSTRAINT_UNIQUE, ErrUsernameTaken)
	}
	u.Scopes = decodeScopes(scopes)
	u.CreatedAt, u.UpdatedAt = decodeTime(created), decodeTime(updated)
	return nil
}

// UserByUsername implements Store.
func (s *sqliteStore) UserByUsername(ctx context.Context, username string) (*User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx,
		`SELECT `+sqliteUserColumns+` FROM users WHERE username = ?`, username))
	return u, translateSQLite("user by username", err)
}

// UserByID implements Store.
func (s *sqliteStore) UserByID(ctx context.Context, id string) (*User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx,
		`SELECT `+sqliteUserColumns+` FROM users WHERE id = ?`, id))
	return u, translateSQLite("user by id", err)
}

// ListUsers implements Store. A limit below 1 returns no users.
func (s *sqliteStore) ListUsers(ctx context.Context, after string, limit int) ([]*User, error) {
	users := []*User{}
	if limit < 1 {
		return users, nil
	}
	// Keyset pagination on the unique username: stable under concurrent
	// inserts and deletes, unlike OFFSET.
	rows, err := s.db.QueryContext(ctx, `
		SELECT `+sqliteUserColumns+` FROM users
		WHERE username > ?
		ORDER BY username
		LIMIT ?`, after, limit)
	if err != nil {
		return nil, translateSQLite("list users", err)
	}
	defer rows.Close()
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, translateSQLite("list users", err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, translateSQLite("list users", err)
	}
	return users, nil
}

// CountEnabledWithScope implements Store. Scopes are stored space
// separated, so the scope padded with spaces matches exactly one entry.
func (s *sqliteStore) CountEnabledWithScope(ctx context.Context, scope string) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE instr(' ' || scopes || ' ', ?) > 0 AND disabled = 0`, " "+scope+" ").Scan(&n)
	return n, translateSQLite("count users with scope", err)
}

// CountUsers implements Store.
func (s *sqliteStore) CountUsers(ctx context.Context) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM users`).Scan(&n)
	return n, translateSQLite("count users", err)
}

// UpdateUser implements Store. The read, fn and the write share one
// BEGIN IMMEDIATE transaction, so concurrent updaters queue on the write
// lock and each sees the previous one's result.
func (s *sqliteStore) UpdateUser(ctx context.Context, username string, fn func(*User) error) (*User, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, translateSQLite("update user", err)
	}
	defer tx.Rollback()

	u, err := scanUser(tx.QueryRowContext(ctx,
		`SELECT `+sqliteUserColumns+` FROM users WHERE username = ?`, username))
	if err != nil {
		return nil, translateSQLite("update user", err)
	}
	id, createdAt, updatedAt, epoch := u.ID, u.CreatedAt, u.UpdatedAt, u.TokenEpoch
	if err := fn(u); err != nil {
		return nil, err
	}
	if u.ID != id {
		return nil, errors.New("users: sqlite: update user: the ID cannot change")
	}
	if u.TokenEpoch < epoch {
		return nil, errors.New("users: sqlite: update user: the token epoch cannot go down")
	}
	// A raised epoch revokes at the UpdatedAt fn gave the change.
	revokeAt := u.UpdatedAt
	if u.UpdatedAt.Equal(updatedAt) {
		u.UpdatedAt = s.now()
	}
	scopes, err := encodeScopes(u.Scopes)
	if err != nil {
		return nil, err
	}
	updated, err := encodeTime(u.UpdatedAt)
	if err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `
		UPDATE users
		SET username = ?, password_hash = ?, scopes = ?, disabled = ?, updated_at = ?, token_epoch = ?
		WHERE id = ?`,
		u.Username, u.PasswordHash, scopes, u.Disabled, updated, u.TokenEpoch, id); err != nil {
		return nil, translateSQLiteConflict("update user", err, sqlite3.SQLITE_CONSTRAINT_UNIQUE, ErrUsernameTaken)
	}
	if u.TokenEpoch != epoch {
		at, err := encodeTime(revokeAt)
		if err != nil {
			return nil, err
		}
		if err := revokeSQLite(ctx, tx, "user_id", id, at); err != nil {
			return nil, translateSQLite("update user: revoke tokens", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, translateSQLite("update user", err)
	}
	u.Scopes = decodeScopes(scopes)
	u.CreatedAt, u.UpdatedAt = createdAt, decodeTime(updated)
	return u, nil
}

// DeleteUser implements Store.
func (s *sqliteStore) DeleteUser(ctx context.Context, username string, now time.Time) error {
	const op = "delete user"
	at, err := encodeTime(now)
	if err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return translateSQLite(op, err)
	}
	defer tx.Rollback()
	var id string
	if err := tx.QueryRowContext(ctx, `SELECT id FROM users WHERE username = ?`, username).Scan(&id); err != nil {
		return translateSQLite(op, err)
	}
	if err := revokeSQLite(ctx, tx, "user_id", id, at); err != nil {
		return translateSQLite(op, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM users WHERE id = ?`, id); err != nil {
		return translateSQLite(op, err)
	}
	return translateSQLite(op, tx.Commit())
}

// SigningKeys implements Store. rowid breaks ties between keys created in
// the same nanosecond: the later insert is the newer key.
func (s *sqliteStore) SigningKeys(ctx context.Context) ([]SigningKey, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT `+sqliteSigningKeyColumns+` FROM signing_keys
		ORDER BY created_at DESC, rowid DESC`)
	if err != nil {
		return nil, translateSQLite("signing keys", err)
	}
	defer rows.Close()
	keys := []SigningKey{}
	for rows.Next() {
		k, err := scanSigningKey(rows)
		if err != nil {
			return nil, translateSQLite("signing keys", err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, translateSQLite("signing keys", err)
	}
	return keys, nil
}

// EnsureSigningKey implements Store. The lookup and the insert share one
// BEGIN IMMEDIATE transaction, which holds SQLite's single write lock: every
// other caller, in this process or another, waits and then finds the key.
// create runs under that lock, so it should only generate the key. A key
// without an ID gets a random UUID; an empty Algorithm is set to alg.
func (s *sqliteStore) EnsureSigningKey(ctx context.Context, alg string, create func() (SigningKey, error)) (SigningKey, error) {
	if alg == "" {
		return SigningKey{}, errors.New("users: sqlite: ensure signing key: empty algorithm")
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return SigningKey{}, translateSQLite("ensure signing key", err)
	}
	defer tx.Rollback()

	k, err := scanSigningKey(tx.QueryRowContext(ctx, `
		SELECT `+sqliteSigningKeyColumns+` FROM signing_keys
		WHERE algorithm = ?
		ORDER BY created_at DESC, rowid DESC
		LIMIT 1`, alg))
	if err == nil {
		return k, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return SigningKey{}, translateSQLite("ensure signing key", err)
	}

	k, err = create()
	if err != nil {
		return SigningKey{}, err
	}
	switch k.Algorithm {
	case "":
		k.Algorithm = alg
	case alg:
	default:
		return SigningKey{}, fmt.Errorf("users: sqlite: ensure signing key: create returned a %s key, want %s", k.Algorithm, alg)
	}
	if len(k.Private) == 0 {
		return SigningKey{}, errors.New("users: sqlite: ensure signing key: create returned no private key")
	}
	if k.ID == "" {
		id, err := uuid.NewRandom()
		if err != nil {
			return SigningKey{}, fmt.Errorf("users: sqlite: ensure signing key: %w", err)
		}
		k.ID = id.String()
	}
	k, err = insertSigningKey(ctx, tx, k, s.now)
	if err != nil {
		return SigningKey{}, translateSQLite("ensure signing key", err)
	}
	if err := tx.Commit(); err != nil {
		return SigningKey{}, translateSQLite("ensure signing key", err)
	}
	return k, nil
}

// CreateSigningKey implements Store. ID, Algorithm and Private are
// required (k is passed by value, so a generated ID could not be
// returned); a zero CreatedAt is set from the store's clock.
func (s *sqliteStore) CreateSigningKey(ctx context.Context, k SigningKey) error {
	if k.ID == "" || k.Algorithm == "" || len(k.Private) == 0 {
		return errors.New("users: sqlite: create signing key: ID, Algorithm and Private are required")
	}
	_, err := insertSigningKey(ctx, s.db, k, s.now)
	return translateSQLite("create signing key", err)
}

// sqliteExecer is what *sql.DB and *sql.Tx have in common for writes.
type sqliteExecer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// insertSigningKey stores k, setting a zero CreatedAt from now and a zero
// ActivatesAt to CreatedAt, and returns it as stored.
func insertSigningKey(ctx context.Context, db sqliteExecer, k SigningKey, now func() time.Time) (SigningKey, error) {
	if k.CreatedAt.IsZero() {
		k.CreatedAt = now()
	}
	if k.ActivatesAt.IsZero() {
		k.ActivatesAt = k.CreatedAt
	}
	created, err := encodeTime(k.CreatedAt)
	if err != nil {
		return SigningKey{}, err
	}
	activates, err := encodeTime(k.ActivatesAt)
	if err != nil {
		return SigningKey{}, err
	}
	if _, err := db.ExecContext(ctx,
		`INSERT INTO signing_keys (`+sqliteSigningKeyColumns+`) VALUES (?, ?, ?, ?, ?)`,
		k.ID, k.Algorithm, k.Private, created, activates); err != nil {
		return SigningKey{}, err
	}
	k.CreatedAt, k.ActivatesAt = decodeTime(created), decodeTime(activates)
	return k, nil
}

// DeleteSigningKey implements Store.
func (s *sqliteStore) DeleteSigningKey(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM signing_keys WHERE id = ?`, id)
	return sqliteOneRow("delete signing key", res, err)
}

// ReplaceSigningKeyPrivate implements Store.
func (s *sqliteStore) ReplaceSigningKeyPrivate(ctx context.Context, id string, old, next []byte) error {
	res, err := s.db.ExecContext(ctx, `UPDATE signing_keys SET private = ? WHERE id = ? AND private = ?`, next, id, old)
	return sqliteOneRow("replace signing key", res, err)
}

// sqliteOneRow turns the result of a statement meant to change one row
// into an error: ErrNotFound when it changed none.
func sqliteOneRow(op string, res sql.Result, err error) error {
	if err != nil {
		return translateSQLite(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return translateSQLite(op, err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// CreateRefreshToken implements Store.
func (s *sqliteStore) CreateRefreshToken(ctx context.Context, t *RefreshToken) error {
	r, err := encodeRefreshToken(t)
	if err != nil {
		return err
	}
	if _, err := s.db.ExecContext(ctx,
		`INSERT INTO refresh_tokens (`+sqliteRefreshTokenColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.args()...); err != nil {
		return translateSQLite("create refresh token", err)
	}
	*t = *r.token()
	return nil
}

// RefreshToken implements Store.
func (s *sqliteStore) RefreshToken(ctx context.Context, hash string) (*RefreshToken, error) {
	t, err := scanRefreshToken(s.db.QueryRowContext(ctx,
		`SELECT `+sqliteRefreshTokenColumns+` FROM refresh_tokens WHERE hash = ?`, hash))
	return t, translateSQLite("refresh token", err)
}

// RotateRefreshToken implements Store. The read, fn and the writes share
// one BEGIN IMMEDIATE transaction: concurrent rotations of one token queue
// on SQLite's write lock, and each one after the first finds the token
// rotated, which is reuse. The UPDATE that marks the token rotated is
// conditional all the same, and its row count decides, so the statement
// stays correct where BEGIN takes no lock (PostgreSQL's READ COMMITTED).
func (s *sqliteStore) RotateRefreshToken(ctx context.Context, hash string, now time.Time, fn func(old *RefreshToken) (*RefreshToken, error)) (*RefreshToken, error) {
	const op = "rotate refresh token"
	at, err := encodeTime(now)
	if err != nil {
		return nil, err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, translateSQLite(op, err)
	}
	defer tx.Rollback()

	old, err := scanRefreshToken(tx.QueryRowContext(ctx,
		`SELECT `+sqliteRefreshTokenColumns+` FROM refresh_tokens WHERE hash = ?`, hash))
	if err != nil {
		return nil, translateSQLite(op, err)
	}
	if !old.RotatedAt.IsZero() {
		return nil, revokeReusedFamilySQLite(ctx, tx, old.FamilyID, at)
	}
	if !old.RevokedAt.IsZero() || !now.Before(old.ExpiresAt) || !now.Before(old.FamilyExpiresAt) {
		return nil, ErrTokenInactive
	}
	next, err := fn(copyRefreshToken(old))
	if err != nil {
		return nil, err
	}
	next, err = successorOf(old, next)
	if err != nil {
		return nil, err
	}
	r, err := encodeRefreshToken(next)
	if err != nil {
		return nil, err
	}
	res, err := tx.ExecContext(ctx, `
		UPDATE refresh_tokens SET rotated_at = ?
		WHERE hash = ? AND rotated_at = 0 AND revoked_at = 0`, at, hash)
	if err != nil {
		return nil, translateSQLite(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return nil, translateSQLite(op, err)
	}
	if n != 1 {
		// Another transaction rotated or revoked the token after our read.
		// Failing safe, that is reuse: one of the two presenters is not
		// the legitimate client.
		return nil, revokeReusedFamilySQLite(ctx, tx, old.FamilyID, at)
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO refresh_tokens (`+sqliteRefreshTokenColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.args()...); err != nil {
		return nil, translateSQLite(op, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, translateSQLite(op, err)
	}
	return r.token(), nil
}

// revokeReusedFamilySQLite revokes the family in tx and commits it, then
// reports the reuse: the revocation must stick although the call fails
// (RFC 9700 §4.14.2).
func revokeReusedFamilySQLite(ctx context.Context, tx *sql.Tx, familyID string, at int64) error {
	const op = "rotate refresh token: revoke reused family"
	if err := revokeSQLite(ctx, tx, "family_id", familyID, at); err != nil {
		return translateSQLite(op, err)
	}
	if err := tx.Commit(); err != nil {
		return translateSQLite(op, err)
	}
	return ErrTokenReused
}

// revokeSQLite revokes, at the instant at, the refresh and access tokens
// whose column (family_id, user_id or client_id, the same name in both
// tables) equals value. Tokens already revoked keep their time.
func revokeSQLite(ctx context.Context, tx *sql.Tx, column, value string, at int64) error {
	switch column {
	case "family_id", "user_id", "client_id":
	default:
		return fmt.Errorf("users: sqlite: revoke by unknown column %q", column)
	}
	for _, table := range []string{"refresh_tokens", "access_tokens"} {
		if _, err := tx.ExecContext(ctx,
			`UPDATE `+table+` SET revoked_at = ? WHERE `+column+` = ? AND revoked_at = 0`,
			at, value); err != nil {
			return err
		}
	}
	return nil
}

// revokeTokens runs revokeSQLite in a transaction of its own, so the
// refresh and the access tokens are revoked together.
func (s *sqliteStore) revokeTokens(ctx context.Context, op, column, value string, now time.Time) error {
	at, err := encodeTime(now)
	if err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return translateSQLite(op, err)
	}
	defer tx.Rollback()
	if err := revokeSQLite(ctx, tx, column, value, at); err != nil {
		return translateSQLite(op, err)
	}
	return translateSQLite(op, tx.Commit())
}

// RevokeRefreshFamily implements Store.
func (s *sqliteStore) RevokeRefreshFamily(ctx context.Context, familyID string, now time.Time) error {
	if familyID == "" {
		return nil
	}
	return s.revokeTokens(ctx, "revoke refresh family", "family_id", familyID, now)
}

// RevokeUserTokens implements Store.
func (s *sqliteStore) RevokeUserTokens(ctx context.Context, userID string, now time.Time) error {
	return s.revokeTokens(ctx, "revoke user tokens", "user_id", userID, now)
}

// RevokeClientTokens implements Store.
func (s *sqliteStore) RevokeClientTokens(ctx context.Context, clientID string, now time.Time) error {
	return s.revokeTokens(ctx, "revoke client tokens", "client_id", clientID, now)
}

// IssueTokens implements Store. The check and the inserts share one
// BEGIN IMMEDIATE transaction, so they queue on the write lock with every
// UpdateUser and DeleteUser.
func (s *sqliteStore) IssueTokens(ctx context.Context, is Issue) error {
	const op = "issue tokens"
	access, refresh, err := encodeIssue(is)
	if err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return translateSQLite(op, err)
	}
	defer tx.Rollback()
	var (
		epoch    int64
		disabled bool
	)
	err = tx.QueryRowContext(ctx, `SELECT token_epoch, disabled FROM users WHERE id = ?`, access.userID).Scan(&epoch, &disabled)
	if errors.Is(err, sql.ErrNoRows) || err == nil && (disabled || epoch != is.Epoch) {
		return ErrGrantStale
	}
	if err != nil {
		return translateSQLite(op, err)
	}
	if refresh != nil {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO refresh_tokens (`+sqliteRefreshTokenColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			refresh.args()...); err != nil {
			return translateSQLite(op, err)
		}
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO access_tokens (`+sqliteAccessTokenColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
		access.args()...); err != nil {
		return translateSQLite(op, err)
	}
	return translateSQLite(op, tx.Commit())
}

// RecordAccessToken implements Store.
func (s *sqliteStore) RecordAccessToken(ctx context.Context, t *AccessToken) error {
	r, err := encodeAccessToken(t)
	if err != nil {
		return err
	}
	if _, err := s.db.ExecContext(ctx,
		`INSERT INTO access_tokens (`+sqliteAccessTokenColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
		r.args()...); err != nil {
		return translateSQLite("record access token", err)
	}
	*t = *r.token()
	return nil
}

// AccessToken implements Store.
func (s *sqliteStore) AccessToken(ctx context.Context, jti string) (*AccessToken, error) {
	t, err := scanAccessToken(s.db.QueryRowContext(ctx,
		`SELECT `+sqliteAccessTokenColumns+` FROM access_tokens WHERE jti = ?`, jti))
	return t, translateSQLite("access token", err)
}

// RevokeAccessToken implements Store. The row matches whether or not it
// was revoked before, so the row count tells an unknown jti from a second
// revocation, which keeps the first time.
func (s *sqliteStore) RevokeAccessToken(ctx context.Context, jti string, now time.Time) error {
	at, err := encodeTime(now)
	if err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, `
		UPDATE access_tokens
		SET revoked_at = CASE WHEN revoked_at = 0 THEN ? ELSE revoked_at END
		WHERE jti = ?`, at, jti)
	return sqliteOneRow("revoke access token", res, err)
}

// RevokedAccessTokens implements Store. The condition revoked_at <> 0
// matches the partial index access_tokens_revoked_expires_at, so the query
// reads only revoked rows.
func (s *sqliteStore) RevokedAccessTokens(ctx context.Context, now time.Time) ([]Revocation, error) {
	const op = "revoked access tokens"
	at, err := encodeTime(now)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `
		SELECT jti, expires_at FROM access_tokens
		WHERE revoked_at <> 0 AND expires_at > ?
		ORDER BY expires_at, jti`, at)
	if err != nil {
		return nil, translateSQLite(op, err)
	}
	defer rows.Close()
	revs := []Revocation{}
	for rows.Next() {
		r, err := scanRevocation(rows)
		if err != nil {
			return nil, translateSQLite(op, err)
		}
		revs = append(revs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, translateSQLite(op, err)
	}
	return revs, nil
}

// PruneTokens implements Store.
func (s *sqliteStore) PruneTokens(ctx context.Context, now time.Time) error {
	const op = "prune tokens"
	at, err := encodeTime(now)
	if err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return translateSQLite(op, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM access_tokens WHERE expires_at <= ?`, at); err != nil {
		return translateSQLite(op, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM refresh_tokens WHERE family_expires_at <= ?`, at); err != nil {
		return translateSQLite(op, err)
	}
	return translateSQLite(op, tx.Commit())
}

// CreateClient implements Store.
func (s *sqliteStore) CreateClient(ctx context.Context, c *Client) error {
	if c != nil && c.CreatedAt.IsZero() {
		c.CreatedAt = s.now()
	}
	r, err := encodeClient(c)
	if err != nil {
		return err
	}
	if _, err := s.db.ExecContext(ctx,
		`INSERT INTO clients (`+sqliteClientColumns+`) VALUES (?, ?, ?, ?)`,
		r.args()...); err != nil {
		// clients.id is the PRIMARY KEY; a TEXT one is enforced by an
		// index that reports this code.
		return translateSQLiteConflict("create client", err, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, ErrClientExists)
	}
	*c = *r.client()
	return nil
}

// ClientByID implements Store.
func (s *sqliteStore) ClientByID(ctx context.Context, id string) (*Client, error) {
	c, err := scanClient(s.db.QueryRowContext(ctx,
		`SELECT `+sqliteClientColumns+` FROM clients WHERE id = ?`, id))
	return c, translateSQLite("client by id", err)
}

// ListClients implements Store.
func (s *sqliteStore) ListClients(ctx context.Context) ([]*Client, error) {
	const op = "list clients"
	rows, err := s.db.QueryContext(ctx, `SELECT `+sqliteClientColumns+` FROM clients ORDER BY id`)
	if err != nil {
		return nil, translateSQLite(op, err)
	}
	defer rows.Close()
	clients := []*Client{}
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, translateSQLite(op, err)
		}
		clients = append(clients, c)
	}
	if err := rows.Err(); err != nil {
		return nil, translateSQLite(op, err)
	}
	return clients, nil
}

// DeleteClient implements Store. The client's token records stay until
// they expire; Service.DeleteClient revokes them first.
func (s *sqliteStore) DeleteClient(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM clients WHERE id = ?`, id)
	return sqliteOneRow("delete client", res, err)
}

// Ping implements Store.
func (s *sqliteStore) Ping(ctx context.Context) error {
	return translateSQLite("ping", s.db.PingContext(ctx))
}

// Close implements Store.
func (s *sqliteStore) Close() error {
	return s.db.Close()
}

// UpdateLoginAttempts implements Store. One BEGIN IMMEDIATE transaction
// holds SQLite's write lock from the read to the write, so concurrent
// updaters of the same keys, in any process, run one after another.
func (s *sqliteStore) UpdateLoginAttempts(ctx context.Context, keys []string, fn func([]LoginAttempts) error) error {
	const op = "update login attempts"
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return translateSQLite(op, err)
	}
	defer tx.Rollback()
	states := make([]LoginAttempts, len(keys))
	for i, key := range keys {
		var r attemptRow
		err := tx.QueryRowContext(ctx, `
			SELECT failures, window_start, blocked_until, last_success, updated_at
			FROM login_attempts WHERE key = ?`, key).
			Scan(&r.failures, &r.windowStart, &r.blockedUntil, &r.lastSuccess, &r.updated)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return translateSQLite(op, err)
		}
		states[i] = r.attempts(key)
	}
	if err := fn(states); err != nil {
		return err
	}
	now := s.now()
	for i := range states {
		a := &states[i]
		a.Key = keys[i]
		if a.empty() {
			if _, err := tx.ExecContext(ctx, `DELETE FROM login_attempts WHERE key = ?`, a.Key); err != nil {
				return translateSQLite(op, err)
			}
			continue
		}
		r, err := encodeAttempts(a, now)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO login_attempts (key, failures, window_start, blocked_until, last_success, updated_at)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (key) DO UPDATE SET
				failures = excluded.failures, window_start = excluded.window_start,
				blocked_until = excluded.blocked_until, last_success = excluded.last_success,
				updated_at = excluded.updated_at`,
			a.Key, r.failures, r.windowStart, r.blockedUntil, r.lastSuccess, r.updated); err != nil {
			return translateSQLite(op, err)
		}
	}
	return translateSQLite(op, tx.Commit())
}

// PruneLoginAttempts implements Store.
func (s *sqliteStore) PruneLoginAttempts(ctx context.Context, before time.Time) error {
	at, err := encodeTime(before)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `DELETE FROM login_attempts WHERE updated_at < ?`, at)
	return translateSQLite("prune login attempts", err)
}
