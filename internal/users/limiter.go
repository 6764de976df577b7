package users

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// ErrBusy: every password-hashing slot is taken and the wait queue is full,
// or the store stayed locked past its busy timeout. The caller should answer
// 503 with Retry-After rather than pile up work: each argon2id run holds
// its memory (19 MiB by default) until done.
var ErrBusy = errors.New("users: password hashing is at capacity")

// hashLimiter bounds concurrent password hashing to slots, with at most
// queue callers waiting for a slot; callers beyond that fail fast.
type hashLimiter struct {
	slots chan struct{}
	queue int64

	waiting  atomic.Int64
	running  atomic.Int64
	peak     atomic.Int64
	rejected atomic.Int64
	mu       sync.Mutex // orders peak updates
}

func newHashLimiter(slots, queue int) *hashLimiter {
	return &hashLimiter{slots: make(chan struct{}, slots), queue: int64(queue)}
}

// acquire takes a slot, waiting in the queue if there is room; release
// must be called when the hashing is done.
func (l *hashLimiter) acquire(ctx context.Context) (release func(), err error) {
	select {
	case l.slots <- struct{}{}:
	default:
		if l.waiting.Add(1) > l.queue {
			l.waiting.Add(-1)
			l.rejected.Add(1)
			return nil, ErrBusy
		}
		select {
		case l.slots <- struct{}{}:
			l.waiting.Add(-1)
		case <-ctx.Done():
			l.waiting.Add(-1)
			return nil, ctx.Err()
		}
	}
	n := l.running.Add(1)
	l.mu.Lock()
	if n > l.peak.Load() {
		l.peak.Store(n)
	}
	l.mu.Unlock()
	return func() {
		l.running.Add(-1)
		<-l.slots
	}, nil
}

// HashStats reports the password-hashing limiter's counters.
type HashStats struct {
	// Slots and Queue are the configured bounds.
	Slots, Queue int
	// Running and Waiting are the current hashing and queued calls.
	Running, Waiting int
	// Peak is the most hashing calls that ever ran at once.
	Peak int
	// Rejected counts calls refused with ErrBusy.
	Rejected int
}

func (l *hashLimiter) stats() HashStats {
	return HashStats{
		Slots:    cap(l.slots),
		Queue:    int(l.queue),
		Running:  int(l.running.Load()),
		Waiting:  int(l.waiting.Load()),
		Peak:     int(l.peak.Load()),
		Rejected: int(l.rejected.Load()),
	}
}

// saturated reports whether a new caller would be refused right now.
func (l *hashLimiter) saturated() bool {
	return l.running.Load() >= int64(cap(l.slots)) && l.waiting.Load() >= l.queue
}
