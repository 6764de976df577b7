package users

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/postgres/*.sql
var postgresMigrations embed.FS

// Advisory lock keys (pg_advisory_xact_lock). They are database-wide, not
// per schema: deployments in different schemas of one database only queue
// behind each other for the short sections they guard.
const (
	// postgresMigrateLock serialises migrations: replicas starting
	// together apply each migration once. It is "gatehous" in ASCII.
	postgresMigrateLock int64 = 0x6761746568_6f7573
	// postgresSigningKeyLock serialises EnsureSigningKey's creation of a
	// missing key. It is "gh:keys\x00" in ASCII.
	postgresSigningKeyLock int64 = 0x67683a6b_65797300
)

// postgresChangesChannel is the NOTIFY channel of ChangeListener; the
// payload is ChangeRevocations or ChangeKeys.
const postgresChangesChannel = "gatehouse_changes"

// postgresMaxAttempts bounds how often a transaction that PostgreSQL
// aborted as a deadlock victim or serialization failure is run again.
const postgresMaxAttempts = 5

// PostgresOptions tunes OpenPostgres. The zero value keeps pgx's defaults
// and whatever the DSN sets.
type PostgresOptions struct {
	// MaxConns is the most connections the pool opens; 0 is pgx's default
	// (the DSN's pool_max_conns, else the larger of 4 and the CPU count).
	// A connection held by ChangeListener.Listen is not counted.
	MaxConns int32
	// ConnectTimeout bounds establishing each connection; 0 keeps the
	// DSN's connect_timeout (none when it has none).
	ConnectTimeout time.Duration
}

// postgresStore is the Store on PostgreSQL, through a pgx connection pool.
// Several server processes may share the database.
//
// Transactions run at PostgreSQL's default READ COMMITTED isolation, so
// BEGIN locks nothing: read-modify-write methods lock what they read
// (SELECT … FOR UPDATE, advisory locks) and make their writes conditional,
// which keeps them correct across processes, not only across goroutines.
// UpdateUser's fn and EnsureSigningKey's create run while the method holds
// a pooled connection, so they must not use the store (Service's do not);
// RotateRefreshToken's fn may, as the token endpoint's does.
// Methods that revoke tokens or create or delete signing keys announce it
// on postgresChangesChannel in the same transaction (ChangeListener).
//
// Tables are never schema-qualified: the DSN's search_path decides where
// they live.
type postgresStore struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

var (
	_ Store          = (*postgresStore)(nil)
	_ ChangeListener = (*postgresStore)(nil)
)

// OpenPostgres connects to the PostgreSQL database that dsn names (a
// postgres:// URL or key=value string, as libpq accepts) and applies any
// pending migrations from migrations/postgres in one transaction. The
// tables live in the first schema of the connection's search_path, which
// the DSN may set as a runtime parameter (…?search_path=gatehouse); the
// schema must exist. Concurrent openers, also in other processes, take
// turns on an advisory lock, so each migration is applied once.
func OpenPostgres(ctx context.Context, dsn string, opts PostgresOptions) (Store, error) {
	if opts.MaxConns < 0 {
		return nil, fmt.Errorf("users: postgres: MaxConns %d is negative", opts.MaxConns)
	}
	if opts.ConnectTimeout < 0 {
		return nil, fmt.Errorf("users: postgres: ConnectTimeout %s is negative", opts.ConnectTimeout)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's message quotes the DSN, redacting the password only on a
		// best-effort basis, and a malformed DSN is where that fails.
		return nil, errors.New("users: postgres: the DSN is not a valid PostgreSQL URL or key=value connection string")
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if opts.ConnectTimeout > 0 {
		cfg.ConnConfig.ConnectTimeout = opts.ConnectTimeout
	}
	where := cfg.ConnConfig.Host + "/" + cfg.ConnConfig.Database
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("users: postgres: open %s: %w", where, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("users: postgres: open %s: %w", where, err)
	}
	if err := migratePostgres(ctx, pool, time.Now); err != nil {
		pool.Close()
		return nil, err
	}
	return &postgresStore{pool: pool, now: time.Now}, nil
}

// migratePostgres applies the migrations not yet recorded in
// schema_migrations, in one transaction that first takes
// postgresMigrateLock: a second opener waits there, then finds them
// recorded. PostgreSQL's DDL is transactional, so a failed migration
// leaves the schema as it was.
func migratePostgres(ctx context.Context, pool *pgxpool.Pool, now func() time.Time) error {
	ms, err := loadMigrations(postgresMigrations, "postgres")
	if err != nil {
		return err
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("users: postgres: migrate: %w", err)
	}
	defer tx.Rollback(ctx)

	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, postgresMigrateLock); err != nil {
		return fmt.Errorf("users: postgres: migrate: %w", err)
	}
	if _, err := tx.Exec(ctx, `
		CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER NOT NULL PRIMARY KEY,
			name       TEXT    NOT NULL,
			applied_at BIGINT  NOT NULL
		)`); err != nil {
		return fmt.Errorf("users: postgres: migrate: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("users: postgres: migrate: %w", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return fmt.Errorf("users: postgres: migrate: %w", err)
	}
	applied := map[int]bool{}
	for _, v := range versions {
		applied[int(v)] = true
	}
	// A schema newer than this binary knows means a downgrade: refuse
	// rather than run old code against tables it does not understand.
	for v := range applied {
		if len(ms) == 0 || v > ms[len(ms)-1].version {
			return fmt.Errorf("users: postgres: database schema version %d is newer than this program supports", v)
		}
	}
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		// Without arguments pgx sends the simple query protocol, which
		// runs every statement of the file.
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return fmt.Errorf("users: postgres: migration %s: %w", m.name, err)
		}
		if _, err := tx.Exec(ctx,
			`INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
			m.version, m.name, now().UnixNano()); err != nil {
			return fmt.Errorf("users: postgres: migration %s: %w", m.name, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("users: postgres: migrate: %w", err)
	}
	return nil
}

// PostgreSQL error codes (SQLSTATE) the store acts on.
const (
	pgUniqueViolation      = "23505"
	pgSerializationFailure = "40001"
	pgDeadlockDetected     = "40P01"
)

// translatePostgres maps driver errors to the package sentinels at the
// store boundary: no rows is ErrNotFound, a unique violation of
// users_username_key ErrUsernameTaken and of clients_pkey ErrClientExists
// (the migration names both). Anything else is wrapped with op.
func translatePostgres(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == pgUniqueViolation {
		switch pe.ConstraintName {
		case "users_username_key":
			return ErrUsernameTaken
		case "clients_pkey":
			return ErrClientExists
		}
	}
	return fmt.Errorf("users: postgres: %s: %w", op, err)
}

// postgresRetryable reports whether err aborted a transaction that may
// simply run again: PostgreSQL chose it as a deadlock victim, or could not
// serialise it.
func postgresRetryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == pgDeadlockDetected || pe.Code == pgSerializationFailure)
}

// inTx runs fn in a transaction, committing it when fn returns nil, and
// runs the whole transaction again (up to postgresMaxAttempts times) when
// PostgreSQL aborted it as a deadlock victim. fn must therefore be
// idempotent: the revocations, whose UPDATEs lock many rows in whatever
// order their index yields, are the statements that can deadlock with
// each other.
func (s *postgresStore) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := pgx.BeginFunc(ctx, s.pool, fn)
		if err == nil || attempt == postgresMaxAttempts || !postgresRetryable(err) || ctx.Err() != nil {
			return err
		}
	}
}

// notifyPostgres announces a change of kind to every listener when tx
// commits; PostgreSQL delivers nothing if it rolls back.
func notifyPostgres(ctx context.Context, tx pgx.Tx, kind string) error {
	_, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, postgresChangesChannel, kind)
	return err
}

// Column lists in the order of the scan helpers in rows.go.
const (
	postgresUserColumns         = `id, username, password_hash, scopes, disabled, created_at, updated_at, token_epoch`
	postgresSigningKeyColumns   = `id, algorithm, private, created_at, activates_at`
	postgresRefreshTokenColumns = `hash, family_id, user_id, client_id, scopes, issued_at, expires_at, family_expires_at, rotated_at, revoked_at`
	postgresAccessTokenColumns  = `jti, user_id, family_id, client_id, expires_at, revoked_at`
	postgresClientColumns       = `id, secret_hash, scopes, created_at`
)

// CreateUser implements Store.
func (s *postgresStore) CreateUser(ctx context.Context, u *User) error {
	if u.ID == "" || u.Username == "" || u.PasswordHash == "" {
		return errors.New("users: postgres: create user: ID, Username and PasswordHash are required")
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
	// A clashing username violates users_username_key (ErrUsernameTaken);
	// a clashing ID users_pkey, which stays a plain error.
	if _, err := s.pool.Exec(ctx, `
		INSERT INTO users (`+postgresUserColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		u.ID, u.Username, u.PasswordHash, scopes, u.Disabled, created, updated, u.TokenEpoch); err != nil {
		return translatePostgres("create user", err)
	}
	u.Scopes = decodeScopes(scopes)
	u.CreatedAt, u.UpdatedAt = decodeTime(created), decodeTime(updated)
	return nil
}

// UserByUsername implements Store.
func (s *postgresStore) UserByUsername(ctx context.Context, username string) (*User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx,
		`SELECT `+postgresUserColumns+` FROM users WHERE username = $1`, username))
	return u, translatePostgres("user by username", err)
}

// UserByID implements Store.
func (s *postgresStore) UserByID(ctx context.Context, id string) (*User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx,
		`SELECT `+postgresUserColumns+` FROM users WHERE id = $1`, id))
	return u, translatePostgres("user by id", err)
}

// ListUsers implements Store. A limit below 1 returns no users.
func (s *postgresStore) ListUsers(ctx context.Context, after string, limit int) ([]*User, error) {
	const op = "list users"
	users := []*User{}
	if limit < 1 {
		return users, nil
	}
	// Keyset pagination on the unique username: stable under concurrent
	// inserts and deletes, unlike OFFSET. The column's "C" collation
	// orders by bytes, as SQLite does, along users_username_key.
	rows, err := s.pool.Query(ctx, `
		SELECT `+postgresUserColumns+` FROM users
		WHERE username > $1
		ORDER BY username
		LIMIT $2`, after, limit)
	if err != nil {
		return nil, translatePostgres(op, err)
	}
	defer rows.Close()
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, translatePostgres(op, err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, translatePostgres(op, err)
	}
	return users, nil
}

// CountEnabledWithScope implements Store. Scopes are stored space
// separated, so the scope padded with spaces matches exactly one entry.
func (s *postgresStore) CountEnabledWithScope(ctx context.Context, scope string) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM users WHERE strpos(' ' || scopes || ' ', $1) > 0 AND NOT disabled`, " "+scope+" ").Scan(&n)
	return n, translatePostgres("count users with scope", err)
}

// CountUsers implements Store.
func (s *postgresStore) CountUsers(ctx context.Context) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&n)
	return n, translatePostgres("count users", err)
}

// UpdateUser implements Store. The row is read FOR UPDATE: a concurrent
// updater, in this process or another, waits at its own read until this
// transaction ends and then reads the saved row, so no update is lost.
func (s *postgresStore) UpdateUser(ctx context.Context, username string, fn func(*User) error) (*User, error) {
	const op = "update user"
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, translatePostgres(op, err)
	}
	defer tx.Rollback(ctx)

	u, err := scanUser(tx.QueryRow(ctx,
		`SELECT `+postgresUserColumns+` FROM users WHERE username = $1 FOR UPDATE`, username))
	if err != nil {
		return nil, translatePostgres(op, err)
	}
	id, createdAt, updatedAt, epoch := u.ID, u.CreatedAt, u.UpdatedAt, u.TokenEpoch
	if err := fn(u); err != nil {
		return nil, err
	}
	if u.ID != id {
		return nil, errors.New("users: postgres: update user: the ID cannot change")
	}
	if u.TokenEpoch < epoch {
		return nil, errors.New("users: postgres: update user: the token epoch cannot go down")
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
	if _, err := tx.Exec(ctx, `
		UPDATE users
		SET username = $1, password_hash = $2, scopes = $3, disabled = $4, updated_at = $5, token_epoch = $6
		WHERE id = $7`,
		u.Username, u.PasswordHash, scopes, u.Disabled, updated, u.TokenEpoch, id); err != nil {
		return nil, translatePostgres(op, err)
	}
	if u.TokenEpoch != epoch {
		at, err := encodeTime(revokeAt)
		if err != nil {
			return nil, err
		}
		if err := revokeInTx(ctx, tx, "user_id", id, at); err != nil {
			return nil, translatePostgres(op, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, translatePostgres(op, err)
	}
	u.Scopes = decodeScopes(scopes)
	u.CreatedAt, u.UpdatedAt = createdAt, decodeTime(updated)
	return u, nil
}

// DeleteUser implements Store. The row is locked first, so a grant
// storing tokens of the user (IssueTokens, FOR SHARE) either committed
// before and is revoked here, or waits and finds the user gone.
func (s *postgresStore) DeleteUser(ctx context.Context, username string, now time.Time) error {
	const op = "delete user"
	at, err := encodeTime(now)
	if err != nil {
		return err
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		var id string
		if err := tx.QueryRow(ctx, `SELECT id FROM users WHERE username = $1 FOR UPDATE`, username).Scan(&id); err != nil {
			return err
		}
		if err := revokeInTx(ctx, tx, "user_id", id, at); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM users WHERE id = $1`, id)
		return err
	})
	return translatePostgres(op, err)
}

// postgresOneRow turns the result of a statement meant to change one row
// into an error: ErrNotFound when it changed none.
func postgresOneRow(op string, tag pgconn.CommandTag, err error) error {
	if err != nil {
		return translatePostgres(op, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// SigningKeys implements Store. seq, the insertion order, breaks ties
// between keys created in the same nanosecond: the later insert is the
// newer key.
func (s *postgresStore) SigningKeys(ctx context.Context) ([]SigningKey, error) {
	const op = "signing keys"
	rows, err := s.pool.Query(ctx, `
		SELECT `+postgresSigningKeyColumns+` FROM signing_keys
		ORDER BY created_at DESC, seq DESC`)
	if err != nil {
		return nil, translatePostgres(op, err)
	}
	defer rows.Close()
	keys := []SigningKey{}
	for rows.Next() {
		k, err := scanSigningKey(rows)
		if err != nil {
			return nil, translatePostgres(op, err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, translatePostgres(op, err)
	}
	return keys, nil
}

// EnsureSigningKey implements Store. When no key for alg exists, the
// transaction takes postgresSigningKeyLock and looks again: under READ
// COMMITTED that second statement sees a key another caller, in this
// process or another, committed while this one waited for the lock. Only
// the lock holder that still finds none calls create, which runs under
// the lock and so should only generate the key. A key without an ID gets a
// random UUID; an empty Algorithm is set to alg. Creating a key announces
// ChangeKeys.
func (s *postgresStore) EnsureSigningKey(ctx context.Context, alg string, create func() (SigningKey, error)) (SigningKey, error) {
	const op = "ensure signing key"
	if alg == "" {
		return SigningKey{}, errors.New("users: postgres: ensure signing key: empty algorithm")
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return SigningKey{}, translatePostgres(op, err)
	}
	defer tx.Rollback(ctx)

	newest := func() (SigningKey, error) {
		return scanSigningKey(tx.QueryRow(ctx, `
			SELECT `+postgresSigningKeyColumns+` FROM signing_keys
			WHERE algorithm = $1
			ORDER BY created_at DESC, seq DESC
			LIMIT 1`, alg))
	}
	k, err := newest()
	if err == nil {
		return k, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return SigningKey{}, translatePostgres(op, err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, postgresSigningKeyLock); err != nil {
		return SigningKey{}, translatePostgres(op, err)
	}
	k, err = newest()
	if err == nil {
		return k, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return SigningKey{}, translatePostgres(op, err)
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
		return SigningKey{}, fmt.Errorf("users: postgres: ensure signing key: create returned a %s key, want %s", k.Algorithm, alg)
	}
	if len(k.Private) == 0 {
		return SigningKey{}, errors.New("users: postgres: ensure signing key: create returned no private key")
	}
	if k.ID == "" {
		id, err := uuid.NewRandom()
		if err != nil {
			return SigningKey{}, fmt.Errorf("users: postgres: ensure signing key: %w", err)
		}
		k.ID = id.String()
	}
	k, err = insertPostgresSigningKey(ctx, tx, k, s.now)
	if err != nil {
		return SigningKey{}, translatePostgres(op, err)
	}
	if err := notifyPostgres(ctx, tx, ChangeKeys); err != nil {
		return SigningKey{}, translatePostgres(op, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return SigningKey{}, translatePostgres(op, err)
	}
	return k, nil
}

// CreateSigningKey implements Store. ID, Algorithm and Private are
// required (k is passed by value, so a generated ID could not be
// returned); a zero CreatedAt is set from the store's clock. It announces
// ChangeKeys.
func (s *postgresStore) CreateSigningKey(ctx context.Context, k SigningKey) error {
	if k.ID == "" || k.Algorithm == "" || len(k.Private) == 0 {
		return errors.New("users: postgres: create signing key: ID, Algorithm and Private are required")
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := insertPostgresSigningKey(ctx, tx, k, s.now); err != nil {
			return err
		}
		return notifyPostgres(ctx, tx, ChangeKeys)
	})
	return translatePostgres("create signing key", err)
}

// insertPostgresSigningKey stores k in tx, setting a zero CreatedAt from
// now and a zero ActivatesAt to CreatedAt, and returns it as stored.
func insertPostgresSigningKey(ctx context.Context, tx pgx.Tx, k SigningKey, now func() time.Time) (SigningKey, error) {
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
	if _, err := tx.Exec(ctx,
		`INSERT INTO signing_keys (`+postgresSigningKeyColumns+`) VALUES ($1, $2, $3, $4, $5)`,
		k.ID, k.Algorithm, k.Private, created, activates); err != nil {
		return SigningKey{}, err
	}
	k.CreatedAt, k.ActivatesAt = decodeTime(created), decodeTime(activates)
	return k, nil
}

// DeleteSigningKey implements Store. It announces ChangeKeys.
func (s *postgresStore) DeleteSigningKey(ctx context.Context, id string) error {
	const op = "delete signing key"
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM signing_keys WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		return notifyPostgres(ctx, tx, ChangeKeys)
	})
	if errors.Is(err, ErrNotFound) {
		return ErrNotFound
	}
	return translatePostgres(op, err)
}

// ReplaceSigningKeyPrivate implements Store. It announces ChangeKeys.
func (s *postgresStore) ReplaceSigningKeyPrivate(ctx context.Context, id string, old, next []byte) error {
	const op = "replace signing key"
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE signing_keys SET private = $1 WHERE id = $2 AND private = $3`, next, id, old)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		return notifyPostgres(ctx, tx, ChangeKeys)
	})
	if errors.Is(err, ErrNotFound) {
		return ErrNotFound
	}
	return translatePostgres(op, err)
}

// CreateRefreshToken implements Store.
func (s *postgresStore) CreateRefreshToken(ctx context.Context, t *RefreshToken) error {
	r, err := encodeRefreshToken(t)
	if err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx,
		`INSERT INTO refresh_tokens (`+postgresRefreshTokenColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		r.args()...); err != nil {
		return translatePostgres("create refresh token", err)
	}
	*t = *r.token()
	return nil
}

// RefreshToken implements Store.
func (s *postgresStore) RefreshToken(ctx context.Context, hash string) (*RefreshToken, error) {
	t, err := scanRefreshToken(s.pool.QueryRow(ctx,
		`SELECT `+postgresRefreshTokenColumns+` FROM refresh_tokens WHERE hash = $1`, hash))
	return t, translatePostgres("refresh token", err)
}

// RotateRefreshToken implements Store, in two steps.
//
// First the token is read and judged, and fn called, with no connection
// held: fn may read the store (the token endpoint re-reads the user), and
// holding a pooled connection across it would let as many concurrent
// rotations as the pool has connections take them all and wait forever
// for one more. Several concurrent callers may thus get as far as fn.
//
// Then the token is read again FOR UPDATE, which queues concurrent
// rotations, in this process or another, on the row lock, and judged
// again: the first caller finds it as before and commits; each later one
// finds it rotated, which is reuse, and its successor is dropped. The
// UPDATE that marks it rotated is conditional all the same, and its row
// count decides. Reuse revokes the family in a transaction of its own
// (revokeTokens), which announces ChangeRevocations.
func (s *postgresStore) RotateRefreshToken(ctx context.Context, hash string, now time.Time, fn func(old *RefreshToken) (*RefreshToken, error)) (*RefreshToken, error) {
	const op = "rotate refresh token"
	at, err := encodeTime(now)
	if err != nil {
		return nil, err
	}
	old, err := scanRefreshToken(s.pool.QueryRow(ctx,
		`SELECT `+postgresRefreshTokenColumns+` FROM refresh_tokens WHERE hash = $1`, hash))
	if err != nil {
		return nil, translatePostgres(op, err)
	}
	if !old.RotatedAt.IsZero() {
		return nil, s.revokeReusedFamily(ctx, old.FamilyID, at)
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

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, translatePostgres(op, err)
	}
	defer tx.Rollback(ctx)
	// Only rotated_at and revoked_at of a stored token ever change, and
	// now is the same instant, so these are the only checks to repeat.
	cur, err := scanRefreshToken(tx.QueryRow(ctx,
		`SELECT `+postgresRefreshTokenColumns+` FROM refresh_tokens WHERE hash = $1 FOR UPDATE`, hash))
	if err != nil {
		return nil, translatePostgres(op, err) // ErrNotFound: pruned meanwhile
	}
	if !cur.RotatedAt.IsZero() {
		// Another caller rotated it since our first read. One of the two
		// presenters is not the legitimate client.
		tx.Rollback(ctx)
		return nil, s.revokeReusedFamily(ctx, cur.FamilyID, at)
	}
	if !cur.RevokedAt.IsZero() {
		return nil, ErrTokenInactive
	}
	tag, err := tx.Exec(ctx, `
		UPDATE refresh_tokens SET rotated_at = $1
		WHERE hash = $2 AND rotated_at = 0 AND revoked_at = 0`, at, hash)
	if err != nil {
		return nil, translatePostgres(op, err)
	}
	if tag.RowsAffected() != 1 {
		// The row lock rules this out; the condition keeps the statement
		// safe on its own. Failing safe, that is reuse.
		tx.Rollback(ctx)
		return nil, s.revokeReusedFamily(ctx, cur.FamilyID, at)
	}
	if _, err := tx.Exec(ctx,
		`INSERT INTO refresh_tokens (`+postgresRefreshTokenColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		r.args()...); err != nil {
		return nil, translatePostgres(op, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, translatePostgres(op, err)
	}
	return r.token(), nil
}

// revokeReusedFamily revokes the family of a reused token and commits
// that, then reports the reuse: the revocation must stick although the
// call fails (RFC 9700 §4.14.2). Callers end their own transaction first,
// so no connection is held twice.
func (s *postgresStore) revokeReusedFamily(ctx context.Context, familyID string, at int64) error {
	if err := s.revokeTokens(ctx, "rotate refresh token: revoke reused family", "family_id", familyID, at); err != nil {
		return err
	}
	return ErrTokenReused
}

// revokeTokens revokes, at the instant at, the refresh and access tokens
// whose column (family_id, user_id or client_id, the same name in both
// tables) equals value, in one transaction that announces
// ChangeRevocations when it revoked anything. Tokens already revoked keep
// their time.
//
// The refresh-token UPDATE runs until it finds nothing left to revoke. A
// rotation that locked one of the tokens before the UPDATE reached it
// makes the UPDATE wait for its commit, and its successor, committed after
// the UPDATE's snapshot, is not seen by that UPDATE; the next one, with a
// fresh READ COMMITTED snapshot, revokes it. Once an UPDATE revokes
// nothing, no rotation in flight can still add a live token: each one
// must lock a live token first, and those are now locked by this
// transaction and revoked when it commits.
func (s *postgresStore) revokeTokens(ctx context.Context, op, column, value string, at int64) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		return revokeInTx(ctx, tx, column, value, at)
	})
	return translatePostgres(op, err)
}

// revokeInTx is revokeTokens' work inside the caller's transaction, which
// it makes announce ChangeRevocations when it revoked anything.
func revokeInTx(ctx context.Context, tx pgx.Tx, column, value string, at int64) error {
	switch column {
	case "family_id", "user_id", "client_id":
	default:
		return fmt.Errorf("users: postgres: revoke by unknown column %q", column)
	}
	var revoked int64
	for {
		tag, err := tx.Exec(ctx,
			`UPDATE refresh_tokens SET revoked_at = $1 WHERE `+column+` = $2 AND revoked_at = 0`,
			at, value)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			break
		}
		revoked += tag.RowsAffected()
	}
	tag, err := tx.Exec(ctx,
		`UPDATE access_tokens SET revoked_at = $1 WHERE `+column+` = $2 AND revoked_at = 0`,
		at, value)
	if err != nil {
		return err
	}
	revoked += tag.RowsAffected()
	if revoked == 0 {
		return nil
	}
	return notifyPostgres(ctx, tx, ChangeRevocations)
}

// RevokeRefreshFamily implements Store. It announces ChangeRevocations
// when it revoked a token.
func (s *postgresStore) RevokeRefreshFamily(ctx context.Context, familyID string, now time.Time) error {
	if familyID == "" {
		return nil
	}
	at, err := encodeTime(now)
	if err != nil {
		return err
	}
	return s.revokeTokens(ctx, "revoke refresh family", "family_id", familyID, at)
}

// RevokeUserTokens implements Store. It announces ChangeRevocations when
// it revoked a token.
func (s *postgresStore) RevokeUserTokens(ctx context.Context, userID string, now time.Time) error {
	at, err := encodeTime(now)
	if err != nil {
		return err
	}
	return s.revokeTokens(ctx, "revoke user tokens", "user_id", userID, at)
}

// RevokeClientTokens implements Store. It announces ChangeRevocations
// when it revoked a token.
func (s *postgresStore) RevokeClientTokens(ctx context.Context, clientID string, now time.Time) error {
	at, err := encodeTime(now)
	if err != nil {
		return err
	}
	return s.revokeTokens(ctx, "revoke client tokens", "client_id", clientID, at)
}

// IssueTokens implements Store. The user's row is read FOR SHARE, which
// conflicts with the FOR UPDATE of UpdateUser and DeleteUser: a change
// that locked it first commits before this read sees the row (then the
// epoch differs or the row is gone), and one that comes after waits for
// this commit and then revokes what it stored.
func (s *postgresStore) IssueTokens(ctx context.Context, is Issue) error {
	const op = "issue tokens"
	access, refresh, err := encodeIssue(is)
	if err != nil {
		return err
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		var (
			epoch    int64
			disabled bool
		)
		err := tx.QueryRow(ctx, `SELECT token_epoch, disabled FROM users WHERE id = $1 FOR SHARE`, access.userID).Scan(&epoch, &disabled)
		if errors.Is(err, pgx.ErrNoRows) || err == nil && (disabled || epoch != is.Epoch) {
			return ErrGrantStale
		}
		if err != nil {
			return err
		}
		if refresh != nil {
			if _, err := tx.Exec(ctx,
				`INSERT INTO refresh_tokens (`+postgresRefreshTokenColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
				refresh.args()...); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx,
			`INSERT INTO access_tokens (`+postgresAccessTokenColumns+`) VALUES ($1, $2, $3, $4, $5, $6)`,
			access.args()...)
		return err
	})
	if errors.Is(err, ErrGrantStale) {
		return ErrGrantStale
	}
	return translatePostgres(op, err)
}

// RecordAccessToken implements Store.
func (s *postgresStore) RecordAccessToken(ctx context.Context, t *AccessToken) error {
	r, err := encodeAccessToken(t)
	if err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx,
		`INSERT INTO access_tokens (`+postgresAccessTokenColumns+`) VALUES ($1, $2, $3, $4, $5, $6)`,
		r.args()...); err != nil {
		return translatePostgres("record access token", err)
	}
	*t = *r.token()
	return nil
}

// AccessToken implements Store.
func (s *postgresStore) AccessToken(ctx context.Context, jti string) (*AccessToken, error) {
	t, err := scanAccessToken(s.pool.QueryRow(ctx,
		`SELECT `+postgresAccessTokenColumns+` FROM access_tokens WHERE jti = $1`, jti))
	return t, translatePostgres("access token", err)
}

// RevokeAccessToken implements Store. A first revocation announces
// ChangeRevocations; when the UPDATE finds no token still to revoke, a
// lookup tells an unknown jti (ErrNotFound) from a second revocation,
// which keeps the first time and announces nothing.
func (s *postgresStore) RevokeAccessToken(ctx context.Context, jti string, now time.Time) error {
	const op = "revoke access token"
	at, err := encodeTime(now)
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx,
			`UPDATE access_tokens SET revoked_at = $1 WHERE jti = $2 AND revoked_at = 0`, at, jti)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
			return notifyPostgres(ctx, tx, ChangeRevocations)
		}
		var known bool
		if err := tx.QueryRow(ctx,
			`SELECT EXISTS (SELECT 1 FROM access_tokens WHERE jti = $1)`, jti).Scan(&known); err != nil {
			return err
		}
		if !known {
			return ErrNotFound
		}
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return ErrNotFound
	}
	return translatePostgres(op, err)
}

// RevokedAccessTokens implements Store. The condition revoked_at <> 0
// matches the partial index access_tokens_revoked_expires_at, so the
// planner can read only revoked rows.
func (s *postgresStore) RevokedAccessTokens(ctx context.Context, now time.Time) ([]Revocation, error) {
	const op = "revoked access tokens"
	at, err := encodeTime(now)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `
		SELECT jti, expires_at FROM access_tokens
		WHERE revoked_at <> 0 AND expires_at > $1
		ORDER BY expires_at, jti`, at)
	if err != nil {
		return nil, translatePostgres(op, err)
	}
	defer rows.Close()
	revs := []Revocation{}
	for rows.Next() {
		r, err := scanRevocation(rows)
		if err != nil {
			return nil, translatePostgres(op, err)
		}
		revs = append(revs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, translatePostgres(op, err)
	}
	return revs, nil
}

// PruneTokens implements Store.
func (s *postgresStore) PruneTokens(ctx context.Context, now time.Time) error {
	at, err := encodeTime(now)
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM access_tokens WHERE expires_at <= $1`, at); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM refresh_tokens WHERE family_expires_at <= $1`, at)
		return err
	})
	return translatePostgres("prune tokens", err)
}

// CreateClient implements Store. A taken ID violates clients_pkey, which
// is ErrClientExists.
func (s *postgresStore) CreateClient(ctx context.Context, c *Client) error {
	if c != nil && c.CreatedAt.IsZero() {
		c.CreatedAt = s.now()
	}
	r, err := encodeClient(c)
	if err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx,
		`INSERT INTO clients (`+postgresClientColumns+`) VALUES ($1, $2, $3, $4)`,
		r.args()...); err != nil {
		return translatePostgres("create client", err)
	}
	*c = *r.client()
	return nil
}

// ClientByID implements Store.
func (s *postgresStore) ClientByID(ctx context.Context, id string) (*Client, error) {
	c, err := scanClient(s.pool.QueryRow(ctx,
		`SELECT `+postgresClientColumns+` FROM clients WHERE id = $1`, id))
	return c, translatePostgres("client by id", err)
}

// ListClients implements Store. The column's "C" collation orders IDs by
// bytes, as SQLite does.
func (s *postgresStore) ListClients(ctx context.Context) ([]*Client, error) {
	const op = "list clients"
	rows, err := s.pool.Query(ctx, `SELECT `+postgresClientColumns+` FROM clients ORDER BY id`)
	if err != nil {
		return nil, translatePostgres(op, err)
	}
	defer rows.Close()
	clients := []*Client{}
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, translatePostgres(op, err)
		}
		clients = append(clients, c)
	}
	if err := rows.Err(); err != nil {
		return nil, translatePostgres(op, err)
	}
	return clients, nil
}

// DeleteClient implements Store. The client's token records stay until
// they expire; Service.DeleteClient revokes them first.
func (s *postgresStore) DeleteClient(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM clients WHERE id = $1`, id)
	return postgresOneRow("delete client", tag, err)
}

// Listen implements ChangeListener. It takes a connection out of the pool
// for good (it is closed, not returned, when Listen ends, so no other
// caller inherits its LISTEN), runs LISTEN on postgresChangesChannel and
// passes each notification's payload to fn. PostgreSQL delivers a
// notification only once its transaction commits, so fn never hears of a
// change it cannot yet read. Changes committed before LISTEN took effect
// are not reported: callers reload what they cache after Listen starts
// (or fails).
func (s *postgresStore) Listen(ctx context.Context, fn func(kind string)) error {
	const op = "listen"
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return translatePostgres(op, err)
	}
	conn := pc.Hijack()
	defer func() {
		// ctx may be done: closing gets a short grace of its own.
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, `LISTEN `+postgresChangesChannel); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return translatePostgres(op, err)
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return translatePostgres(op, err)
		}
		fn(n.Payload)
	}
}

// Ping implements Store.
func (s *postgresStore) Ping(ctx context.Context) error {
	return translatePostgres("ping", s.pool.Ping(ctx))
}

// Close implements Store. It waits for connections in use to be returned
// to the pool; a connection held by Listen is closed when its ctx is done.
func (s *postgresStore) Close() error {
	s.pool.Close()
	return nil
}

// upsertLoginAttempt creates a key's row or locks the existing one, and
// returns it, in one statement. ON CONFLICT DO UPDATE guarantees one of
// the two outcomes under concurrency: a separate INSERT … DO NOTHING then
// SELECT … FOR UPDATE finds no row when a concurrent success deletes it in
// between (the empty state of a cleared key).
const upsertLoginAttempt = `
	INSERT INTO login_attempts (key, failures, window_start, blocked_until, last_success, updated_at)
	VALUES ($1, 0, 0, 0, 0, $2)
	ON CONFLICT (key) DO UPDATE SET key = EXCLUDED.key
	RETURNING failures, window_start, blocked_until, last_success, updated_at`

// UpdateLoginAttempts implements Store. Each key's row is created or
// locked by upsertLoginAttempt, in key order, which serialises concurrent
// updaters of the same keys across replicas without deadlocks.
func (s *postgresStore) UpdateLoginAttempts(ctx context.Context, keys []string, fn func([]LoginAttempts) error) error {
	const op = "update login attempts"
	now := s.now()
	created, err := encodeTime(now)
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		order := slices.Clone(keys)
		slices.Sort(order)
		order = slices.Compact(order)
		rows := map[string]attemptRow{}
		for _, key := range order {
			var r attemptRow
			if err := tx.QueryRow(ctx, upsertLoginAttempt, key, created).
				Scan(&r.failures, &r.windowStart, &r.blockedUntil, &r.lastSuccess, &r.updated); err != nil {
				return err
			}
			rows[key] = r
		}
		states := make([]LoginAttempts, len(keys))
		for i, key := range keys {
			states[i] = rows[key].attempts(key)
		}
		if err := fn(states); err != nil {
			return &fnError{err}
		}
		for i := range states {
			a := &states[i]
			a.Key = keys[i]
			if a.empty() {
				if _, err := tx.Exec(ctx, `DELETE FROM login_attempts WHERE key = $1`, a.Key); err != nil {
					return err
				}
				continue
			}
			r, err := encodeAttempts(a, now)
			if err != nil {
				return &fnError{err}
			}
			if _, err := tx.Exec(ctx, `
				UPDATE login_attempts
				SET failures = $2, window_start = $3, blocked_until = $4, last_success = $5, updated_at = $6
				WHERE key = $1`,
				a.Key, r.failures, r.windowStart, r.blockedUntil, r.lastSuccess, r.updated); err != nil {
				return err
			}
		}
		return nil
	})
	var fe *fnError
	if errors.As(err, &fe) {
		return fe.err
	}
	return translatePostgres(op, err)
}

// fnError carries an updater's own error through pgx.BeginFunc unchanged.
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }

// PruneLoginAttempts implements Store.
func (s *postgresStore) PruneLoginAttempts(ctx context.Context, before time.Time) error {
	at, err := encodeTime(before)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, `DELETE FROM login_attempts WHERE updated_at < $1`, at)
	return translatePostgres("prune login attempts", err)
}
