package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// answers are the sentinels a body returns as its result rather than as a
// failure: they pass the boundary unchanged.
var answers = []error{storage.ErrNotFound, storage.ErrUsernameTaken, storage.ErrClientExists, storage.ErrGrantStale}

// classify is the boundary between the driver and the contract: it turns
// err, which the operation op (a phrase: "update user") met under ctx,
// into what the store returns. No rows is ErrNotFound; an answer passes
// through; a deadline is ErrTimeout and a cancellation stays
// context.Canceled; a fault the flavor recognises matches its sentinel.
// Everything but an answer keeps the driver error (errors.As reaches it)
// and names the engine and op.
func classify(f *flavor, ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return storage.ErrNotFound
	}
	for _, a := range answers {
		if errors.Is(err, a) {
			return err
		}
	}
	prefix := "sqlstore: " + f.name + ": " + op
	cerr := ctx.Err()
	switch {
	case errors.Is(cerr, context.DeadlineExceeded) || cerr == nil && errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w: %w", prefix, storage.ErrTimeout, err)
	case cerr != nil && errors.Is(err, cerr):
		return fmt.Errorf("%s: %w", prefix, err)
	case cerr != nil:
		// The driver reports an interrupted call its own way (SQLite:
		// SQLITE_INTERRUPT); the caller matches the context's error.
		return fmt.Errorf("%s: %w: %w", prefix, cerr, err)
	case storage.IsFault(err):
		return fmt.Errorf("%s: %w", prefix, err)
	}
	if fault := f.fault(err); fault != nil {
		return fmt.Errorf("%s: %w: %w", prefix, fault, err)
	}
	return fmt.Errorf("%s: %w", prefix, err)
}

// fnError carries the error of a caller's updater out of a transaction
// body, so that it is returned unchanged: not classified, not retried.
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }

// fnErr wraps an updater's error (nil stays nil).
func fnErr(err error) error {
	if err == nil {
		return nil
	}
	return &fnError{err}
}
