package storage

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// WithTimeout wraps s so that every call of a Store method runs under
// context.WithTimeout(ctx, d), and an error from a call that overran that
// deadline matches ErrTimeout (a deadline or cancellation of the caller's
// own context is left as the store reported it). When s is a Notifier the
// result is one too; Listen runs without the timeout, since it lasts as
// long as its context. A d of zero or less returns s unchanged.
func WithTimeout(s Store, d time.Duration) Store {
	if d <= 0 {
		return s
	}
	t := &timed{s: s, d: d}
	if n, ok := s.(Notifier); ok {
		return &timedNotifier{t, n}
	}
	return t
}

type timed struct {
	s Store
	d time.Duration
}

type timedNotifier struct {
	*timed
	Notifier
}

var (
	_ Store    = (*timed)(nil)
	_ Notifier = (*timedNotifier)(nil)
)

// fault reports err of a call made under ctx, derived from parent, as
// ErrTimeout when it was ctx's own deadline that ended it.
func (t *timed) fault(parent, ctx context.Context, err error) error {
	if err == nil || errors.Is(err, ErrTimeout) || parent.Err() != nil || !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w after %s: %w", ErrTimeout, t.d, err)
}

func (t *timed) CreateUser(parent context.Context, u *User) error {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	return t.fault(parent, ctx, t.s.CreateUser(ctx, u))
}

func (t *timed) CreateUsers(parent context.Context, us []*User) error {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	return t.fault(parent, ctx, t.s.CreateUsers(ctx, us))
}

func (t *timed) UserByUsername(parent context.Context, username string) (*User, error) {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	r, err := t.s.UserByUsername(ctx, username)
	return r, t.fault(parent, ctx, err)
}

func (t *timed) UserByID(parent context.Context, id string) (*User, error) {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	r, err := t.s.UserByID(ctx, id)
	return r, t.fault(parent, ctx, err)
}

func (t *timed) ListUsers(parent context.Context, after string, limit int) ([]*User, error) {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	r, err := t.s.ListUsers(ctx, after, limit)
	return r, t.fault(parent, ctx, err)
}

func (t *timed) CountUsers(parent context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	r, err := t.s.CountUsers(ctx)
	return r, t.fault(parent, ctx, err)
}

func (t *timed) CountEnabledWithScope(parent context.Context, scope string) (int, error) {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	r, err := t.s.CountEnabledWithScope(ctx, scope)
	return r, t.fault(parent, ctx, err)
}

func (t *timed) UpdateUser(parent context.Context, username string, fn func(*User) error, keep ...string) (*User, error) {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	r, err := t.s.UpdateUser(ctx, username, fn, keep...)
	return r, t.fault(parent, ctx, err)
}

func (t *timed) DeleteUser(parent context.Context, username string, now time.Time, check func(*User) error, keep ...string) error {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	return t.fault(parent, ctx, t.s.DeleteUser(ctx, username, now, check, keep...))
}

func (t *timed) SigningKeys(parent context.Context) ([]SigningKey, error) {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	r, err := t.s.SigningKeys(ctx)
	return r, t.fault(parent, ctx, err)
}

func (t *timed) EnsureSigningKey(parent context.Context, alg string, create func() (SigningKey, error)) (SigningKey, error) {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	r, err := t.s.EnsureSigningKey(ctx, alg, create)
	return r, t.fault(parent, ctx, err)
}

func (t *timed) CreateSigningKey(parent context.Context, k SigningKey) error {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	return t.fault(parent, ctx, t.s.CreateSigningKey(ctx, k))
}

func (t *timed) DeleteSigningKey(parent context.Context, id string) error {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	return t.fault(parent, ctx, t.s.DeleteSigningKey(ctx, id))
}

func (t *timed) ReplaceSigningKeyPrivate(parent context.Context, id string, old, next []byte) error {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	return t.fault(parent, ctx, t.s.ReplaceSigningKeyPrivate(ctx, id, old, next))
}

func (t *timed) EnsureSecret(parent context.Context, name string, create func() ([]byte, error)) ([]byte, error) {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	r, err := t.s.EnsureSecret(ctx, name, create)
	return r, t.fault(parent, ctx, err)
}

func (t *timed) ReplaceSecret(parent context.Context, name string, old, next []byte) error {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	return t.fault(parent, ctx, t.s.ReplaceSecret(ctx, name, old, next))
}

func (t *timed) CreateSession(parent context.Context, s *Session, epoch int64, settle *AttemptUpdate) error {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	return t.fault(parent, ctx, t.s.CreateSession(ctx, s, epoch, settle))
}

