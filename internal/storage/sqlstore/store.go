package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// Options tunes a store. The zero value is the defaults.
type Options struct {
	// ChangeRetention is how long ChangeSession, ChangeUser and ChangeKeys
	// entries are kept (ExpiresAt = At + ChangeRetention): at least the
	// lifetime of an access token, so a process that starts late still
	// learns of every revocation that concerns a live one. 0 is an hour.
	// ChangeToken entries expire with their token.
	ChangeRetention time.Duration
	// MaxConns bounds the connection pool; 0 is the engine's default
	// (SQLite: 8; PostgreSQL: the DSN's pool_max_conns, else the larger of
	// 4 and the CPU count). Listen's connection is not counted.
	MaxConns int32
	// ConnectTimeout bounds establishing each PostgreSQL connection; 0
	// keeps the DSN's connect_timeout. SQLite ignores it.
	ConnectTimeout time.Duration
	// Now is the store's clock; nil is time.Now.
	Now func() time.Time
	// MustExist opens only a store that exists: a database without
	// gatehouse's schema (or, on SQLite, no file) is ErrNoStore instead of
	// being created. For the CLI, where a mistyped URL would otherwise get
	// an empty store of its own.
	MustExist bool
}

// ErrNoStore: Options.MustExist and there is no store at the address.
var ErrNoStore = errors.New("sqlstore: no gatehouse store there")

const defaultChangeRetention = time.Hour

func (o Options) check() error {
	switch {
	case o.ChangeRetention < 0:
		return fmt.Errorf("sqlstore: ChangeRetention %s is negative", o.ChangeRetention)
	case o.MaxConns < 0:
		return fmt.Errorf("sqlstore: MaxConns %d is negative", o.MaxConns)
	case o.ConnectTimeout < 0:
		return fmt.Errorf("sqlstore: ConnectTimeout %s is negative", o.ConnectTimeout)
	}
	return nil
}

// maxAttempts bounds how often a transaction the engine aborted as
// retryable (flavor.retryable) runs again.
const maxAttempts = 5

// store is storage.Store on a database/sql pool, for either engine.
//
// Reads run on the pool outside transactions. Writes run in a
// transaction (write) whose body reads what it changes with FOR UPDATE or
// FOR SHARE; on PostgreSQL (READ COMMITTED) those take row locks, and on
// SQLite they are dropped, since BEGIN IMMEDIATE took the database's one
// write lock before the first statement. The locks are taken in one order
// everywhere, user row before session rows before the change-log lock,
// so concurrent writers queue instead of deadlocking; multi-row UPDATEs
// of sessions still can deadlock with each other on PostgreSQL, and the
// victim runs again.
type store struct {
	db        *sql.DB
	f         *flavor
	now       func() time.Time
	retention time.Duration
	// gate queues this store's writers when the flavor has serialWrites,
	// and queue holds the writes waiting to join a turn (batch.go).
	gate  chan struct{}
	qmu   sync.Mutex
	queue []*writeReq
	// testHookQueued, when set, runs after a write joined the queue.
	testHookQueued func()
	// mustExist: Options.MustExist.
	mustExist bool
}

var _ storage.Store = (*store)(nil)

func newStore(db *sql.DB, f *flavor, opts Options) *store {
	s := &store{db: db, f: f, now: opts.Now, retention: opts.ChangeRetention, mustExist: opts.MustExist}
	if s.now == nil {
		s.now = time.Now
	}
	if s.retention == 0 {
		s.retention = defaultChangeRetention
	}
	if f.serialWrites {
		s.gate = make(chan struct{}, 1)
	}
	return s
}

func (s *store) fail(ctx context.Context, op string, err error) error {
	return classify(s.f, ctx, op, err)
}

