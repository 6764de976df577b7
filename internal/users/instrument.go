package users

import (
	"context"
	"errors"
	"time"
)

// Instrument wraps store so that observe hears of every call: its
// operation name (snake_case method name), duration and result ("ok",
// "not_found" or "error"). A store that announces changes (ChangeListener)
// still does through the wrapper.
func Instrument(store Store, observe func(op string, d time.Duration, result string)) Store {
	s := instrumentedStore{Store: store, fn: observe}
	if l, ok := store.(ChangeListener); ok {
		return instrumentedListener{s, l}
	}
	return s
}

type instrumentedStore struct {
	Store
	fn func(op string, d time.Duration, result string)
}

type instrumentedListener struct {
	instrumentedStore
	ChangeListener
}

var (
	_ Store          = instrumentedStore{}
	_ ChangeListener = instrumentedListener{}
)

func (s instrumentedStore) observe(_ context.Context, op string, start time.Time, err *error) {
	result := "ok"
	switch {
	case *err == nil:
	case errors.Is(*err, ErrNotFound):
		result = "not_found"
	default:
		result = "error"
	}
	s.fn(op, time.Since(start), result)
}

func (s instrumentedStore) CreateUser(ctx context.Context, u *User) (err error) {
	defer s.observe(ctx, "create_user", time.Now(), &err)
	return s.Store.CreateUser(ctx, u)
}

func (s instrumentedStore) UserByUsername(ctx context.Context, username string) (r0 *User, err error) {
	defer s.observe(ctx, "user_by_username", time.Now(), &err)
	return s.Store.UserByUsername(ctx, username)
}

func (s instrumentedStore) UserByID(ctx context.Context, id string) (r0 *User, err error) {
	defer s.observe(ctx, "user_by_i_d", time.Now(), &err)
	return s.Store.UserByID(ctx, id)
}

func (s instrumentedStore) ListUsers(ctx context.Context, after string, limit int) (r0 []*User, err error) {
	defer s.observe(ctx, "list_users", time.Now(), &err)
	return s.Store.ListUsers(ctx, after, limit)
}

func (s instrumentedStore) CountEnabledWithScope(ctx context.Context, scope string) (r0 int, err error) {
	defer s.observe(ctx, "count_enabled_with_scope", time.Now(), &err)
	return s.Store.CountEnabledWithScope(ctx, scope)
}

func (s instrumentedStore) CountUsers(ctx context.Context) (r0 int, err error) {
	defer s.observe(ctx, "count_users", time.Now(), &err)
	return s.Store.CountUsers(ctx)
}

func (s instrumentedStore) UpdateUser(ctx context.Context, username string, fn func(*User) error) (r0 *User, err error) {
	defer s.observe(ctx, "update_user", time.Now(), &err)
	return s.Store.UpdateUser(ctx, username, fn)
}

func (s instrumentedStore) DeleteUser(ctx context.Context, username string, now time.Time) (err error) {
	defer s.observe(ctx, "delete_user", time.Now(), &err)
	return s.Store.DeleteUser(ctx, username, now)
}

func (s instrumentedStore) SigningKeys(ctx context.Context) (r0 []SigningKey, err error) {
	defer s.observe(ctx, "signing_keys", time.Now(), &err)
	return s.Store.SigningKeys(ctx)
}

func (s instrumentedStore) EnsureSigningKey(ctx context.Context, alg string, create func() (SigningKey, error)) (r0 SigningKey, err error) {
	defer s.observe(ctx, "ensure_signing_key", time.Now(), &err)
	return s.Store.EnsureSigningKey(ctx, alg, create)
}

func (s instrumentedStore) CreateSigningKey(ctx context.Context, k SigningKey) (err error) {
	defer s.observe(ctx, "create_signing_key", time.Now(), &err)
	return s.Store.CreateSigningKey(ctx, k)
}

func (s instrumentedStore) DeleteSigningKey(ctx context.Context, id string) (err error) {
	defer s.observe(ctx, "delete_signing_key", time.Now(), &err)
	return s.Store.DeleteSigningKey(ctx, id)
}

func (s instrumentedStore) ReplaceSigningKeyPrivate(ctx context.Context, id string, old, next []byte) (err error) {
	defer s.observe(ctx, "replace_signing_key", time.Now(), &err)
	return s.Store.ReplaceSigningKeyPrivate(ctx, id, old, next)
}

func (s instrumentedStore) Ping(ctx context.Context) (err error) {
	defer s.observe(ctx, "ping", time.Now(), &err)
	return s.Store.Ping(ctx)
}

