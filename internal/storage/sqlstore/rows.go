package sqlstore

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// Row mapping, the same on both engines. Times are integer unix
// nanoseconds in UTC (exact round trip, numeric order, no driver time
// formats); an optional time is 0 when unset. Scopes are one
// space-separated string, the RFC 6749 §3.3 encoding.

// Column lists, in the order of the scanners below.
const (
	userColumns    = `id, username, password_hash, scopes, disabled, created_at, updated_at, token_epoch, totp_secret, totp_confirmed, totp_last_step, recovery_codes`
	mfaColumns     = `id, secret_hash, user_id, client_id, scopes, epoch, created_at, expires_at`
	keyColumns     = `id, algorithm, private, created_at, activates_at`
	sessionColumns = `id, user_id, client_id, scopes, created_at, last_used_at, idle_expires_at, expires_at, generation, secret_hash, rotated_at, grace_uses, revoked_at, client_addr, user_agent`
	clientColumns  = `id, scopes, created_at, service_scopes, grants`
	secretColumns  = `id, client_id, hash, created_at`
	changeColumns  = `seq, kind, subject, at, expires_at`
	attemptColumns = `failures, window_start, blocked_until, last_success`
)

// rowScanner is what *sql.Row and *sql.Rows have in common.
type rowScanner interface {
	Scan(dest ...any) error
}

func scanUser(row rowScanner) (*storage.User, error) {
	var (
		u                storage.User
		scopes, recovery string
		created, updated int64
	)
	if err := row.Scan(&u.ID, &u.Username, &u.PasswordHash, &scopes, &u.Disabled, &created, &updated, &u.TokenEpoch,
		&u.TOTP.Secret, &u.TOTP.Confirmed, &u.TOTP.LastStep, &recovery); err != nil {
		return nil, err
	}
	u.Scopes, u.TOTP.RecoveryCodes = decodeScopes(scopes), decodeScopes(recovery)
	u.CreatedAt, u.UpdatedAt = decodeTime(created), decodeTime(updated)
	return &u, nil
}

func scanKey(row rowScanner) (storage.SigningKey, error) {
	var (
		k                  storage.SigningKey
		created, activates int64
	)
	if err := row.Scan(&k.ID, &k.Algorithm, &k.Private, &created, &activates); err != nil {
		return storage.SigningKey{}, err
	}
	k.CreatedAt, k.ActivatesAt = decodeTime(created), decodeTime(activates)
	return k, nil
}

// sessionRow is a sessions row, fields in column order after id, user_id,
// client_id.
type sessionRow struct {
	scopes                                  string
	created, lastUsed, idleExpires, expires int64
	generation                              int64
	secretHash                              string
	rotated                                 int64
	graceUses                               int
	revoked                                 int64
	clientAddr, userAgent                   string
}

// encodeSession checks s and returns its columns after id, user_id and
// client_id.
func encodeSession(s *storage.Session) (sessionRow, error) {
	var (
		r   sessionRow
		err error
	)
	if r.scopes, err = encodeScopes(s.Scopes); err != nil {
		return r, err
	}
	for _, f := range []struct {
		dst *int64
		t   time.Time
		opt bool
	}{
		{&r.created, s.CreatedAt, false},
		{&r.lastUsed, s.LastUsedAt, false},
		{&r.idleExpires, s.IdleExpiresAt, false},
		{&r.expires, s.ExpiresAt, false},
		{&r.rotated, s.RotatedAt, true},
		{&r.revoked, s.RevokedAt, true},
	} {
		if f.opt {
			*f.dst, err = encodeOptionalTime(f.t)
		} else {
			*f.dst, err = encodeTime(f.t)
		}
		if err != nil {
			return r, err
		}
	}
	r.generation, r.secretHash, r.graceUses = s.Generation, s.SecretHash, s.GraceUses
	r.clientAddr, r.userAgent = s.ClientAddr, s.UserAgent
	return r, nil
}

func scanSession(row rowScanner) (*storage.Session, error) {
	var (
		s storage.Session
		r sessionRow
	)
	if err := row.Scan(&s.ID, &s.UserID, &s.ClientID, &r.scopes, &r.created, &r.lastUsed, &r.idleExpires, &r.expires,
		&r.generation, &r.secretHash, &r.rotated, &r.graceUses, &r.revoked, &r.clientAddr, &r.userAgent); err != nil {
		return nil, err
	}
	r.into(&s)
	return &s, nil
}

