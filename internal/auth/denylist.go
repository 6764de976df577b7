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
type DenyList struct {
	store RevocationLister
	now   func() time.Time

	mu      sync.RWMutex
	revoked map[string]time.Time // jti → exp
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

// Add records one revocation made by this process.
func (d *DenyList) Add(jti string, exp time.Time) {
	d.mu.Lock()
	d.revoked[jti] = exp
	d.mu.Unlock()
}

// Sync replaces the list with the store's, dropping expired entries.
func (d *DenyList) Sync(ctx context.Context) error {
	list, err := d.store.RevokedAccessTokens(ctx, d.now())
	if err != nil {
		return err
	}
	m := make(map[string]time.Time, len(list))
	for _, r := range list {
		m[r.JTI] = r.ExpiresAt
	}
	d.mu.Lock()
	d.revoked = m
	d.mu.Unlock()
	return nil
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
