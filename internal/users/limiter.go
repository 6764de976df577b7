package users

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// ErrBusy: every password-hashing slot is taken and the wait queue is full,
// no slot came free within the wait bound, or the store stayed locked past
// its busy timeout. The caller should answer 503 with Retry-After rather
// than pile up work: each argon2id run holds its memory (19 MiB by
// default) until done.
var ErrBusy = errors.New("users: password hashing is at capacity")

// hashLimiter bounds concurrent password hashing to slots, with at most
// queue callers waiting, each for at most wait; callers beyond the queue
// fail at once, callers that wait longer fail then. A waiter holds no
// hashing memory, only its parked goroutine and a timer.
//
// While contended reports true, a slot rests after its holder is done
// for contendedRest times as long as the holder hashed, before the next
// caller may take it: hashing then keeps at most about a quarter of its
// slots' CPU while other requests wait for a core.
type hashLimiter struct {
	slots     chan struct{}
	queue     int64
	wait      time.Duration
	contended func() bool

	waiting  atomic.Int64
	running  atomic.Int64
	resting  atomic.Int64
	peak     atomic.Int64
	rejected atomic.Int64
	timedOut atomic.Int64
	mu       sync.Mutex // orders peak updates
}

// contendedRest is how many times its hashing time a slot rests under
// contention. With a rest as long as the hash (half the CPU to hashing),
// a 1,000-connection login flood on one core still left authenticated
// requests under a tenth of their unloaded rate: each hash allocates
// its 19 MiB, and the collections that follow scan the flood's parked
// goroutines, so hashing's real share was some 70%. At a quarter,
// hashing and its collections leave the API about half the core.
const contendedRest = 3

func newHashLimiter(slots, queue int, wait time.Duration, contended func() bool) *hashLimiter {
	return &hashLimiter{slots: make(chan struct{}, slots), queue: int64(queue), wait: wait, contended: contended}
}

// acquire takes a slot, waiting in the queue if there is room and for at
// most l.wait; release must be called when the hashing is done.
func (l *hashLimiter) acquire(ctx context.Context) error {
	select {
	case l.slots <- struct{}{}:
	default:
		if l.waiting.Add(1) > l.queue {
			l.waiting.Add(-1)
			l.rejected.Add(1)
			return ErrBusy
		}
		timer := time.NewTimer(l.wait)
		defer timer.Stop()
		select {
		case l.slots <- struct{}{}:
			l.waiting.Add(-1)
		case <-timer.C:
			l.waiting.Add(-1)
			l.rejected.Add(1)
			l.timedOut.Add(1)
			return ErrBusy
		case <-ctx.Done():
			l.waiting.Add(-1)
			return ctx.Err()
		}
	}
	n := l.running.Add(1)
	l.mu.Lock()
	if n > l.peak.Load() {
		l.peak.Store(n)
	}
	l.mu.Unlock()
	return nil
}

// release gives back a slot whose holder hashed for hashed in all. Under
// contention the slot rests contendedRest times that long first, on a
// timer, so the holder goes on with its request at once.
func (l *hashLimiter) release(hashed time.Duration) {
	l.running.Add(-1)
	if hashed <= 0 || l.contended == nil || !l.contended() {
		<-l.slots
		return
	}
	l.resting.Add(1)
	time.AfterFunc(contendedRest*hashed, func() {
		l.resting.Add(-1)
		<-l.slots
	})
}

// HashStats reports the password-hashing limiter's counters.
type HashStats struct {
	// Slots and Queue are the configured bounds, Wait the longest a
	// caller waits in the queue.
	Slots, Queue int
	Wait         time.Duration
	// Running and Waiting are the current holders of a slot and queued
	// calls; Resting the slots held back after hashing because other
	// requests were waiting.
	Running, Waiting, Resting int
	// Peak is the most slots that were ever held at once by callers.
	Peak int
	// Rejected counts calls refused with ErrBusy, TimedOut those of them
	// that waited the whole Wait.
	Rejected, TimedOut int
}

func (l *hashLimiter) stats() HashStats {
	return HashStats{
		Slots:    cap(l.slots),
		Queue:    int(l.queue),
		Wait:     l.wait,
		Running:  int(l.running.Load()),
		Waiting:  int(l.waiting.Load()),
		Resting:  int(l.resting.Load()),
		Peak:     int(l.peak.Load()),
		Rejected: int(l.rejected.Load()),
		TimedOut: int(l.timedOut.Load()),
	}
}

// saturated reports whether a new caller would be refused at once right
// now.
func (l *hashLimiter) saturated() bool {
	return len(l.slots) >= cap(l.slots) && l.waiting.Load() >= l.queue
}

// Slot is a place at the password-hashing limiter, held from Admit until
// Release: the hashing a request needs (a password check, and the rehash
// that may follow it) runs in it without queueing again. A Slot is used
// by one goroutine.
type Slot struct {
	s *Service
	// waited is the queueing time, reported with the first hash.
	waited time.Duration
	// hashed is the hashing time run in the slot, the length of its rest
	// under contention.
	hashed   time.Duration
	released bool
}

// Admit takes a hashing slot for a request that will hash, before the
// request costs anything else (the token endpoint takes it before the
// login throttle's store write), so a request the server cannot hash soon
// is refused having cost almost nothing. It waits in the bounded queue
// for at most the configured wait and returns ErrBusy when the queue is
// full or the wait passes, or the context's error. The caller must
// Release the slot.
func (s *Service) Admit(ctx context.Context) (*Slot, error) {
	start := time.Now()
	if err := s.limiter.acquire(ctx); err != nil {
		return nil, err
	}
	return &Slot{s: s, waited: time.Since(start)}, nil
}

// Verify is Service.Verify with its hashing run in this slot.
func (sl *Slot) Verify(ctx context.Context, u *User, password string) (*User, error) {
	return sl.s.verifyUser(ctx, sl, u, password)
}

// Release gives the slot back. When other requests are waiting
// (Options.Contended) the slot first rests contendedRest times as long
// as it hashed, on a timer: the caller goes on at once, the next hash
// starts later. Calls after the first do nothing.
func (sl *Slot) Release() {
	if sl.released {
		return
	}
	sl.released = true
	sl.s.limiter.release(sl.hashed)
}

// run runs one hashing job in the slot, timing it.
func (sl *Slot) run(job func()) {
	start := time.Now()
	job()
	took := time.Since(start)
	sl.hashed += took
	if sl.s.observeHash != nil {
		sl.s.observeHash(sl.waited, took)
	}
	sl.waited = 0
}
