package auth

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/internal/users"
)

// RevocationLister is what the deny-list reads from the store.
type RevocationLister interface {
	RevokedAccessTokens(ctx context.Context, now time.Time) ([]users.Revocation, error)
}

// DenyList holds the `jti` of every revoked access token that has not yet
// expired (RFC 7009 §2), in memory, so the bearer validator checks
// revocation without a store query per request. Revocations made by this
// process are added at once (Add, or Sync after a bulk revocation); Run
// resyncs periodically to learn those made by other processes.
//
// Syncs may overlap (a periodic one and one after a revocation), and a
// store read that started before a revocation must not undo it: a Sync
// installs its list only if no Sync whose read started later has installed
// one, and keeps every Add made while a read was in flight.
type DenyList struct {
	store RevocationLister
	now   func() time.Time

	mu      sync.RWMutex
	revoked map[string]time.Time // jti → exp
	// reads numbers the store reads of Sync in the order they start;
	// installed is the number of the read revoked was built from.
	reads, installed uint64
	// inFlight counts the Syncs reading the store. While it is not 0,
	// added holds every Add since it last was 0: a read in flight may
	// predate them, so each list installed meanwhile gets them merged in.
	inFlight int
	added    map[string]time.Time
}

// NewDenyList returns an empty deny-list; call Sync to fill it.
func NewDenyList(store RevocationLister, now func() time.Time) *DenyList {
	if now == nil {
		now = time.Now
	}
	return &DenyList{store: store, now: now, revoked: map[string]time.Time{}}
}

// Revoked reports whether the token with that jti was revoked.
func (d *DenyList) Revoked(jti string) bool {
	d.mu.RLock()
	_, ok := d.revoked[jti]
	d.mu.RUnlock()
	return ok
}

// Add records one revocation made by this process. The token is refused
// from the moment Add returns, whatever Syncs run concurrently.
func (d *DenyList) Add(jti string, exp time.Time) {
	d.mu.Lock()
	d.revoked[jti] = exp
	if d.inFlight > 0 {
		if d.added == nil {
			d.added = map[string]time.Time{}
		}
		d.added[jti] = exp
	}
	d.mu.Unlock()
}

// Sync replaces the list with the store's, dropping expired entries. Once
// it returns nil, every revocation committed before it was called is
// refused, even if an older Sync finishes later: that one's list is
// discarded.
func (d *DenyList) Sync(ctx context.Context) error {
	d.mu.Lock()
	d.reads++
	read := d.reads
	d.inFlight++
	d.mu.Unlock()

	// A token is accepted up to DefaultLeeway past its exp (clock skew
	// between replicas), so its revocation is kept that much longer.
	list, err := d.store.RevokedAccessTokens(ctx, d.now().Add(-DefaultLeeway))
	var m map[string]time.Time
	if err == nil {
		// Built outside the lock: Revoked is not held up by it.
		m = make(map[string]time.Time, len(list))
		for _, r := range list {
			m[r.JTI] = r.ExpiresAt
		}
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	d.inFlight--
	if err == nil && read > d.installed {
		for jti, exp := range d.added {
			m[jti] = exp
		}
		d.revoked = m
		d.installed = read
	}
	if d.inFlight == 0 {
		// No read is in flight: the next one starts after these Adds.
		d.added = nil
	}
	return err
}

// Run resyncs every interval until ctx is done.
func (d *DenyList) Run(ctx context.Context, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := d.Sync(ctx); err != nil && ctx.Err() == nil && log != nil {
				log.Warn("deny-list resync failed", "err", err)
			}
		}
	}
}
