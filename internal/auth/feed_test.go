package auth

import (
	"context"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// memFeed is an in-memory change log for tests that need no store.
type memFeed struct {
	mu      sync.Mutex
	entries []storage.Change
}

var _ ChangeFeed = (*memFeed)(nil)

// add appends an entry, as a store's revocation would.
func (m *memFeed) add(kind, subject string, until time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries = append(m.entries, storage.Change{Seq: int64(len(m.entries) + 1), Kind: kind, Subject: subject, ExpiresAt: until})
}

func (m *memFeed) LastChange(context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return int64(len(m.entries)), nil
}

func (m *memFeed) Changes(_ context.Context, after int64, limit int) ([]storage.Change, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []storage.Change
	for _, c := range m.entries {
		if c.Seq > after && len(out) < limit {
			out = append(out, c)
		}
	}
	return out, nil
}

func (m *memFeed) LiveRevocations(_ context.Context, now time.Time) ([]storage.Change, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []storage.Change
	for _, c := range m.entries {
		if (c.Kind == storage.ChangeSession || c.Kind == storage.ChangeToken) && c.ExpiresAt.After(now) {
			out = append(out, c)
		}
	}
	return out, nil
}
