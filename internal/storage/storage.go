package storage

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"time"
)

// Sentinel errors. Callers match them with errors.Is.
var (
	// ErrNotFound: no record matches.
	ErrNotFound = errors.New("storage: not found")
	// ErrUsernameTaken: another user already has this username.
	ErrUsernameTaken = errors.New("storage: username already taken")
	// ErrClientExists: another client has this client_id.
	ErrClientExists = errors.New("storage: client_id already taken")
	// ErrGrantStale: the account changed after the grant was authorised
	// (its TokenEpoch moved on, it was disabled or deleted), so nothing
	// was stored.
	ErrGrantStale = errors.New("storage: the account changed while the grant was issued")
	// ErrLastHolder: the change would leave no enabled user holding a
	// scope it was to keep (UpdateUser's and DeleteUser's keep).
	ErrLastHolder = errors.New("storage: the change would leave no enabled user holding the scope")
)

// ItemError is the failure of one item of a batch (CreateUsers): Index is
// its position in the batch.
type ItemError struct {
	Index int
	Err   error
}

func (e *ItemError) Error() string { return "item " + strconv.Itoa(e.Index) + ": " + e.Err.Error() }

// Unwrap returns the item's error.
func (e *ItemError) Unwrap() error { return e.Err }

// Store faults: the store could not do the work now, and the same call may
// succeed later. The HTTP layer answers each with 503 and Retry-After.
// Engines classify their driver errors into these at their boundary (a
// wrapped driver error that matches none of them is a plain failure).
var (
	// ErrUnavailable: the store cannot be reached (connection refused or
	// lost, the database shutting down or restarting).
	ErrUnavailable = errors.New("storage: unavailable")
	// ErrTimeout: the call did not finish within its deadline.
	ErrTimeout = errors.New("storage: timed out")
	// ErrFull: the store has no room for the write (disk or quota full).
	ErrFull = errors.New("storage: full")
	// ErrBusy: the store is locked by other work (SQLite's busy timeout,
	// a lock or serialization conflict that did not clear in time).
	ErrBusy = errors.New("storage: busy")
	// ErrReadOnly: the store refuses writes (a read-only file, a hot
	// standby).
	ErrReadOnly = errors.New("storage: read-only")
)

// IsFault reports whether err is a store fault: a condition that a retry
// may clear, answered 503 rather than 500.
func IsFault(err error) bool {
	for _, f := range []error{ErrUnavailable, ErrTimeout, ErrFull, ErrBusy, ErrReadOnly} {
		if errors.Is(err, f) {
			return true
		}
	}
	return false
}

// User is an account that can log in with the password grant.
type User struct {
	// ID is stable for the life of the account and is the token subject.
	ID       string
	Username string
	// PasswordHash is an argon2id PHC string or an imported bcrypt hash.
	PasswordHash string
	// Scopes the user may be granted, sorted and without duplicates.
	Scopes   []string
	Disabled bool
	// TokenEpoch counts the changes that ended every session the user had
	// (a new password, disabling, a scope removed). It never goes down.
	TokenEpoch int64
	CreatedAt  time.Time
	UpdatedAt  time.Time
	// TOTP is the user's second factor, zero when none.
	TOTP TOTP
}

// TOTP is a user's time-based one-time password factor (RFC 6238).
type TOTP struct {
	// Secret is the shared secret as internal/users seals it; "" when no
	// factor is enrolled or pending.
	Secret string
	// Confirmed: a first code proved the enrolment. Until then the
	// factor is not enforced.
	Confirmed bool
	// LastStep is the last time step whose code was accepted: a code of
	// it or an earlier step is refused (RFC 6238 §5.2).
	LastStep int64
	// RecoveryCodes are the hex SHA-256 of the unused recovery codes.
	RecoveryCodes []string
}

// Enforced reports whether logins need the factor's code.
func (t TOTP) Enforced() bool { return t.Secret != "" && t.Confirmed }

// State is the factor as the API and the CLI show it: "none", "pending"
// (started, not confirmed) or "enabled".
func (t TOTP) State() string {
	switch {
	case t.Enforced():
		return "enabled"
	case t.Secret != "":
		return "pending"
	}
	return "none"
}

