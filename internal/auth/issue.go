package auth

import (
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// issue signs an access token (RFC 9068) for u through client c with
// scopes, belonging to the session sid. Nothing is stored per access
// token: revoking the session (or the token's jti, RFC 7009) is recorded
// in the change log, and every process refuses it from memory.
func (i *Issuer) issue(u *storage.User, c client, scopes []string, sid string, now time.Time) (*TokenResponse, error) {
	return i.sign(u.ID, u.Username, c.id, scopes, sid, now)
}

// sign signs an access token for subject (with username, when the
// subject is a user) through client clientID.
func (i *Issuer) sign(subject, username, clientID string, scopes []string, sid string, now time.Time) (*TokenResponse, error) {
	iat := now.Truncate(time.Second)
	exp := iat.Add(i.cfg.TTL)
	jti, err := randomToken(16)
	if err != nil {
		return nil, ServerError(err)
	}
	scope := strings.Join(scopes, " ")
	claims := &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    i.cfg.Issuer,
			Subject:   subject,
			Audience:  jwt.ClaimStrings{i.cfg.Audience},
			ExpiresAt: jwt.NewNumericDate(exp),
			NotBefore: jwt.NewNumericDate(iat),
			IssuedAt:  jwt.NewNumericDate(iat),
			ID:        jti,
		},
		ClientID:          clientID,
		Scope:             scope,
		PreferredUsername: username,
		SessionID:         sid,
	}
	kid, method, key := i.Keys.Signer()
	tok := jwt.NewWithClaims(method, claims)
	tok.Header["typ"] = AccessTokenType
	tok.Header["kid"] = kid
	signed, err := tok.SignedString(key)
	if err != nil {
		return nil, ServerError(fmt.Errorf("sign access token: %w", err))
	}
	return &TokenResponse{
		AccessToken: signed,
		TokenType:   "Bearer",
		ExpiresIn:   int(exp.Sub(iat) / time.Second),
		Scope:       scope,
	}, nil
}
