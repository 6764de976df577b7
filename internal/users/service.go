package users

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// MaxListLimit is the most users one List call returns, bounding its
// memory. The HTTP API's own page size is bounded lower by the spec; its
// handler asks for one more row than a page to learn whether another
// follows.
const MaxListLimit = 1000

// Options configures a Service.
type Options struct {
	// Hasher hashes new passwords; the zero value means DefaultHasher().
	Hasher Hasher
	// Scopes lists every scope a user may hold, from the OpenAPI spec's
	// oauth2 security scheme.
	Scopes []string
	// Now is the clock for CreatedAt and UpdatedAt; nil means time.Now.
	Now func() time.Time
	// Logger receives failures that do not fail the call, such as a
	// rehash on login that could not be stored; nil discards them.
	Logger *slog.Logger
	// HashConcurrency bounds how many passwords are hashed at once
	// (0: GOMAXPROCS); HashQueue how many more calls may wait for a slot
	// (0: DefaultHashQueue per slot), and HashWait for how long (0:
	// DefaultHashWait). Calls beyond the queue fail at once with ErrBusy,
	// calls that wait longer fail then.
	HashConcurrency int
	HashQueue       int
	HashWait        time.Duration
	// Contended, when set, reports whether requests other than logins are
	// in flight. While it does, each hashing slot rests after hashing for
	// three times as long as the hashing ran (wall time) before the next
	// hash may start, so hashing leaves about three quarters of its
	// slots' CPU to those requests; while it does not, hashing runs at
	// full rate. nil: never.
	Contended func() bool
	// PasswordPolicy applies to every new password.
	PasswordPolicy PasswordPolicy
	// ObserveHash, when set, hears how long each password hash waited for
	// a slot and how long it ran.
	ObserveHash func(wait, run time.Duration)
	// AfterRevoke, when set, is called after every revocation the Service
	// performs (account events, DeleteClient) and every change of a
	// second factor, so the bearer validator's
	// in-memory deny-list can resync at once instead of at its next poll.
	// It runs synchronously on the caller's goroutine and should be quick.
	AfterRevoke func(ctx context.Context)
	// EncryptionKey, when set (GATEHOUSE_KEY_ENCRYPTION_KEY, 32 bytes),
	// encrypts TOTP secrets at rest.
	EncryptionKey []byte
	// TOTPIssuer names the service in authenticator apps (the otpauth
	// URI's issuer); "" means "gatehouse".
	TOTPIssuer string
}

// Hashing queue defaults. A waiter costs its parked goroutine (a
// connection's, there anyway) and a timer, never an argon2id buffer, so
// the queue is sized to hold a flood's connections: a login shed at once
// is resent at once, and those answers eat the core the queue was meant
// to protect, while one that waited comes back at most once per
// DefaultHashWait. The wait bounds the latency a queued login adds, well
// inside the HTTP write timeout.
const (
	DefaultHashQueue = 1024
	DefaultHashWait  = time.Second
)

// Service is the user business layer: password and client checks for the
// token endpoint, account and client management for the HTTP API, and the
// token revocations account events imply. It is safe for concurrent use.
type Service struct {
	store       Store
	hasher      Hasher
	scopes      []string // sorted, deduplicated
	known       map[string]bool
	now         func() time.Time
	log         *slog.Logger
	afterRevoke func(ctx context.Context)
	// dummyHash is verified against for unknown usernames so they cost the
	// same time as a wrong password (no username enumeration by timing).
	dummyHash string
	// limiter bounds concurrent hashing.
	limiter     *hashLimiter
	policy      PasswordPolicy
	observeHash func(wait, run time.Duration)
	encKey      []byte
	totpIssuer  string
	// testHookBeforeUse, when set, runs in CheckCode between the check of
	// a code against the user as read and its use in the store: a test
	// uses the same code there to prove the write refuses the second use.
	testHookBeforeUse func()
}

// HashStats reports the password-hashing limiter's counters.
func (s *Service) HashStats() HashStats { return s.limiter.stats() }

// hash and verify run the hasher in sl, or in a slot of their own when
// sl is nil.
func (s *Service) hash(ctx context.Context, sl *Slot, password string) (hash string, err error) {
	if lerr := s.limited(ctx, sl, func() { hash, err = s.hasher.Hash(password) }); lerr != nil {
		return "", lerr
	}
	return hash, err
}