// into sets s's fields from r, as the store has them.
func (r sessionRow) into(s *storage.Session) {
	s.Scopes = decodeScopes(r.scopes)
	s.CreatedAt, s.LastUsedAt = decodeTime(r.created), decodeTime(r.lastUsed)
	s.IdleExpiresAt, s.ExpiresAt = decodeTime(r.idleExpires), decodeTime(r.expires)
	s.Generation, s.SecretHash, s.GraceUses = r.generation, r.secretHash, r.graceUses
	s.RotatedAt, s.RevokedAt = decodeOptionalTime(r.rotated), decodeOptionalTime(r.revoked)
	s.ClientAddr, s.UserAgent = r.clientAddr, r.userAgent
}

func scanChange(row rowScanner) (storage.Change, error) {
	var (
		c       storage.Change
		at, exp int64
	)
	if err := row.Scan(&c.Seq, &c.Kind, &c.Subject, &at, &exp); err != nil {
		return storage.Change{}, err
	}
	c.At, c.ExpiresAt = decodeTime(at), decodeTime(exp)
	return c, nil
}

// scanAttempts reads attemptColumns into a state of key.
func scanAttempts(row rowScanner, key string) (storage.LoginAttempts, error) {
	var (
		a                           storage.LoginAttempts
		window, blocked, lastSucces int64
	)
	if err := row.Scan(&a.Failures, &window, &blocked, &lastSucces); err != nil {
		return a, err
	}
	a.Key = key
	a.WindowStart, a.BlockedUntil, a.LastSuccess = decodeOptionalTime(window), decodeOptionalTime(blocked), decodeOptionalTime(lastSucces)
	return a, nil
}

// encodeScopes joins scopes with spaces, refusing any that would not
// survive the split: empty, or not an RFC 6749 §3.3 scope-token.
func encodeScopes(scopes []string) (string, error) {
	for _, s := range scopes {
		if !validScope(s) {
			return "", fmt.Errorf("sqlstore: invalid scope %q", s)
		}
	}
	return strings.Join(scopes, " "), nil
}

// validScope: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ) (RFC 6749 §3.3).
func validScope(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// decodeScopes splits the stored form; none is an empty, non-nil slice,
// so a stored record compares equal however it was made.
func decodeScopes(s string) []string {
	if f := strings.Fields(s); f != nil {
		return f
	}
	return []string{}
}

var (
	minStorableTime = time.Unix(0, math.MinInt64)
	maxStorableTime = time.Unix(0, math.MaxInt64)
)

// errTimeRange: an instant outside int64 nanoseconds (years 1678 to 2262).
var errTimeRange = errors.New("sqlstore: time outside the storable range")

// encodeTime returns t as unix nanoseconds, refusing what would wrap.
func encodeTime(t time.Time) (int64, error) {
	if t.Before(minStorableTime) || t.After(maxStorableTime) {
		return 0, fmt.Errorf("%w: %s", errTimeRange, t.UTC().Format(time.RFC3339))
	}
	return t.UnixNano(), nil
}

// decodeTime is the inverse of encodeTime, in UTC.
func decodeTime(ns int64) time.Time { return time.Unix(0, ns).UTC() }

// encodeOptionalTime is encodeTime with the zero time as 0.
func encodeOptionalTime(t time.Time) (int64, error) {
	if t.IsZero() {
		return 0, nil
	}
	return encodeTime(t)
}

// decodeOptionalTime is the inverse of encodeOptionalTime.
func decodeOptionalTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return decodeTime(ns)
}

// cloneUser returns a copy of u that shares nothing with it (nil for nil).
func cloneUser(u *storage.User) *storage.User {
	if u == nil {
		return nil
	}
	c := *u
	c.Scopes = slices.Clone(u.Scopes)
	c.TOTP.RecoveryCodes = slices.Clone(u.TOTP.RecoveryCodes)
	return &c
}

func scanMFAToken(row rowScanner) (*storage.MFAToken, error) {
	var (
		t                storage.MFAToken
		scopes           string
		created, expires int64
	)
	if err := row.Scan(&t.ID, &t.SecretHash, &t.UserID, &t.ClientID, &scopes, &t.Epoch, &created, &expires); err != nil {
		return nil, err
	}
	t.Scopes, t.CreatedAt, t.ExpiresAt = decodeScopes(scopes), decodeTime(created), decodeTime(expires)
	return &t, nil
}

// cloneSession returns a copy of s that shares nothing with it.
func cloneSession(s *storage.Session) *storage.Session {
	c := *s
	c.Scopes = slices.Clone(s.Scopes)
	return &c
}
