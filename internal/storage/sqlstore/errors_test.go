package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"

	"github.com/gatehouse/gatehouse/internal/storage"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestClassify_the_store_boundary(t *testing.T) {
	live := context.Background()
	expired, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	cancelled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	driverErr := errors.New("driver says no")
	tests := []struct {
		name    string
		ctx     context.Context
		err     error
		want    []error // errors.Is must hold for each
		wantNot []error
		same    bool // the error itself is returned
	}{
		{"no_rows_is_ErrNotFound", live, fmt.Errorf("scan: %w", sql.ErrNoRows), []error{storage.ErrNotFound}, nil, false},
		{"an_answer_passes_unchanged", live, storage.ErrGrantStale, []error{storage.ErrGrantStale}, nil, true},
		{"the_callers_deadline_is_ErrTimeout", expired, driverErr, []error{storage.ErrTimeout, driverErr}, nil, false},
		{"a_deadline_error_is_ErrTimeout", live, fmt.Errorf("x: %w", context.DeadlineExceeded), []error{storage.ErrTimeout}, nil, false},
		{"a_cancelled_caller_stays_cancelled", cancelled, driverErr, []error{context.Canceled, driverErr}, []error{storage.ErrTimeout}, false},
		{"a_fault_is_its_sentinel", live, &pgconn.PgError{Code: "25006"}, []error{storage.ErrReadOnly}, nil, false},
		{"a_plain_failure_is_no_fault", live, driverErr, []error{driverErr}, []error{storage.ErrUnavailable, storage.ErrTimeout, storage.ErrFull, storage.ErrBusy, storage.ErrReadOnly}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := classify(postgresFlavor, tt.ctx, "update user", tt.err)
			if tt.same && got != tt.err {
				t.Errorf("classify(%v) = %v, want it unchanged", tt.err, got)
			}
			for _, w := range tt.want {
				if !errors.Is(got, w) {
					t.Errorf("classify(%v) = %v, want it to match %v", tt.err, got, w)
				}
			}
			for _, w := range tt.wantNot {
				if errors.Is(got, w) {
					t.Errorf("classify(%v) = %v, want it not to match %v", tt.err, got, w)
				}
			}
		})
	}
	if got := classify(postgresFlavor, live, "op", nil); got != nil {
		t.Errorf("classify(nil) = %v", got)
	}
	if got := classify(sqliteFlavor, live, "update user", driverErr).Error(); got != "sqlstore: sqlite: update user: driver says no" {
		t.Errorf("message %q, want the engine and op named", got)
	}
}
