package httpapi

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"strings"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/users"
)

// UserService is what the handlers need from the users package.
type UserService interface {
	Get(ctx context.Context, username string) (*users.User, error)
	ByID(ctx context.Context, id string) (*users.User, error)
	List(ctx context.Context, after string, limit int) ([]*users.User, error)
	// Create, Update and Delete enforce the privilege model for the
	// actor (users.Actor): the handlers only say who asks.
	Create(ctx context.Context, actor users.Actor, nu users.NewUser) (*users.User, error)
	Update(ctx context.Context, actor users.Actor, username string, p users.Patch) (*users.User, error)
	ChangePassword(ctx context.Context, id, current, next string) error
	Delete(ctx context.Context, actor users.Actor, username string) error
	// Manageable returns the user when actor may manage it.
	Manageable(ctx context.Context, actor users.Actor, username string) (*users.User, error)
	TOTPService
}

// PasswordThrottle limits password guessing (auth.Throttle): Guard
// reserves an attempt for username from addr, refusing it with a 429
// *auth.Error at a limit, runs check and books its outcome.
type PasswordThrottle interface {
	Guard(ctx context.Context, username, addr string, check func() error) error
}

// Handlers implements the operations of api/openapi.yaml. They return
// errors; errorWriter formats them.
type Handlers struct {
	users    UserService
	tokens   TokenIssuer
	keys     KeyPublisher
	clients  ClientService
	sessions SessionService
	meta     ServerMetadata
	ready    func(ctx context.Context) error
	proxies  []netip.Prefix
	// throttle counts password checks outside the token endpoint with
	// the logins' limits; nil when off.
	throttle PasswordThrottle
	audit    *audit.Recorder
	version  string
	userJSON userJSON
	// health is /healthz's answer, encoded once (newHealth).
	health *encodedHealth
}

var _ StrictServerInterface = (*Handlers)(nil)

const (
	defaultPageSize = 20
	defaultScope    = "me"
)

// claims returns the validated token's claims, failing closed when the
// request did not pass the bearer validator.
func claims(ctx context.Context) (*auth.Claims, error) {
	c, ok := auth.ClaimsFromContext(ctx)
	if !ok {
		return nil, auth.Unauthenticated()
	}
	return c, nil
}

// currentUser is the token's subject: from the validator's in-memory view
// (no store read), or loaded when the validator has none. A deleted or
// disabled account's tokens stop working at once (RFC 6750 §3.1
// invalid_token).
func (h *Handlers) currentUser(ctx context.Context) (*users.User, error) {
	c, err := claims(ctx)
	if err != nil {
		return nil, err
	}
	if u, ok := auth.UserFromContext(ctx); ok {
		return u, nil
	}
	u, err := h.users.ByID(ctx, c.Subject)
	if errors.Is(err, users.ErrNotFound) {
		return nil, auth.InvalidToken("the token's user no longer exists")
	}
	if err != nil {
		return nil, err
	}
	if u.Disabled {
		return nil, auth.InvalidToken("the token's user is disabled")
	}
	return u, nil
}

func (h *Handlers) GetCurrentUser(ctx context.Context, _ GetCurrentUserRequestObject) (GetCurrentUserResponseObject, error) {
	if _, err := claims(ctx); err != nil {
		return nil, err
	}
	if u, ok := auth.UserFromContext(ctx); ok {
		// The user view's account: its answer is encoded once.
		b, err := h.userJSON.get(u)
		if err != nil {
			return nil, err
		}
		return b, nil
	}
	u, err := h.currentUser(ctx)
	if err != nil {
		return nil, err
	}
	return GetCurrentUser200JSONResponse(toUser(u)), nil
}

func (h *Handlers) ChangeCurrentUserPassword(ctx context.Context, req ChangeCurrentUserPasswordRequestObject) (ChangeCurrentUserPasswordResponseObject, error) {
	u, err := h.currentUser(ctx)
	if err != nil {
		return nil, err
	}
	// A stolen token must not turn this into a password oracle: the
	// current password is guessed under the same limits as /token.
	err = h.guarded(ctx, u, func() error {
		return h.users.ChangePassword(ctx, u.ID, req.Body.CurrentPassword, req.Body.NewPassword)
	})
	if err != nil {
		if errors.Is(err, users.ErrInvalidCredentials) {
			return nil, fmt.Errorf("%w: %w", errWrongCurrentPassword, err)
		}
		return nil, err
	}
	h.audit.Record(ctx, audit.UserChanged, audit.OK, actor(ctx), slog.String("username", u.Username), slog.String("changed", "password"))
	return ChangeCurrentUserPassword204Response{}, nil
}

