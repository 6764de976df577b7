package auth

import (
	"context"
	"errors"
	"sync"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// view is a bounded, in-memory copy of records read by id, which the
// change feed (Revocations) invalidates whenever the store records a
// change of one; a miss reads the store once. The user and client views
// are views.
type view[T any] struct {
	read func(ctx context.Context, id string) (*T, error)
	size int

	mu    sync.Mutex
	items map[string]*T // nil value: known not to exist
	order []string      // insertion order, for eviction
	// gen counts invalidations: a read that started before one must not
	// cache what it read, which may predate the change.
	gen uint64
}

func newView[T any](read func(ctx context.Context, id string) (*T, error), size int) view[T] {
	return view[T]{read: read, size: size, items: map[string]*T{}}
}

// Get returns the record with that ID, nil when there is none. The result
// is shared: callers must not change it.
func (v *view[T]) Get(ctx context.Context, id string) (*T, error) {
	v.mu.Lock()
	item, ok := v.items[id]
	gen := v.gen
	v.mu.Unlock()
	if ok {
		return item, nil
	}
	item, err := v.read(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		item, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.gen == gen {
		if _, dup := v.items[id]; !dup {
			if len(v.order) >= v.size {
				delete(v.items, v.order[0])
				v.order = v.order[1:]
			}
			v.order = append(v.order, id)
		}
		v.items[id] = item
	}
	return item, nil
}

// Invalidate forgets the record with that ID, so the next Get reads it.
func (v *view[T]) Invalidate(id string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.gen++
	if _, ok := v.items[id]; ok {
		delete(v.items, id)
		// The id stays in order until evicted; a later Get appends it
		// again, so order may hold it twice, and eviction of the stale
		// copy then drops the entry early: harmless for a cache.
	}
}

// Clear forgets every record (after the feed may have missed changes).
func (v *view[T]) Clear() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.gen++
	clear(v.items)
	v.order = v.order[:0]
}

// Len reports how many records the view holds.
func (v *view[T]) Len() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.items)
}
