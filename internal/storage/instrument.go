package storage

import (
	"context"
	"time"
)

// Instrument wraps s so that observe hears of every call of a Store
// method, once, after it returns: the operation (the method name in
// snake_case, "user_by_id"), how long it took and its error. Close is
// passed through unobserved. When s is a Notifier the result is one too,
// and Listen is passed through unobserved (it runs for as long as its
// context).
//
// The wrapper names every method instead of embedding Store, so a method
// added to the contract fails to compile here rather than going unseen.
func Instrument(s Store, observe func(ctx context.Context, op string, took time.Duration, err error)) Store {
	in := &instrumented{s: s, observe: observe}
	if n, ok := s.(Notifier); ok {
		return &instrumentedNotifier{in, n}
	}
	return in
}

type instrumented struct {
	s       Store
	observe func(ctx context.Context, op string, took time.Duration, err error)
}

type instrumentedNotifier struct {
	*instrumented
	Notifier
}

var (
	_ Store    = (*instrumented)(nil)
	_ Notifier = (*instrumentedNotifier)(nil)
)

// done reports a call that began at start; deferred with &err so it sees
// the returned error.
func (in *instrumented) done(ctx context.Context, op string, start time.Time, err *error) {
	in.observe(ctx, op, time.Since(start), *err)
}

func (in *instrumented) CreateUser(ctx context.Context, u *User) (err error) {
	defer in.done(ctx, "create_user", time.Now(), &err)
	return in.s.CreateUser(ctx, u)
}

func (in *instrumented) CreateUsers(ctx context.Context, us []*User) (err error) {
	defer in.done(ctx, "create_users", time.Now(), &err)
	return in.s.CreateUsers(ctx, us)
}

func (in *instrumented) UserByUsername(ctx context.Context, username string) (_ *User, err error) {
	defer in.done(ctx, "user_by_username", time.Now(), &err)
	return in.s.UserByUsername(ctx, username)
}

func (in *instrumented) UserByID(ctx context.Context, id string) (_ *User, err error) {
	defer in.done(ctx, "user_by_id", time.Now(), &err)
	return in.s.UserByID(ctx, id)
}

func (in *instrumented) ListUsers(ctx context.Context, after string, limit int) (_ []*User, err error) {
	defer in.done(ctx, "list_users", time.Now(), &err)
	return in.s.ListUsers(ctx, after, limit)
}

func (in *instrumented) CountUsers(ctx context.Context) (_ int, err error) {
	defer in.done(ctx, "count_users", time.Now(), &err)
	return in.s.CountUsers(ctx)
}

func (in *instrumented) CountEnabledWithScope(ctx context.Context, scope string) (_ int, err error) {
	defer in.done(ctx, "count_enabled_with_scope", time.Now(), &err)
	return in.s.CountEnabledWithScope(ctx, scope)
}

func (in *instrumented) UpdateUser(ctx context.Context, username string, fn func(*User) error, keep ...string) (_ *User, err error) {
	defer in.done(ctx, "update_user", time.Now(), &err)
	return in.s.UpdateUser(ctx, username, fn, keep...)
}

func (in *instrumented) DeleteUser(ctx context.Context, username string, now time.Time, check func(*User) error, keep ...string) (err error) {
	defer in.done(ctx, "delete_user", time.Now(), &err)
	return in.s.DeleteUser(ctx, username, now, check, keep...)
}

func (in *instrumented) SigningKeys(ctx context.Context) (_ []SigningKey, err error) {
	defer in.done(ctx, "signing_keys", time.Now(), &err)
	return in.s.SigningKeys(ctx)
}

func (in *instrumented) EnsureSigningKey(ctx context.Context, alg string, create func() (SigningKey, error)) (_ SigningKey, err error) {
	defer in.done(ctx, "ensure_signing_key", time.Now(), &err)
	return in.s.EnsureSigningKey(ctx, alg, create)
}

func (in *instrumented) CreateSigningKey(ctx context.Context, k SigningKey) (err error) {
	defer in.done(ctx, "create_signing_key", time.Now(), &err)
	return in.s.CreateSigningKey(ctx, k)
}

func (in *instrumented) DeleteSigningKey(ctx context.Context, id string) (err error) {
	defer in.done(ctx, "delete_signing_key", time.Now(), &err)
	return in.s.DeleteSigningKey(ctx, id)
}

func (in *instrumented) ReplaceSigningKeyPrivate(ctx context.Context, id string, old, next []byte) (err error) {
	defer in.done(ctx, "replace_signing_key_private", time.Now(), &err)
	return in.s.ReplaceSigningKeyPrivate(ctx, id, old, next)
}

func (in *instrumented) EnsureSecret(ctx context.Context, name string, create func() ([]byte, error)) (_ []byte, err error) {
	defer in.done(ctx, "ensure_secret", time.Now(), &err)
	return in.s.EnsureSecret(ctx, name, create)
}

func (in *instrumented) ReplaceSecret(ctx context.Context, name string, old, next []byte) (err error) {
	defer in.done(ctx, "replace_secret", time.Now(), &err)
	return in.s.ReplaceSecret(ctx, name, old, next)
}

func (in *instrumented) CreateSession(ctx context.Context, s *Session, epoch int64, settle *AttemptUpdate) (err error) {
	defer in.done(ctx, "create_session", time.Now(), &err)
	return in.s.CreateSession(ctx, s, epoch, settle)
}

