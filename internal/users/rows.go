package users

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Row mapping shared by the SQL stores. Each engine keeps its own SQL; what
// they share is the column layout and how Go values are encoded in it:
//
//	users:        id, username, password_hash, scopes, disabled, created_at, updated_at
//	signing_keys: id, algorithm, private, created_at
//
// Times are integer unix nanoseconds in UTC (exact round-trip, numeric
// ordering, no time-zone or driver time-format surprises); scopes are one
// space-separated string, the RFC 6749 §3.3 encoding.

// rowScanner is what *sql.Row and *sql.Rows have in common.
type rowScanner interface {
	Scan(dest ...any) error
}

// scanUser reads the users columns in the order above.
func scanUser(row rowScanner) (*User, error) {
	var (
		u                User
		scopes           string
		created, updated int64
	)
	if err := row.Scan(&u.ID, &u.Username, &u.PasswordHash, &scopes, &u.Disabled, &created, &updated); err != nil {
		return nil, err
	}
	u.Scopes = decodeScopes(scopes)
	u.CreatedAt = decodeTime(created)
	u.UpdatedAt = decodeTime(updated)
	return &u, nil
}

// scanSigningKey reads the signing_keys columns in the order above.
func scanSigningKey(row rowScanner) (SigningKey, error) {
	var (
		k       SigningKey
		created int64
	)
	if err := row.Scan(&k.ID, &k.Algorithm, &k.Private, &created); err != nil {
		return SigningKey{}, err
	}
	k.CreatedAt = decodeTime(created)
	return k, nil
}

// encodeScopes joins scopes with spaces, refusing any scope that would not
// survive the split (empty, or not an RFC 6749 §3.3 scope-token).
func encodeScopes(scopes []string) (string, error) {
	for _, s := range scopes {
		if !validScope(s) {
			return "", fmt.Errorf("users: invalid scope %q", s)
		}
	}
	return strings.Join(scopes, " "), nil
}

// decodeScopes splits the stored form; no scopes is an empty, non-nil slice
// so a stored user compares equal however it was created.
func decodeScopes(s string) []string {
	f := strings.Fields(s)
	if f == nil {
		return []string{}
	}
	return f
}

var (
	minStorableTime = time.Unix(0, math.MinInt64)
	maxStorableTime = time.Unix(0, math.MaxInt64)
)

// encodeTime returns t as unix nanoseconds. Instants outside the int64
// range (years 1678 to 2262) are refused rather than silently wrapped.
func encodeTime(t time.Time) (int64, error) {
	if t.Before(minStorableTime) || t.After(maxStorableTime) {
		return 0, fmt.Errorf("users: time %s outside the storable range", t.UTC().Format(time.RFC3339))
	}
	return t.UnixNano(), nil
}

// decodeTime is the inverse of encodeTime, always in UTC.
func decodeTime(ns int64) time.Time {
	return time.Unix(0, ns).UTC()
}
