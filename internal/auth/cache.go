package auth

import (
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCacheSize is the verified-token cache size a server should use when
// not configured otherwise (ValidatorConfig.CacheSize): about 12 MiB when
// full (some 1.2 KB an entry with its RS256 token), enough for the tokens
// in use on a busy replica.
const DefaultCacheSize = 10000

// maxCacheShards bounds the lock striping of the verified-token cache.
const maxCacheShards = 32

// cacheSample is how many entries an insert into a full shard looks at to
// pick its victim.
const cacheSample = 4

// tokenCache remembers access tokens whose signature and claims were
// verified, so a client sending the same token again does not pay for
// another signature check (tens of microseconds for RS256 and ES256).
//
// It is keyed by the whole token, so a hit is exactly the token that was
// verified. (It was keyed by the token's SHA-256, which saved some 800
// bytes an entry but cost a microsecond on every request, a twentieth of
// a /users/me answer.) A lookup compares the presented token with a
// cached one only when the map's seeded hash of the whole token matched
// first, so a forger learns nothing from timing about a signature he
// does not already have. Only what the signature check decided is
// cached; everything that can change while a token is cached (the clock
// against exp, nbf and iat, its revocation, its key's retirement) is
// checked again on every hit, by Validator.cached.
//
// Memory is bounded by an entry count split over shards that each hold a
// map under their own lock; a full cache holds a little under the count,
// as a shard that fills first evicts while others still have room. An
// insert into a full shard evicts the entry expiring soonest among a few
// picked at random (Go randomises map iteration), or the first one met
// that has expired: there is no list to maintain on hits, which therefore
// take only a read lock.
type tokenCache struct {
	seed     maphash.Seed // picks a token's shard
	shards   []cacheShard
	mask     uint64
	perShard int
}

type cacheShard struct {
	mu      sync.RWMutex
	entries map[string]*cacheEntry
	hits    atomic.Uint64
	misses  atomic.Uint64
	// Keeps shards on separate cache lines so cores counting hits on
	// different shards do not contend.
	_ [64]byte
}

// cacheEntry is one verified token, immutable once stored. Its claims are
// never handed out: a hit returns a copy.
type cacheEntry struct {
	claims Claims
	// expires is exp+leeway: the token is refused from that instant on, as
	// the JWT parser refuses it (RFC 7519 §4.1.4).
	expires time.Time
	// validFrom is the later of nbf and iat, less the leeway: the token is
	// refused before it (RFC 7519 §4.1.5, §4.1.6).
	validFrom time.Time
	// kid names the key that verified the signature, which must still be
	// loaded and not retired at each hit.
	kid string
}

// newTokenCache returns a cache of at most size entries, or nil when size
// is not positive (the cache is off).
func newTokenCache(size int) *tokenCache {
	if size <= 0 {
		return nil
	}
	// A power of two no larger than size, so that shards × perShard never
	// exceeds size.
	n := 1
	for n*2 <= min(size, maxCacheShards) {
		n *= 2
	}
	c := &tokenCache{seed: maphash.MakeSeed(), shards: make([]cacheShard, n), mask: uint64(n - 1), perShard: size / n}
	for i := range c.shards {
		c.shards[i].entries = make(map[string]*cacheEntry)
	}
	return c
}

func (c *tokenCache) shard(key string) *cacheShard {
	return &c.shards[maphash.String(c.seed, key)&c.mask]
}

// get returns the entry for key, or nil. It counts nothing: the caller
// decides whether the entry is usable.
func (s *cacheShard) get(key string) *cacheEntry {
	s.mu.RLock()
	e := s.entries[key]
	s.mu.RUnlock()
	return e
}

// put stores e under key, evicting another entry when the shard is full.
// Entries are immutable once stored.
func (c *tokenCache) put(key string, e *cacheEntry, now time.Time) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.entries[key]; !ok && len(s.entries) >= c.perShard {
		s.evictLocked(now)
	}
	// The key is kept: a clone, not the request's header string.
	s.entries[strings.Clone(key)] = e
}

// evictLocked removes one entry: the first expired one met, else the one
// expiring soonest among cacheSample picked at random.
func (s *cacheShard) evictLocked(now time.Time) {
	var (
		victim  string
		soonest time.Time
		seen    int
	)
	for k, e := range s.entries {
		if !now.Before(e.expires) {
			victim = k
			break
		}
		if seen == 0 || e.expires.Before(soonest) {
			victim, soonest = k, e.expires
		}
		if seen++; seen == cacheSample {
			break
		}
	}
	delete(s.entries, victim)
}

// drop removes key if it still maps to e (another goroutine may have stored
// a fresh entry meanwhile).
func (c *tokenCache) drop(key string, e *cacheEntry) {
	s := c.shard(key)
	s.mu.Lock()
	if s.entries[key] == e {
		delete(s.entries, key)
	}
	s.mu.Unlock()
}

func (c *tokenCache) stats() (hits, misses uint64, size int) {
	for i := range c.shards {
		s := &c.shards[i]
		hits += s.hits.Load()
		misses += s.misses.Load()
		s.mu.RLock()
		size += len(s.entries)
		s.mu.RUnlock()
	}
	return hits, misses, size
}

// newCacheEntry records what Verify established about claims, verified
// with the key kid under leeway.
func newCacheEntry(claims *Claims, kid string, leeway time.Duration) *cacheEntry {
	e := &cacheEntry{claims: *claims, kid: kid}
	// Verify required exp; nbf and iat are optional (RFC 7519 §4.1).
	e.expires = claims.ExpiresAt.Add(leeway)
	var from time.Time
	if claims.NotBefore != nil {
		from = claims.NotBefore.Time
	}
	if claims.IssuedAt != nil && claims.IssuedAt.After(from) {
		from = claims.IssuedAt.Time
	}
	if !from.IsZero() {
		e.validFrom = from.Add(-leeway)
	}
	return e
}

// CacheStats reports the verified-token cache's hits and misses since the
// validator was made, and how many tokens it holds now; all zero when the
// cache is off. A hit is a token answered without a signature check
// (accepted, or refused as revoked); a miss is a token that had to be
// verified (never seen, evicted, expired, or its key retired).
func (v *Validator) CacheStats() (hits, misses uint64, size int) {
	if v.cache == nil {
		return 0, 0, 0
	}
	return v.cache.stats()
}

// cached returns the cache's entry for key when it may answer Verify, nil
// when the token must be verified. Every hit checks again what may have
// changed since the token was verified: the clock against exp, nbf and iat
// (with the validator's clock, as the parser does) and the key's retirement
// (with the key set's clock, as Keys.Lookup does). The caller checks the
// deny-list.
func (v *Validator) cached(key string) *cacheEntry {
	sh := v.cache.shard(key)
	e := sh.get(key)
	if e == nil {
		sh.misses.Add(1)
		return nil
	}
	now := v.now()
	if !now.Before(e.expires) || now.Before(e.validFrom) || !v.keyUsable(e.kid) {
		// Expired, not valid yet (the clock went back) or its key retired:
		// drop it and let the full check give the reason.
		v.cache.drop(key, e)
		sh.misses.Add(1)
		return nil
	}
	sh.hits.Add(1)
	return e
}

// keyUsable reports whether the key kid would still verify a token, as
// Keys.Lookup decides: loaded, and not retired.
func (v *Validator) keyUsable(kid string) bool {
	k, ok := v.keys.snap.Load().byID[kid]
	return ok && !k.retired(v.keys.cfg.Now())
}