func (s instrumentedStore) CreateRefreshToken(ctx context.Context, t *RefreshToken) (err error) {
	defer s.observe(ctx, "create_refresh_token", time.Now(), &err)
	return s.Store.CreateRefreshToken(ctx, t)
}

func (s instrumentedStore) RefreshToken(ctx context.Context, hash string) (r0 *RefreshToken, err error) {
	defer s.observe(ctx, "refresh_token", time.Now(), &err)
	return s.Store.RefreshToken(ctx, hash)
}

func (s instrumentedStore) RotateRefreshToken(ctx context.Context, hash string, now time.Time, fn func(old *RefreshToken) (*RefreshToken, error)) (r0 *RefreshToken, err error) {
	defer s.observe(ctx, "rotate_refresh_token", time.Now(), &err)
	return s.Store.RotateRefreshToken(ctx, hash, now, fn)
}

func (s instrumentedStore) RevokeRefreshFamily(ctx context.Context, familyID string, now time.Time) (err error) {
	defer s.observe(ctx, "revoke_refresh_family", time.Now(), &err)
	return s.Store.RevokeRefreshFamily(ctx, familyID, now)
}

func (s instrumentedStore) RevokeUserTokens(ctx context.Context, userID string, now time.Time) (err error) {
	defer s.observe(ctx, "revoke_user_tokens", time.Now(), &err)
	return s.Store.RevokeUserTokens(ctx, userID, now)
}

func (s instrumentedStore) RevokeClientTokens(ctx context.Context, clientID string, now time.Time) (err error) {
	defer s.observe(ctx, "revoke_client_tokens", time.Now(), &err)
	return s.Store.RevokeClientTokens(ctx, clientID, now)
}

func (s instrumentedStore) IssueTokens(ctx context.Context, is Issue) (err error) {
	defer s.observe(ctx, "issue_tokens", time.Now(), &err)
	return s.Store.IssueTokens(ctx, is)
}

func (s instrumentedStore) RecordAccessToken(ctx context.Context, t *AccessToken) (err error) {
	defer s.observe(ctx, "record_access_token", time.Now(), &err)
	return s.Store.RecordAccessToken(ctx, t)
}

func (s instrumentedStore) AccessToken(ctx context.Context, jti string) (r0 *AccessToken, err error) {
	defer s.observe(ctx, "access_token", time.Now(), &err)
	return s.Store.AccessToken(ctx, jti)
}

func (s instrumentedStore) RevokeAccessToken(ctx context.Context, jti string, now time.Time) (err error) {
	defer s.observe(ctx, "revoke_access_token", time.Now(), &err)
	return s.Store.RevokeAccessToken(ctx, jti, now)
}

func (s instrumentedStore) RevokedAccessTokens(ctx context.Context, now time.Time) (r0 []Revocation, err error) {
	defer s.observe(ctx, "revoked_access_tokens", time.Now(), &err)
	return s.Store.RevokedAccessTokens(ctx, now)
}

func (s instrumentedStore) PruneTokens(ctx context.Context, now time.Time) (err error) {
	defer s.observe(ctx, "prune_tokens", time.Now(), &err)
	return s.Store.PruneTokens(ctx, now)
}

func (s instrumentedStore) CreateClient(ctx context.Context, c *Client) (err error) {
	defer s.observe(ctx, "create_client", time.Now(), &err)
	return s.Store.CreateClient(ctx, c)
}

func (s instrumentedStore) ClientByID(ctx context.Context, id string) (r0 *Client, err error) {
	defer s.observe(ctx, "client_by_i_d", time.Now(), &err)
	return s.Store.ClientByID(ctx, id)
}

func (s instrumentedStore) ListClients(ctx context.Context) (r0 []*Client, err error) {
	defer s.observe(ctx, "list_clients", time.Now(), &err)
	return s.Store.ListClients(ctx)
}

func (s instrumentedStore) DeleteClient(ctx context.Context, id string) (err error) {
	defer s.observe(ctx, "delete_client", time.Now(), &err)
	return s.Store.DeleteClient(ctx, id)
}

func (s instrumentedStore) UpdateLoginAttempts(ctx context.Context, keys []string, fn func(states []LoginAttempts) error) (err error) {
	defer s.observe(ctx, "update_login_attempts", time.Now(), &err)
	return s.Store.UpdateLoginAttempts(ctx, keys, fn)
}

func (s instrumentedStore) PruneLoginAttempts(ctx context.Context, before time.Time) (err error) {
	defer s.observe(ctx, "prune_login_attempts", time.Now(), &err)
	return s.Store.PruneLoginAttempts(ctx, before)
}
