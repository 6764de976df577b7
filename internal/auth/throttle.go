package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
	"github.com/gatehouse/gatehouse/internal/users"
)

// AttemptStore is what the throttle needs from the store
// (storage.AttemptStore).
type AttemptStore interface {
	UpdateLoginAttempts(ctx context.Context, up storage.AttemptUpdate) error
	ReserveLogin(ctx context.Context, up storage.AttemptUpdate, username string) (*storage.User, error)
}

// ThrottleConfig sets how password guessing is slowed down (RFC 6749
// §4.3.2 requires protection against brute force; OWASP ASVS 5.0 6.3.1
// caps it well under 100 failures per account per hour).
type ThrottleConfig struct {
	// FreeFailures per username and client address before delays start.
	FreeFailures int
	// BaseDelay is the first delay; each further failure doubles it, up
	// to MaxDelay.
	BaseDelay, MaxDelay time.Duration
	// ForgetAfter is how long a username and address pair must go
	// without a failure before its count starts again from zero. Without
	// it a pair could only be cleared by the right password, which a
	// username that cannot be valid never has: an address's mistyped
	// names would stay slowed for good.
	ForgetAfter time.Duration
	// UserFailures is the ceiling of failures per username in UserWindow,
	// from all addresses together. Addresses that logged in successfully
	// as that user within KnownFor are exempt, so a flood from many
	// addresses cannot lock the real user out.
	UserFailures int
	UserWindow   time.Duration
	KnownFor     time.Duration
	Now          func() time.Time
}

// DefaultThrottle: 5 free failures per username and address, then 1s,
// 2s, 4s … up to 15 minutes between attempts, forgotten after a day
// without a failure; at most 50 failures per username per hour from
// addresses the user has not logged in from.
func DefaultThrottle() ThrottleConfig {
	return ThrottleConfig{
		FreeFailures: 5,
		BaseDelay:    time.Second,
		MaxDelay:     15 * time.Minute,
		ForgetAfter:  24 * time.Hour,
		UserFailures: 50,
		UserWindow:   time.Hour,
		KnownFor:     30 * 24 * time.Hour,
	}
}

// Throttle counts password attempts in the store, so its limits hold
// across replicas and restarts. Every attempt is counted as a failure
// before the password is checked, in the same atomic update that checks
// the limits, so N parallel guesses cost N attempts; a success takes its
// own count back.
type Throttle struct {
	store AttemptStore
	cfg   ThrottleConfig

	// blocked remembers, per username and address, until when the store
	// said to wait, so a guesser hammering a blocked pair is refused
	// without a store write each time. A block only ends when its time
	// passes (attempts are refused everywhere meanwhile), so the copy
	// cannot go stale.
	mu      sync.Mutex
	blocked map[string]time.Time
}

// maxBlocked bounds the memory of remembered blocks; past it they are
// forgotten and the store decides again.
const maxBlocked = 100_000

// NewThrottle returns a throttle over store.
func NewThrottle(store AttemptStore, cfg ThrottleConfig) *Throttle {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Throttle{store: store, cfg: cfg, blocked: map[string]time.Time{}}
}

// remembered returns when a pair's remembered block ends, zero if none.
func (t *Throttle) remembered(pair string, now time.Time) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	until, ok := t.blocked[pair]
	if ok && !now.Before(until) {
		delete(t.blocked, pair)
		return time.Time{}
	}
	return until
}

func (t *Throttle) remember(pair string, until time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.blocked) >= maxBlocked {
		clear(t.blocked)
	}
	t.blocked[pair] = until
}

// throttled is the refusal of an attempt, with when to retry.
func throttled(retry time.Duration) *Error {
	secs := int(math.Ceil(retry.Seconds()))
	if secs < 1 {
		secs = 1
	}
	return &Error{
		Code:        CodeTemporarilyUnavailable,
		Description: fmt.Sprintf("too many failed login attempts; retry in %d seconds", secs),
		Status:      http.StatusTooManyRequests,
		RetryAfter:  secs,
	}
}