func (s *Service) verify(ctx context.Context, sl *Slot, hash, password string) (ok, needsRehash bool, err error) {
	lerr := s.limited(ctx, sl, func() { ok, needsRehash, err = s.hasher.Verify(hash, password) })
	if lerr != nil {
		return false, false, lerr
	}
	return ok, needsRehash, err
}

// limited runs one hashing job in sl, or when sl is nil (or released
// already) in a slot taken and released around it.
func (s *Service) limited(ctx context.Context, sl *Slot, job func()) error {
	if sl == nil || sl.released {
		var err error
		if sl, err = s.Admit(ctx); err != nil {
			return err
		}
		defer sl.Release()
	}
	sl.run(job)
	return nil
}

// NewService returns a Service over store. It rejects invalid hasher
// parameters and scopes that are not RFC 6749 §3.3 scope-tokens.
func NewService(store Store, opts Options) (*Service, error) {
	if store == nil {
		return nil, errors.New("users: NewService: nil store")
	}
	h := opts.Hasher
	if h == (Hasher{}) {
		h = DefaultHasher()
	}
	if err := h.Validate(); err != nil {
		return nil, err
	}
	known := make(map[string]bool, len(opts.Scopes))
	for _, sc := range opts.Scopes {
		if !validScope(sc) {
			return nil, fmt.Errorf("users: NewService: invalid scope %q", sc)
		}
		known[sc] = true
	}
	scopes := slices.Sorted(maps.Keys(known))
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// The dummy password is random so no real password can match it.
	dummy, err := h.Hash(rand.Text())
	if err != nil {
		return nil, err
	}
	slots := opts.HashConcurrency
	if slots <= 0 {
		slots = runtime.GOMAXPROCS(0)
	}
	queue := opts.HashQueue
	if queue <= 0 {
		queue = DefaultHashQueue * slots
	}
	wait := opts.HashWait
	if wait <= 0 {
		wait = DefaultHashWait
	}
	return &Service{
		policy:      opts.PasswordPolicy,
		observeHash: opts.ObserveHash,
		limiter:     newHashLimiter(slots, queue, wait, opts.Contended),
		store:       store,
		hasher:      h,
		scopes:      scopes,
		known:       known,
		now:         now,
		log:         log,
		afterRevoke: opts.AfterRevoke,
		dummyHash:   dummy,
		encKey:      opts.EncryptionKey,
		totpIssuer:  cmp.Or(opts.TOTPIssuer, "gatehouse"),
	}, nil
}

// KnownScopes returns the scopes users may hold, sorted.
func (s *Service) KnownScopes() []string {
	return slices.Clone(s.scopes)
}

// Authenticate checks a username and password for the resource owner
// password credentials grant (RFC 6749 §4.3.2): Verify on the user with
// that username.
func (s *Service) Authenticate(ctx context.Context, username, password string) (*User, error) {
	var u *User
	if name, err := NormalizeUsername(username); err == nil {
		u, err = s.store.UserByUsername(ctx, name)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("users: authenticate: %w", err)
		}
	}
	return s.Verify(ctx, u, password)
}

// Verify checks password against u, the account a login names, already
// read (nil when no account has that name). It returns
// ErrInvalidCredentials for a missing account and for a wrong password
// alike, taking the same time for both so neither the answer nor its
// timing reveals which usernames exist (OWASP Authentication Cheat
// Sheet), and ErrDisabled only after the right password. A hash in an
// outdated format is upgraded on success; if storing it fails the login
// still succeeds. The hashing takes a slot of its own; a login that
// took one with Admit uses Slot.Verify.
func (s *Service) Verify(ctx context.Context, u *User, password string) (*User, error) {
	return s.verifyUser(ctx, nil, u, password)
}

