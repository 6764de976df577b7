package users

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ManageScope is the scope that lets a caller manage accounts. The last
// enabled user holding it cannot lose it through the API (ErrLastAdmin),
// so the deployment cannot lock itself out; the CLI can always recover.
const ManageScope = "users:write"

// ErrLastAdmin: the change would leave no enabled user holding
// ManageScope.
var ErrLastAdmin = errors.New("users: the last enabled user holding " + ManageScope + " cannot lose it")

// ForbiddenError reports an account change the actor may not make. Its
// message is safe to show to the caller.
type ForbiddenError struct{ Message string }

func (e *ForbiddenError) Error() string { return "users: forbidden: " + e.Message }

// Actor is who asks for an account change.
//
// The privilege model: an API caller's authority is the scopes its access
// token carries that its account still holds. It may grant only scopes in
// its authority, and may change (password, scopes, disabled) or delete
// only users whose scopes are all in its authority, itself included; so it
// can never widen its own scopes nor act on a user who holds more than it
// does. The CLI runs with the store's credentials, so it is unrestricted;
// its changes are audited as made by the CLI.
type Actor struct {
	// UserID is the caller's account (the access token's subject).
	UserID string
	// Scopes are the scopes of the caller's access token.
	Scopes []string
	// CLI marks the operator's command line; UserID and Scopes are unused.
	CLI bool
}

// CLIActor is the operator running the gatehouse command line.
func CLIActor() Actor { return Actor{CLI: true} }

// TokenActor is an API caller authenticated by an access token of subject
// sub with the space-separated scope claim scope.
func TokenActor(sub, scope string) Actor {
	return Actor{UserID: sub, Scopes: strings.Fields(scope)}
}

// authority is what an actor may do, resolved against the store.
type authority struct {
	cli    bool
	scopes []string
}

// authority resolves actor: the CLI is unrestricted; a token's caller
// must still exist and be enabled, and holds what both its token and its
// account hold now (a scope removed since the token was issued is gone).
func (s *Service) authority(ctx context.Context, actor Actor) (authority, error) {
	if actor.CLI {
		return authority{cli: true}, nil
	}
	if actor.UserID == "" {
		return authority{}, &ForbiddenError{Message: "no authenticated caller"}
	}
	u, err := s.store.UserByID(ctx, actor.UserID)
	if errors.Is(err, ErrNotFound) {
		return authority{}, &ForbiddenError{Message: "the caller's account no longer exists"}
	}
	if err != nil {
		return authority{}, err
	}
	if u.Disabled {
		return authority{}, &ForbiddenError{Message: "the caller's account is disabled"}
	}
	var held []string
	for _, sc := range actor.Scopes {
		if u.HasScope(sc) && !slices.Contains(held, sc) {
			held = append(held, sc)
		}
	}
	return authority{scopes: held}, nil
}

// mayGrant allows scopes that are all in the authority.
func (a authority) mayGrant(scopes []string) error {
	if a.cli {
		return nil
	}
	if missing := a.missing(scopes); len(missing) > 0 {
		return &ForbiddenError{Message: "a caller may grant only scopes it holds; not held: " + strings.Join(missing, " ")}
	}
	return nil
}

// mayChange allows changing u when every scope u holds is in the
// authority.
func (a authority) mayChange(u *User) error {
	if a.cli {
		return nil
	}
	if missing := a.missing(u.Scopes); len(missing) > 0 {
		return &ForbiddenError{Message: fmt.Sprintf("user %s holds scopes the caller does not: %s", u.Username, strings.Join(missing, " "))}
	}
	return nil
}

func (a authority) missing(scopes []string) []string {
	var out []string
	for _, sc := range scopes {
		if !slices.Contains(a.scopes, sc) {
			out = append(out, sc)
		}
	}
	return out
}

// Manageable returns the user with that username when actor may manage it
// (its scopes are all in the actor's authority), for operations on a
// user's state other than its record, such as ending its sessions.
// Returns ErrNotFound or a *ForbiddenError.
func (s *Service) Manageable(ctx context.Context, actor Actor, username string) (*User, error) {
	name, err := NormalizeUsername(username)
	if err != nil {
		return nil, ErrNotFound
	}
	auth, err := s.authority(ctx, actor)
	if err != nil {
		return nil, err
	}
	u, err := s.store.UserByUsername(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := auth.mayChange(u); err != nil {
		return nil, err
	}
	return u, nil
}
