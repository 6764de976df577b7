package sqlstore

import (
	"context"
	"database/sql/driver"
	"errors"
)

// SQLite's prepared statements, kept per connection. modernc.org/sqlite
// compiles every query database/sql hands a connection again, which costs
// more than running it for the short statements of this store; pgx keeps
// a statement cache of its own per connection (QueryExecModeCacheStatement,
// its default). sqliteConnector gives each SQLite connection the same: a
// statement is compiled on its first use on the connection and reset
// after each run. The bodies are constants, so the cache stays small;
// maxCachedStmts bounds it all the same.
const maxCachedStmts = 128

// sqliteConnector opens the driver's connections with a statement cache
// each (the driver's NewConnector documents the wrapping).
type sqliteConnector struct{ driver.Connector }

// Connect implements driver.Connector.
func (c sqliteConnector) Connect(ctx context.Context) (driver.Conn, error) {
	dc, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	conn, ok := dc.(sqliteDriverConn)
	if !ok {
		dc.Close()
		return nil, errors.New("sqlstore: sqlite: the driver's connection lacks an interface database/sql needs")
	}
	return &sqliteConn{sqliteDriverConn: conn, stmts: make(map[string]*cachedStmt)}, nil
}

// sqliteDriverConn is what every connection of the driver implements and
// database/sql uses: a wrapper must pass all of it on.
type sqliteDriverConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// sqliteStmt is the driver's prepared statement.
type sqliteStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

// sqliteRows is the driver's result set.
type sqliteRows interface {
	driver.Rows
	driver.RowsColumnTypeDatabaseTypeName
	driver.RowsColumnTypeLength
	driver.RowsColumnTypeNullable
	driver.RowsColumnTypePrecisionScale
	driver.RowsColumnTypeScanType
}

// sqliteConn is a driver connection with its statement cache. database/sql
// uses a connection from one goroutine at a time, rows and statements
// included, so the cache needs no lock.
type sqliteConn struct {
	sqliteDriverConn
	stmts map[string]*cachedStmt
	// prepared counts the statements compiled for the cache (tests).
	prepared int
}

// cachedStmt is a statement of the cache; open while rows of it are being
// read, when the same query meanwhile runs uncached.
type cachedStmt struct {
	stmt sqliteStmt
	open bool
}

// Unwrap returns the driver's connection (the driver's Limit sees through
// a wrapper this way).
func (c *sqliteConn) Unwrap() driver.Conn { return c.sqliteDriverConn }

// stmt returns the cached statement of query, compiling it on first use;
// nil when it is in use or the cache is full (then query runs uncached).
func (c *sqliteConn) stmt(ctx context.Context, query string) (*cachedStmt, error) {
	if s, ok := c.stmts[query]; ok {
		if s.open {
			return nil, nil
		}
		return s, nil
	}
	if len(c.stmts) >= maxCachedStmts {
		return nil, nil
	}
	ds, err := c.sqliteDriverConn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	st, ok := ds.(sqliteStmt)
	if !ok {
		ds.Close()
		return nil, nil
	}
	s := &cachedStmt{stmt: st}
	c.stmts[query] = s
	c.prepared++
	return s, nil
}

// ExecContext implements driver.ExecerContext.
func (c *sqliteConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	s, err := c.stmt(ctx, query)
	switch {
	case err != nil:
		return nil, err
	case s == nil:
		return c.sqliteDriverConn.ExecContext(ctx, query, args)
	}
	return s.stmt.ExecContext(ctx, args)
}

// QueryContext implements driver.QueryerContext.
func (c *sqliteConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	s, err := c.stmt(ctx, query)
	switch {
	case err != nil:
		return nil, err
	case s == nil:
		return c.sqliteDriverConn.QueryContext(ctx, query, args)
	}
	dr, err := s.stmt.QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	r, ok := dr.(sqliteRows)
	if !ok {
		dr.Close()
		return nil, errors.New("sqlstore: sqlite: the driver's rows lack an interface database/sql uses")
	}
	s.open = true
	return &cachedRows{sqliteRows: r, s: s}, nil
}

// Close implements driver.Conn: the statements first, which the
// connection cannot close without.
func (c *sqliteConn) Close() error {
	var errs []error
	for q, s := range c.stmts {
		errs = append(errs, s.stmt.Close())
		delete(c.stmts, q)
	}
	errs = append(errs, c.sqliteDriverConn.Close())
	return errors.Join(errs...)
}

// cachedRows are rows of a cached statement; closing them (which resets
// the statement) frees the statement for the next use.
type cachedRows struct {
	sqliteRows
	s *cachedStmt
}

func (r *cachedRows) Close() error {
	err := r.sqliteRows.Close()
	r.s.open = false
	return err
}