// verifyUser is Verify with its hashing in sl (nil: a slot per hash).
func (s *Service) verifyUser(ctx context.Context, sl *Slot, u *User, password string) (*User, error) {
	// Bound the hashing work one request can cause; no stored password is
	// that long, so this cannot reject a right one.
	if len(password) > MaxPasswordBytes {
		return nil, ErrInvalidCredentials
	}
	if u == nil {
		return nil, s.burn(ctx, sl, password)
	}
	ok, needsRehash, err := s.verify(ctx, sl, u.PasswordHash, password)
	if err != nil {
		return nil, fmt.Errorf("users: authenticate user %s: %w", u.ID, err)
	}
	if !ok {
		return nil, ErrInvalidCredentials
	}
	if u.Disabled {
		return nil, ErrDisabled
	}
	if needsRehash {
		if nu, err := s.rehash(ctx, sl, u, password); err != nil {
			s.log.WarnContext(ctx, "users: storing upgraded password hash failed", "user_id", u.ID, "error", err)
		} else {
			u = nu
		}
	}
	return u, nil
}

// burn spends the time of one password check on the dummy hash, under the
// same limiter, and returns what a wrong password would: ErrInvalidCredentials,
// or ErrBusy when a real check would have been refused too.
func (s *Service) burn(ctx context.Context, sl *Slot, password string) error {
	if _, _, err := s.verify(ctx, sl, s.dummyHash, password); err != nil {
		return err
	}
	return ErrInvalidCredentials
}

// errPasswordChanged aborts a rehash whose user changed password (or was
// replaced) between the check and the write.
var errPasswordChanged = errors.New("users: password changed concurrently")

// rehash stores a hash of password with the current parameters, unless
// u's password hash changed meanwhile. The new hash runs in sl, so a
// login's rehash does not queue behind other logins (nor, with one slot,
// behind its own).
func (s *Service) rehash(ctx context.Context, sl *Slot, u *User, password string) (*User, error) {
	hash, err := s.hash(ctx, sl, password)
	if err != nil {
		return nil, err
	}
	return s.store.UpdateUser(ctx, u.Username, func(cur *User) error {
		if cur.ID != u.ID || cur.PasswordHash != u.PasswordHash {
			return errPasswordChanged
		}
		cur.PasswordHash = hash
		cur.UpdatedAt = s.now().UTC()
		return nil
	})
}

// NewUser is the input of Create.
type NewUser struct {
	// Username is normalised with NormalizeUsername.
	Username string
	// Password must pass CheckPassword.
	Password string
	// Scopes must all be known; nil means none.
	Scopes []string
}

// Create adds a user with a random (UUID v4) ID on behalf of actor, who
// may grant only scopes it holds itself. The username is normalised;
// password and scopes are validated. Returns a *ValidationError naming the
// field ("username", "password" or "scopes"), a *ForbiddenError, or
// ErrUsernameTaken.
func (s *Service) Create(ctx context.Context, actor Actor, nu NewUser) (*User, error) {
	name, err := NormalizeUsername(nu.Username)
	if err != nil {
		return nil, err
	}
	if err := s.policy.check("password", name, nu.Password); err != nil {
		return nil, err
	}
	scopes, err := s.checkScopes(nu.Scopes)
	if err != nil {
		return nil, err
	}
	auth, err := s.authority(ctx, actor)
	if err != nil {
		return nil, err
	}
	if err := auth.mayGrant(scopes); err != nil {
		return nil, err
	}
	id, err := uuid.NewRandom()
	if err != nil {
		return nil, fmt.Errorf("users: create: %w", err)
	}
	hash, err := s.hash(ctx, nil, nu.Password)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	u := &User{
		ID:           id.String(),
		Username:     name,
		PasswordHash: hash,
		Scopes:       scopes,
		CreatedAt:    now,
		UpdatedAt:    now,
	}
	if err := s.store.CreateUser(ctx, u); err != nil {
		return nil, err
	}
	return u, nil
}