// Throttle keys are a kind prefix and 32 hex digits (128 bits) of SHA-256,
// at most 38 bytes whatever the request sent: a 60 KB username must not
// become a 60 KB row kept for KnownFor, nor a key past PostgreSQL's btree
// row limit (about 2.7 KB).
const (
	pairPrefix  = "pair:"
	userPrefix  = "user:"
	knownPrefix = "known:"
	keyDigits   = 32
)

// invalidUsername stands in the pair key for every username that
// users.NormalizeUsername refuses. No valid username can equal it ('!' is
// outside the allowed set), so junk names from one address share one
// counter and cost no row keyed by the name.
const invalidUsername = "!invalid"

// throttleKey is prefix and the digest of the prefix, the canonical
// username and, for the per-address kinds, the address. A canonical
// username holds no NUL, so the first NUL ends it and no other split of
// the same bytes gives the same key.
func throttleKey(prefix, username string, addr ...string) string {
	h := sha256.New()
	h.Write([]byte(prefix))
	h.Write([]byte(username))
	for _, a := range addr {
		h.Write([]byte{0})
		h.Write([]byte(a))
	}
	return prefix + hex.EncodeToString(h.Sum(nil))[:keyDigits]
}

// throttleKeys are the keys of an attempt: for a valid username the pair,
// the username, and the pair's "logged in here before" mark, of the
// canonical form so "Alice" and "alice" share them. The username is keyed
// whether or not it exists, so throttling reveals nothing about which do.
// A username that cannot be valid gets only the address's pair of
// invalidUsername (valid is false): it is slowed like a pair, and no
// username exists for a ceiling or a mark to protect.
func throttleKeys(username, addr string) (keys []string, valid bool) {
	u, err := users.NormalizeUsername(username)
	if err != nil {
		return []string{throttleKey(pairPrefix, invalidUsername, addr)}, false
	}
	return []string{throttleKey(pairPrefix, u, addr), throttleKey(userPrefix, u), throttleKey(knownPrefix, u, addr)}, true
}

// Reserve counts an attempt by addr to log in as username, or refuses it
// with a 429 *Error when a limit is reached, and returns the account of
// that username read in the same store call (nil when there is none, or
// the username cannot be valid): a login costs one store call before its
// password check. It makes that one call (none while a remembered block
// lasts), valid username or not.
func (t *Throttle) Reserve(ctx context.Context, username, addr string) (*storage.User, error) {
	now := t.cfg.Now()
	keys, valid := throttleKeys(username, addr)
	if until := t.remembered(keys[0], now); !until.IsZero() {
		return nil, throttled(until.Sub(now))
	}
	canonical := ""
	if valid {
		canonical, _ = users.NormalizeUsername(username)
	}
	var refused *Error
	u, err := t.store.ReserveLogin(ctx, storage.AttemptUpdate{Keys: keys, Fn: func(st []storage.LoginAttempts) error {
		pair := &st[0]
		if now.Before(pair.BlockedUntil) {
			t.remember(keys[0], pair.BlockedUntil)
			refused = throttled(pair.BlockedUntil.Sub(now))
			return refused
		}
		if valid {
			user, known := &st[1], &st[2]
			if now.Sub(user.WindowStart) >= t.cfg.UserWindow {
				user.Failures, user.WindowStart = 0, now
			}
			isKnown := !known.LastSuccess.IsZero() && now.Sub(known.LastSuccess) < t.cfg.KnownFor
			if user.Failures >= t.cfg.UserFailures && !isKnown {
				refused = throttled(user.WindowStart.Add(t.cfg.UserWindow).Sub(now))
				return refused
			}
			user.Failures++
		}
		if t.cfg.ForgetAfter > 0 && now.Sub(lastFailure(pair)) >= t.cfg.ForgetAfter {
			pair.Failures, pair.WindowStart, pair.BlockedUntil = 0, time.Time{}, time.Time{}
		}
		pair.Failures++
		if pair.WindowStart.IsZero() {
			pair.WindowStart = now
		}
		if over := pair.Failures - t.cfg.FreeFailures; over > 0 {
			delay := t.cfg.MaxDelay
			if over < 32 {
				delay = min(t.cfg.BaseDelay<<(over-1), t.cfg.MaxDelay)
			}
			pair.BlockedUntil = now.Add(delay)
		}
		return nil
	}}, canonical)
	if refused != nil {
		return nil, refused
	}
	if err != nil {
		return nil, ServerError(err)
	}
	return u, nil
}