// enter waits for this store's turn to write (flavor.serialWrites): a
// channel queue, so every writer gets its turn and a deadline ends the
// wait. leave ends the turn.
func (s *store) enter(ctx context.Context) error {
	if s.gate == nil {
		return nil
	}
	select {
	case s.gate <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *store) leave() {
	if s.gate != nil {
		<-s.gate
	}
}

// txn is a write transaction: statements in the flavor's dialect, and the
// change-log entries to append when the body is done.
type txn struct {
	tx *sql.Tx
	s  *store
	// ctx is the context of the transaction's statements.
	ctx     context.Context
	changes []pending
}

// pending is a change-log entry a transaction appends at its end.
type pending struct {
	kind, subject string
	at, exp       time.Time
}

func (t *txn) exec(query string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(t.ctx, t.s.f.q(query), args...)
}

func (t *txn) queryRow(query string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(t.ctx, t.s.f.q(query), args...)
}

func (t *txn) query(query string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(t.ctx, t.s.f.q(query), args...)
}

// record queues a change-log entry of kind about subject, made at at. It
// expires at exp when given, else after the store's ChangeRetention.
func (t *txn) record(kind, subject string, at time.Time, exp ...time.Time) {
	p := pending{kind: kind, subject: subject, at: at, exp: at.Add(t.s.retention)}
	if len(exp) > 0 {
		p.exp = exp[0]
	}
	t.changes = append(t.changes, p)
}

// write runs body in a transaction and commits it when body returns nil,
// appending the entries body recorded as the transaction's last
// statements. An updater's error (fnErr) is returned unchanged; a
// retryable failure runs the whole transaction again, so body must only
// depend on what it reads. Other errors are classified for op. Writers
// that take turns share transactions (batch.go).
func (s *store) write(ctx context.Context, op string, body func(t *txn) error) error {
	var err error
	if s.gate == nil {
		err = s.run(ctx, body)
	} else {
		err = s.batched(ctx, body)
	}
	var fe *fnError
	if errors.As(err, &fe) {
		return fe.err
	}
	return s.fail(ctx, op, err)
}

// run runs body in a transaction of its own, again while the failure is
// retryable.
func (s *store) run(ctx context.Context, body func(t *txn) error) error {
	for attempt := 1; ; attempt++ {
		begun, err := s.attempt(ctx, body)
		var fe *fnError
		if err == nil || errors.As(err, &fe) {
			return err
		}
		if attempt < maxAttempts && ctx.Err() == nil &&
			(s.f.retryable(err) || !begun && attempt == 1 && errors.Is(s.f.fault(err), storage.ErrUnavailable)) {
			// A BEGIN that failed on a lost connection started nothing:
			// the pool has dropped that connection, try one more.
			continue
		}
		return err
	}
}

// attempt runs body once; begun reports whether the transaction started.
func (s *store) attempt(ctx context.Context, body func(t *txn) error) (begun bool, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	t := &txn{tx: tx, s: s, ctx: ctx}
	if err := body(t); err != nil {
		tx.Rollback()
		return true, err
	}
	if err := t.appendChanges(); err != nil {
		tx.Rollback()
		return true, err
	}
	return true, tx.Commit()
}

// execOne runs one write statement outside a transaction (it is atomic on
// its own), in this store's turn.
func (s *store) execOne(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.leave()
	return s.db.ExecContext(ctx, s.f.q(query), args...)
}

func (s *store) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return s.db.QueryRowContext(ctx, s.f.q(query), args...)
}

// queryAll runs a read and returns its rows read by scan, never nil.
func queryAll[T any](ctx context.Context, s *store, scan func(rowScanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := s.db.QueryContext(ctx, s.f.q(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// oneRow turns the result of a statement meant to change one row into an
// error: ErrNotFound when it changed none.
func oneRow(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return storage.ErrNotFound
	}
	return nil
}

// Ping implements storage.Store. It rewrites the heartbeat row, so a store
// that cannot take writes (read-only, full, a standby) fails it.
func (s *store) Ping(ctx context.Context) error {
	at, err := encodeTime(s.now())
	if err != nil {
		return err
	}
	_, err = s.execOne(ctx, `
		INSERT INTO store_heartbeat (id, at) VALUES (1, ?)
		ON CONFLICT (id) DO UPDATE SET at = EXCLUDED.at`, at)
	return s.fail(ctx, "ping", err)
}

// Close implements storage.Store.
func (s *store) Close() error { return s.db.Close() }