func (in *instrumented) Session(ctx context.Context, id string) (_ *Session, err error) {
	defer in.done(ctx, "session", time.Now(), &err)
	return in.s.Session(ctx, id)
}

func (in *instrumented) UpdateSession(ctx context.Context, id string, fn func(s *Session, u *User) error) (_ *Session, _ *User, err error) {
	defer in.done(ctx, "update_session", time.Now(), &err)
	return in.s.UpdateSession(ctx, id, fn)
}

func (in *instrumented) ListSessions(ctx context.Context, userID string, now time.Time) (_ []*Session, err error) {
	defer in.done(ctx, "list_sessions", time.Now(), &err)
	return in.s.ListSessions(ctx, userID, now)
}

func (in *instrumented) RevokeSessions(ctx context.Context, userID, id, except string, now time.Time) (_ int, err error) {
	defer in.done(ctx, "revoke_sessions", time.Now(), &err)
	return in.s.RevokeSessions(ctx, userID, id, except, now)
}

func (in *instrumented) RevokeClientSessions(ctx context.Context, clientID string, now time.Time) (_ int, err error) {
	defer in.done(ctx, "revoke_client_sessions", time.Now(), &err)
	return in.s.RevokeClientSessions(ctx, clientID, now)
}

func (in *instrumented) PruneSessions(ctx context.Context, before time.Time) (err error) {
	defer in.done(ctx, "prune_sessions", time.Now(), &err)
	return in.s.PruneSessions(ctx, before)
}

func (in *instrumented) RevokeToken(ctx context.Context, jti string, exp, now time.Time) (err error) {
	defer in.done(ctx, "revoke_token", time.Now(), &err)
	return in.s.RevokeToken(ctx, jti, exp, now)
}

func (in *instrumented) LastChange(ctx context.Context) (_ int64, err error) {
	defer in.done(ctx, "last_change", time.Now(), &err)
	return in.s.LastChange(ctx)
}

func (in *instrumented) Changes(ctx context.Context, after int64, limit int) (_ []Change, err error) {
	defer in.done(ctx, "changes", time.Now(), &err)
	return in.s.Changes(ctx, after, limit)
}

func (in *instrumented) LiveRevocations(ctx context.Context, now time.Time) (_ []Change, err error) {
	defer in.done(ctx, "live_revocations", time.Now(), &err)
	return in.s.LiveRevocations(ctx, now)
}

func (in *instrumented) PruneChanges(ctx context.Context, before time.Time) (err error) {
	defer in.done(ctx, "prune_changes", time.Now(), &err)
	return in.s.PruneChanges(ctx, before)
}

func (in *instrumented) CreateClient(ctx context.Context, c *Client) (err error) {
	defer in.done(ctx, "create_client", time.Now(), &err)
	return in.s.CreateClient(ctx, c)
}

func (in *instrumented) ClientByID(ctx context.Context, id string) (_ *Client, err error) {
	defer in.done(ctx, "client_by_id", time.Now(), &err)
	return in.s.ClientByID(ctx, id)
}

func (in *instrumented) ListClients(ctx context.Context) (_ []*Client, err error) {
	defer in.done(ctx, "list_clients", time.Now(), &err)
	return in.s.ListClients(ctx)
}

func (in *instrumented) CreateMFAToken(ctx context.Context, t *MFAToken) (err error) {
	defer in.done(ctx, "create_mfa_token", time.Now(), &err)
	return in.s.CreateMFAToken(ctx, t)
}

func (in *instrumented) TakeMFAToken(ctx context.Context, id string) (_ *MFAToken, err error) {
	defer in.done(ctx, "take_mfa_token", time.Now(), &err)
	return in.s.TakeMFAToken(ctx, id)
}

func (in *instrumented) PruneMFATokens(ctx context.Context, before time.Time) (err error) {
	defer in.done(ctx, "prune_mfa_tokens", time.Now(), &err)
	return in.s.PruneMFATokens(ctx, before)
}

func (in *instrumented) UpdateClient(ctx context.Context, id string, fn func(*Client) error) (_ *Client, err error) {
	defer in.done(ctx, "update_client", time.Now(), &err)
	return in.s.UpdateClient(ctx, id, fn)
}

func (in *instrumented) DeleteClient(ctx context.Context, id string, now time.Time) (err error) {
	defer in.done(ctx, "delete_client", time.Now(), &err)
	return in.s.DeleteClient(ctx, id, now)
}

func (in *instrumented) UpdateLoginAttempts(ctx context.Context, up AttemptUpdate) (err error) {
	defer in.done(ctx, "update_login_attempts", time.Now(), &err)
	return in.s.UpdateLoginAttempts(ctx, up)
}

func (in *instrumented) ReserveLogin(ctx context.Context, up AttemptUpdate, username string) (_ *User, err error) {
	defer in.done(ctx, "reserve_login", time.Now(), &err)
	return in.s.ReserveLogin(ctx, up, username)
}

func (in *instrumented) PruneLoginAttempts(ctx context.Context, before time.Time) (err error) {
	defer in.done(ctx, "prune_login_attempts", time.Now(), &err)
	return in.s.PruneLoginAttempts(ctx, before)
}

func (in *instrumented) Ping(ctx context.Context) (err error) {
	defer in.done(ctx, "ping", time.Now(), &err)
	return in.s.Ping(ctx)
}

func (in *instrumented) Close() error { return in.s.Close() }
