package auth

import (
	"context"
	"errors"
	"log/slog"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/storage"
)

// Token type hints of RFC 7009 §2.1 and RFC 7662 §2.1.
const (
	HintAccessToken  = "access_token"
	HintRefreshToken = "refresh_token"
)

// Revoke handles RFC 7009 §2.1. A refresh token revokes its session (and
// so every access token of it); an access token is refused until it
// expires. Unknown, malformed and already invalid tokens are not
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

// revokeRefresh revokes the session of a genuine refresh token (of any
// generation of its chain: RFC 7009 §2.1 asks that the grant be revoked).
// A token that is not of the session's chain revokes nothing, so knowing
// a session id is not enough to end someone's login.
func (i *Issuer) revokeRefresh(ctx context.Context, c client, token string) (bool, error) {
	sid, gen, secret, ok := parseRefreshToken(token)
	if !ok {
		return false, nil
	}
	var foreign, revoked bool
	s, _, err := i.Sessions.UpdateSession(ctx, sid, func(s *storage.Session, _ *storage.User) error {
		if _, genuine := i.Refresh.chain.age(s, gen, secret); !genuine {
			return errNotOurs
		}
		if s.ClientID != c.id {
			foreign = true
			return errNotOurs
		}
		if s.RevokedAt.IsZero() {
			s.RevokedAt = i.now()
			revoked = true
		}
		return nil
	})
	switch {
	case foreign:
		return true, oauthError(CodeUnauthorizedClient, "the token was not issued to this client")
	case errors.Is(err, errNotOurs), errors.Is(err, storage.ErrNotFound):
		return false, nil
	case err != nil:
		return true, ServerError(err)
	}
	if revoked {
		i.Audit.Record(ctx, audit.TokenRevoked, audit.OK, slog.String("token_type", HintRefreshToken), slog.String("client_id", c.id), slog.String("sub", s.UserID), slog.String("sid", s.ID))
	}
	return true, i.syncRevocations(ctx)
}

// errNotOurs aborts a session update for a token the session does not
// recognise, or that another client holds.
var errNotOurs = errors.New("auth: not this session's token")

// syncRevocations makes this process refuse what it just revoked before
// the request answers: RFC 7009 §2.2 calls a 200 "revoked".
func (i *Issuer) syncRevocations(ctx context.Context) error {
	if i.Revocations == nil {
		return nil
	}
	if err := i.Revocations.Sync(ctx); err != nil {
		return ServerError(err)
	}
	return nil
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
	// Kept as long as a validator may still accept the token.
	until := claims.ExpiresAt.Add(DefaultLeeway)
	if err := i.Sessions.RevokeToken(ctx, claims.ID, until, i.now()); err != nil {
		return true, ServerError(err)
	}
	i.Audit.Record(ctx, audit.TokenRevoked, audit.OK, slog.String("token_type", HintAccessToken), slog.String("client_id", c.id), slog.String("sub", claims.Subject), slog.String("jti", claims.ID))
	return true, i.syncRevocations(ctx)
}
