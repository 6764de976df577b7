package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/storage"
)

// refreshOutcome is what the session update decided.
type refreshOutcome int

const (
	refreshRotated refreshOutcome = iota // a new generation
	refreshGrace                         // the parent again, inside the window: the same child
	refreshReused                        // an older generation: the session is revoked
)

// refreshGrant handles RFC 6749 §6 with rotation, in one store call: the
// session row is read, judged and updated in place in one transaction.
//
//   - The current generation rotates: the session moves to the next one,
//     whose token is answered.
//   - Its parent, within the reuse window after that rotation and at most
//     maxGraceUses times, answers the same child again (parallel tabs, a
//     retried request whose answer was lost converge on one session).
//   - Any other genuine generation is reuse (RFC 9700 §4.14.2): the
//     session and so its access tokens are revoked.
//   - A token that is not of the session's chain changes nothing.
func (i *Issuer) refreshGrant(ctx context.Context, c client, req TokenRequest) (*TokenResponse, error) {
	if req.RefreshToken == "" {
		return nil, InvalidRequest("refresh_token is required")
	}
	requested, err := i.parseScope(req.Scope)
	if err != nil {
		return nil, err
	}
	who := slog.String("client_id", c.id)
	sid, gen, secret, ok := parseRefreshToken(req.RefreshToken)
	if !ok {
		i.Audit.Record(ctx, audit.Refresh, audit.Failed, who, slog.String("error", "unknown"))
		return nil, oauthError(CodeInvalidGrant, "unknown refresh token")
	}
	now := i.now()
	var (
		outcome refreshOutcome
		granted []string
		child   []byte
		newGen  int64
	)
	if i.testHookBeforeStore != nil {
		i.testHookBeforeStore(ctx)
	}
	s, u, err := i.Sessions.UpdateSession(ctx, sid, func(s *storage.Session, u *storage.User) error {
		age, genuine := i.Refresh.chain.age(s, gen, secret)
		if !genuine {
			return errUnknownRefresh()
		}
		// §6: the token is bound to the client it was issued to.
		if s.ClientID != c.id {
			return oauthError(CodeInvalidGrant, "the refresh token was issued to another client")
		}
		if !s.Live(now) {
			return errInactiveRefresh()
		}
		if u == nil || u.Disabled || u.ID != s.UserID {
			return oauthError(CodeInvalidGrant, "the refresh token's account is disabled or gone")
		}
		switch {
		case age == 0:
			outcome, newGen = refreshRotated, s.Generation+1
			child = i.Refresh.chain.next(s.ID, s.Generation, secret)
			s.Generation, s.SecretHash, s.RotatedAt, s.GraceUses = newGen, secretHash(child), now, 0
		case age == 1 && i.cfg.ReuseWindow > 0 && now.Sub(s.RotatedAt) < i.cfg.ReuseWindow && s.GraceUses < maxGraceUses:
			outcome, newGen = refreshGrace, s.Generation
			child = i.Refresh.chain.next(s.ID, gen, secret)
			s.GraceUses++
		default:
			outcome = refreshReused
			s.RevokedAt = now
			return nil
		}
		// §6: a narrower scope may be requested, never a wider one; the
		// account's scopes bound it too (removing one ends the session,
		// so this only matters in the instant before that commits).
		held := intersect(s.Scopes, u.Scopes)
		for _, sc := range requested {
			if !slices.Contains(s.Scopes, sc) {
				return oauthError(CodeInvalidScope, fmt.Sprintf("scope %q exceeds the scope originally granted", sc))
			}
		}
		var err error
		if granted, err = grant(requested, held, c); err != nil {
			return err
		}
		s.LastUsedAt = now
		s.IdleExpiresAt = earliest(now.Add(i.cfg.RefreshTTL), s.ExpiresAt)
		return nil
	})
	var oerr *Error
	switch {
	case errors.As(err, &oerr):
		i.Audit.Record(ctx, audit.Refresh, audit.Failed, who, slog.String("error", oerr.Code))
		return nil, err
	case errors.Is(err, storage.ErrNotFound):
		i.Audit.Record(ctx, audit.Refresh, audit.Failed, who, slog.String("error", "unknown"))
		return nil, oauthError(CodeInvalidGrant, "unknown refresh token")
	case err != nil:
		return nil, ServerError(err)
	}
	if outcome == refreshReused {
		// The session's access tokens stop here at once, elsewhere within
		// the feed's bound.
		if i.Revocations != nil {
			_ = i.Revocations.Sync(ctx)
		}
		i.Audit.Record(ctx, audit.Refresh, audit.ReuseDetected, who, slog.String("sub", s.UserID), slog.String("sid", s.ID))
		return nil, oauthError(CodeInvalidGrant, "the refresh token was already used; the login it belongs to has been revoked")
	}
	resp, err := i.issue(u, c, granted, s.ID, now)
	if err != nil {
		return nil, err
	}
	resp.RefreshToken = formatRefreshToken(s.ID, newGen, child)
	event := audit.Rotated
	if outcome == refreshGrace {
		event = audit.GraceReplay
	}
	i.Audit.Record(ctx, audit.Refresh, event, who, slog.String("sub", u.ID), slog.String("sid", s.ID), slog.String("username", u.Username))
	return resp, nil
}

func errUnknownRefresh() *Error { return oauthError(CodeInvalidGrant, "unknown refresh token") }

func errInactiveRefresh() *Error {
	return oauthError(CodeInvalidGrant, "the refresh token expired or was revoked")
}
