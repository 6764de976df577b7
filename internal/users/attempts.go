package users

import (
	"context"
	"time"
)

// LoginAttempts is the throttling state of one key (a username, or a
// username and client address): the auth package decides what the
// numbers mean; the store only keeps them, shared by every replica.
type LoginAttempts struct {
	Key string
	// Failures counted in the current window.
	Failures int
	// WindowStart is when the current counting window began.
	WindowStart time.Time
	// BlockedUntil is when the key may try again, zero if not blocked.
	BlockedUntil time.Time
	// LastSuccess is the last successful login under the key, if recorded.
	LastSuccess time.Time
}

// empty reports whether the state holds nothing worth keeping.
func (a *LoginAttempts) empty() bool {
	return a.Failures == 0 && a.WindowStart.IsZero() && a.BlockedUntil.IsZero() && a.LastSuccess.IsZero()
}

// AttemptStore persists login throttling state, so limits hold across
// replicas and restarts.
type AttemptStore interface {
	// UpdateLoginAttempts loads the state of each key (a zero state with
	// Key set when there is none), lets fn change them in place, and stores
	// the result, atomically also across processes: concurrent callers on
	// the same keys run one after another, so N concurrent failures count
	// N. A state fn leaves empty is deleted. An error from fn aborts with
	// nothing changed and is returned.
	UpdateLoginAttempts(ctx context.Context, keys []string, fn func(states []LoginAttempts) error) error
	// PruneLoginAttempts deletes the states of keys not updated since
	// before.
	PruneLoginAttempts(ctx context.Context, before time.Time) error
}
