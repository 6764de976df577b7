package users

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// Sentinel errors returned by Service methods, matched with errors.Is.
// The storage ones are the store's own, so a caller matches either.
var (
	// ErrNotFound: no user matches.
	ErrNotFound = storage.ErrNotFound
	// ErrUsernameTaken: another user already has this (normalised) username.
	ErrUsernameTaken = storage.ErrUsernameTaken
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

// User is an account that can log in with the password grant, as stored.
type User = storage.User

// TOTP is a user's second factor (storage.TOTP).
type TOTP = storage.TOTP

// Store is what the Service needs: the accounts.
type Store = storage.UserStore

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
