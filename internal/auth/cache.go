package auth

import (
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCacheSize is the verified-token cache size a server should use when
// not configured otherwise (ValidatorConfig.CacheSize): about 4 MiB when
// full (some 400 bytes an entry), enough for the tokens in use on a busy
// replica.
const DefaultCacheSize = 10000

// maxCacheShards bounds the lock striping of the verified-token cache.
const maxCacheShards = 32 // at most 256: one byte of the key picks the shard

// cacheSample is how many entries an insert into a full shard looks at to
// pick its victim.
const cacheSample = 4

// tokenCache remembers access tokens whose signature and claims were
// verified, so a client sending the same token again does not pay for
// another signature check (tens of microseconds for RS256 and ES256).
//
// It is keyed by the SHA-256 of the token, not the token: 32 bytes per entry
// instead of the ~800 of an RS256 token, and no lookup compares secret bytes
// with attacker-chosen ones. Only what the signature check decided is
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
	shards   []cacheShard
	mask     uint64
	perShard int
}

type cacheShard struct {
	mu      sync.RWMutex
	entries map[[sha256.Size]byte]*cacheEntry
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
	c := &tokenCache{shards: make([]cacheShard, n), mask: uint64(n - 1), perShard: size / n}
	for i := range c.shards {
		c.shards[i].entries = make(map[[sha256.Size]byte]*cacheEntry)
	}
	return c
}

func cacheKey(token string) [sha256.Size]byte { return sha256.Sum256([]byte(token)) }

func (c *tokenCache) shard(key *[sha256.Size]byte) *cacheShard {
	// The key is a uniform hash already: its first byte picks the shard.
	return &c.shards[uint64(key[0])&c.mask]
}

// get returns the entry for key, or nil. It counts nothing: the caller
// decides whether the entry is usable.
func (c *tokenCache) get(key *[sha256.Size]byte) *cacheEntry {
	s := c.shard(key)
	s.mu.RLock()
	e := s.entries[*key]
	s.mu.RUnlock()
	return e
}

// put stores e under key, evicting another entry when the shard is full.
// Entries are immutable once stored.
func (c *tokenCache) put(key *[sha256.Size]byte, e *cacheEntry, now time.Time) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.entries[*key]; !ok && len(s.entries) >= c.perShard {
		s.evictLocked(now)
	}
	s.entries[*key] = e
}

// evictLocked removes one entry: the first expired one met, else the one
// expiring soonest among cacheSample picked at random.
func (s *cacheShard) evictLocked(now time.Time) {
	var (
		victim  [sha256.Size]byte
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
func (c *tokenCache) drop(key *[sha256.Size]byte, e *cacheEntry) {
	s := c.shard(key)
	s.mu.Lock()
	if s.entries[*key] == e {
		delete(s.entries, *key)
	}
	s.mu.Unlock()
}

func (c *tokenCache) hit(key *[sha256.Size]byte)  { c.shard(key).hits.Add(1) }
func (c *tokenCache) miss(key *[sha256.Size]byte) { c.shard(key).misses.Add(1) }

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
func (v *Validator) cached(key *[sha256.Size]byte) *cacheEntry {
	e := v.cache.get(key)
	if e == nil {
		v.cache.miss(key)
		return nil
	}
	now := v.now()
	if !now.Before(e.expires) || now.Before(e.validFrom) || !v.keyUsable(e.kid) {
		// Expired, not valid yet (the clock went back) or its key retired:
		// drop it and let the full check give the reason.
		v.cache.drop(key, e)
		v.cache.miss(key)
		return nil
	}
	v.cache.hit(key)
	return e
}

// keyUsable reports whether the key kid would still verify a token, as
// Keys.Lookup decides: loaded, and not retired.
func (v *Validator) keyUsable(kid string) bool {
	k, ok := v.keys.snap.Load().byID[kid]
	return ok && !k.retired(v.keys.cfg.Now())
}