// MFAToken is the first step of a two-step login: a right password of a
// user with a factor, answered with a short-lived, single-use token that
// is exchanged with a code on a second request.
type MFAToken struct {
	ID string
	// SecretHash is the hex SHA-256 of the token's secret part.
	SecretHash string
	UserID     string
	ClientID   string
	// Scopes are those the first step granted.
	Scopes []string
	// Epoch is the user's TokenEpoch at the password check.
	Epoch     int64
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Holds reports whether the user is enabled and has scope s: what
// UpdateUser's and DeleteUser's keep count.
func (u *User) Holds(s string) bool { return !u.Disabled && u.HasScope(s) }

// HasScope reports whether s is one of the user's scopes.
func (u *User) HasScope(s string) bool {
	for _, have := range u.Scopes {
		if have == s {
			return true
		}
	}
	return false
}

// SigningKey is a token signing key as stored. Private is opaque to the
// store (the auth package's PKCS #8 DER, possibly encrypted).
type SigningKey struct {
	ID        string
	Algorithm string
	Private   []byte
	CreatedAt time.Time
	// ActivatesAt is when tokens start being signed with the key.
	ActivatesAt time.Time
}

// Session is one login (RFC 6749 §4.3): the unit of token state. Refreshes
// update the row in place, so a session is one row whatever the number of
// refreshes. Access tokens carry its ID as `sid`.
type Session struct {
	// ID is random and public: resource servers see it in access tokens.
	ID       string
	UserID   string
	ClientID string
	// Scopes granted at login; refreshes may narrow what they ask for.
	Scopes     []string
	CreatedAt  time.Time
	LastUsedAt time.Time
	// IdleExpiresAt moves forward with every refresh; ExpiresAt never.
	IdleExpiresAt time.Time
	ExpiresAt     time.Time
	// Generation counts rotations: the refresh token of generation n is
	// the n-th of the login's chain.
	Generation int64
	// SecretHash is the hex SHA-256 of the current generation's refresh
	// secret. No secret is stored.
	SecretHash string
	// RotatedAt is when Generation became current (the start of its reuse
	// grace window); GraceUses counts the times its parent was answered
	// with it inside that window.
	RotatedAt time.Time
	GraceUses int
	// RevokedAt is set once, when the session ends early.
	RevokedAt time.Time
	// What a person needs to recognise the session in a list.
	ClientAddr string
	UserAgent  string
}

// Live reports whether the session can still refresh at now.
func (s *Session) Live(now time.Time) bool {
	return s.RevokedAt.IsZero() && now.Before(s.IdleExpiresAt) && now.Before(s.ExpiresAt)
}

// Client is a registered OAuth 2.0 client (RFC 6749 §2).
type Client struct {
	ID string
	// Secrets are the confidential client's secrets, oldest first: one,
	// or two while it rotates. A public client has none.
	Secrets []ClientSecret
	// Grants are the grant types the client may use beyond the password
	// and refresh grants ("client_credentials", RFC 6749 §4.4).
	Grants []string
	// Scopes limits what the client may request; empty means any scope.
	Scopes    []string
	CreatedAt time.Time
	// ServiceScopes are the scopes the client holds itself, authenticated
	// with its own credentials and acting for no user (introspection,
	// RFC 7662 §2.1); empty means none. Only a confidential client holds
	// any.
	ServiceScopes []string
}

// ClientSecret is one secret of a confidential client.
type ClientSecret struct {
	// ID names the secret: tokens of the client-credentials grant carry
	// it as their sid, so removing the secret ends them.
	ID string
	// Hash is the hex SHA-256 of the secret; the secret is not stored.
	Hash      string
	CreatedAt time.Time
}

// Confidential reports whether the client has a secret (RFC 6749 §2.1).
func (c *Client) Confidential() bool { return len(c.Secrets) > 0 }

// Allows reports whether the client may use grant, one of Grants' values.
func (c *Client) Allows(grant string) bool { return slices.Contains(c.Grants, grant) }

// LoginAttempts is the throttling state of one key; the auth package
// decides what the numbers mean.
type LoginAttempts struct {
	Key          string
	Failures     int
	WindowStart  time.Time
	BlockedUntil time.Time
	LastSuccess  time.Time
}

// Empty reports whether the state holds nothing worth keeping.
func (a *LoginAttempts) Empty() bool {
	return a.Failures == 0 && a.WindowStart.IsZero() && a.BlockedUntil.IsZero() && a.LastSuccess.IsZero()
}

// AttemptUpdate is a change of throttling state: Fn gets the states of
// Keys (zero states with Key set for unknown keys) and changes them in
// place; a state left empty is deleted.
type AttemptUpdate struct {
	Keys []string
	Fn   func(states []LoginAttempts) error
}

// Kinds of Change.
const (
	// ChangeSession: the session named by Subject was revoked.
	ChangeSession = "session"
	// ChangeToken: the access token whose jti is Subject was revoked
	// (RFC 7009); the entry expires with the token.
	ChangeToken = "token"
	// ChangeUser: the user with ID Subject changed in a way the bearer
	// path cares about (disabled, scopes, username, epoch) or was deleted.
	ChangeUser = "user"
	// ChangeKeys: a signing key was created, changed or deleted.
	ChangeKeys = "keys"
	// ChangeClient: the client whose client_id is Subject was registered,
	// changed (scopes, grants, secrets) or deleted.
	ChangeClient = "client"
)

// Change is one entry of the change log: what every process applies to
// its in-memory state, in Seq order.
type Change struct {
	// Seq is the entry's place in the log: it only grows, and a reader
	// that has applied every entry up to n has applied every change
	// committed before the entry n+1 became visible.
	Seq     int64
	Kind    string
	Subject string
	// At is when the change was made; ExpiresAt when the entry stops
	// mattering (it may be pruned after it).
	At        time.Time
	ExpiresAt time.Time
}

// UserStore persists accounts.
type UserStore interface {
	// CreateUser inserts u (ID, Username and PasswordHash set). Zero
	// CreatedAt and UpdatedAt are set from the store's clock; on success u
	// holds the times as stored. Returns ErrUsernameTaken.
	CreateUser(ctx context.Context, u *User) error
	// CreateUsers inserts every user of us as CreateUser would, in one
	// transaction: all of them or none. A username already taken fails
	// it with an *ItemError naming that user's index and wrapping
	// ErrUsernameTaken.
	CreateUsers(ctx context.Context, us []*User) error
	// UserByUsername and UserByID return ErrNotFound.
	UserByUsername(ctx context.Context, username string) (*User, error)
	UserByID(ctx context.Context, id string) (*User, error)
	// ListUsers returns up to limit users ordered by username (bytewise),
	// after the given username ("" for the first page).
	ListUsers(ctx context.Context, after string, limit int) ([]*User, error)
	CountUsers(ctx context.Context) (int, error)
	// CountEnabledWithScope returns how many enabled users hold scope.
	CountEnabledWithScope(ctx context.Context, scope string) (int, error)
	// UpdateUser loads the user with that username, calls fn on it and,
	// if fn returns nil, saves it atomically with the read (fn's error is
	// returned unchanged and nothing is written; ErrNotFound for no such
	// user). ID and CreatedAt cannot change, TokenEpoch cannot go down;
	// a zero or unchanged UpdatedAt is set from the store's clock. In the
	// same transaction it appends a ChangeUser entry, and when fn raised
	// TokenEpoch it revokes every live session of the user at UpdatedAt
	// with a ChangeSession entry each.
	//
	// Each scope of keep must keep an enabled holder: a change that takes
	// one from the user while the user is its only enabled holder is
	// refused with ErrLastHolder. The count is taken in the transaction,
	// before fn runs, and every change with a keep takes turns with every
	// other (UpdateUser's and DeleteUser's), so two of them cannot each
	// count the other as a remaining holder and both go through.
	UpdateUser(ctx context.Context, username string, fn func(*User) error, keep ...string) (*User, error)
	// DeleteUser removes the user, revokes its live sessions at now and
	// appends the ChangeUser and ChangeSession entries, in one
	// transaction. check, when not nil, is called on the stored user in
	// that transaction and its error is returned unchanged with nothing
	// deleted. keep is as for UpdateUser. Returns ErrNotFound.
	DeleteUser(ctx context.Context, username string, now time.Time, check func(*User) error, keep ...string) error
}

// KeyStore persists signing keys and server secrets. Every write of a
// signing key appends a ChangeKeys entry in its transaction.
type KeyStore interface {
	// SigningKeys returns every stored key, newest first (by CreatedAt,
	// then insertion order).
	SigningKeys(ctx context.Context) ([]SigningKey, error)
	// EnsureSigningKey returns the newest key for alg, calling create and
	// storing its result only when there is none; concurrent callers, in
	// other processes too, all get the same key. A zero ActivatesAt is
	// set to CreatedAt.
	EnsureSigningKey(ctx context.Context, alg string, create func() (SigningKey, error)) (SigningKey, error)
	// CreateSigningKey stores a rotated key (zero ActivatesAt: CreatedAt).
	CreateSigningKey(ctx context.Context, k SigningKey) error
	// DeleteSigningKey returns ErrNotFound.
	DeleteSigningKey(ctx context.Context, id string) error
	// ReplaceSigningKeyPrivate swaps key id's private form from old to
	// next only while it is still old. Returns ErrNotFound otherwise.
	ReplaceSigningKeyPrivate(ctx context.Context, id string, old, next []byte) error
	// EnsureSecret returns the server secret called name, calling create
	// and storing its result only when there is none; concurrent callers,
	// in other processes too, all get the same bytes. The bytes are opaque
	// to the store (the auth package may encrypt them).
	EnsureSecret(ctx context.Context, name string, create func() ([]byte, error)) ([]byte, error)
	// ReplaceSecret swaps the secret called name from old to next (its
	// encryption at rest) only while it is still old. Returns ErrNotFound
	// otherwise.
	ReplaceSecret(ctx context.Context, name string, old, next []byte) error
}

// SessionStore persists sessions. Every method that revokes a session
// appends a ChangeSession entry in its transaction.
type SessionStore interface {
	// CreateSession stores s, a new login, in one transaction with
	// settle (the login throttle's settlement; nil for none), only while
	// the user s.UserID exists, is enabled and has TokenEpoch epoch:
	// otherwise it stores nothing, applies nothing and returns
	// ErrGrantStale. It is atomic with every UpdateUser that raises the
	// epoch and every DeleteUser, also across processes. Zero CreatedAt,
	// LastUsedAt and RotatedAt are set from the store's clock.
	CreateSession(ctx context.Context, s *Session, epoch int64, settle *AttemptUpdate) error
	// Session returns the session with that ID, or ErrNotFound.
	Session(ctx context.Context, id string) (*Session, error)
	// UpdateSession loads the session and its user (nil when the user no
	// longer exists) in one transaction, calls fn, and saves what fn left
	// in the session when it returns nil (fn's error is returned
	// unchanged and nothing is written). Concurrent updates of one session,
	// in other processes too, run one after another, each seeing the
	// previous one's result. fn may change LastUsedAt, IdleExpiresAt,
	// Generation, SecretHash, RotatedAt, GraceUses, Scopes and RevokedAt;
	// setting RevokedAt revokes the session (once: a set RevokedAt is
	// kept). fn must not call the store. Returns ErrNotFound.
	UpdateSession(ctx context.Context, id string, fn func(s *Session, u *User) error) (*Session, *User, error)
	// ListSessions returns the user's sessions that are live at now,
	// most recently used first.
	ListSessions(ctx context.Context, userID string, now time.Time) ([]*Session, error)
	// RevokeSessions revokes, at now, the live sessions of userID (every
	// one when id is "", else only that one) except the one named except,
	// and returns how many it revoked. Revoking a session of another
	// user, or an unknown one, revokes nothing and is not an error.
	RevokeSessions(ctx context.Context, userID, id, except string, now time.Time) (int, error)
	// RevokeClientSessions revokes, at now, every live session of the
	// client.
	RevokeClientSessions(ctx context.Context, clientID string, now time.Time) (int, error)
	// PruneSessions deletes sessions that ended (expired, idle or revoked)
	// before before.
	PruneSessions(ctx context.Context, before time.Time) error
}

// ChangeLog is the store's record of revocations and of the changes the
// bearer path must learn, which each process loads once and then follows.
type ChangeLog interface {
	// RevokeToken records the revocation of one access token (RFC 7009) as
	// a ChangeToken entry that expires at exp.
	RevokeToken(ctx context.Context, jti string, exp, now time.Time) error
	// LastChange returns the Seq of the newest entry, 0 when none.
	LastChange(ctx context.Context) (int64, error)
	// Changes returns up to limit entries with Seq above after, in Seq
	// order.
	Changes(ctx context.Context, after int64, limit int) ([]Change, error)
	// LiveRevocations returns every ChangeSession and ChangeToken entry
	// that has not expired at now, in Seq order.
	LiveRevocations(ctx context.Context, now time.Time) ([]Change, error)
	// PruneChanges deletes entries that expired before before.
	PruneChanges(ctx context.Context, before time.Time) error
}

// MFATokenStore keeps the first steps of two-step logins.
type MFATokenStore interface {
	// CreateMFAToken stores t.
	CreateMFAToken(ctx context.Context, t *MFAToken) error
	// TakeMFAToken removes the token with that id and returns it, so it
	// is used at most once, even by concurrent takers; ErrNotFound when
	// there is none.
	TakeMFAToken(ctx context.Context, id string) (*MFAToken, error)
	// PruneMFATokens deletes the tokens that expired before before.
	PruneMFATokens(ctx context.Context, before time.Time) error
}

// ClientStore persists registered clients.
type ClientStore interface {
	// CreateClient stores c with its secrets (zero CreatedAt: the store's
	// clock) and a ChangeClient entry. Returns ErrClientExists.
	CreateClient(ctx context.Context, c *Client) error
	// ClientByID returns ErrNotFound.
	ClientByID(ctx context.Context, id string) (*Client, error)
	// ListClients returns every client ordered by ID (non-nil).
	ListClients(ctx context.Context) ([]*Client, error)
	// UpdateClient loads the client, calls fn on it and, if fn returns
	// nil, saves its Scopes, ServiceScopes, Grants and Secrets atomically
	// with the read (fn's error is returned unchanged; ErrNotFound for no
	// such client), with a ChangeClient entry. ID and CreatedAt cannot
	// change.
	UpdateClient(ctx context.Context, id string, fn func(*Client) error) (*Client, error)
	// DeleteClient revokes the client's live sessions at now and removes
	// it and its secrets, with a ChangeClient entry, in one transaction.
	// Returns ErrNotFound.
	DeleteClient(ctx context.Context, id string, now time.Time) error
}

// AttemptStore persists login throttling state, shared by every process.
type AttemptStore interface {
	// UpdateLoginAttempts applies up atomically, also across processes:
	// concurrent updates of the same keys run one after another, so N
	// concurrent failures count N. An error from up.Fn aborts with nothing
	// changed and is returned.
	UpdateLoginAttempts(ctx context.Context, up AttemptUpdate) error
	// ReserveLogin is UpdateLoginAttempts that also reads, in the same
	// transaction, the user with that username: nil when there is none
	// (or username is ""), so a login costs one store call before the
	// password check.
	ReserveLogin(ctx context.Context, up AttemptUpdate, username string) (*User, error)
	// PruneLoginAttempts deletes the states not updated since before.
	PruneLoginAttempts(ctx context.Context, before time.Time) error
}

// Store is everything gatehouse keeps. Implementations are safe for
// concurrent use.
type Store interface {
	UserStore
	KeyStore
	SessionStore
	ChangeLog
	ClientStore
	MFATokenStore
	AttemptStore
	// Ping reports whether the store can take writes now (readiness): it
	// writes, so a read-only or full store fails it with a fault.
	Ping(ctx context.Context) error
	Close() error
}

// Notifier is implemented by stores that several processes share
// (PostgreSQL): it wakes a follower of the change log as soon as another
// process appends an entry, instead of at its next poll.
type Notifier interface {
	// Listen calls wake after each commit that appended entries, by any
	// process, until ctx is done (then it returns nil) or the listening
	// connection fails (then it returns the error; listen again). wake runs
	// on Listen's goroutine.
	Listen(ctx context.Context, wake func()) error
}
