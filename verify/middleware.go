package verify

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// Error codes of RFC 6750 §3.1.
const (
	// CodeInvalidRequest: the request is malformed (400).
	CodeInvalidRequest = "invalid_request"
	// CodeInvalidToken: the token is expired, revoked, malformed or
	// invalid for other reasons (401).
	CodeInvalidToken = "invalid_token"
	// CodeInsufficientScope: the token lacks a scope the resource needs
	// (403).
	CodeInsufficientScope = "insufficient_scope"
)

// Error is a refused request to a protected resource (RFC 6750 §3), the
// error Verify returns and Middleware answers with. Code is empty when the
// request carried no token (or no Bearer one), whose challenge then names
// no error (§3.1).
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
		return "verify: " + e.Description
	}
	return "verify: " + e.Code + ": " + e.Description
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

func invalidToken(description string, cause error) *Error {
	return &Error{Status: http.StatusUnauthorized, Code: CodeInvalidToken, Description: description, Err: cause}
}

// asError is err as an *Error; anything else refuses the token.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return invalidToken("the access token is invalid", err)
}

func invalidRequest(description string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeInvalidRequest, Description: description}
}

// BearerToken extracts the access token from the Authorization header as
// gatehouse does (RFC 6750 §2.1): the scheme name is case-insensitive and
// the token must be a b64token. Tokens in the query string (§2.3) are
// refused with invalid_request, since they end up in logs and browser
// history; so are a repeated header and an empty token. A request without
// credentials, or with another scheme, gets an *Error without Code.
func BearerToken(r *http.Request) (string, error) {
	if r.URL.Query().Has("access_token") {
		return "", invalidRequest("access tokens are accepted only in the Authorization header")
	}
	values := r.Header.Values("Authorization")
	switch len(values) {
	case 0:
		return "", &Error{Status: http.StatusUnauthorized, Description: "an access token is required"}
	case 1:
	default:
		return "", invalidRequest("more than one Authorization header")
	}
	scheme, token, _ := strings.Cut(values[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", &Error{Status: http.StatusUnauthorized, Description: "the Authorization header must use the Bearer scheme"}
	}
	token = strings.TrimLeft(token, " ")
	if token == "" {
		return "", invalidRequest("the bearer token is empty")
	}
	if !isB64Token(token) {
		return "", invalidToken("the access token is malformed", nil)
	}
	return token, nil
}

// isB64Token checks the b64token syntax of RFC 6750 §2.1.
func isB64Token(s string) bool {
	end := len(s)
	for end > 0 && s[end-1] == '=' {
		end--
	}
	if end == 0 {
		return false
	}
	for i := 0; i < end; i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'
		if !ok {
			return false
		}
	}
	return true
}

type contextKey struct{}

// authenticated is what Middleware leaves in the request context.
type authenticated struct {
	claims *Claims
	token  string
}

// ClaimsFrom returns the claims Middleware verified for this request. It
// reports false when the request did not pass through Middleware; a
// handler that needs a user must then refuse (fail closed).
func ClaimsFrom(ctx context.Context) (*Claims, bool) {
	a, _ := ctx.Value(contextKey{}).(*authenticated)
	if a == nil || a.claims == nil {
		return nil, false
	}
	return a.claims, true
}

// ContextWithClaims returns a context carrying c as ClaimsFrom reads it:
// for tests of handlers that sit behind Middleware. RequireActive refuses
// such a context, which holds no token to introspect.
func ContextWithClaims(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, contextKey{}, &authenticated{claims: c})
}

// Middleware protects a handler with gatehouse access tokens: it reads the
// bearer token (BearerToken), verifies it (Verify), requires every scope
// in scopes (RFC 6749 §3.3), and calls next with the claims in the request
// context (ClaimsFrom). Refusals are answered as gatehouse answers them:
// an RFC 6750 §3 `WWW-Authenticate: Bearer realm="…"` challenge — without
// an error attribute when no token was sent, with error="invalid_token"
// and error_description (401), error="insufficient_scope" and the scope
// attribute listing scopes (403), or error="invalid_request" (400) — and an
// RFC 9457 problem details body.
func (v *Verifier) Middleware(scopes ...string) func(http.Handler) http.Handler {
	scopes = append([]string(nil), scopes...)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			token, err := BearerToken(r)
			if err != nil {
				v.writeError(w, asError(err))
				return
			}
			claims, err := v.Verify(r.Context(), token)
			if err != nil {
				v.writeError(w, asError(err))
				return
			}
			for _, s := range scopes {
				if !claims.HasScope(s) {
					v.writeError(w, &Error{
						Status:      http.StatusForbidden,
						Code:        CodeInsufficientScope,
						Description: "the access token lacks a required scope",
						Scope:       strings.Join(scopes, " "),
					})
					return
				}
			}
			ctx := context.WithValue(r.Context(), contextKey{}, &authenticated{claims: claims, token: token})
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// writeError answers e with its RFC 6750 §3 challenge and a problem
// details body, as gatehouse's own error mapper does.
func (v *Verifier) writeError(w http.ResponseWriter, e *Error) {
	w.Header().Set("WWW-Authenticate", v.challenge(e))
	writeProblem(w, e.Status, e.Description)
}

// challenge builds the WWW-Authenticate value of RFC 6750 §3. A request
// without credentials gets no error attribute (§3.1).
func (v *Verifier) challenge(e *Error) string {
	var b strings.Builder
	b.WriteString(`Bearer realm="` + v.cfg.Realm + `"`)
	if e.Code != "" {
		b.WriteString(`, error="` + e.Code + `"`)
		if e.Description != "" {
			b.WriteString(`, error_description="` + quoteSafe(e.Description) + `"`)
		}
	}
	if e.Scope != "" {
		b.WriteString(`, scope="` + quoteSafe(e.Scope) + `"`)
	}
	return b.String()
}

// quoteSafe keeps only the characters RFC 6750 §3 allows in attribute
// values (%x20-21 / %x23-5B / %x5D-7E).
func quoteSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return -1
		}
		return r
	}, s)
}

// problem is an RFC 9457 problem details object of type about:blank, whose
// title is the status phrase (§4.2.1).
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

func writeProblem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail})
}