func (t *timed) Session(parent context.Context, id string) (*Session, error) {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	r, err := t.s.Session(ctx, id)
	return r, t.fault(parent, ctx, err)
}

func (t *timed) UpdateSession(parent context.Context, id string, fn func(s *Session, u *User) error) (*Session, *User, error) {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	s, u, err := t.s.UpdateSession(ctx, id, fn)
	return s, u, t.fault(parent, ctx, err)
}

func (t *timed) ListSessions(parent context.Context, userID string, now time.Time) ([]*Session, error) {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	r, err := t.s.ListSessions(ctx, userID, now)
	return r, t.fault(parent, ctx, err)
}

func (t *timed) RevokeSessions(parent context.Context, userID, id, except string, now time.Time) (int, error) {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	r, err := t.s.RevokeSessions(ctx, userID, id, except, now)
	return r, t.fault(parent, ctx, err)
}

func (t *timed) RevokeClientSessions(parent context.Context, clientID string, now time.Time) (int, error) {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	r, err := t.s.RevokeClientSessions(ctx, clientID, now)
	return r, t.fault(parent, ctx, err)
}

func (t *timed) PruneSessions(parent context.Context, before time.Time) error {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	return t.fault(parent, ctx, t.s.PruneSessions(ctx, before))
}

func (t *timed) RevokeToken(parent context.Context, jti string, exp, now time.Time) error {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	return t.fault(parent, ctx, t.s.RevokeToken(ctx, jti, exp, now))
}

func (t *timed) LastChange(parent context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	r, err := t.s.LastChange(ctx)
	return r, t.fault(parent, ctx, err)
}

func (t *timed) Changes(parent context.Context, after int64, limit int) ([]Change, error) {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	r, err := t.s.Changes(ctx, after, limit)
	return r, t.fault(parent, ctx, err)
}

func (t *timed) LiveRevocations(parent context.Context, now time.Time) ([]Change, error) {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	r, err := t.s.LiveRevocations(ctx, now)
	return r, t.fault(parent, ctx, err)
}

func (t *timed) PruneChanges(parent context.Context, before time.Time) error {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	return t.fault(parent, ctx, t.s.PruneChanges(ctx, before))
}

func (t *timed) CreateClient(parent context.Context, c *Client) error {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	return t.fault(parent, ctx, t.s.CreateClient(ctx, c))
}

func (t *timed) ClientByID(parent context.Context, id string) (*Client, error) {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	r, err := t.s.ClientByID(ctx, id)
	return r, t.fault(parent, ctx, err)
}

func (t *timed) ListClients(parent context.Context) ([]*Client, error) {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	r, err := t.s.ListClients(ctx)
	return r, t.fault(parent, ctx, err)
}

func (t *timed) CreateMFAToken(parent context.Context, m *MFAToken) error {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	return t.fault(parent, ctx, t.s.CreateMFAToken(ctx, m))
}

func (t *timed) TakeMFAToken(parent context.Context, id string) (*MFAToken, error) {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	m, err := t.s.TakeMFAToken(ctx, id)
	return m, t.fault(parent, ctx, err)
}

func (t *timed) PruneMFATokens(parent context.Context, before time.Time) error {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	return t.fault(parent, ctx, t.s.PruneMFATokens(ctx, before))
}

func (t *timed) UpdateClient(parent context.Context, id string, fn func(*Client) error) (*Client, error) {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	c, err := t.s.UpdateClient(ctx, id, fn)
	return c, t.fault(parent, ctx, err)
}

func (t *timed) DeleteClient(parent context.Context, id string, now time.Time) error {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	return t.fault(parent, ctx, t.s.DeleteClient(ctx, id, now))
}

func (t *timed) UpdateLoginAttempts(parent context.Context, up AttemptUpdate) error {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	return t.fault(parent, ctx, t.s.UpdateLoginAttempts(ctx, up))
}

func (t *timed) ReserveLogin(parent context.Context, up AttemptUpdate, username string) (*User, error) {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	r, err := t.s.ReserveLogin(ctx, up, username)
	return r, t.fault(parent, ctx, err)
}

func (t *timed) PruneLoginAttempts(parent context.Context, before time.Time) error {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	return t.fault(parent, ctx, t.s.PruneLoginAttempts(ctx, before))
}

func (t *timed) Ping(parent context.Context) error {
	ctx, cancel := context.WithTimeout(parent, t.d)
	defer cancel()
	return t.fault(parent, ctx, t.s.Ping(ctx))
}

func (t *timed) Close() error { return t.s.Close() }
