package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// sqliteMaxConns is the default pool size: readers run in parallel in WAL
// mode, writers take turns, and each connection has its own page cache,
// so a login flood queues here rather than opening one per request. No
// method needs a second connection while it holds one.
const sqliteMaxConns = 8

// sqliteBusyTimeout is how long a connection waits for another process's
// writer before SQLITE_BUSY (this store's own writers queue on its gate).
const sqliteBusyTimeout = 5 * time.Second

// sqliteFlavor is SQLite through the pure-Go modernc.org/sqlite driver.
// The bodies are SQLite's dialect already; only the row-lock clauses go,
// since every write transaction begins with BEGIN IMMEDIATE (the DSN's
// _txlock) and so holds the database's one write lock from its first
// statement: a read-modify-write cannot lose an update, also across
// processes, and two writers queue instead of one failing at its first
// write. One writer at a time also orders the change log by commit.
var sqliteFlavor = &flavor{
	name:      "sqlite",
	replacers: []replacer{stripRowLocks},
	migrationsTable: `
		CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER NOT NULL PRIMARY KEY,
			name       TEXT    NOT NULL,
			applied_at INTEGER NOT NULL
		) STRICT`,
	serialWrites: true,
	fault:        sqliteFault,
	conflict:     sqliteConflict,
	retryable:    func(error) bool { return false },
}

// sqliteTuning is what tests change of an SQLite store.
type sqliteTuning struct {
	busyTimeout time.Duration // 0: sqliteBusyTimeout
	queryOnly   bool          // PRAGMA query_only: the store refuses writes
	upTo        int           // migrate up to this version (allMigrations)
}

// OpenSQLite opens the SQLite database at path, creating it and its
// directory when missing, and applies any pending migrations. path is a
// file name, not a URI. Options.ConnectTimeout is ignored.
func OpenSQLite(ctx context.Context, path string, opts Options) (storage.Store, error) {
	return openSQLite(ctx, path, opts, sqliteTuning{})
}

func openSQLite(ctx context.Context, path string, opts Options, tune sqliteTuning) (*store, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	if path == "" {
		return nil, errors.New("sqlstore: sqlite: empty database path")
	}
	// The driver splits its DSN at the first '?': one in the file name
	// would start the parameters.
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("sqlstore: sqlite: database path %q must not contain '?'", path)
	}
	if opts.MustExist {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, ErrNoStore
		}
	}
	// The file holds password hashes and signing keys: owner only. A new
	// directory is 0700; a new file is created 0600 here, before the
	// driver, and SQLite gives its -wal and -shm files the database
	// file's mode. An existing file keeps the mode its owner chose.
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlstore: sqlite: %w", err)
	}
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("sqlstore: sqlite: %w", err)
	}
	if tune.busyTimeout == 0 {
		tune.busyTimeout = sqliteBusyTimeout
	}
	base, err := sqlite.NewConnector(sqliteDSN(path, tune))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: sqlite: open %s: %w", path, err)
	}
	db := sql.OpenDB(sqliteConnector{base})
	n := int(opts.MaxConns)
	if n == 0 {
		n = sqliteMaxConns
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	s := newStore(db, sqliteFlavor, opts)
	if err := pingSQLite(ctx, db, tune.busyTimeout); err != nil {
		db.Close()
		return nil, s.fail(ctx, "open "+path, err)
	}
	if err := s.migrate(ctx, "sqlite", tune.upTo); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// sqliteDSN is the driver's data source name for the file at path: the
// pragmas every connection runs, and BEGIN IMMEDIATE for BeginTx.
func sqliteDSN(path string, tune sqliteTuning) string {
	q := url.Values{}
	// busy_timeout first: switching to WAL needs a lock another opener
	// may hold.
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", tune.busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	// synchronous NORMAL, SQLite's recommendation for WAL: a commit
	// appends to the WAL without an fsync; the WAL is synced before each
	// checkpoint. The database stays consistent whatever crashes, and a
	// crash of this process loses nothing committed (the OS holds the
	// writes). An OS crash or power loss may roll back the commits the OS
	// had not yet written: a refresh's rotation (the client's new refresh
	// token is then unknown, and it logs in again), but as well a
	// revocation, a password change or a new account. FULL, the default,
	// syncs every commit, which was most of a refresh's time.
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	if tune.queryOnly {
		q.Set("_query_only", "1")
	}
	return path + "?" + q.Encode()
}

// pingSQLite opens the first connection, retrying SQLITE_BUSY until the
// busy timeout. Its journal_mode(WAL) pragma turns a new file into a WAL
// database, which upgrades a shared lock to an exclusive one; when two
// processes do that at once SQLite fails one of them with SQLITE_BUSY
// straight away instead of calling the busy handler (waiting could
// deadlock), so the retry is ours to do. Once the file is in WAL mode the
// pragma takes no such lock.
func pingSQLite(ctx context.Context, db *sql.DB, busyTimeout time.Duration) error {
	deadline := time.Now().Add(busyTimeout)
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

// sqliteCode returns the extended SQLite result code of err, or 0.
func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

// sqliteFault classifies SQLite's primary result codes.
func sqliteFault(err error) error {
	switch sqliteCode(err) & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		// The lock stayed taken past the busy timeout.
		return storage.ErrBusy
	case sqlite3.SQLITE_FULL:
		return storage.ErrFull
	case sqlite3.SQLITE_READONLY:
		return storage.ErrReadOnly
	case sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN:
		return storage.ErrUnavailable
	}
	return nil
}

// sqliteConflict reads "table.column" from a unique or primary-key
// violation, which SQLite reports as "UNIQUE constraint failed: t.c".
func sqliteConflict(err error) string {
	if c := sqliteCode(err); c != sqlite3.SQLITE_CONSTRAINT_UNIQUE && c != sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY {
		return ""
	}
	const marker = "constraint failed: "
	msg := err.Error()
	i := strings.LastIndex(msg, marker)
	if i < 0 {
		return ""
	}
	col := msg[i+len(marker):]
	if j := strings.IndexAny(col, " ,"); j >= 0 {
		col = col[:j]
	}
	return col
}

// BackupSQLite writes a consistent copy of the SQLite store at path to
// dest with VACUUM INTO: one read transaction's snapshot, so servers may
// go on using the store meanwhile. dest must not exist; it is created
// owner-only, as the store is (it holds password hashes and signing
// keys). The copy is a complete store: restoring is putting it in
// place of the store while no server runs.
func BackupSQLite(ctx context.Context, path, dest string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("sqlstore: sqlite: backup: %w", err)
	}
	f, err := os.OpenFile(dest, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("sqlstore: sqlite: backup: %w", err)
	}
	f.Close()
	done := false
	defer func() {
		if !done {
			os.Remove(dest)
		}
	}()
	base, err := sqlite.NewConnector(sqliteDSN(path, sqliteTuning{busyTimeout: sqliteBusyTimeout}))
	if err != nil {
		return fmt.Errorf("sqlstore: sqlite: backup: %w", err)
	}
	db := sql.OpenDB(base)
	defer db.Close()
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", dest); err != nil {
		return fmt.Errorf("sqlstore: sqlite: backup %s to %s: %w", path, dest, err)
	}
	done = true
	return nil
}
