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
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/sqlite/*.sql
var sqliteMigrations embed.FS

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
// SQLITE_BUSY at its first write, and the read-modify-write of UpdateUser
// and EnsureSigningKey cannot lose an update, also across processes.
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
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("users: sqlite: %w", err)
	}
	q := url.Values{}
	// busy_timeout first: the driver runs it before the other pragmas, and
	// switching to WAL needs a lock another opener may hold.
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("users: sqlite: open %s: %w", path, err)
	}
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

// sqliteMigration is one migrations/sqlite/NNNN_name.sql file.
type sqliteMigration struct {
	version int
	name    string
	sql     string
}

// loadSQLiteMigrations reads the embedded migrations in version order.
func loadSQLiteMigrations() ([]sqliteMigration, error) {
	names, err := fs.Glob(sqliteMigrations, "migrations/sqlite/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []sqliteMigration
	for _, name := range names {
		base := path.Base(name)
		prefix, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(prefix)
		if !ok || err != nil || v < 1 {
			return nil, fmt.Errorf("users: sqlite: migration %s: name must be NNNN_description.sql", base)
		}
		b, err := sqliteMigrations.ReadFile(name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, sqliteMigration{version: v, name: base, sql: string(b)})
	}
	slices.SortFunc(ms, func(a, b sqliteMigration) int { return a.version - b.version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("users: sqlite: migrations %s and %s share version %d", ms[i-1].name, ms[i].name, ms[i].version)
		}
	}
	return ms, nil
}

// migrateSQLite applies the migrations not yet recorded in
// schema_migrations. It runs in one BEGIN IMMEDIATE transaction, so two
// processes opening a fresh file at once apply each migration once, and a
// failed migration leaves the schema as it was.
func migrateSQLite(ctx context.Context, db *sql.DB, now func() time.Time) error {
	ms, err := loadSQLiteMigrations()
	if err != nil {
		return err
	}
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
// boundary: no rows is ErrNotFound, a UNIQUE violation (only users.username
// has one) is ErrUsernameTaken. Anything else is wrapped with op.
func translateSQLite(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return ErrNotFound
	case sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_UNIQUE:
		return ErrUsernameTaken
	default:
		return fmt.Errorf("users: sqlite: %s: %w", op, err)
	}
}

const sqliteUserColumns = `id, username, password_hash, scopes, disabled, created_at, updated_at`

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
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Username, u.PasswordHash, scopes, u.Disabled, created, updated)
	if err != nil {
		return translateSQLite("create user", err)
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
	id, createdAt, updatedAt := u.ID, u.CreatedAt, u.UpdatedAt
	if err := fn(u); err != nil {
		return nil, err
	}
	if u.ID != id {
		return nil, errors.New("users: sqlite: update user: the ID cannot change")
	}
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
		SET username = ?, password_hash = ?, scopes = ?, disabled = ?, updated_at = ?
		WHERE id = ?`,
		u.Username, u.PasswordHash, scopes, u.Disabled, updated, id); err != nil {
		return nil, translateSQLite("update user", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, translateSQLite("update user", err)
	}
	u.Scopes = decodeScopes(scopes)
	u.CreatedAt, u.UpdatedAt = createdAt, decodeTime(updated)
	return u, nil
}

// DeleteUser implements Store.
func (s *sqliteStore) DeleteUser(ctx context.Context, username string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM users WHERE username = ?`, username)
	if err != nil {
		return translateSQLite("delete user", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return translateSQLite("delete user", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// SigningKeys implements Store. rowid breaks ties between keys created in
// the same nanosecond: the later insert is the newer key.
func (s *sqliteStore) SigningKeys(ctx context.Context) ([]SigningKey, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT id, algorithm, private, created_at FROM signing_keys
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
		SELECT id, algorithm, private, created_at FROM signing_keys
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
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.now()
	}
	created, err := encodeTime(k.CreatedAt)
	if err != nil {
		return SigningKey{}, err
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO signing_keys (id, algorithm, private, created_at) VALUES (?, ?, ?, ?)`,
		k.ID, k.Algorithm, k.Private, created); err != nil {
		// Not translateSQLite: a clash here is on the key ID, not a username.
		return SigningKey{}, fmt.Errorf("users: sqlite: ensure signing key: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return SigningKey{}, translateSQLite("ensure signing key", err)
	}
	k.CreatedAt = decodeTime(created)
	return k, nil
}

// Ping implements Store.
func (s *sqliteStore) Ping(ctx context.Context) error {
	return translateSQLite("ping", s.db.PingContext(ctx))
}

// Close implements Store.
func (s *sqliteStore) Close() error {
	return s.db.Close()
}