// checkScopes returns scopes sorted and deduplicated (never nil), or a
// *ValidationError for field "scopes" naming every unknown scope.
func (s *Service) checkScopes(scopes []string) ([]string, error) {
	var unknown []string
	for _, sc := range scopes {
		if !s.known[sc] {
			unknown = append(unknown, fmt.Sprintf("%q", sc))
		}
	}
	if len(unknown) > 0 {
		return nil, &ValidationError{Field: "scopes", Message: "unknown scope " + strings.Join(unknown, ", ")}
	}
	out := slices.Clone(scopes)
	if out == nil {
		out = []string{}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Get returns the user with that username. A username that cannot exist
// (it fails NormalizeUsername) is ErrNotFound, as is an unknown one.
func (s *Service) Get(ctx context.Context, username string) (*User, error) {
	name, err := NormalizeUsername(username)
	if err != nil {
		return nil, ErrNotFound
	}
	return s.store.UserByUsername(ctx, name)
}

// ByID returns the user with that ID (a token's subject), or ErrNotFound.
func (s *Service) ByID(ctx context.Context, id string) (*User, error) {
	return s.store.UserByID(ctx, id)
}

// List returns up to limit users ordered by username, after the given
// username ("" for the first page). limit must be 1 to MaxListLimit, else a
// *ValidationError for field "limit".
func (s *Service) List(ctx context.Context, after string, limit int) ([]*User, error) {
	if limit < 1 || limit > MaxListLimit {
		return nil, &ValidationError{Field: "limit", Message: fmt.Sprintf("must be between 1 and %d", MaxListLimit)}
	}
	return s.store.ListUsers(ctx, after, limit)
}

// Count returns the number of users.
func (s *Service) Count(ctx context.Context) (int, error) {
	return s.store.CountUsers(ctx)
}

// Patch lists the changes of Update; a nil field stays unchanged.
type Patch struct {
	// Disabled blocks (true) or allows (false) logging in.
	Disabled *bool
	// Scopes replaces the user's scopes; they must all be known.
	Scopes *[]string
	// Password replaces the password without knowing the old one (an
	// administrator's reset); users changing their own use ChangePassword.
	Password *string
}

// Update applies p to the user with that username atomically (a PATCH)
// on behalf of actor, who may change only users whose scopes are a subset
// of its own and grant only scopes it holds. Returns ErrNotFound, a
// *ValidationError for field "scopes" or "password", a *ForbiddenError or
// ErrLastAdmin before anything is written. An empty patch returns the user
// unchanged.
//
// A patch that sets a password, disables an enabled user or takes away
// any scope the user had raises the user's TokenEpoch, which revokes every
// token of the user in the same transaction (RFC 9700 §4.14.2: refresh
// tokens are revoked when the password changes or access is withdrawn),
// and fails every grant still in flight for the old state. Adding scopes
// or enabling a user revokes nothing.
func (s *Service) Update(ctx context.Context, actor Actor, username string, p Patch) (*User, error) {
	name, err := NormalizeUsername(username)
	if err != nil {
		return nil, ErrNotFound
	}
	auth, err := s.authority(ctx, actor)
	if err != nil {
		return nil, err
	}
	var scopes []string
	if p.Scopes != nil {
		if scopes, err = s.checkScopes(*p.Scopes); err != nil {
			return nil, err
		}
	}
	var hash string
	if p.Password != nil {
		if err := s.policy.check("password", name, *p.Password); err != nil {
			return nil, err
		}
		// Hash before the store's transaction: argon2 takes tens of
		// milliseconds that the write lock should not be held for.
		if hash, err = s.hash(ctx, nil, *p.Password); err != nil {
			return nil, err
		}
	}
	if p.Scopes != nil {
		if err := auth.mayGrant(scopes); err != nil {
			return nil, err
		}
	}
	if p.Disabled == nil && p.Scopes == nil && p.Password == nil {
		u, err := s.store.UserByUsername(ctx, name)
		if err != nil {
			return nil, err
		}
		if err := auth.mayChange(u); err != nil {
			return nil, err
		}
		return u, nil
	}
	var revoke bool
	u, err := s.store.UpdateUser(ctx, name, func(u *User) error {
		// Decided against the stored user, inside the store's transaction.
		if err := auth.mayChange(u); err != nil {
			return err
		}
		revoke = p.Password != nil ||
			p.Disabled != nil && *p.Disabled && !u.Disabled ||
			p.Scopes != nil && slices.ContainsFunc(u.Scopes, func(sc string) bool { return !slices.Contains(scopes, sc) })
		if p.Disabled != nil {
			u.Disabled = *p.Disabled
		}
		if p.Scopes != nil {
			u.Scopes = scopes
		}
		if p.Password != nil {
			u.PasswordHash = hash
		}
		if revoke {
			u.TokenEpoch++
		}
		u.UpdatedAt = s.now().UTC()
		return nil
	}, s.keep(auth)...)
	if errors.Is(err, storage.ErrLastHolder) {
		return nil, ErrLastAdmin
	}
	if err != nil {
		return nil, err
	}
	if revoke {
		s.revoked(ctx)
	}
	return u, nil
}

// keep is what a change by auth must leave with an enabled holder: the
// API cannot take ManageScope from its last enabled holder, the CLI can.
func (s *Service) keep(auth authority) []string {
	if auth.cli || !s.known[ManageScope] {
		return nil
	}
	return []string{ManageScope}
}

// revoked calls the AfterRevoke hook, if any.
func (s *Service) revoked(ctx context.Context) {
	if s.afterRevoke != nil {
		s.afterRevoke(ctx)
	}
}

// ChangePassword sets a new password for the user with that ID (normally
// the subject of the caller's access token), who must prove the current
// one, then revokes every token of the user, the caller's own included
// (RFC 9700 §4.14.2). Returns a *ValidationError for field "new_password",
// ErrInvalidCredentials when current is wrong (or the password changed
// meanwhile), ErrDisabled for a disabled account, or ErrNotFound.
func (s *Service) ChangePassword(ctx context.Context, id, current, next string) error {
	if len(next) > MaxPasswordBytes {
		return s.policy.check("new_password", "", next)
	}
	u, err := s.store.UserByID(ctx, id)
	if err != nil {
		return err
	}
	if err := s.policy.check("new_password", u.Username, next); err != nil {
		return err
	}
	if len(current) > MaxPasswordBytes {
		return ErrInvalidCredentials
	}
	hash, err := s.checkAndHash(ctx, u, current, next)
	if err != nil {
		return err
	}
	_, err = s.store.UpdateUser(ctx, u.Username, func(cur *User) error {
		if cur.ID != u.ID {
			return ErrNotFound // deleted and the username reused meanwhile
		}
		if cur.PasswordHash != u.PasswordHash {
			return ErrInvalidCredentials // current is no longer current
		}
		cur.PasswordHash = hash
		cur.TokenEpoch++
		cur.UpdatedAt = s.now().UTC()
		return nil
	})
	if err != nil {
		return err
	}
	s.revoked(ctx)
	return nil
}

// checkAndHash verifies current against u and hashes next, both in one
// slot, so the change queues once and rests once. It returns ErrBusy,
// ErrInvalidCredentials or ErrDisabled as ChangePassword does.
func (s *Service) checkAndHash(ctx context.Context, u *User, current, next string) (string, error) {
	sl, err := s.Admit(ctx)
	if err != nil {
		return "", fmt.Errorf("users: change password of user %s: %w", u.ID, err)
	}
	defer sl.Release()
	ok, _, err := s.verify(ctx, sl, u.PasswordHash, current)
	if err != nil {
		return "", fmt.Errorf("users: change password of user %s: %w", u.ID, err)
	}
	if !ok {
		return "", ErrInvalidCredentials
	}
	if u.Disabled {
		return "", ErrDisabled
	}
	return s.hash(ctx, sl, next)
}

// Delete removes the user with that username on behalf of actor, who may
// delete only users whose scopes are a subset of its own, and revokes
// every token of the user in the same transaction. Returns ErrNotFound, a
// *ForbiddenError or ErrLastAdmin. The token records themselves stay until
// they expire, so the revoked access tokens stay on the deny-list.
func (s *Service) Delete(ctx context.Context, actor Actor, username string) error {
	name, err := NormalizeUsername(username)
	if err != nil {
		return ErrNotFound
	}
	auth, err := s.authority(ctx, actor)
	if err != nil {
		return err
	}
	// Decided against the stored user, inside the store's transaction.
	err = s.store.DeleteUser(ctx, name, s.now().UTC(), auth.mayChange, s.keep(auth)...)
	if errors.Is(err, storage.ErrLastHolder) {
		return ErrLastAdmin
	}
	if err != nil {
		return err
	}
	s.revoked(ctx)
	return nil
}
