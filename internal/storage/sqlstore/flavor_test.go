package sqlstore

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/gatehouse/gatehouse/internal/storage"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestFlavor_translate(t *testing.T) {
	tests := []struct {
		name  string
		f     *flavor
		query string
		want  string
	}{
		{"postgres_numbers_placeholders_in_order", postgresFlavor,
			`SELECT a FROM t WHERE b = ? AND c > ? LIMIT ?`,
			`SELECT a FROM t WHERE b = $1 AND c > $2 LIMIT $3`},
		{"postgres_goes_past_nine", postgresFlavor,
			`VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			`VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`},
		{"postgres_leaves_a_question_mark_in_a_string_literal", postgresFlavor,
			`SELECT 'why?', ? FROM t WHERE a = 'it''s ?' AND b = ?`,
			`SELECT 'why?', $1 FROM t WHERE a = 'it''s ?' AND b = $2`},
		{"postgres_leaves_a_question_mark_in_a_quoted_identifier", postgresFlavor,
			`SELECT "odd?name" FROM t WHERE a = ?`,
			`SELECT "odd?name" FROM t WHERE a = $1`},
		{"postgres_leaves_a_question_mark_in_comments", postgresFlavor,
			"-- who?\nSELECT /* what? */ ? -- why?",
			"-- who?\nSELECT /* what? */ $1 -- why?"},
		{"postgres_copies_an_unterminated_literal_as_is", postgresFlavor,
			`SELECT ? WHERE a = 'open?`,
			`SELECT $1 WHERE a = 'open?`},
		{"postgres_keeps_row_locks", postgresFlavor,
			`SELECT id FROM users WHERE username = ? FOR UPDATE`,
			`SELECT id FROM users WHERE username = $1 FOR UPDATE`},
		{"postgres_instr_is_strpos", postgresFlavor,
			`SELECT count(*) FROM users WHERE instr(' ' || scopes || ' ', ?) > 0`,
			`SELECT count(*) FROM users WHERE strpos(' ' || scopes || ' ', $1) > 0`},
		{"postgres_rowid_is_the_seq_column", postgresFlavor,
			`SELECT id FROM signing_keys ORDER BY created_at DESC, rowid DESC`,
			`SELECT id FROM signing_keys ORDER BY created_at DESC, seq DESC`},
		{"postgres_upsert_is_the_same", postgresFlavor,
			lockAttempt, `
	INSERT INTO login_attempts (key, failures, window_start, blocked_until, last_success, updated_at)
	VALUES ($1, 0, 0, 0, 0, $2)
	ON CONFLICT (key) DO UPDATE SET key = EXCLUDED.key
	RETURNING ` + attemptColumns},
		{"sqlite_keeps_question_marks", sqliteFlavor,
			`SELECT a FROM t WHERE b = ? AND c > ?`,
			`SELECT a FROM t WHERE b = ? AND c > ?`},
		{"sqlite_drops_for_update", sqliteFlavor,
			`SELECT id FROM users WHERE username = ? FOR UPDATE`,
			`SELECT id FROM users WHERE username = ?`},
		{"sqlite_drops_for_share_across_lines", sqliteFlavor,
			"SELECT token_epoch FROM users WHERE id = (SELECT user_id FROM sessions WHERE id = ?)\n\t\tFOR SHARE\n",
			"SELECT token_epoch FROM users WHERE id = (SELECT user_id FROM sessions WHERE id = ?)"},
		{"sqlite_keeps_instr_and_rowid", sqliteFlavor,
			`SELECT instr(a, ?) FROM signing_keys ORDER BY rowid DESC`,
			`SELECT instr(a, ?) FROM signing_keys ORDER BY rowid DESC`},
		{"sqlite_keeps_a_for_update_that_ends_no_query", sqliteFlavor,
			`SELECT 'FOR UPDATE' AS x`,
			`SELECT 'FOR UPDATE' AS x`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.f.translate(tt.query); got != tt.want {
				t.Errorf("%s.translate(%q)\n got %q\nwant %q", tt.f.name, tt.query, got, tt.want)
			}
			if got := tt.f.q(tt.query); got != tt.want {
				t.Errorf("%s.q(%q) (cached) = %q, want %q", tt.f.name, tt.query, got, tt.want)
			}
		})
	}
}

// Every statement the flavors add themselves is already in their dialect.
func TestFlavor_own_statements_have_no_placeholders(t *testing.T) {
	for _, f := range []*flavor{sqliteFlavor, postgresFlavor} {
		for _, q := range []string{f.migrationsTable, f.lockMigrations, f.lockKeys, f.lockChanges, f.lockHolders, f.notify} {
			if numberPlaceholders(q) != q {
				t.Errorf("%s: %q has a placeholder; the flavor runs it untranslated", f.name, q)
			}
		}
	}
}

func TestPostgresFault_classifies_sqlstates_and_connection_failures(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("exec: %w", &pgconn.PgError{Code: code}) }
	tests := []struct {
		name string
		err  error
		want error // nil: no fault
	}{
		{"connection_exception_08006", pg("08006"), storage.ErrUnavailable},
		{"admin_shutdown_57P01", pg("57P01"), storage.ErrUnavailable},
		{"crash_shutdown_57P02", pg("57P02"), storage.ErrUnavailable},
		{"cannot_connect_now_57P03", pg("57P03"), storage.ErrUnavailable},
		{"too_many_connections_53300", pg("53300"), storage.ErrUnavailable},
		{"disk_full_53100", pg("53100"), storage.ErrFull},
		{"out_of_memory_53200", pg("53200"), storage.ErrFull},
		{"read_only_sql_transaction_25006", pg("25006"), storage.ErrReadOnly},
		{"serialization_failure_40001", pg("40001"), storage.ErrBusy},
		{"deadlock_detected_40P01", pg("40P01"), storage.ErrBusy},
		{"lock_not_available_55P03", pg("55P03"), storage.ErrBusy},
		{"statement_timeout_57014", pg("57014"), storage.ErrTimeout},
		{"unique_violation_is_no_fault", pg("23505"), nil},
		{"bad_password_is_no_fault_28P01", pg("28P01"), nil},
		{"lost_connection_unexpected_eof", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), storage.ErrUnavailable},
		{"lost_connection_eof", fmt.Errorf("read: %w", io.EOF), storage.ErrUnavailable},
		{"dial_refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, storage.ErrUnavailable},
		{"bad_conn", driver.ErrBadConn, storage.ErrUnavailable},
		// pgx's own word for a connection cut under a transaction, from
		// BeginTx or Commit (found by the fault run).
		{"conn_closed", fmt.Errorf("commit: %w", pgconn.ErrConnClosed), storage.ErrUnavailable},
		{"plain_error", errors.New("something else"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := postgresFault(tt.err); got != tt.want {
				t.Errorf("postgresFault(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
