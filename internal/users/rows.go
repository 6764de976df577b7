package users

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Row mapping shared by the SQL stores. Each engine keeps its own SQL; what
// they share is the column layout and how Go values are encoded in it:
//
//	users:          id, username, password_hash, scopes, disabled, created_at, updated_at, token_epoch
//	signing_keys:   id, algorithm, private, created_at, activates_at
//	refresh_tokens: hash, family_id, user_id, client_id, scopes, issued_at,
//	                expires_at, family_expires_at, rotated_at, revoked_at
//	access_tokens:  jti, user_id, family_id, client_id, expires_at, revoked_at
//	clients:        id, secret_hash, scopes, created_at
//
// Times are integer unix nanoseconds in UTC (exact round-trip, numeric
// ordering, no time-zone or driver time-format surprises); an optional time
// (rotated_at, revoked_at) is 0 when unset. Scopes are one space-separated
// string, the RFC 6749 §3.3 encoding.

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
	if err := row.Scan(&u.ID, &u.Username, &u.PasswordHash, &scopes, &u.Disabled, &created, &updated, &u.TokenEpoch); err != nil {
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
		k                  SigningKey
		created, activates int64
	)
	if err := row.Scan(&k.ID, &k.Algorithm, &k.Private, &created, &activates); err != nil {
		return SigningKey{}, err
	}
	k.CreatedAt = decodeTime(created)
	k.ActivatesAt = decodeTime(activates)
	return k, nil
}

// refreshTokenRow is a refresh_tokens row, fields in column order.
type refreshTokenRow struct {
	hash, familyID, userID, clientID, scopes                   string
	issuedAt, expiresAt, familyExpiresAt, rotatedAt, revokedAt int64
}

// encodeRefreshToken checks t and returns it as a row. Hash, FamilyID,
// UserID, IssuedAt, ExpiresAt and FamilyExpiresAt are required.
func encodeRefreshToken(t *RefreshToken) (refreshTokenRow, error) {
	if t == nil {
		return refreshTokenRow{}, errors.New("users: nil refresh token")
	}
	if t.Hash == "" || t.FamilyID == "" || t.UserID == "" {
		return refreshTokenRow{}, errors.New("users: refresh token: Hash, FamilyID and UserID are required")
	}
	if t.IssuedAt.IsZero() || t.ExpiresAt.IsZero() || t.FamilyExpiresAt.IsZero() {
		return refreshTokenRow{}, errors.New("users: refresh token: IssuedAt, ExpiresAt and FamilyExpiresAt are required")
	}
	r := refreshTokenRow{hash: t.Hash, familyID: t.FamilyID, userID: t.UserID, clientID: t.ClientID}
	var err error
	if r.scopes, err = encodeScopes(t.Scopes); err != nil {
		return refreshTokenRow{}, err
	}
	if r.issuedAt, err = encodeTime(t.IssuedAt); err != nil {
		return refreshTokenRow{}, err
	}
	if r.expiresAt, err = encodeTime(t.ExpiresAt); err != nil {
		return refreshTokenRow{}, err
	}
	if r.familyExpiresAt, err = encodeTime(t.FamilyExpiresAt); err != nil {
		return refreshTokenRow{}, err
	}
	if r.rotatedAt, err = encodeOptionalTime(t.RotatedAt); err != nil {
		return refreshTokenRow{}, err
	}
	if r.revokedAt, err = encodeOptionalTime(t.RevokedAt); err != nil {
		return refreshTokenRow{}, err
	}
	return r, nil
}

// args returns the row's values in column order, for an INSERT.
func (r refreshTokenRow) args() []any {
	return []any{r.hash, r.familyID, r.userID, r.clientID, r.scopes,
		r.issuedAt, r.expiresAt, r.familyExpiresAt, r.rotatedAt, r.revokedAt}
}

func (r refreshTokenRow) token() *RefreshToken {
	return &RefreshToken{
		Hash:            r.hash,
		FamilyID:        r.familyID,
		UserID:          r.userID,
		ClientID:        r.clientID,
		Scopes:          decodeScopes(r.scopes),
		IssuedAt:        decodeTime(r.issuedAt),
		ExpiresAt:       decodeTime(r.expiresAt),
		FamilyExpiresAt: decodeTime(r.familyExpiresAt),
		RotatedAt:       decodeOptionalTime(r.rotatedAt),
		RevokedAt:       decodeOptionalTime(r.revokedAt),
	}
}

// scanRefreshToken reads the refresh_tokens columns in the order above.
func scanRefreshToken(row rowScanner) (*RefreshToken, error) {
	var r refreshTokenRow
	if err := row.Scan(&r.hash, &r.familyID, &r.userID, &r.clientID, &r.scopes,
		&r.issuedAt, &r.expiresAt, &r.familyExpiresAt, &r.rotatedAt, &r.revokedAt); err != nil {
		return nil, err
	}
	return r.token(), nil
}

// accessTokenRow is an access_tokens row, fields in column order.
type accessTokenRow struct {
	jti, userID, familyID, clientID string
	expiresAt, revokedAt            int64
}

