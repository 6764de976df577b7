package sqlstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

// Advisory lock keys (pg_advisory_xact_lock). They are database-wide, not
// per schema: deployments in different schemas of one database only queue
// behind each other for the short sections they guard.
const (
	// postgresMigrateLock serialises migrations ("gatehous" in ASCII, the
	// key earlier versions take too).
	postgresMigrateLock int64 = 0x6761746568_6f7573
	// postgresKeysLock serialises EnsureSigningKey's creation of a missing
	// key ("gh:keys\x00").
	postgresKeysLock int64 = 0x67683a6b_65797300
	// postgresChangesLock is the change log's append lock ("gh:chang").
	postgresChangesLock int64 = 0x67683a63_68616e67
	// postgresHoldersLock serialises the user changes that must keep a
	// scope's last enabled holder ("gh:holdr").
	postgresHoldersLock int64 = 0x67683a68_6f6c6472
)

// postgresChannel is the NOTIFY channel Listen follows.
const postgresChannel = "gatehouse_changes"

// postgresFlavor is PostgreSQL through pgx's database/sql driver, at the
// default READ COMMITTED isolation: BEGIN locks nothing, so the bodies
// lock what they read (FOR UPDATE, FOR SHARE) and the flavor adds
// advisory locks where there is no row to lock yet (migrations, a missing
// signing key) and to order the change log by commit.
var postgresFlavor = &flavor{
	name:      "postgres",
	numbered:  true,
	replacers: []replacer{instrToStrpos, rowidToSeq},
	migrationsTable: `
		CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER NOT NULL PRIMARY KEY,
			name       TEXT    NOT NULL,
			applied_at BIGINT  NOT NULL
		)`,
	lockMigrations: fmt.Sprintf(`SELECT pg_advisory_xact_lock(%d)`, postgresMigrateLock),
	lockKeys:       fmt.Sprintf(`SELECT pg_advisory_xact_lock(%d)`, postgresKeysLock),
	lockChanges:    fmt.Sprintf(`SELECT pg_advisory_xact_lock(%d)`, postgresChangesLock),
	lockHolders:    fmt.Sprintf(`SELECT pg_advisory_xact_lock(%d)`, postgresHoldersLock),
	notify:         `SELECT pg_notify('` + postgresChannel + `', '')`,
	fault:          postgresFault,
	conflict:       postgresConflict,
	retryable:      postgresRetryable,
}

// pgStore is the PostgreSQL store: store, plus Listen on a connection of
// its own.
type pgStore struct {
	*store
	conn *pgx.ConnConfig
}

var (
	_ storage.Store    = (*pgStore)(nil)
	_ storage.Notifier = (*pgStore)(nil)
)

// OpenPostgres connects to the database dsn names (a postgres:// URL or a
// key=value string, as libpq accepts; pool_max_conns and the other pgxpool
// settings are honoured) and applies any pending migrations. The tables
// live in the first schema of the connection's search_path, which the DSN
// may set (…?search_path=gatehouse); the schema must exist. The store is
// a storage.Notifier.
func OpenPostgres(ctx context.Context, dsn string, opts Options) (storage.Store, error) {
	return openPostgres(ctx, dsn, opts, allMigrations)
}

func openPostgres(ctx context.Context, dsn string, opts Options, upTo int) (*pgStore, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's message quotes the DSN, redacting the password only on a
		// best-effort basis, and a malformed DSN is where that fails.
		return nil, errors.New("sqlstore: postgres: the DSN is not a valid PostgreSQL URL or key=value connection string")
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if opts.ConnectTimeout > 0 {
		cfg.ConnConfig.ConnectTimeout = opts.ConnectTimeout
	}
	db := stdlib.OpenDB(*cfg.ConnConfig)
	db.SetMaxOpenConns(int(cfg.MaxConns))
	db.SetMaxIdleConns(int(cfg.MaxConns))
	db.SetConnMaxLifetime(cfg.MaxConnLifetime)
	db.SetConnMaxIdleTime(cfg.MaxConnIdleTime)
	s := &pgStore{store: newStore(db, postgresFlavor, opts), conn: cfg.ConnConfig}
	where := cfg.ConnConfig.Host + "/" + cfg.ConnConfig.Database
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, s.fail(ctx, "open "+where, err)
	}
	if err := s.migrate(ctx, "postgres", upTo); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// IsPermanentOpenError reports whether err, from OpenPostgres, is one that
// no retry cures: the server refused the login (SQLSTATE class 28: a wrong
// password, a role that does not exist or may not log in, pg_hba) or the
// database does not exist (3D000), or Options.MustExist found no store
// there (ErrNoStore). A server still starting, unreachable
// or out of connections is worth waiting for; these are not.
func IsPermanentOpenError(err error) bool {
	if errors.Is(err, ErrNoStore) {
		return true
	}
	var pg *pgconn.PgError
	if !errors.As(err, &pg) {
		return false
	}
	return strings.HasPrefix(pg.Code, "28") || pg.Code == "3D000"
}

// Listen implements storage.Notifier on a connection of its own, outside
// the pool (a pooled one would pass its LISTEN on to the next borrower).
// PostgreSQL delivers a notification once its transaction commits, so wake
// never runs before the entries can be read. Entries committed before
// LISTEN took effect are not announced: callers read the log after Listen
// starts, or after it fails.
func (s *pgStore) Listen(ctx context.Context, wake func()) error {
	const op = "listen"
	conn, err := pgx.ConnectConfig(ctx, s.conn)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return s.fail(ctx, op, err)
	}
	defer func() {
		// ctx may be done: closing gets a short grace of its own.
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, `LISTEN `+postgresChannel); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return s.fail(ctx, op, err)
	}
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return s.fail(ctx, op, err)
		}
		wake()
	}
}

// postgresFault classifies SQLSTATEs and connection failures.
func postgresFault(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch c := pe.Code; {
		case strings.HasPrefix(c, "08"), // connection exception
			c == "57P01", c == "57P02", c == "57P03", // admin or crash shutdown, cannot connect now
			c == "53300": // too_many_connections: no connection to be had
			return storage.ErrUnavailable
		case strings.HasPrefix(c, "53"): // disk_full, out of memory, …
			return storage.ErrFull
		case c == "25006": // read_only_sql_transaction: a hot standby
			return storage.ErrReadOnly
		case c == "40001", c == "40P01", c == "55P03": // after retries; lock_not_available
			return storage.ErrBusy
		case c == "57014": // query_canceled: statement_timeout
			return storage.ErrTimeout
		}
		// Anything else the server said (bad password, no such
		// database) is a plain failure: waiting will not fix it.
		return nil
	}
	var (
		ce *pgconn.ConnectError
		oe *net.OpError
	)
	if errors.As(err, &ce) || errors.As(err, &oe) ||
		errors.Is(err, driver.ErrBadConn) || errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) {
		return storage.ErrUnavailable
	}
	return nil
}

// postgresConflicts names the unique constraints the bodies map to
// sentinels (postgres/0001 names them).
var postgresConflicts = map[string]string{
	"users_username_key": "users.username",
	"clients_pkey":       "clients.id",
}

func postgresConflict(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return postgresConflicts[pe.ConstraintName]
	}
	return ""
}

// postgresRetryable: PostgreSQL chose the transaction as a deadlock victim
// or could not serialise it; run again, it may well pass.
func postgresRetryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}
