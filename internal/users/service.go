package users

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
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
}

// Service is the user business layer: password checks for the token
// endpoint and account management for the HTTP API. It is safe for
// concurrent use.
type Service struct {
	store  Store
	hasher Hasher
	scopes []string // sorted, deduplicated
	known  map[string]bool
	now    func() time.Time
	log    *slog.Logger
	// dummyHash is verified against for unknown usernames so they cost the
	// same time as a wrong password (no username enumeration by timing).
	dummyHash string
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
	return &Service{store: store, hasher: h, scopes: scopes, known: known, now: now, log: log, dummyHash: dummy}, nil
}

// KnownScopes returns the scopes users may hold, sorted.
func (s *Service) KnownScopes() []string {
	return slices.Clone(s.scopes)
}

// Authenticate checks a username and password for the resource owner
// password credentials grant (RFC 6749 §4.3.2). It returns
// ErrInvalidCredentials for an unknown username and for a wrong password
// alike, taking the same time for both so neither the answer nor its
// timing reveals which usernames exist (OWASP Authentication Cheat Sheet),
// and ErrDisabled only after the right password. A hash in an outdated format is upgraded on success; if
// storing it fails the login still succeeds.
func (s *Service) Authenticate(ctx context.Context, username, password string) (*User, error) {
	// Bound the hashing work one request can cause; no stored password is
	// that long, so this cannot reject a right one.
	if len(password) > MaxPasswordBytes {
		return nil, ErrInvalidCredentials
	}
	name, err := NormalizeUsername(username)
	if err != nil {
		s.burn(password)
		return nil, ErrInvalidCredentials
	}
	u, err := s.store.UserByUsername(ctx, name)
	if errors.Is(err, ErrNotFound) {
		s.burn(password)
		return nil, ErrInvalidCredentials
	}
	if err != nil {
		return nil, fmt.Errorf("users: authenticate: %w", err)
	}
	ok, needsRehash, err := s.hasher.Verify(u.PasswordHash, password)
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
		if nu, err := s.rehash(ctx, u, password); err != nil {
			s.log.WarnContext(ctx, "users: storing upgraded password hash failed", "user_id", u.ID, "error", err)
		} else {
			u = nu
		}
	}
	return u, nil
}

// burn spends the time of one password check on the dummy hash.
func (s *Service) burn(password string) {
	_, _, _ = s.hasher.Verify(s.dummyHash, password)
}

// errPasswordChanged aborts a rehash whose user changed password (or was
// replaced) between the check and the write.
var errPasswordChanged = errors.New("users: password changed concurrently")

// rehash stores a hash of password with the current parameters, unless
// u's password hash changed meanwhile.
func (s *Service) rehash(ctx context.Context, u *User, password string) (*User, error) {
	hash, err := s.hasher.Hash(password)
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

// Create adds a user with a random (UUID v4) ID. The username is
// normalised; password and scopes are validated. Returns a
// *ValidationError naming the field ("username", "password" or "scopes"),
// or ErrUsernameTaken.
func (s *Service) Create(ctx context.Context, nu NewUser) (*User, error) {
	name, err := NormalizeUsername(nu.Username)
	if err != nil {
		return nil, err
	}
	if err := CheckPassword("password", nu.Password); err != nil {
		return nil, err
	}
	scopes, err := s.checkScopes(nu.Scopes)
	if err != nil {
		return nil, err
	}
	id, err := uuid.NewRandom()
	if err != nil {
		return nil, fmt.Errorf("users: create: %w", err)
	}
	hash, err := s.hasher.Hash(nu.Password)
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

// Update applies p to the user with that username atomically (a PATCH).
// Returns ErrNotFound, or a *ValidationError for field "scopes" or
// "password" before anything is written. An empty patch returns the user
// unchanged.
func (s *Service) Update(ctx context.Context, username string, p Patch) (*User, error) {
	name, err := NormalizeUsername(username)
	if err != nil {
		return nil, ErrNotFound
	}
	var scopes []string
	if p.Scopes != nil {
		if scopes, err = s.checkScopes(*p.Scopes); err != nil {
			return nil, err
		}
	}
	var hash string
	if p.Password != nil {
		if err := CheckPassword("password", *p.Password); err != nil {
			return nil, err
		}
		// Hash before the store's transaction: argon2 takes tens of
		// milliseconds that the write lock should not be held for.
		if hash, err = s.hasher.Hash(*p.Password); err != nil {
			return nil, err
		}
	}
	if p.Disabled == nil && p.Scopes == nil && p.Password == nil {
		return s.store.UserByUsername(ctx, name)
	}
	return s.store.UpdateUser(ctx, name, func(u *User) error {
		if p.Disabled != nil {
			u.Disabled = *p.Disabled
		}
		if p.Scopes != nil {
			u.Scopes = scopes
		}
		if p.Password != nil {
			u.PasswordHash = hash
		}
		u.UpdatedAt = s.now().UTC()
		return nil
	})
}

// ChangePassword sets a new password for the user with that ID (normally
// the subject of the caller's access token), who must prove the current
// one. Returns a *ValidationError for field "new_password",
// ErrInvalidCredentials when current is wrong (or the password changed
// meanwhile), ErrDisabled for a disabled account, or ErrNotFound.
func (s *Service) ChangePassword(ctx context.Context, id, current, next string) error {
	if err := CheckPassword("new_password", next); err != nil {
		return err
	}
	u, err := s.store.UserByID(ctx, id)
	if err != nil {
		return err
	}
	if len(current) > MaxPasswordBytes {
		return ErrInvalidCredentials
	}
	ok, _, err := s.hasher.Verify(u.PasswordHash, current)
	if err != nil {
		return fmt.Errorf("users: change password of user %s: %w", u.ID, err)
	}
	if !ok {
		return ErrInvalidCredentials
	}
	if u.Disabled {
		return ErrDisabled
	}
	hash, err := s.hasher.Hash(next)
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
		cur.UpdatedAt = s.now().UTC()
		return nil
	})
	return err
}

// Delete removes the user with that username, or returns ErrNotFound.
func (s *Service) Delete(ctx context.Context, username string) error {
	name, err := NormalizeUsername(username)
	if err != nil {
		return ErrNotFound
	}
	return s.store.DeleteUser(ctx, name)
}
