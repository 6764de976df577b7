package auth

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/users"
)

// Token type hints of RFC 7009 §2.1 and RFC 7662 §2.1.
const (
	HintAccessToken  = "access_token"
	HintRefreshToken = "refresh_token"
)

// Revoke handles RFC 7009 §2.1. A refresh token revokes its whole family
// (with the family's access tokens); an access token goes on the deny-list
// until it expires. Unknown, malformed and already invalid tokens are not
// an error (§2.2). A client may revoke only tokens issued to it.
func (i *Issuer) Revoke(ctx context.Context, req RevocationRequest) error {
	c, err := i.authenticateClient(ctx, clientCredentials{ID: req.ClientID, Secret: req.ClientSecret})
	if err != nil {
		return err
	}
	if req.Token == "" {
		return InvalidRequest("token is required")
	}
	// §2.1: the hint only orders the search; both kinds are looked for.
	if req.TokenTypeHint == HintAccessToken {
		if done, err := i.revokeAccess(ctx, c, req.Token); done || err != nil {
			return err
		}
		_, err := i.revokeRefresh(ctx, c, req.Token)
		return err
	}
	if done, err := i.revokeRefresh(ctx, c, req.Token); done || err != nil {
		return err
	}
	_, err = i.revokeAccess(ctx, c, req.Token)
	return err
}

func (i *Issuer) revokeRefresh(ctx context.Context, c client, token string) (bool, error) {
	rt, err := i.Tokens.RefreshToken(ctx, hashToken(token))
	if errors.Is(err, users.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, ServerError(err)
	}
	if rt.ClientID != c.id {
		return true, oauthError(CodeUnauthorizedClient, "the token was not issued to this client")
	}
	if err := i.Tokens.RevokeRefreshFamily(ctx, rt.FamilyID, i.cfg.Now()); err != nil {
		return true, ServerError(err)
	}
	i.Audit.Record(ctx, audit.TokenRevoked, audit.OK, slog.String("token_type", HintRefreshToken), slog.String("client_id", c.id), slog.String("sub", rt.UserID))
	if i.DenyList != nil {
		if err := i.DenyList.Sync(ctx); err != nil {
			return true, ServerError(err)
		}
	}
	return true, nil
}

func (i *Issuer) revokeAccess(ctx context.Context, c client, token string) (bool, error) {
	claims, err := i.Validator.Verify(token)
	if err != nil {
		// Expired, revoked, forged or not a JWT: nothing left to revoke.
		return false, nil
	}
	if claims.ClientID != c.id {
		return true, oauthError(CodeUnauthorizedClient, "the token was not issued to this client")
	}
	err = i.Tokens.RevokeAccessToken(ctx, claims.ID, i.cfg.Now())
	if err != nil && !errors.Is(err, users.ErrNotFound) {
		return true, ServerError(err)
	}
	if i.DenyList != nil {
		i.DenyList.Add(claims.ID, claims.ExpiresAt.Time)
	}
	i.Audit.Record(ctx, audit.TokenRevoked, audit.OK, slog.String("token_type", HintAccessToken), slog.String("client_id", c.id), slog.String("sub", claims.Subject), slog.String("jti", claims.ID))
	return true, nil
}

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
}

// Introspect handles RFC 7662 §2.1 for an already authorized caller.
// Expired, revoked, malformed and unknown tokens are all inactive.
func (i *Issuer) Introspect(ctx context.Context, token, hint string) (*Introspection, error) {
	if hint == HintRefreshToken {
		if in, err := i.introspectRefresh(ctx, token); in != nil || err != nil {
			return in, err
		}
		return i.introspectAccess(token), nil
	}
	if in := i.introspectAccess(token); in.Active {
		return in, nil
	}
	in, err := i.introspectRefresh(ctx, token)
	if in == nil && err == nil {
		return &Introspection{}, nil
	}
	return in, err
}

func (i *Issuer) introspectAccess(token string) *Introspection {
	c, err := i.Validator.Verify(token)
	if err != nil {
		return &Introspection{}
	}
	in := &Introspection{
		Active: true, Scope: c.Scope, ClientID: c.ClientID, Username: c.PreferredUsername,
		TokenType: "Bearer", Sub: c.Subject, Iss: c.Issuer, Jti: c.ID,
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
	return in
}

// introspectRefresh returns nil, nil when no refresh token matches.
func (i *Issuer) introspectRefresh(ctx context.Context, token string) (*Introspection, error) {
	rt, err := i.Tokens.RefreshToken(ctx, hashToken(token))
	if errors.Is(err, users.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	now := i.cfg.Now()
	if !rt.RotatedAt.IsZero() || !rt.RevokedAt.IsZero() || !now.Before(rt.ExpiresAt) || !now.Before(rt.FamilyExpiresAt) {
		return &Introspection{}, nil
	}
	u, err := i.Users.ByID(ctx, rt.UserID)
	if errors.Is(err, users.ErrNotFound) {
		return &Introspection{}, nil
	}
	if err != nil {
		return nil, err
	}
	if u.Disabled {
		return &Introspection{}, nil
	}
	return &Introspection{
		Active: true, Scope: strings.Join(rt.Scopes, " "), ClientID: rt.ClientID, Username: u.Username,
		TokenType: HintRefreshToken, Exp: rt.ExpiresAt.Unix(), Iat: rt.IssuedAt.Unix(),
		Sub: rt.UserID, Iss: i.cfg.Issuer,
	}, nil
}
