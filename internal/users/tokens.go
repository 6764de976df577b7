package users

import (
	"context"
	"errors"
	"slices"
	"time"
)

// Sentinels of the token and client stores.
var (
	// ErrTokenReused: a refresh token that was already rotated was presented
	// again. Its whole family has been revoked (RFC 9700 §4.14.2).
	ErrTokenReused = errors.New("users: refresh token reused")
	// ErrTokenInactive: the refresh token expired or was revoked.
	ErrTokenInactive = errors.New("users: refresh token expired or revoked")
	// ErrClientExists: another client has this client_id.
	ErrClientExists = errors.New("users: client_id already taken")
	// ErrGrantStale: the account changed after the grant was authorised
	// (a new password, disabled, deleted, a scope removed: its TokenEpoch
	// moved on), so the grant's tokens were not stored.
	ErrGrantStale = errors.New("users: the account changed while the grant was issued")
)

// Issue is what one grant stores: the access token's record and, for a
// new login, its first refresh token, under the account state that
// authorised them.
type Issue struct {
	// Epoch is the user's TokenEpoch read when the grant was authorised
	// (the password checked, the refresh token's user loaded).
	Epoch int64
	// Refresh is the first token of a new family; nil for none.
	Refresh *RefreshToken
	// Access is the issued access token (its UserID names the user).
	Access *AccessToken
}

// RefreshToken is a stored refresh token (RFC 6749 §6). The token itself is
// never stored: Hash is the hex SHA-256 of it.
type RefreshToken struct {
	Hash string
	// FamilyID names the login the token descends from; every rotation
	// keeps it, and revoking it revokes every token of the login.
	FamilyID string
	UserID   string
	ClientID string
	Scopes   []string
	IssuedAt time.Time
	// ExpiresAt is the idle expiry of this token.
	ExpiresAt time.Time
	// FamilyExpiresAt is the absolute end of the login, whatever rotations.
	FamilyExpiresAt time.Time
	// RotatedAt is set when the token was exchanged for its successor.
	RotatedAt time.Time
	// RevokedAt is set when the token (or its family) was revoked.
	RevokedAt time.Time
}

// AccessToken records an issued access token by its jti, so it can be
// revoked (RFC 7009) and found by user, family or client on account events.
type AccessToken struct {
	JTI       string
	UserID    string
	FamilyID  string // "" when issued without a refresh token
	ClientID  string
	ExpiresAt time.Time
	RevokedAt time.Time
}

// Revocation is a revoked access token that has not yet expired: the
// deny-list the bearer validator keeps in memory.
type Revocation struct {
	JTI       string
	ExpiresAt time.Time
}

// TokenStore persists refresh tokens and the access-token revocation list.
//
// A token expires at its ExpiresAt (or FamilyExpiresAt): it is inactive from
// that instant on, like a JWT at its "exp" (RFC 7519 §4.1.4). Revoking sets
// RevokedAt only on tokens not revoked yet, so the first revocation's time
// is kept.
type TokenStore interface {
	// CreateRefreshToken stores t (the first token of a new family). Hash,
	// FamilyID, UserID, IssuedAt, ExpiresAt and FamilyExpiresAt are
	// required; on success t holds the values as stored (times in UTC).
	CreateRefreshToken(ctx context.Context, t *RefreshToken) error
	// RefreshToken returns the token with that hash, or ErrNotFound.
	RefreshToken(ctx context.Context, hash string) (*RefreshToken, error)
	// RotateRefreshToken atomically exchanges the token with that hash for
	// the successor fn returns, also across processes sharing the database:
	//   - unknown hash: ErrNotFound;
	//   - already rotated: revokes its whole family (refresh tokens and the
	//     family's access tokens), commits that, and returns ErrTokenReused;
	//   - revoked, or now past ExpiresAt or FamilyExpiresAt: ErrTokenInactive;
	//   - otherwise calls fn with the current token; an error from fn is
	//     returned unchanged and nothing changes; else the old token is
	//     marked rotated at now and the successor stored.
	// Of concurrent calls for one hash exactly one succeeds.
	//
	// fn gets a copy of the old token and should only build the successor:
	// a store may call it inside its write transaction (SQLite) or before it
	// (PostgreSQL, so that fn may itself read the store without holding a
	// pooled connection hostage), and concurrent callers' fns may all run
	// before one of them wins. The successor
	// keeps the old token's FamilyID and FamilyExpiresAt: zero ones are
	// filled in, different ones are an error. The successor is returned as
	// stored.
	RotateRefreshToken(ctx context.Context, hash string, now time.Time, fn func(old *RefreshToken) (*RefreshToken, error)) (*RefreshToken, error)
	// RevokeRefreshFamily revokes every refresh token and access token of
	// the family. Revoking an unknown or revoked family is not an error;
	// "" names no family (access tokens issued without a refresh token
	// have that FamilyID) and revokes nothing.
	RevokeRefreshFamily(ctx context.Context, familyID string, now time.Time) error
	// RevokeUserTokens revokes every refresh and access token of the user.
	RevokeUserTokens(ctx context.Context, userID string, now time.Time) error
	// RevokeClientTokens revokes every refresh and access token issued to
	// the client.
	RevokeClientTokens(ctx context.Context, clientID string, now time.Time) error

	// IssueTokens stores what a grant issued, in one transaction, only
	// while the user named by is.Access.UserID exists, is enabled and
	// still has TokenEpoch is.Epoch; otherwise it stores nothing and
	// returns ErrGrantStale. It is atomic with every UpdateUser that
	// raises the epoch and every DeleteUser, also across processes: either
	// the grant's tokens are stored first and that change revokes them, or
	// the change comes first and the grant fails. is.Refresh, when set,
	// must be of the same user.
	IssueTokens(ctx context.Context, is Issue) error
	// RecordAccessToken stores an issued access token. JTI, UserID and
	// ExpiresAt are required. Unlike IssueTokens it checks no account
	// state: grants use IssueTokens.
	RecordAccessToken(ctx context.Context, t *AccessToken) error
	// AccessToken returns the record with that jti, or ErrNotFound.
	AccessToken(ctx context.Context, jti string) (*AccessToken, error)
	// RevokeAccessToken marks the token revoked. Returns ErrNotFound when no
	// token with that jti was recorded; revoking twice is not an error.
	RevokeAccessToken(ctx context.Context, jti string, now time.Time) error
	// RevokedAccessTokens returns every revoked access token whose
	// ExpiresAt is after now, soonest to expire first.
	RevokedAccessTokens(ctx context.Context, now time.Time) ([]Revocation, error)

	// PruneTokens deletes access-token records expired before now and
	// refresh tokens past their FamilyExpiresAt, that is those whose
	// ExpiresAt (FamilyExpiresAt) is at or before now. A refresh token past
	// only its idle ExpiresAt is kept: while its family lives, presenting it
	// after a rotation must still be seen as reuse.
	PruneTokens(ctx context.Context, now time.Time) error
}

