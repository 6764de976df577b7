package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// Operation names, one per Store method: the method's name in snake_case.
// Faulty takes them, and store instrumentation reports calls under them.
const (
	OpCreateUser            = "create_user"
	OpCreateUsers           = "create_users"
	OpUserByUsername        = "user_by_username"
	OpUserByID              = "user_by_id"
	OpListUsers             = "list_users"
	OpCountUsers            = "count_users"
	OpCountEnabledWithScope = "count_enabled_with_scope"
	OpUpdateUser            = "update_user"
	OpDeleteUser            = "delete_user"

	OpSigningKeys              = "signing_keys"
	OpEnsureSigningKey         = "ensure_signing_key"
	OpCreateSigningKey         = "create_signing_key"
	OpDeleteSigningKey         = "delete_signing_key"
	OpReplaceSigningKeyPrivate = "replace_signing_key_private"
	OpEnsureSecret             = "ensure_secret"
	OpReplaceSecret            = "replace_secret"

	OpCreateSession        = "create_session"
	OpSession              = "session"
	OpUpdateSession        = "update_session"
	OpListSessions         = "list_sessions"
	OpRevokeSessions       = "revoke_sessions"
	OpRevokeClientSessions = "revoke_client_sessions"
	OpPruneSessions        = "prune_sessions"

	OpRevokeToken     = "revoke_token"
	OpLastChange      = "last_change"
	OpChanges         = "changes"
	OpLiveRevocations = "live_revocations"
	OpPruneChanges    = "prune_changes"

	OpCreateClient = "create_client"
	OpClientByID   = "client_by_id"
	OpListClients  = "list_clients"
	OpUpdateClient = "update_client"

	OpCreateMFAToken = "create_mfa_token"
	OpTakeMFAToken   = "take_mfa_token"
	OpPruneMFATokens = "prune_mfa_tokens"
	OpDeleteClient   = "delete_client"

	OpUpdateLoginAttempts = "update_login_attempts"
	OpReserveLogin        = "reserve_login"
	OpPruneLoginAttempts  = "prune_login_attempts"

	OpPing  = "ping"
	OpClose = "close"
)

// ops is the table of operations, in the order of the Store interface.
var ops = []string{
	OpCreateUser, OpCreateUsers, OpUserByUsername, OpUserByID, OpListUsers, OpCountUsers, OpCountEnabledWithScope, OpUpdateUser, OpDeleteUser,
	OpSigningKeys, OpEnsureSigningKey, OpCreateSigningKey, OpDeleteSigningKey, OpReplaceSigningKeyPrivate, OpEnsureSecret, OpReplaceSecret,
	OpCreateSession, OpSession, OpUpdateSession, OpListSessions, OpRevokeSessions, OpRevokeClientSessions, OpPruneSessions,
	OpRevokeToken, OpLastChange, OpChanges, OpLiveRevocations, OpPruneChanges,
	OpCreateClient, OpClientByID, OpListClients, OpUpdateClient, OpDeleteClient,
	OpCreateMFAToken, OpTakeMFAToken, OpPruneMFATokens,
	OpUpdateLoginAttempts, OpReserveLogin, OpPruneLoginAttempts,
	OpPing, OpClose,
}

// Ops returns every operation name, one per Store method.
func Ops() []string { return slices.Clone(ops) }

// Faulty is a Store that fails the calls it is told to, for tests of what
// a store fault does to its callers. A failed call returns the injected
// error without reaching the wrapped store, so it leaves nothing behind;
// every other call goes through unchanged. Faults are deterministic: no
// randomness, no timing. Faulty is safe for concurrent use.
//
// Faulty wraps every Store method and nothing else: a wrapped
// storage.Notifier is not one through Faulty (listen on the wrapped store).
type Faulty struct {
	storage.Store

	mu   sync.Mutex
	next map[string][]error // per op, the faults of its next calls, in order
	all  error              // fails every call while set
}

var _ storage.Store = (*Faulty)(nil)

// NewFaulty wraps s, failing nothing until told to.
func NewFaulty(s storage.Store) *Faulty {
	return &Faulty{Store: s, next: map[string][]error{}}
}

