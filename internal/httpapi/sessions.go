package httpapi

import (
	"context"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/storage"
	"github.com/gatehouse/gatehouse/internal/users"
)

// SessionService lists and ends logins (auth.Issuer).
type SessionService interface {
	ListSessions(ctx context.Context, userID string) ([]*storage.Session, error)
	RevokeSessions(ctx context.Context, userID, id, except string) (int, error)
}

func (h *Handlers) ListMySessions(ctx context.Context, _ ListMySessionsRequestObject) (ListMySessionsResponseObject, error) {
	c, u, err := h.caller(ctx)
	if err != nil {
		return nil, err
	}
	list, err := h.sessions.ListSessions(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	return ListMySessions200JSONResponse(toSessionList(list, c.SessionID)), nil
}

func (h *Handlers) RevokeMySessions(ctx context.Context, req RevokeMySessionsRequestObject) (RevokeMySessionsResponseObject, error) {
	c, u, err := h.caller(ctx)
	if err != nil {
		return nil, err
	}
	except := ""
	if req.Params.KeepCurrent != nil && *req.Params.KeepCurrent {
		except = c.SessionID
	}
	n, err := h.sessions.RevokeSessions(ctx, u.ID, "", except)
	if err != nil {
		return nil, err
	}
	return RevokeMySessions200JSONResponse{Revoked: n}, nil
}

func (h *Handlers) RevokeMySession(ctx context.Context, req RevokeMySessionRequestObject) (RevokeMySessionResponseObject, error) {
	_, u, err := h.caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := h.revokeOne(ctx, u.ID, req.SessionId); err != nil {
		return nil, err
	}
	return RevokeMySession204Response{}, nil
}

func (h *Handlers) ListUserSessions(ctx context.Context, req ListUserSessionsRequestObject) (ListUserSessionsResponseObject, error) {
	c, u, err := h.managed(ctx, req.Username)
	if err != nil {
		return nil, err
	}
	list, err := h.sessions.ListSessions(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	return ListUserSessions200JSONResponse(toSessionList(list, c.SessionID)), nil
}

func (h *Handlers) RevokeUserSessions(ctx context.Context, req RevokeUserSessionsRequestObject) (RevokeUserSessionsResponseObject, error) {
	_, u, err := h.managed(ctx, req.Username)
	if err != nil {
		return nil, err
	}
	n, err := h.sessions.RevokeSessions(ctx, u.ID, "", "")
	if err != nil {
		return nil, err
	}
	return RevokeUserSessions200JSONResponse{Revoked: n}, nil
}

func (h *Handlers) RevokeUserSession(ctx context.Context, req RevokeUserSessionRequestObject) (RevokeUserSessionResponseObject, error) {
	_, u, err := h.managed(ctx, req.Username)
	if err != nil {
		return nil, err
	}
	if err := h.revokeOne(ctx, u.ID, req.SessionId); err != nil {
		return nil, err
	}
	return RevokeUserSession204Response{}, nil
}

// revokeOne ends one live session of the user: 404 when the user has no
// such live session, so ids of other users' sessions reveal nothing.
func (h *Handlers) revokeOne(ctx context.Context, userID, sid string) error {
	n, err := h.sessions.RevokeSessions(ctx, userID, sid, "")
	if err != nil {
		return err
	}
	if n == 0 {
		return errNoSuchSession
	}
	return nil
}

// managed is the validated token's claims and the user with that
// username, when the caller may manage it (the privilege model).
func (h *Handlers) managed(ctx context.Context, username string) (*auth.Claims, *users.User, error) {
	c, err := claims(ctx)
	if err != nil {
		return nil, nil, err
	}
	u, err := h.users.Manageable(ctx, tokenActor(c), username)
	if err != nil {
		return nil, nil, err
	}
	return c, u, nil
}

// caller is the validated token's claims and account.
func (h *Handlers) caller(ctx context.Context) (*auth.Claims, *users.User, error) {
	c, err := claims(ctx)
	if err != nil {
		return nil, nil, err
	}
	u, err := h.currentUser(ctx)
	if err != nil {
		return nil, nil, err
	}
	return c, u, nil
}

func toSessionList(list []*storage.Session, current string) SessionList {
	out := SessionList{Sessions: make([]UserSession, 0, len(list))}
	for _, s := range list {
		out.Sessions = append(out.Sessions, UserSession{
			Id:            s.ID,
			ClientId:      s.ClientID,
			CreatedAt:     s.CreatedAt,
			LastUsedAt:    s.LastUsedAt,
			ClientAddress: optional(s.ClientAddr),
			UserAgent:     optional(s.UserAgent),
			Current:       s.ID == current,
		})
	}
	return out
}
