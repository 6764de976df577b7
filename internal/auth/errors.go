package auth

import (
	"errors"
	"net/http"

	"github.com/gatehouse/gatehouse/bearer"
	"github.com/gatehouse/gatehouse/internal/storage"
	"github.com/gatehouse/gatehouse/internal/users"
)

// Error codes of RFC 6749 §5.2.
const (
	CodeInvalidRequest       = "invalid_request"
	CodeInvalidClient        = "invalid_client"
	CodeInvalidGrant         = "invalid_grant"
	CodeUnauthorizedClient   = "unauthorized_client"
	CodeUnsupportedGrantType = "unsupported_grant_type"
	CodeInvalidScope         = "invalid_scope"
	CodeServerError          = "server_error"
	// CodeTemporarilyUnavailable answers throttled (429) and overloaded
	// (503) token requests, with Retry-After.
	CodeTemporarilyUnavailable = "temporarily_unavailable"
	// CodeMFARequired answers a right password of a user with a second
	// factor sent without a code (Auth0's mfa_required): the answer
	// carries an mfa_token for GrantMFAOTP.
	CodeMFARequired = "mfa_required"
)

// Error is a token endpoint error response (RFC 6749 §5.2). Description is
// sent to the client; Cause, when set, is for logs only.
type Error struct {
	Code        string
	Description string
	Status      int
	Cause       error
	// RetryAfter, in seconds, is sent as Retry-After when set.
	RetryAfter int
	// MFAToken is sent as mfa_token with CodeMFARequired.
	MFAToken string
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return e.Code + ": " + e.Description + ": " + e.Cause.Error()
	}
	return e.Code + ": " + e.Description
}

func (e *Error) Unwrap() error { return e.Cause }

// oauthError builds an Error with the status RFC 6749 §5.2 gives the code:
// 401 for invalid_client, 500 for server_error, 400 otherwise.
func oauthError(code, description string) *Error {
	status := http.StatusBadRequest
	switch code {
	case CodeInvalidClient:
		status = http.StatusUnauthorized
	case CodeServerError:
		status = http.StatusInternalServerError
	}
	return &Error{Code: code, Description: description, Status: status}
}

// InvalidRequest is the §5.2 error for a malformed token request.
func InvalidRequest(description string) *Error {
	return oauthError(CodeInvalidRequest, description)
}

// UnsupportedGrantType is the RFC 6749 §5.2 unsupported_grant_type error.
func UnsupportedGrantType() *Error {
	return oauthError(CodeUnsupportedGrantType, `grant_type must be "password", "refresh_token", "client_credentials" or "`+GrantMFAOTP+`"`)
}

// Overloaded is the 503 answer when password hashing is at capacity.
func Overloaded(cause error) *Error {
	return &Error{Code: CodeTemporarilyUnavailable, Description: "the server is busy; retry shortly", Status: http.StatusServiceUnavailable, Cause: cause, RetryAfter: 1}
}

// Unavailable is the 503 answer when the store could not do the work now
// (storage.IsFault: unreachable, timed out, full, busy, read-only):
// RFC 6749 §5.2 temporarily_unavailable, to retry after Retry-After.
func Unavailable(cause error) *Error {
	return &Error{Code: CodeTemporarilyUnavailable, Description: "the server cannot store this now; retry shortly", Status: http.StatusServiceUnavailable, Cause: cause, RetryAfter: 1}
}

// ServerError hides cause from the client and keeps it for the log. An
// overloaded hasher (users.ErrBusy) or a store fault is a 503 to retry,
// not a 500.
func ServerError(cause error) *Error {
	if errors.Is(cause, users.ErrBusy) {
		return Overloaded(cause)
	}
	if storage.IsFault(cause) {
		return Unavailable(cause)
	}
	e := oauthError(CodeServerError, "the server could not handle the request")
	e.Cause = cause
	return e
}

// Error codes of RFC 6750 §3.1 (package bearer's).
const (
	BearerInvalidRequest    = bearer.InvalidRequest
	BearerInvalidToken      = bearer.InvalidToken
	BearerInsufficientScope = bearer.InsufficientScope
)

// BearerError is a rejected request to a protected resource (RFC 6750 §3):
// package bearer's Error, which the verify package returns too.
type BearerError = bearer.Error

func missingToken() *BearerError { return bearer.NoCredentials("an access token is required") }

func invalidToken(description string) *BearerError { return bearer.Invalid(description, nil) }

// InvalidToken is the RFC 6750 §3.1 invalid_token error, for handlers that
// find a validated token's user gone or disabled.
func InvalidToken(description string) *BearerError {
	return invalidToken(description)
}
