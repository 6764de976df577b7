// Package bearer is the vocabulary of RFC 6750 as gatehouse speaks it:
// reading an access token from a request (§2.1), the error codes (§3.1),
// and the WWW-Authenticate challenge that refuses a request (§3). The
// server and the verify package both use it, so a resource server that
// protects its routes with verify answers exactly as gatehouse does.
//
// The rule, in one place:
//
//   - No usable credentials: no Authorization header, a scheme other than
//     Bearer, an empty bearer token, or a token sent only as an
//     access_token query parameter (§2.3, a method gatehouse does not
//     accept, since query strings end up in logs and browser history).
//     401 with a challenge that names no error (§3.1: "the resource
//     server SHOULD NOT include an error code").
//   - A malformed request: more than one Authorization header, or a token
//     in the header and in the query (§3.1 "uses more than one method").
//     400 with error="invalid_request".
//   - A token that is not a b64token (§2.1), or fails verification: 401
//     with error="invalid_token".
//   - A token without a scope the resource needs: 403 with
//     error="insufficient_scope" and the scope attribute.
package bearer

import (
	"net/http"
	"strings"
)

// Error codes of RFC 6750 §3.1.
const (
	// InvalidRequest: the request is malformed (400).
	InvalidRequest = "invalid_request"
	// InvalidToken: the token is expired, revoked, malformed or invalid
	// for other reasons (401).
	InvalidToken = "invalid_token"
	// InsufficientScope: the token lacks a scope the resource needs (403).
	InsufficientScope = "insufficient_scope"
)

// Error is a refused request to a protected resource (RFC 6750 §3). Code
// is empty when the request carried no usable credentials, whose
// challenge then names no error (§3.1).
type Error struct {
	// Status is the HTTP status: 400, 401 or 403.
	Status int
	// Code is an RFC 6750 §3.1 error code, or empty.
	Code string
	// Description is a short reason safe to send (error_description).
	Description string
	// Scope lists the scopes the resource needs (insufficient_scope).
	Scope string
	// Err is the cause, for errors.Is and logs; never sent.
	Err error
}

// Error implements error.
func (e *Error) Error() string {
	if e.Code == "" {
		return "bearer: " + e.Description
	}
	return "bearer: " + e.Code + ": " + e.Description
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// NoCredentials is the refusal of a request without usable credentials:
// 401 without an error code.
func NoCredentials(description string) *Error {
	return &Error{Status: http.StatusUnauthorized, Description: description}
}

// Malformed is the invalid_request refusal (400).
func Malformed(description string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: InvalidRequest, Description: description}
}

// Invalid is the invalid_token refusal (401), with its cause for logs.
func Invalid(description string, cause error) *Error {
	return &Error{Status: http.StatusUnauthorized, Code: InvalidToken, Description: description, Err: cause}
}

// Insufficient is the insufficient_scope refusal (403) of a resource that
// needs every scope in scopes.
func Insufficient(scopes []string) *Error {
	return &Error{Status: http.StatusForbidden, Code: InsufficientScope, Description: "the access token lacks a required scope", Scope: strings.Join(scopes, " ")}
}

// Token returns the bearer token of r's Authorization header (§2.1; the
// scheme name is case-insensitive), or the *Error the package comment's
// rule gives. It does not check the token's syntax: see ValidSyntax.
func Token(r *http.Request) (string, error) {
	// Parsing the query costs a map: only when there is one.
	inQuery := r.URL.RawQuery != "" && r.URL.Query().Has("access_token")
	values := r.Header.Values("Authorization")
	switch {
	case len(values) > 1:
		return "", Malformed("more than one Authorization header")
	case len(values) == 0 && inQuery:
		return "", NoCredentials("access tokens are accepted only in the Authorization header")
	case len(values) == 0:
		return "", NoCredentials("an access token is required")
	}
	scheme, token, _ := strings.Cut(values[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		if inQuery {
			return "", NoCredentials("access tokens are accepted only in the Authorization header")
		}
		return "", NoCredentials("the Authorization header must use the Bearer scheme")
	}
	token = strings.TrimLeft(token, " ")
	switch {
	case token == "" && inQuery:
		return "", NoCredentials("access tokens are accepted only in the Authorization header")
	case token == "":
		return "", NoCredentials("the bearer token is empty")
	case inQuery:
		return "", Malformed("the access token was sent both in the Authorization header and in the query")
	}
	return token, nil
}

// ValidSyntax reports whether token is a b64token (§2.1): base64 and
// base64url characters, '-', '.', '_', '~', then any '=' padding.
func ValidSyntax(token string) bool {
	end := len(token)
	for end > 0 && token[end-1] == '=' {
		end--
	}
	if end == 0 {
		return false
	}
	for i := 0; i < end; i++ {
		if !b64TokenChars[token[i]] {
			return false
		}
	}
	return true
}

// b64TokenChars are the characters of a b64token before the trailing '=':
// a table, as a server checks tokens byte by byte.
var b64TokenChars = func() (t [256]bool) {
	for c := range t {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'
	}
	return t
}()

// Challenge is the WWW-Authenticate value refusing a request with e
// (§3): the realm, then for an error code the error and its description,
// and the scope attribute when the refusal names scopes.
func Challenge(realm string, e *Error) string {
	var b strings.Builder
	b.WriteString(`Bearer realm="` + Sanitize(realm) + `"`)
	if e.Code != "" {
		b.WriteString(`, error="` + e.Code + `"`)
		if d := Sanitize(e.Description); d != "" {
			b.WriteString(`, error_description="` + d + `"`)
		}
	}
	if e.Scope != "" {
		b.WriteString(`, scope="` + Sanitize(e.Scope) + `"`)
	}
	return b.String()
}

// Sanitize keeps s within the characters RFC 6750 §3 (and RFC 6749 §5.2)
// allow in a quoted attribute value (%x20-21 / %x23-5B / %x5D-7E): quotes
// become apostrophes, backslashes slashes, and anything else outside the
// set is dropped.
func Sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '"':
			return '\''
		case r == '\\':
			return '/'
		case r < 0x20 || r > 0x7e:
			return -1
		}
		return r
	}, s)
}
