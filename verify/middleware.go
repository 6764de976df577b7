package verify

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gatehouse/gatehouse/bearer"
)

// Error codes of RFC 6750 §3.1: package bearer's.
const (
	// CodeInvalidRequest: the request is malformed (400).
	CodeInvalidRequest = bearer.InvalidRequest
	// CodeInvalidToken: the token is expired, revoked, malformed or
	// invalid for other reasons (401).
	CodeInvalidToken = bearer.InvalidToken
	// CodeInsufficientScope: the token lacks a scope the resource needs
	// (403).
	CodeInsufficientScope = bearer.InsufficientScope
)

// Error is a refused request to a protected resource (RFC 6750 §3), the
// error Verify returns and Middleware answers with: package bearer's
// Error, which gatehouse's own validator returns too. Code is empty when
// the request carried no usable credentials, whose challenge then names
// no error (§3.1).
type Error = bearer.Error

func invalidToken(description string, cause error) *Error { return bearer.Invalid(description, cause) }

// asError is err as an *Error; anything else refuses the token.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return invalidToken("the access token is invalid", err)
}

// BearerToken extracts the access token from the Authorization header by
// the rule gatehouse follows (package bearer, RFC 6750 §2.1 and §3.1):
// the scheme name is case-insensitive and the token must be a b64token.
// A request without usable credentials (no header, another scheme, an
// empty token, or a token only in the access_token query parameter,
// which gatehouse does not accept) gets an *Error without Code (401); a
// repeated header, or a token both in the header and in the query, gets
// invalid_request (400); a token that is not a b64token, invalid_token.
func BearerToken(r *http.Request) (string, error) {
	token, err := bearer.Token(r)
	if err != nil {
		return "", err
	}
	if !bearer.ValidSyntax(token) {
		return "", invalidToken("the access token is malformed", nil)
	}
	return token, nil
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
					v.writeError(w, bearer.Insufficient(scopes))
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
	w.Header().Set("WWW-Authenticate", bearer.Challenge(v.cfg.Realm, e))
	writeProblem(w, e.Status, e.Description)
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
