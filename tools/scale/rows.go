package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"
)

// rowCounter counts rows in the server's store beside it: the storage
// contract has no row counts, and this is what the issue asks for.
type rowCounter struct {
	db *sql.DB
	// ph is the flavor's first placeholder.
	ph string
}

// openSQLiteRows opens the SQLite file at path read-only.
func openSQLiteRows(path string) (*rowCounter, error) {
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", "busy_timeout(5000)")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return &rowCounter{db: db, ph: "?"}, nil
}

// openPostgresRows opens the PostgreSQL database dsn names (its
// search_path names the store's schema).
func openPostgresRows(dsn string) (*rowCounter, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return &rowCounter{db: db, ph: "$1"}, nil
}

func (r *rowCounter) sessionsOf(ctx context.Context, userID string) (int64, error) {
	var n int64
	err := r.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sessions WHERE user_id = `+r.ph, userID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting the probe's sessions: %w", err)
	}
	return n, nil
}

func (r *rowCounter) totals(ctx context.Context) (sessions, changes int64, err error) {
	if err := r.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sessions`).Scan(&sessions); err != nil {
		return 0, 0, fmt.Errorf("counting sessions: %w", err)
	}
	if err := r.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM changes`).Scan(&changes); err != nil {
		return 0, 0, fmt.Errorf("counting the change log: %w", err)
	}
	return sessions, changes, nil
}

func (r *rowCounter) Close() error { return r.db.Close() }
