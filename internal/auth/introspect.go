package auth

import (
	"context"
	"errors"
	"strings"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// Introspection is the response of RFC 7662 §2.2. Only Active is set for
// an inactive token.
type Introspection struct {
	Active    bool
	Scope     string
	ClientID  string
	Username  string
	TokenType string
	Exp       int64
	Iat       int64
	Nbf       int64
	Sub       string
	Aud       string
	Iss       string
	Jti       string
	Sid       string
}

// Introspect handles RFC 7662 §2.1 for an already authorized caller.
// Expired, revoked, malformed and unknown tokens are all inactive.
func (i *Issuer) Introspect(ctx context.Context, token, hint string) (*Introspection, error) {
	if hint == HintRefreshToken {
		if in, err := i.introspectRefresh(ctx, token); in != nil || err != nil {
			return in, err
		}
		return i.introspectAccess(ctx, token)
	}
	if in, err := i.introspectAccess(ctx, token); err != nil || in.Active {
		return in, err
	}
	in, err := i.introspectRefresh(ctx, token)
	if in == nil && err == nil {
		return &Introspection{}, nil
	}
	return in, err
}

func (i *Issuer) introspectAccess(ctx context.Context, token string) (*Introspection, error) {
	c, err := i.Validator.Verify(token)
	if err != nil {
		return &Introspection{}, nil
	}
	// A disabled or deleted account's tokens are inactive as on the
	// bearer path, and so are a changed client's own tokens.
	if c.ClientToken() {
		if _, err := i.Validator.checkClient(ctx, c); err != nil {
			var be *BearerError
			if errors.As(err, &be) {
				return &Introspection{}, nil
			}
			return nil, err
		}
	} else {
		u, err := i.account(ctx, c.Subject)
		if err != nil {
			return nil, err
		}
		if u == nil || u.Disabled {
			return &Introspection{}, nil
		}
	}
	in := &Introspection{
		Active: true, Scope: c.Scope, ClientID: c.ClientID, Username: c.PreferredUsername,
		TokenType: "Bearer", Sub: c.Subject, Iss: c.Issuer, Jti: c.ID, Sid: c.SessionID,
	}
	if c.ExpiresAt != nil {
		in.Exp = c.ExpiresAt.Unix()
	}
	if c.IssuedAt != nil {
		in.Iat = c.IssuedAt.Unix()
	}
	if c.NotBefore != nil {
		in.Nbf = c.NotBefore.Unix()
	}
	if len(c.Audience) > 0 {
		in.Aud = c.Audience[0]
	}
	return in, nil
}

// introspectRefresh returns nil, nil when the token is not a refresh
// token of a session. Only the current generation of a live session of an
// enabled account is active.
func (i *Issuer) introspectRefresh(ctx context.Context, token string) (*Introspection, error) {
	sid, gen, secret, ok := parseRefreshToken(token)
	if !ok {
		return nil, nil
	}
	s, err := i.Sessions.Session(ctx, sid)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	age, genuine := i.Refresh.chain.age(s, gen, secret)
	if !genuine {
		return nil, nil
	}
	if age != 0 || !s.Live(i.now()) {
		return &Introspection{}, nil
	}
	u, err := i.account(ctx, s.UserID)
	if err != nil {
		return nil, err
	}
	if u == nil || u.Disabled {
		return &Introspection{}, nil
	}
	return &Introspection{
		Active: true, Scope: strings.Join(s.Scopes, " "), ClientID: s.ClientID, Username: u.Username,
		TokenType: HintRefreshToken, Exp: earliest(s.IdleExpiresAt, s.ExpiresAt).Unix(), Iat: s.RotatedAt.Unix(),
		Sub: s.UserID, Iss: i.cfg.Issuer, Sid: s.ID,
	}, nil
}
