package auth

import (
	"encoding/json"
	"strings"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse/gatehouse/jwtdate"
)

// AccessTokenType is the `typ` header of access tokens (RFC 9068 §2.1).
const AccessTokenType = "at+jwt"

// Claims are the claims of a gatehouse access token (RFC 9068 §2.2).
type Claims struct {
	jwt.RegisteredClaims
	ClientID          string `json:"client_id"`
	Scope             string `json:"scope,omitempty"`
	PreferredUsername string `json:"preferred_username,omitempty"`
	// SessionID names the login (storage.Session) the token belongs to;
	// revoking the session ends the token (RFC 9068 allows claims beyond
	// its own).
	SessionID string `json:"sid,omitempty"`
}

// ClientToken reports whether the token was issued by the
// client-credentials grant: its subject is the client itself (RFC 9068
// §2.2). No client may have a client_id of the form user ids take, so a
// user's token never matches.
func (c *Claims) ClientToken() bool { return c.Subject == c.ClientID }

// Scopes returns the space-separated `scope` claim as a list.
func (c *Claims) Scopes() []string { return strings.Fields(c.Scope) }

// HasScope reports whether the token was granted scope s.
func (c *Claims) HasScope(s string) bool {
	for _, have := range strings.Fields(c.Scope) {
		if have == s {
			return true
		}
	}
	return false
}

// UnmarshalJSON decodes the claims and refuses an `exp`, `nbf` or `iat`
// that is present but not a JSON number (RFC 7519 §2, jwtdate.Strict).
func (c *Claims) UnmarshalJSON(b []byte) error {
	type plain Claims // without this method
	if err := json.Unmarshal(b, (*plain)(c)); err != nil {
		return err
	}
	return jwtdate.Strict(b, &c.RegisteredClaims)
}
