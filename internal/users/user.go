package users

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors returned by Store and Service methods. Callers match them
// with errors.Is; each method's doc says which ones it returns.
var (
	// ErrNotFound: no user (or key, token or client) matches.
	ErrNotFound = errors.New("users: not found")
	// ErrUsernameTaken: another user already has this (normalised) username.
	ErrUsernameTaken = errors.New("users: username already taken")
	// ErrInvalidCredentials: unknown username or wrong password. The two are
	// deliberately indistinguishable.
	ErrInvalidCredentials = errors.New("users: invalid username or password")
	// ErrDisabled: the password was right but the account is disabled.
	ErrDisabled = errors.New("users: account disabled")
)

// ValidationError reports a rejected input field, e.g. a username with
// characters outside the allowed set. It is safe to show to the caller.
type ValidationError struct {
	Field   string
	Message string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Message }

// User is an account that can log in with the password grant.
type User struct {
	// ID is stable for the life of the account and is the token subject.
	ID       string
	Username string
	// PasswordHash is a PHC-format argon2id string, or a bcrypt hash
	// imported from elsewhere (rehashed on the next successful login).
	PasswordHash string
	// Scopes the user may be granted, sorted and without duplicates.
	Scopes   []string
	Disabled bool
	// TokenEpoch counts the changes that ended every token the user held
	// (a new password, disabling, removing a scope). It only grows; tokens
	// are issued only while it still has the value read when the password
	// was checked, so a login in flight cannot outlive such a change.
	TokenEpoch int64
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// HasScope reports whether s is one of the user's scopes.
func (u *User) HasScope(s string) bool {
	for _, have := range u.Scopes {
		if have == s {
			return true
		}
	}
	return false
}

// SigningKey is a token signing key as stored. Private holds the private key
// as the auth package encodes it (PKCS #8 DER, possibly encrypted); the
// store treats it as opaque bytes. HMAC secrets are never stored.
type SigningKey struct {
	ID        string
	Algorithm string
	Private   []byte
	CreatedAt time.Time
	// ActivatesAt is when tokens start being signed with the key. A rotated
	// key is published (JWKS) from CreatedAt but signs only from here, so
	// resource servers learn it before they meet it.
	ActivatesAt time.Time
}

// Store persists users and signing keys. Implementations must be safe for
// concurrent use and store times in UTC.
type Store interface {
	// CreateUser inserts u, whose ID, Username and PasswordHash are set.
	// CreatedAt and UpdatedAt are set by the store. Returns ErrUsernameTaken
	// when the username exists.
	//
	// A CreatedAt or UpdatedAt the caller already set is kept (in UTC), so
	// a Service with an injected clock decides the times; zero ones are set
	// from the store's clock. On success u holds the times as stored.
	CreateUser(ctx context.Context, u *User) error
	// UserByUsername returns ErrNotFound when no user has that username.
	UserByUsername(ctx context.Context, username string) (*User, error)
	// UserByID returns ErrNotFound when no user has that ID.
	UserByID(ctx context.Context, id string) (*User, error)
	// ListUsers returns up to limit users ordered by username, starting after
	// the given username ("" for the first page).
	ListUsers(ctx context.Context, after string, limit int) ([]*User, error)
	// CountUsers returns how many users exist.
	CountUsers(ctx context.Context) (int, error)
	// CountEnabledWithScope returns how many enabled users hold scope.
	CountEnabledWithScope(ctx context.Context, scope string) (int, error)
	// UpdateUser loads the user with that username, calls fn on it and, if
	// fn returns nil, saves it (with UpdatedAt set) atomically with the read.
	// Returns ErrNotFound, or fn's error unchanged (and then nothing is
	// written). ID and CreatedAt cannot change; when fn leaves UpdatedAt
	// as it was, the store sets it to its own clock's now. TokenEpoch
	// cannot go down; when fn raises it, every refresh and access token of
	// the user is revoked, at the UpdatedAt fn set, in the same
	// transaction (see IssueTokens).
	UpdateUser(ctx context.Context, username string, fn func(*User) error) (*User, error)
	// DeleteUser removes the user and revokes, at now, every refresh and
	// access token of it, in one transaction. Returns ErrNotFound when no
	// user has that username.
	DeleteUser(ctx context.Context, username string, now time.Time) error

	// SigningKeys returns every stored signing key, newest first.
	SigningKeys(ctx context.Context) ([]SigningKey, error)
	// EnsureSigningKey returns the newest key for alg, calling create and
	// storing its result only when there is none. Concurrent callers, also
	// in other processes sharing the database, all get the same key.
	// A zero ActivatesAt is set to CreatedAt.
	EnsureSigningKey(ctx context.Context, alg string, create func() (SigningKey, error)) (SigningKey, error)
	// CreateSigningKey stores k (a rotation). A zero ActivatesAt is set to
	// CreatedAt.
	CreateSigningKey(ctx context.Context, k SigningKey) error
	// DeleteSigningKey removes a retired key. Returns ErrNotFound.
	DeleteSigningKey(ctx context.Context, id string) error
	// ReplaceSigningKeyPrivate swaps the stored private form of key id
	// from old to next (its encryption at rest), only while it is still
	// old, so two processes migrating at once cannot lose either's write.
	// Returns ErrNotFound when no key has that id and private form.
	ReplaceSigningKeyPrivate(ctx context.Context, id string, old, next []byte) error

	TokenStore
	ClientStore
	AttemptStore

	// Ping reports whether the store is reachable.
	Ping(ctx context.Context) error
	Close() error
}

const (
	minUsernameLen = 3
	maxUsernameLen = 64
	// MinPasswordLen is counted in characters (runes).
	MinPasswordLen = 8
	// MaxPasswordBytes bounds the hashing work one request can cause.
	MaxPasswordBytes = 1024
)

// NormalizeUsername checks name and returns its canonical form: 3 to 64
// characters from a-z, 0-9, '.', '_' and '-', starting with a letter or
// digit; ASCII A-Z is accepted and folded to a-z.
//
// The raw bytes are checked before anything is folded, and every byte
// outside ASCII is refused: Unicode case mapping would fold look-alikes
// into the allowed set (strings.ToLower turns the Kelvin sign U+212A into
// "k", U+0130 "İ" into "i", and ToUpper turns U+017F "ſ" into "S"),
// letting several spellings name one account. Unlike the PRECIS profiles
// of RFC 8265 §3, which map width and case, nothing but A-Z is mapped.
// Every accepted byte folds to one byte, so the length limits count the
// result.
func NormalizeUsername(name string) (string, error) {
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && c != '.' && c != '_' && c != '-' {
			return "", &ValidationError{Field: "username", Message: "may contain only letters, digits, '.', '_' and '-'"}
		}
		if i == 0 && !alnum {
			return "", &ValidationError{Field: "username", Message: "must start with a letter or digit"}
		}
	}
	if len(name) < minUsernameLen || len(name) > maxUsernameLen {
		return "", &ValidationError{Field: "username", Message: fmt.Sprintf("must be %d to %d characters long", minUsernameLen, maxUsernameLen)}
	}
	// name is ASCII by now, so ToLower maps A-Z and nothing else.
	return strings.ToLower(name), nil
}

// CheckPassword enforces the password length policy for field.
func CheckPassword(field, password string) error {
	if len(password) > MaxPasswordBytes {
		return &ValidationError{Field: field, Message: fmt.Sprintf("must be at most %d bytes", MaxPasswordBytes)}
	}
	if len([]rune(password)) < MinPasswordLen {
		return &ValidationError{Field: field, Message: fmt.Sprintf("must be at least %d characters", MinPasswordLen)}
	}
	return nil
}

// validScope reports whether s is a scope-token of RFC 6749 §3.3:
// 1*( %x21 / %x23-5B / %x5D-7E ), i.e. printable ASCII without space, '"'
// or backslash. Stores rely on it to keep scopes space-separated.
func validScope(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