// lastFailure is about when the pair last failed: its latest block ends
// after its latest failure, and its first failure is its window's start
// while no failure has blocked it yet.
func lastFailure(pair *storage.LoginAttempts) time.Time {
	if pair.BlockedUntil.After(pair.WindowStart) {
		return pair.BlockedUntil
	}
	return pair.WindowStart
}

// Blocked returns the 429 *Error Reserve would answer from a remembered
// block of the pair, without a store call, or nil: the token endpoint
// asks before it queues for a hashing slot, so a guesser hammering a
// blocked pair takes no place in the queue.
func (t *Throttle) Blocked(username, addr string) error {
	now := t.cfg.Now()
	keys, _ := throttleKeys(username, addr)
	if until := t.remembered(keys[0], now); !until.IsZero() {
		return throttled(until.Sub(now))
	}
	return nil
}

// Succeeded clears the pair after the right password, takes the reserved
// failure back from the username's count, and marks addr as one the user
// logs in from. No password is right for a username that cannot be valid;
// should one be reported, only its reserved failure is taken back: the
// address's count of junk names stays.
func (t *Throttle) Succeeded(ctx context.Context, username, addr string) error {
	return t.store.UpdateLoginAttempts(ctx, t.Success(username, addr))
}

// Success is Succeeded as an update to apply with another write: the
// password grant stores it with the new session, in one transaction.
func (t *Throttle) Success(username, addr string) storage.AttemptUpdate {
	now := t.cfg.Now()
	keys, valid := throttleKeys(username, addr)
	return storage.AttemptUpdate{Keys: keys, Fn: func(st []storage.LoginAttempts) error {
		if !valid {
			takeBack(&st[0])
			return nil
		}
		st[0] = storage.LoginAttempts{}
		takeBack(&st[1])
		st[2].LastSuccess = now
		return nil
	}}
}

// Cancel takes back a reserved attempt whose password was never checked
// (the server was too busy to hash it).
func (t *Throttle) Cancel(ctx context.Context, username, addr string) error {
	keys, _ := throttleKeys(username, addr)
	return t.store.UpdateLoginAttempts(ctx, storage.AttemptUpdate{Keys: keys, Fn: func(st []storage.LoginAttempts) error {
		takeBack(&st[0])
		if len(st) > 1 {
			takeBack(&st[1])
		}
		return nil
	}})
}

// takeBack uncounts one reserved failure.
func takeBack(a *storage.LoginAttempts) {
	if a.Failures > 0 {
		a.Failures--
	}
}

// Guard runs check, a password verification for username from addr on a
// path other than the token endpoint (a password change), under the same
// limits as a login: the attempt is reserved first (a 429 *Error when a
// limit is reached, and then check does not run), the right password
// clears the pair, a wrong one (users.ErrInvalidCredentials) stays
// counted, and a check that never compared the password is taken back.
// It returns check's own error.
func (t *Throttle) Guard(ctx context.Context, username, addr string, check func() error) error {
	if _, err := t.Reserve(ctx, username, addr); err != nil {
		return err
	}
	err := check()
	// A settlement that fails leaves the attempt counted as a failure:
	// the check's outcome stands, and the next Reserve sees the store as
	// it is.
	switch {
	case err == nil, errors.Is(err, users.ErrDisabled):
		_ = t.Succeeded(ctx, username, addr)
	case errors.Is(err, users.ErrInvalidCredentials):
	default:
		_ = t.Cancel(ctx, username, addr)
	}
	return err
}
