package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// keySet caches the JWK Set (RFC 7517 §5) published at the metadata's
// jwks_uri. Readers see an immutable snapshot; a fetch replaces it whole, so
// a key gatehouse retired disappears with the next fetch.
//
// Fetches are rate-limited and shared: at most one starts per
// minInterval, and callers that need one while it runs wait for it rather
// than start another (singleflight), so a flood of tokens naming unknown
// key ids costs gatehouse one request per interval.
type keySet struct {
	hc          *http.Client
	uri         string
	minInterval time.Duration
	ttl         time.Duration
	log         *slog.Logger

	snap atomic.Pointer[keySnapshot]

	mu       sync.Mutex
	started  time.Time // when the last fetch started, successful or not
	inflight *fetch
}

// keySnapshot is one fetched JWK Set: the usable keys by kid.
type keySnapshot struct {
	byID      map[string][]jose.JSONWebKey
	fetchedAt time.Time
}

// fetch is one JWK Set request that several callers may wait for.
type fetch struct {
	done chan struct{}
	err  error
}

func newKeySet(hc *http.Client, uri string, minInterval, ttl time.Duration, log *slog.Logger) *keySet {
	return &keySet{hc: hc, uri: uri, minInterval: minInterval, ttl: ttl, log: log}
}

// load performs the first fetch, for New: it fails when the JWK Set cannot
// be read.
func (s *keySet) load(ctx context.Context) error {
	f := s.start(ctx, true)
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// lookup returns whether some key has kid, and those of them that suit
// alg: their JWK `alg`, when present, is alg (RFC 7517 §4.4), and their
// type and size are what alg needs.
func (s *keySet) lookup(kid, alg string) (known bool, keys []any) {
	snap := s.snap.Load()
	if snap == nil {
		return false, nil
	}
	candidates, known := snap.byID[kid]
	for _, k := range candidates {
		if (k.Algorithm == "" || k.Algorithm == alg) && keyFits(alg, k.Key) {
			keys = append(keys, k.Key)
		}
	}
	return known, keys
}

// refreshNow fetches the JWK Set and waits for it, joining a fetch in
// flight, unless one started less than minInterval ago. Failures leave the
// previous keys in place; the caller finds out by looking the key up again.
func (s *keySet) refreshNow(ctx context.Context) {
	f := s.start(ctx, false)
	if f == nil {
		return
	}
	select {
	case <-f.done:
	case <-ctx.Done():
	}
}

// refreshIfStale starts a fetch in the background when the keys are older
// than the TTL; requests keep using the current keys meanwhile.
func (s *keySet) refreshIfStale(ctx context.Context) {
	snap := s.snap.Load()
	if snap != nil && time.Since(snap.fetchedAt) < s.ttl {
		return
	}
	s.start(ctx, false)
}

// start returns the fetch in flight, or starts one unless the rate limit
// forbids it (then it returns nil). The fetch runs detached from ctx's
// cancellation, so the request that started it giving up does not fail it
// for the others waiting.
func (s *keySet) start(ctx context.Context, force bool) *fetch {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight != nil {
		return s.inflight
	}
	if !force && !s.started.IsZero() && time.Since(s.started) < s.minInterval {
		return nil
	}
	f := &fetch{done: make(chan struct{})}
	s.inflight, s.started = f, time.Now()
	go func() {
		fctx, cancel := withFetchTimeout(context.WithoutCancel(ctx), s.hc)
		defer cancel()
		snap, err := s.get(fctx)
		if err == nil {
			s.snap.Store(snap)
		} else {
			s.log.Error("verify: fetch JWK Set, keeping the previous keys", "err", err)
		}
		s.mu.Lock()
		s.inflight = nil
		s.mu.Unlock()
		f.err = err
		close(f.done)
	}()
	return f
}

// get fetches and parses the JWK Set. Keys that cannot verify signatures
// here are skipped, as RFC 7517 §5 asks: unknown key types or curves,
// `use` other than "sig" (§4.2), and symmetric or private keys, which a
// JWK Set must never publish (IsPublic is false for both).
func (s *keySet) get(ctx context.Context) (*keySnapshot, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := getJSON(ctx, s.hc, s.uri, &doc); err != nil {
		return nil, fmt.Errorf("verify: JWK Set: %w", err)
	}
	if doc.Keys == nil {
		return nil, errors.New("verify: JWK Set: no \"keys\" member (RFC 7517 §5.1)")
	}
	snap := &keySnapshot{byID: map[string][]jose.JSONWebKey{}, fetchedAt: time.Now()}
	for _, raw := range doc.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			continue
		}
		if k.KeyID == "" || (k.Use != "" && k.Use != "sig") || !k.IsPublic() || !k.Valid() {
			continue
		}
		snap.byID[k.KeyID] = append(snap.byID[k.KeyID], k)
	}
	return snap, nil
}