// Client is a registered OAuth 2.0 client (RFC 6749 §2).
type Client struct {
	ID string
	// SecretHash is the hex SHA-256 of the client secret, "" for a public
	// client. Secrets are 256-bit random values, so a fast hash compared in
	// constant time is enough (unlike passwords).
	SecretHash string
	// Scopes limits what the client may request; empty means any scope.
	Scopes    []string
	CreatedAt time.Time
}

// Confidential reports whether the client has a secret (RFC 6749 §2.1).
func (c *Client) Confidential() bool { return c.SecretHash != "" }

// ClientStore persists registered clients.
type ClientStore interface {
	// CreateClient stores c, whose ID is set. A zero CreatedAt is set from
	// the store's clock; on success c holds the values as stored. Returns
	// ErrClientExists.
	CreateClient(ctx context.Context, c *Client) error
	// ClientByID returns ErrNotFound.
	ClientByID(ctx context.Context, id string) (*Client, error)
	// ListClients returns every client ordered by ID (an empty, non-nil
	// slice when there is none).
	ListClients(ctx context.Context) ([]*Client, error)
	// DeleteClient returns ErrNotFound.
	DeleteClient(ctx context.Context, id string) error
}

// successorOf checks next, the token fn returned to replace old in
// RotateRefreshToken, and returns a copy of it with old's family: a zero
// FamilyID or FamilyExpiresAt is taken from old, a different one is an
// error, since rotation can neither move a token to another login nor
// extend the login (RFC 9700 §4.14.2).
func successorOf(old, next *RefreshToken) (*RefreshToken, error) {
	if next == nil {
		return nil, errors.New("users: rotate refresh token: fn returned no successor")
	}
	t := *next
	t.Scopes = slices.Clone(next.Scopes)
	if t.FamilyID == "" {
		t.FamilyID = old.FamilyID
	}
	if t.FamilyExpiresAt.IsZero() {
		t.FamilyExpiresAt = old.FamilyExpiresAt
	}
	if t.FamilyID != old.FamilyID {
		return nil, errors.New("users: rotate refresh token: successor is of another family")
	}
	if !t.FamilyExpiresAt.Equal(old.FamilyExpiresAt) {
		return nil, errors.New("users: rotate refresh token: successor changes FamilyExpiresAt")
	}
	if t.Hash == old.Hash {
		return nil, errors.New("users: rotate refresh token: successor has the old token's hash")
	}
	return &t, nil
}

// copyRefreshToken returns a deep copy of t, so fn cannot change the
// token the store goes on to use.
func copyRefreshToken(t *RefreshToken) *RefreshToken {
	c := *t
	c.Scopes = slices.Clone(t.Scopes)
	return &c
}

// Kinds of change a shared store announces to every process using it.
const (
	// ChangeRevocations: refresh or access tokens were revoked.
	ChangeRevocations = "revocations"
	// ChangeKeys: a signing key was created or deleted.
	ChangeKeys = "keys"
)

// ChangeListener is implemented by stores that several server processes
// share (PostgreSQL). The store announces its own committed writes: every
// method that revokes tokens announces ChangeRevocations, every method
// that creates or deletes a signing key announces ChangeKeys, in the same
// transaction as the write, so listeners never hear of a change before it
// is visible.
type ChangeListener interface {
	// Listen calls fn with the kind of each change committed by any
	// process, this one included, until ctx is done (then it returns nil)
	// or the listening connection fails (then it returns the error, and
	// the caller may listen again). fn runs on Listen's goroutine.
	Listen(ctx context.Context, fn func(kind string)) error
}