func (h *Handlers) ListUsers(ctx context.Context, req ListUsersRequestObject) (ListUsersResponseObject, error) {
	if _, err := claims(ctx); err != nil {
		return nil, err
	}
	limit := defaultPageSize
	if req.Params.Limit != nil {
		limit = *req.Params.Limit
	}
	var after string
	if req.Params.Cursor != nil {
		b, err := base64.RawURLEncoding.DecodeString(*req.Params.Cursor)
		if err == nil {
			_, err = users.NormalizeUsername(string(b))
		}
		if err != nil {
			return nil, errBadCursor
		}
		after = string(b)
	}
	// One extra row tells whether there is a next page.
	list, err := h.users.List(ctx, after, limit+1)
	if err != nil {
		return nil, err
	}
	page := UserPage{Users: make([]User, 0, min(len(list), limit))}
	if len(list) > limit {
		list = list[:limit]
		next := base64.RawURLEncoding.EncodeToString([]byte(list[limit-1].Username))
		page.NextCursor = &next
	}
	for _, u := range list {
		page.Users = append(page.Users, toUser(u))
	}
	return ListUsers200JSONResponse(page), nil
}

func (h *Handlers) CreateUser(ctx context.Context, req CreateUserRequestObject) (CreateUserResponseObject, error) {
	c, err := claims(ctx)
	if err != nil {
		return nil, err
	}
	scopes := []string{defaultScope}
	if req.Body.Scopes != nil {
		scopes = *req.Body.Scopes
	}
	u, err := h.users.Create(ctx, tokenActor(c), users.NewUser{Username: req.Body.Username, Password: req.Body.Password, Scopes: scopes})
	if err != nil {
		return nil, err
	}
	h.audit.Record(ctx, audit.UserCreated, audit.OK, actor(ctx), slog.String("username", u.Username), slog.String("scopes", strings.Join(u.Scopes, " ")))
	location := "/users/" + url.PathEscape(u.Username)
	return CreateUser201JSONResponse{
		Body:    toUser(u),
		Headers: CreateUser201ResponseHeaders{Location: &location},
	}, nil
}

func (h *Handlers) GetUser(ctx context.Context, req GetUserRequestObject) (GetUserResponseObject, error) {
	if _, err := claims(ctx); err != nil {
		return nil, err
	}
	u, err := h.users.Get(ctx, req.Username)
	if err != nil {
		return nil, err
	}
	return GetUser200JSONResponse(toUser(u)), nil
}

func (h *Handlers) UpdateUser(ctx context.Context, req UpdateUserRequestObject) (UpdateUserResponseObject, error) {
	c, err := claims(ctx)
	if err != nil {
		return nil, err
	}
	u, err := h.users.Update(ctx, tokenActor(c), req.Username, users.Patch{
		Disabled: req.Body.Disabled,
		Scopes:   req.Body.Scopes,
		Password: req.Body.Password,
	})
	if err != nil {
		return nil, err
	}
	var changed []string
	if req.Body.Scopes != nil {
		changed = append(changed, "scopes")
	}
	if req.Body.Password != nil {
		changed = append(changed, "password")
	}
	if req.Body.Disabled != nil && *req.Body.Disabled {
		h.audit.Record(ctx, audit.UserDisabled, audit.OK, actor(ctx), slog.String("username", u.Username))
	} else if req.Body.Disabled != nil {
		changed = append(changed, "enabled")
	}
	if len(changed) > 0 {
		h.audit.Record(ctx, audit.UserChanged, audit.OK, actor(ctx), slog.String("username", u.Username), slog.String("changed", strings.Join(changed, " ")))
	}
	return UpdateUser200JSONResponse(toUser(u)), nil
}

func (h *Handlers) DeleteUser(ctx context.Context, req DeleteUserRequestObject) (DeleteUserResponseObject, error) {
	c, err := claims(ctx)
	if err != nil {
		return nil, err
	}
	if err := h.users.Delete(ctx, tokenActor(c), req.Username); err != nil {
		return nil, err
	}
	h.audit.Record(ctx, audit.UserDeleted, audit.OK, actor(ctx), slog.String("username", strings.ToLower(req.Username)))
	return DeleteUser204Response{}, nil
}

func (h *Handlers) GetHealth(context.Context, GetHealthRequestObject) (GetHealthResponseObject, error) {
	return h.health, nil
}

func (h *Handlers) GetReadiness(ctx context.Context, _ GetReadinessRequestObject) (GetReadinessResponseObject, error) {
	if err := h.ready(ctx); err != nil {
		return nil, fmt.Errorf("%w: %w", errNotReady, err)
	}
	return GetReadiness200JSONResponse{Status: "ok"}, nil
}

// tokenActor is the caller of an account change, for the privilege model.
func tokenActor(c *auth.Claims) users.Actor { return users.TokenActor(c.Subject, c.Scope) }

// actor names who made a change, for audit records.
func actor(ctx context.Context) slog.Attr {
	if c, ok := auth.ClaimsFromContext(ctx); ok {
		return slog.Group("actor", slog.String("sub", c.Subject), slog.String("username", c.PreferredUsername), slog.String("client_id", c.ClientID))
	}
	return slog.String("actor", "")
}

func toUser(u *users.User) User {
	scopes := u.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	return User{Id: u.ID, Username: u.Username, Scopes: scopes, Disabled: u.Disabled, Totp: totpState(u), CreatedAt: u.CreatedAt}
}