// encodeAccessToken checks t and returns it as a row. JTI, UserID and
// ExpiresAt are required.
func encodeAccessToken(t *AccessToken) (accessTokenRow, error) {
	if t == nil {
		return accessTokenRow{}, errors.New("users: nil access token")
	}
	if t.JTI == "" || t.UserID == "" || t.ExpiresAt.IsZero() {
		return accessTokenRow{}, errors.New("users: access token: JTI, UserID and ExpiresAt are required")
	}
	r := accessTokenRow{jti: t.JTI, userID: t.UserID, familyID: t.FamilyID, clientID: t.ClientID}
	var err error
	if r.expiresAt, err = encodeTime(t.ExpiresAt); err != nil {
		return accessTokenRow{}, err
	}
	if r.revokedAt, err = encodeOptionalTime(t.RevokedAt); err != nil {
		return accessTokenRow{}, err
	}
	return r, nil
}

// args returns the row's values in column order, for an INSERT.
func (r accessTokenRow) args() []any {
	return []any{r.jti, r.userID, r.familyID, r.clientID, r.expiresAt, r.revokedAt}
}

func (r accessTokenRow) token() *AccessToken {
	return &AccessToken{
		JTI:       r.jti,
		UserID:    r.userID,
		FamilyID:  r.familyID,
		ClientID:  r.clientID,
		ExpiresAt: decodeTime(r.expiresAt),
		RevokedAt: decodeOptionalTime(r.revokedAt),
	}
}

// encodeIssue checks is and returns its rows; refresh is nil when is has
// no refresh token.
func encodeIssue(is Issue) (access accessTokenRow, refresh *refreshTokenRow, err error) {
	if access, err = encodeAccessToken(is.Access); err != nil {
		return access, nil, err
	}
	if is.Refresh != nil {
		r, err := encodeRefreshToken(is.Refresh)
		if err != nil {
			return access, nil, err
		}
		if r.userID != access.userID {
			return access, nil, errors.New("users: issue tokens: the refresh and access tokens are of different users")
		}
		refresh = &r
	}
	return access, refresh, nil
}

// scanAccessToken reads the access_tokens columns in the order above.
func scanAccessToken(row rowScanner) (*AccessToken, error) {
	var r accessTokenRow
	if err := row.Scan(&r.jti, &r.userID, &r.familyID, &r.clientID, &r.expiresAt, &r.revokedAt); err != nil {
		return nil, err
	}
	return r.token(), nil
}

// scanRevocation reads jti and expires_at of an access_tokens row.
func scanRevocation(row rowScanner) (Revocation, error) {
	var (
		r       Revocation
		expires int64
	)
	if err := row.Scan(&r.JTI, &expires); err != nil {
		return Revocation{}, err
	}
	r.ExpiresAt = decodeTime(expires)
	return r, nil
}

// clientRow is a clients row, fields in column order.
type clientRow struct {
	id, secretHash, scopes string
	createdAt              int64
}

// encodeClient checks c and returns it as a row. ID and CreatedAt are
// required.
func encodeClient(c *Client) (clientRow, error) {
	if c == nil {
		return clientRow{}, errors.New("users: nil client")
	}
	if c.ID == "" || c.CreatedAt.IsZero() {
		return clientRow{}, errors.New("users: client: ID and CreatedAt are required")
	}
	r := clientRow{id: c.ID, secretHash: c.SecretHash}
	var err error
	if r.scopes, err = encodeScopes(c.Scopes); err != nil {
		return clientRow{}, err
	}
	if r.createdAt, err = encodeTime(c.CreatedAt); err != nil {
		return clientRow{}, err
	}
	return r, nil
}

// args returns the row's values in column order, for an INSERT.
func (r clientRow) args() []any {
	return []any{r.id, r.secretHash, r.scopes, r.createdAt}
}

func (r clientRow) client() *Client {
	return &Client{ID: r.id, SecretHash: r.secretHash, Scopes: decodeScopes(r.scopes), CreatedAt: decodeTime(r.createdAt)}
}

// scanClient reads the clients columns in the order above.
func scanClient(row rowScanner) (*Client, error) {
	var r clientRow
	if err := row.Scan(&r.id, &r.secretHash, &r.scopes, &r.createdAt); err != nil {
		return nil, err
	}
	return r.client(), nil
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

// encodeOptionalTime is encodeTime with the zero time, "not set", as 0.
func encodeOptionalTime(t time.Time) (int64, error) {
	if t.IsZero() {
		return 0, nil
	}
	return encodeTime(t)
}

// decodeOptionalTime is the inverse of encodeOptionalTime: 0 is the zero
// time, anything else a UTC instant.
func decodeOptionalTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return decodeTime(ns)
}

// attemptRow is a LoginAttempts as both engines store it.
type attemptRow struct {
	failures                                        int
	windowStart, blockedUntil, lastSuccess, updated int64
}

func encodeAttempts(a *LoginAttempts, now time.Time) (attemptRow, error) {
	var r attemptRow
	var err error
	r.failures = a.Failures
	if r.windowStart, err = encodeOptionalTime(a.WindowStart); err != nil {
		return r, err
	}
	if r.blockedUntil, err = encodeOptionalTime(a.BlockedUntil); err != nil {
		return r, err
	}
	if r.lastSuccess, err = encodeOptionalTime(a.LastSuccess); err != nil {
		return r, err
	}
	r.updated, err = encodeTime(now)
	return r, err
}

func (r attemptRow) attempts(key string) LoginAttempts {
	return LoginAttempts{
		Key:          key,
		Failures:     r.failures,
		WindowStart:  decodeOptionalTime(r.windowStart),
		BlockedUntil: decodeOptionalTime(r.blockedUntil),
		LastSuccess:  decodeOptionalTime(r.lastSuccess),
	}
}
