package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFiles embed.FS

// migration is one migrations/<engine>/NNNN_description.sql file. The
// same number is the same change on both engines (from 0004 on).
type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads an engine's migrations in version order.
func loadMigrations(engine string) ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/"+engine+"/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, name := range names {
		base := path.Base(name)
		prefix, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(prefix)
		if !ok || err != nil || v < 1 {
			return nil, fmt.Errorf("sqlstore: %s: migration %s: the name must be NNNN_description.sql", engine, base)
		}
		b, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(b)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("sqlstore: %s: migrations %s and %s share version %d", engine, ms[i-1].name, ms[i].name, ms[i].version)
		}
	}
	return ms, nil
}

// allMigrations, as upTo, applies every migration.
const allMigrations = 0

// migrate applies the engine's migrations (up to version upTo, unless it
// is allMigrations) not yet recorded in schema_migrations, in one write
// transaction: SQLite's BEGIN IMMEDIATE or PostgreSQL's advisory lock
// make concurrent openers, in other processes too, take turns, and the
// second finds them recorded. DDL is transactional on both engines, so a
// failed migration leaves the schema as it was. A store that is up to
// date is only read, so a read-only one opens.
func (s *store) migrate(ctx context.Context, engine string, upTo int) error {
	ms, err := loadMigrations(engine)
	if err != nil {
		return err
	}
	latest := ms[len(ms)-1].version
	want := ms
	if upTo != allMigrations {
		want = slices.DeleteFunc(slices.Clone(ms), func(m migration) bool { return m.version > upTo })
	}
	// pending returns the migrations of want that applied lacks, or an
	// error for a schema newer than this program.
	pending := func(applied map[int]bool) ([]migration, error) {
		for v := range applied {
			if v > latest {
				// A downgrade: refuse rather than run old code against
				// tables it does not know.
				return nil, fmt.Errorf("sqlstore: %s: the database schema version %d is newer than this program supports (%d)", s.f.name, v, latest)
			}
		}
		return slices.DeleteFunc(slices.Clone(want), func(m migration) bool { return applied[m.version] }), nil
	}

	// Fails when there is no schema_migrations yet: then write.
	applied, err := s.appliedMigrations(ctx)
	if err == nil {
		todo, err := pending(applied)
		if err != nil || len(todo) == 0 {
			return err
		}
	}
	if s.mustExist && len(applied) == 0 {
		return ErrNoStore
	}
	return s.write(ctx, "migrate", func(t *txn) error {
		if l := s.f.lockMigrations; l != "" {
			if _, err := t.tx.ExecContext(t.ctx, l); err != nil {
				return err
			}
		}
		if _, err := t.tx.ExecContext(t.ctx, s.f.migrationsTable); err != nil {
			return err
		}
		applied, err := readApplied(t.query(`SELECT version FROM schema_migrations`))
		if err != nil {
			return err
		}
		todo, err := pending(applied)
		if err != nil {
			return err
		}
		for _, m := range todo {
			// Without arguments both drivers run every statement of the
			// file (pgx: the simple query protocol).
			if _, err := t.tx.ExecContext(t.ctx, m.sql); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
			if _, err := t.exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.version, m.name, s.now().UnixNano()); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
		}
		return nil
	})
}

func (s *store) appliedMigrations(ctx context.Context) (map[int]bool, error) {
	return readApplied(s.db.QueryContext(ctx, `SELECT version FROM schema_migrations`))
}

// readApplied reads the versions a query of schema_migrations returns.
func readApplied(rows *sql.Rows, err error) (map[int]bool, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	applied := map[int]bool{}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		applied[v] = true
	}
	return applied, rows.Err()
}
