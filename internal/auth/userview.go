package auth

import (
	"context"
	"errors"
	"sync"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// UserReader is what the user view reads on a miss.
type UserReader interface {
	UserByID(ctx context.Context, id string) (*storage.User, error)
}

// DefaultUserViewSize bounds the users the bearer path remembers.
const DefaultUserViewSize = 100_000

// UserView is the bearer path's bounded, in-memory copy of what it needs
// of each user (exists, disabled, scopes, username, created_at), so that a
// bearer-authenticated request reads no store in steady state. The change
// feed (Revocations) invalidates an entry whenever the store records a
// change of that user; a miss reads the store once.
type UserView struct {
	store UserReader
	size  int

	mu    sync.Mutex
	users map[string]*storage.User // nil value: known not to exist
	order []string                 // insertion order, for eviction
	// gen counts invalidations: a read that started before one must not
	// cache what it read, which may predate the change.
	gen uint64
}

// NewUserView returns an empty view over store holding at most size
// users (DefaultUserViewSize when size <= 0).
func NewUserView(store UserReader, size int) *UserView {
	if size <= 0 {
		size = DefaultUserViewSize
	}
	return &UserView{store: store, size: size, users: map[string]*storage.User{}}
}

// Get returns the user with that ID, nil when there is none. The result
// is shared: callers must not change it.
func (v *UserView) Get(ctx context.Context, id string) (*storage.User, error) {
	v.mu.Lock()
	u, ok := v.users[id]
	gen := v.gen
	v.mu.Unlock()
	if ok {
		return u, nil
	}
	u, err := v.store.UserByID(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		u, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.gen == gen {
		if _, dup := v.users[id]; !dup {
			if len(v.order) >= v.size {
				delete(v.users, v.order[0])
				v.order = v.order[1:]
			}
			v.order = append(v.order, id)
		}
		v.users[id] = u
	}
	return u, nil
}

// Invalidate forgets the user with that ID, so the next Get reads it.
func (v *UserView) Invalidate(id string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.gen++
	if _, ok := v.users[id]; ok {
		delete(v.users, id)
		// The id stays in order until evicted; a later Get appends it
		// again, so order may hold it twice, and eviction of the stale
		// copy then drops the entry early: harmless for a cache.
	}
}

// Clear forgets every user (after the feed may have missed changes).
func (v *UserView) Clear() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.gen++
	clear(v.users)
	v.order = v.order[:0]
}

// Len reports how many users the view holds.
func (v *UserView) Len() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.users)
}