// FailNext makes the next call of op, one of the Op… names, return err;
// called again for the same op, it fails the call after that too. It
// panics on a name that is no operation.
func (f *Faulty) FailNext(op string, err error) {
	if !slices.Contains(ops, op) {
		panic(fmt.Sprintf("storetest: FailNext(%q): no such operation (see Ops)", op))
	}
	if err == nil {
		panic("storetest: FailNext with a nil error")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next[op] = append(f.next[op], err)
}

// FailAll makes every call return err until Heal.
func (f *Faulty) FailAll(err error) {
	if err == nil {
		panic("storetest: FailAll with a nil error")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.all = err
}

// Heal clears every fault: FailAll's and the pending FailNext ones.
func (f *Faulty) Heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.all = nil
	clear(f.next)
}

// fault returns the error the call of op must fail with, or nil.
func (f *Faulty) fault(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.all != nil {
		return f.all
	}
	q := f.next[op]
	if len(q) == 0 {
		return nil
	}
	if len(q) == 1 {
		delete(f.next, op)
	} else {
		f.next[op] = q[1:]
	}
	return q[0]
}

func (f *Faulty) CreateUser(ctx context.Context, u *storage.User) error {
	if err := f.fault(OpCreateUser); err != nil {
		return err
	}
	return f.Store.CreateUser(ctx, u)
}

func (f *Faulty) CreateUsers(ctx context.Context, us []*storage.User) error {
	if err := f.fault(OpCreateUsers); err != nil {
		return err
	}
	return f.Store.CreateUsers(ctx, us)
}

func (f *Faulty) UserByUsername(ctx context.Context, username string) (*storage.User, error) {
	if err := f.fault(OpUserByUsername); err != nil {
		return nil, err
	}
	return f.Store.UserByUsername(ctx, username)
}

func (f *Faulty) UserByID(ctx context.Context, id string) (*storage.User, error) {
	if err := f.fault(OpUserByID); err != nil {
		return nil, err
	}
	return f.Store.UserByID(ctx, id)
}

func (f *Faulty) ListUsers(ctx context.Context, after string, limit int) ([]*storage.User, error) {
	if err := f.fault(OpListUsers); err != nil {
		return nil, err
	}
	return f.Store.ListUsers(ctx, after, limit)
}

func (f *Faulty) CountUsers(ctx context.Context) (int, error) {
	if err := f.fault(OpCountUsers); err != nil {
		return 0, err
	}
	return f.Store.CountUsers(ctx)
}

func (f *Faulty) CountEnabledWithScope(ctx context.Context, scope string) (int, error) {
	if err := f.fault(OpCountEnabledWithScope); err != nil {
		return 0, err
	}
	return f.Store.CountEnabledWithScope(ctx, scope)
}

func (f *Faulty) UpdateUser(ctx context.Context, username string, fn func(*storage.User) error, keep ...string) (*storage.User, error) {
	if err := f.fault(OpUpdateUser); err != nil {
		return nil, err
	}
	return f.Store.UpdateUser(ctx, username, fn, keep...)
}

func (f *Faulty) DeleteUser(ctx context.Context, username string, now time.Time, check func(*storage.User) error, keep ...string) error {
	if err := f.fault(OpDeleteUser); err != nil {
		return err
	}
	return f.Store.DeleteUser(ctx, username, now, check, keep...)
}

func (f *Faulty) SigningKeys(ctx context.Context) ([]storage.SigningKey, error) {
	if err := f.fault(OpSigningKeys); err != nil {
		return nil, err
	}
	return f.Store.SigningKeys(ctx)
}

func (f *Faulty) EnsureSigningKey(ctx context.Context, alg string, create func() (storage.SigningKey, error)) (storage.SigningKey, error) {
	if err := f.fault(OpEnsureSigningKey); err != nil {
		return storage.SigningKey{}, err
	}
	return f.Store.EnsureSigningKey(ctx, alg, create)
}

func (f *Faulty) CreateSigningKey(ctx context.Context, k storage.SigningKey) error {
	if err := f.fault(OpCreateSigningKey); err != nil {
		return err
	}
	return f.Store.CreateSigningKey(ctx, k)
}

func (f *Faulty) DeleteSigningKey(ctx context.Context, id string) error {
	if err := f.fault(OpDeleteSigningKey); err != nil {
		return err
	}
	return f.Store.DeleteSigningKey(ctx, id)
}

func (f *Faulty) ReplaceSigningKeyPrivate(ctx context.Context, id string, old, next []byte) error {
	if err := f.fault(OpReplaceSigningKeyPrivate); err != nil {
		return err
	}
	return f.Store.ReplaceSigningKeyPrivate(ctx, id, old, next)
}

func (f *Faulty) ReplaceSecret(ctx context.Context, name string, old, next []byte) error {
	if err := f.fault(OpReplaceSecret); err != nil {
		return err
	}
	return f.Store.ReplaceSecret(ctx, name, old, next)
}

func (f *Faulty) EnsureSecret(ctx context.Context, name string, create func() ([]byte, error)) ([]byte, error) {
	if err := f.fault(OpEnsureSecret); err != nil {
		return nil, err
	}
	return f.Store.EnsureSecret(ctx, name, create)
}

func (f *Faulty) CreateSession(ctx context.Context, s *storage.Session, epoch int64, settle *storage.AttemptUpdate) error {
	if err := f.fault(OpCreateSession); err != nil {
		return err
	}
	return f.Store.CreateSession(ctx, s, epoch, settle)
}

func (f *Faulty) Session(ctx context.Context, id string) (*storage.Session, error) {
	if err := f.fault(OpSession); err != nil {
		return nil, err
	}
	return f.Store.Session(ctx, id)
}

func (f *Faulty) UpdateSession(ctx context.Context, id string, fn func(s *storage.Session, u *storage.User) error) (*storage.Session, *storage.User, error) {
	if err := f.fault(OpUpdateSession); err != nil {
		return nil, nil, err
	}
	return f.Store.UpdateSession(ctx, id, fn)
}

func (f *Faulty) ListSessions(ctx context.Context, userID string, now time.Time) ([]*storage.Session, error) {
	if err := f.fault(OpListSessions); err != nil {
		return nil, err
	}
	return f.Store.ListSessions(ctx, userID, now)
}

func (f *Faulty) RevokeSessions(ctx context.Context, userID, id, except string, now time.Time) (int, error) {
	if err := f.fault(OpRevokeSessions); err != nil {
		return 0, err
	}
	return f.Store.RevokeSessions(ctx, userID, id, except, now)
}

func (f *Faulty) RevokeClientSessions(ctx context.Context, clientID string, now time.Time) (int, error) {
	if err := f.fault(OpRevokeClientSessions); err != nil {
		return 0, err
	}
	return f.Store.RevokeClientSessions(ctx, clientID, now)
}

func (f *Faulty) PruneSessions(ctx context.Context, before time.Time) error {
	if err := f.fault(OpPruneSessions); err != nil {
		return err
	}
	return f.Store.PruneSessions(ctx, before)
}

func (f *Faulty) RevokeToken(ctx context.Context, jti string, exp, now time.Time) error {
	if err := f.fault(OpRevokeToken); err != nil {
		return err
	}
	return f.Store.RevokeToken(ctx, jti, exp, now)
}

func (f *Faulty) LastChange(ctx context.Context) (int64, error) {
	if err := f.fault(OpLastChange); err != nil {
		return 0, err
	}
	return f.Store.LastChange(ctx)
}

func (f *Faulty) Changes(ctx context.Context, after int64, limit int) ([]storage.Change, error) {
	if err := f.fault(OpChanges); err != nil {
		return nil, err
	}
	return f.Store.Changes(ctx, after, limit)
}

func (f *Faulty) LiveRevocations(ctx context.Context, now time.Time) ([]storage.Change, error) {
	if err := f.fault(OpLiveRevocations); err != nil {
		return nil, err
	}
	return f.Store.LiveRevocations(ctx, now)
}

func (f *Faulty) PruneChanges(ctx context.Context, before time.Time) error {
	if err := f.fault(OpPruneChanges); err != nil {
		return err
	}
	return f.Store.PruneChanges(ctx, before)
}

func (f *Faulty) CreateClient(ctx context.Context, c *storage.Client) error {
	if err := f.fault(OpCreateClient); err != nil {
		return err
	}
	return f.Store.CreateClient(ctx, c)
}

func (f *Faulty) ClientByID(ctx context.Context, id string) (*storage.Client, error) {
	if err := f.fault(OpClientByID); err != nil {
		return nil, err
	}
	return f.Store.ClientByID(ctx, id)
}

func (f *Faulty) ListClients(ctx context.Context) ([]*storage.Client, error) {
	if err := f.fault(OpListClients); err != nil {
		return nil, err
	}
	return f.Store.ListClients(ctx)
}

func (f *Faulty) CreateMFAToken(ctx context.Context, t *storage.MFAToken) error {
	if err := f.fault(OpCreateMFAToken); err != nil {
		return err
	}
	return f.Store.CreateMFAToken(ctx, t)
}

func (f *Faulty) TakeMFAToken(ctx context.Context, id string) (*storage.MFAToken, error) {
	if err := f.fault(OpTakeMFAToken); err != nil {
		return nil, err
	}
	return f.Store.TakeMFAToken(ctx, id)
}

func (f *Faulty) PruneMFATokens(ctx context.Context, before time.Time) error {
	if err := f.fault(OpPruneMFATokens); err != nil {
		return err
	}
	return f.Store.PruneMFATokens(ctx, before)
}

func (f *Faulty) UpdateClient(ctx context.Context, id string, fn func(*storage.Client) error) (*storage.Client, error) {
	if err := f.fault(OpUpdateClient); err != nil {
		return nil, err
	}
	return f.Store.UpdateClient(ctx, id, fn)
}

func (f *Faulty) DeleteClient(ctx context.Context, id string, now time.Time) error {
	if err := f.fault(OpDeleteClient); err != nil {
		return err
	}
	return f.Store.DeleteClient(ctx, id, now)
}

func (f *Faulty) UpdateLoginAttempts(ctx context.Context, up storage.AttemptUpdate) error {
	if err := f.fault(OpUpdateLoginAttempts); err != nil {
		return err
	}
	return f.Store.UpdateLoginAttempts(ctx, up)
}

func (f *Faulty) ReserveLogin(ctx context.Context, up storage.AttemptUpdate, username string) (*storage.User, error) {
	if err := f.fault(OpReserveLogin); err != nil {
		return nil, err
	}
	return f.Store.ReserveLogin(ctx, up, username)
}

func (f *Faulty) PruneLoginAttempts(ctx context.Context, before time.Time) error {
	if err := f.fault(OpPruneLoginAttempts); err != nil {
		return err
	}
	return f.Store.PruneLoginAttempts(ctx, before)
}

func (f *Faulty) Ping(ctx context.Context) error {
	if err := f.fault(OpPing); err != nil {
		return err
	}
	return f.Store.Ping(ctx)
}

// Close fails like any call while a fault is set, and then leaves the
// wrapped store open: whoever opened it still closes it.
func (f *Faulty) Close() error {
	if err := f.fault(OpClose); err != nil {
		return err
	}
	return f.Store.Close()
}

// storeFaults are the faults a write may meet.
var storeFaults = []error{storage.ErrUnavailable, storage.ErrFull, storage.ErrTimeout, storage.ErrBusy}

// runFaultTests runs writes through Faulty: the suite's statement of
// "nothing acknowledged is lost, nothing refused is kept".
func runFaultTests(t *testing.T, newStore func(t *testing.T) storage.Store) {
	type fixture struct {
		alice *storage.User
	}
	// seed gives every write the same starting state: alice with a live
	// session s1 of client web, a key k1, throttle state, a token entry.
	seed := func(t *testing.T, s storage.Store) fixture {
		t.Helper()
		alice := newUser(t, "alice")
		mustCreateUser(t, s, alice)
		mustCreateSession(t, s, newSession(t, "s1", alice, "web"), 0)
		if err := s.CreateClient(t.Context(), &storage.Client{ID: "web", CreatedAt: base}); err != nil {
			t.Fatalf("CreateClient(web) = %v", err)
		}
		mustCreateSigningKey(t, s, storage.SigningKey{ID: "k1", Algorithm: "EdDSA", Private: []byte("plain"), CreatedAt: base})
		setAttempts(t, s, "user:alice", 1)
		return fixture{alice: alice}
	}
	now := base.Add(time.Minute)
	bump := storage.AttemptUpdate{Keys: []string{"user:alice"}, Fn: func(st []storage.LoginAttempts) error {
		st[0].Failures++
		return nil
	}}

	tests := []struct {
		op    string
		write func(t *testing.T, s storage.Store, fx fixture) error
		// done reports whether the write's effect is in the store.
		done func(t *testing.T, s storage.Store, fx fixture) bool
	}{
		{OpCreateUser, func(t *testing.T, s storage.Store, fx fixture) error {
			return s.CreateUser(t.Context(), &storage.User{ID: "bob-id", Username: "bob", PasswordHash: "h", Scopes: []string{"me"}, CreatedAt: base, UpdatedAt: base})
		}, func(t *testing.T, s storage.Store, fx fixture) bool {
			_, err := s.UserByUsername(t.Context(), "bob")
			return err == nil
		}},
		{OpUpdateUser, func(t *testing.T, s storage.Store, fx fixture) error {
			_, err := s.UpdateUser(t.Context(), "alice", func(u *storage.User) error { u.TokenEpoch++; u.UpdatedAt = now; return nil })
			return err
		}, func(t *testing.T, s storage.Store, fx fixture) bool {
			return mustUser(t, s, "alice").TokenEpoch == 1 && !mustSession(t, s, "s1").RevokedAt.IsZero()
		}},
		{OpDeleteUser, func(t *testing.T, s storage.Store, fx fixture) error {
			return s.DeleteUser(t.Context(), "alice", now, nil)
		}, func(t *testing.T, s storage.Store, fx fixture) bool {
			_, err := s.UserByUsername(t.Context(), "alice")
			return errors.Is(err, storage.ErrNotFound) && !mustSession(t, s, "s1").RevokedAt.IsZero()
		}},
		{OpCreateSession, func(t *testing.T, s storage.Store, fx fixture) error {
			return s.CreateSession(t.Context(), newSession(t, "s2", fx.alice, "web"), 0, &bump)
		}, func(t *testing.T, s storage.Store, fx fixture) bool {
			_, err := s.Session(t.Context(), "s2")
			return err == nil && attemptState(t, s, "user:alice").Failures == 2
		}},
		{OpUpdateSession, func(t *testing.T, s storage.Store, fx fixture) error {
			_, _, err := s.UpdateSession(t.Context(), "s1", func(sess *storage.Session, _ *storage.User) error { sess.Generation++; return nil })
			return err
		}, func(t *testing.T, s storage.Store, fx fixture) bool {
			return mustSession(t, s, "s1").Generation == 2
		}},
		{OpRevokeSessions, func(t *testing.T, s storage.Store, fx fixture) error {
			_, err := s.RevokeSessions(t.Context(), fx.alice.ID, "", "", now)
			return err
		}, func(t *testing.T, s storage.Store, fx fixture) bool {
			return !mustSession(t, s, "s1").RevokedAt.IsZero()
		}},
		{OpRevokeClientSessions, func(t *testing.T, s storage.Store, fx fixture) error {
			_, err := s.RevokeClientSessions(t.Context(), "web", now)
			return err
		}, func(t *testing.T, s storage.Store, fx fixture) bool {
			return !mustSession(t, s, "s1").RevokedAt.IsZero()
		}},
		{OpRevokeToken, func(t *testing.T, s storage.Store, fx fixture) error {
			return s.RevokeToken(t.Context(), "jti-1", now.Add(time.Hour), now)
		}, func(t *testing.T, s storage.Store, fx fixture) bool {
			return slices.Contains(liveRevocations(t, s, now), storage.ChangeToken+":jti-1")
		}},
		{OpCreateClient, func(t *testing.T, s storage.Store, fx fixture) error {
			return s.CreateClient(t.Context(), &storage.Client{ID: "cli", CreatedAt: base})
		}, func(t *testing.T, s storage.Store, fx fixture) bool {
			_, err := s.ClientByID(t.Context(), "cli")
			return err == nil
		}},
		{OpUpdateClient, func(t *testing.T, s storage.Store, fx fixture) error {
			_, err := s.UpdateClient(t.Context(), "web", func(c *storage.Client) error {
				c.Scopes = []string{"me"}
				return nil
			})
			return err
		}, func(t *testing.T, s storage.Store, fx fixture) bool {
			c, err := s.ClientByID(t.Context(), "web")
			return err == nil && slices.Equal(c.Scopes, []string{"me"})
		}},
		{OpDeleteClient, func(t *testing.T, s storage.Store, fx fixture) error {
			return s.DeleteClient(t.Context(), "web", now)
		}, func(t *testing.T, s storage.Store, fx fixture) bool {
			_, err := s.ClientByID(t.Context(), "web")
			return errors.Is(err, storage.ErrNotFound) && !mustSession(t, s, "s1").RevokedAt.IsZero()
		}},
		{OpCreateSigningKey, func(t *testing.T, s storage.Store, fx fixture) error {
			return s.CreateSigningKey(t.Context(), storage.SigningKey{ID: "k2", Algorithm: "EdDSA", Private: []byte("two"), CreatedAt: now})
		}, func(t *testing.T, s storage.Store, fx fixture) bool {
			return slices.Contains(keyIDs(signingKeys(t, s)), "k2")
		}},
		{OpEnsureSigningKey, func(t *testing.T, s storage.Store, fx fixture) error {
			_, err := s.EnsureSigningKey(t.Context(), "RS256", func() (storage.SigningKey, error) {
				return storage.SigningKey{ID: "rs", Algorithm: "RS256", Private: []byte("rsa"), CreatedAt: now}, nil
			})
			return err
		}, func(t *testing.T, s storage.Store, fx fixture) bool {
			return slices.Contains(keyIDs(signingKeys(t, s)), "rs")
		}},
		{OpDeleteSigningKey, func(t *testing.T, s storage.Store, fx fixture) error {
			return s.DeleteSigningKey(t.Context(), "k1")
		}, func(t *testing.T, s storage.Store, fx fixture) bool {
			return !slices.Contains(keyIDs(signingKeys(t, s)), "k1")
		}},
		{OpReplaceSigningKeyPrivate, func(t *testing.T, s storage.Store, fx fixture) error {
			return s.ReplaceSigningKeyPrivate(t.Context(), "k1", []byte("plain"), []byte("sealed"))
		}, func(t *testing.T, s storage.Store, fx fixture) bool {
			keys := signingKeys(t, s)
			return len(keys) == 1 && string(keys[0].Private) == "sealed"
		}},
		{OpReplaceSecret, func(t *testing.T, s storage.Store, fx fixture) error {
			if _, err := s.EnsureSecret(t.Context(), "chain", func() ([]byte, error) { return []byte("plain"), nil }); err != nil {
				return err
			}
			return s.ReplaceSecret(t.Context(), "chain", []byte("plain"), []byte("sealed"))
		}, func(t *testing.T, s storage.Store, fx fixture) bool {
			got, err := s.EnsureSecret(t.Context(), "chain", func() ([]byte, error) { return []byte("other"), nil })
			return err == nil && string(got) == "sealed"
		}},
		{OpEnsureSecret, func(t *testing.T, s storage.Store, fx fixture) error {
			_, err := s.EnsureSecret(t.Context(), "hmac", func() ([]byte, error) { return []byte("secret"), nil })
			return err
		}, func(t *testing.T, s storage.Store, fx fixture) bool {
			errNone := errors.New("no secret yet")
			_, err := s.EnsureSecret(t.Context(), "hmac", func() ([]byte, error) { return nil, errNone })
			return err == nil
		}},
		{OpUpdateLoginAttempts, func(t *testing.T, s storage.Store, fx fixture) error {
			return s.UpdateLoginAttempts(t.Context(), bump)
		}, func(t *testing.T, s storage.Store, fx fixture) bool {
			return attemptState(t, s, "user:alice").Failures == 2
		}},
		{OpReserveLogin, func(t *testing.T, s storage.Store, fx fixture) error {
			_, err := s.ReserveLogin(t.Context(), bump, "alice")
			return err
		}, func(t *testing.T, s storage.Store, fx fixture) bool {
			return attemptState(t, s, "user:alice").Failures == 2
		}},
	}

	t.Run("a_write_that_failed_with_a_fault_left_nothing_behind_and_succeeds_after_heal", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.op, func(t *testing.T) {
				s := newStore(t)
				fx := seed(t, s)
				f := NewFaulty(s)
				cursor := lastChange(t, s)
				for _, fault := range storeFaults {
					f.FailNext(tt.op, fault)
					err := tt.write(t, f, fx)
					if !errors.Is(err, fault) || !storage.IsFault(err) {
						t.Fatalf("%s with %v injected = %v, want the fault", tt.op, fault, err)
					}
					if tt.done(t, s, fx) {
						t.Errorf("%s reported %v but its effect is in the store", tt.op, fault)
					}
					assertNoChanges(t, s, cursor, fmt.Sprintf("%s that failed with %v", tt.op, fault))
				}
				f.FailAll(storage.ErrUnavailable)
				if err := tt.write(t, f, fx); !errors.Is(err, storage.ErrUnavailable) {
					t.Fatalf("%s under FailAll = %v, want ErrUnavailable", tt.op, err)
				}
				f.Heal()
				if err := tt.write(t, f, fx); err != nil {
					t.Fatalf("%s after Heal() = %v, want nil", tt.op, err)
				}
				if !tt.done(t, s, fx) {
					t.Errorf("%s succeeded after Heal() but its effect is not in the store", tt.op)
				}
			})
		}
	})

	t.Run("nothing_acknowledged_is_lost_when_faults_interleave_with_writes", func(t *testing.T) {
		s := newStore(t)
		f := NewFaulty(s)
		var acked, refused []string
		for i := range 12 {
			name := fmt.Sprintf("user%02d", i)
			if i%3 == 1 {
				f.FailNext(OpCreateUser, storeFaults[i%len(storeFaults)])
			}
			if err := f.CreateUser(t.Context(), newUser(t, name)); err != nil {
				if !storage.IsFault(err) {
					t.Fatalf("CreateUser(%s) = %v, want nil or a fault", name, err)
				}
				refused = append(refused, name)
				continue
			}
			acked = append(acked, name)
		}
		if len(refused) != 4 {
			t.Errorf("%d of 12 creates refused (%v), want the 4 faults injected", len(refused), refused)
		}
		if got := listUsernames(t, s, "", 100); !slices.Equal(got, acked) {
			t.Errorf("the store holds %v, want exactly the acknowledged %v", got, acked)
		}
	})

	t.Run("fail_all_fails_reads_writes_and_ping_until_heal", func(t *testing.T) {
		s := newStore(t)
		mustCreateUser(t, s, newUser(t, "alice"))
		f := NewFaulty(s)
		f.FailNext(OpPing, storage.ErrBusy) // Heal clears a pending fault too
		f.FailAll(storage.ErrReadOnly)
		calls := []struct {
			name string
			call func() error
		}{
			{"Ping", func() error { return f.Ping(t.Context()) }},
			{"UserByUsername", func() error { _, err := f.UserByUsername(t.Context(), "alice"); return err }},
			{"CreateUser", func() error { return f.CreateUser(t.Context(), newUser(t, "bob")) }},
			{"Changes", func() error { _, err := f.Changes(t.Context(), 0, 10); return err }},
		}
		for _, c := range calls {
			if err := c.call(); !errors.Is(err, storage.ErrReadOnly) {
				t.Errorf("%s under FailAll(ErrReadOnly) = %v, want ErrReadOnly", c.name, err)
			}
		}
		f.Heal()
		for _, c := range calls {
			if err := c.call(); err != nil {
				t.Errorf("%s after Heal() = %v, want nil", c.name, err)
			}
		}
	})
}
