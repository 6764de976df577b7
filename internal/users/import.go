package users

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// ImportedUser is an account brought from another system with its password
// hash, as it was stored there.
type ImportedUser struct {
	Username     string
	PasswordHash string
	Scopes       []string
	Disabled     bool
}

// ImportError refuses one user of an import: Index is its position in the
// batch, Field the field at fault ("username", "password_hash" or
// "scopes").
type ImportError struct {
	Index   int
	Field   string
	Message string
	// Earlier, for a username that repeats, is the index of the user that
	// has it first; -1 otherwise.
	Earlier int
}

func (e *ImportError) Error() string {
	return fmt.Sprintf("user %d: %s %s", e.Index+1, e.Field, e.Message)
}

// Import adds every user of batch in one transaction: all of them or, when
// any is refused, none. Each keeps its password hash (bcrypt $2a$, $2b$,
// $2y$, or an argon2id PHC string), which the user's next login verifies
// and replaces with one at this server's argon2id parameters. Usernames
// are normalised, scopes must be known and within the actor's own
// (users.CLIActor is unrestricted), and a username may appear once.
// Returns an *ImportError for the first refused user (or a store error);
// nothing is written then.
func (s *Service) Import(ctx context.Context, actor Actor, batch []ImportedUser) ([]*User, error) {
	auth, err := s.authority(ctx, actor)
	if err != nil {
		return nil, err
	}
	seen := make(map[string]int, len(batch))
	now := s.now().UTC()
	out := make([]*User, len(batch))
	for i, in := range batch {
		refuse := func(field, msg string) ([]*User, error) {
			return nil, &ImportError{Index: i, Field: field, Message: msg, Earlier: -1}
		}
		name, err := NormalizeUsername(in.Username)
		if err != nil {
			var ve *ValidationError
			if errors.As(err, &ve) {
				return refuse("username", ve.Message)
			}
			return refuse("username", "is invalid")
		}
		if first, dup := seen[name]; dup {
			return nil, &ImportError{Index: i, Field: "username", Message: fmt.Sprintf("%q repeats user %d", name, first+1), Earlier: first}
		}
		seen[name] = i
		if err := CheckHash(in.PasswordHash); err != nil {
			return refuse("password_hash", strings.TrimPrefix(err.Error(), errMalformedHash.Error()+": "))
		}
		scopes, err := s.checkScopes(in.Scopes)
		if ve, ok := errors.AsType[*ValidationError](err); ok {
			return refuse("scopes", ve.Message)
		} else if err != nil {
			return nil, err
		}
		if err := auth.mayGrant(scopes); err != nil {
			return nil, err
		}
		id, err := uuid.NewRandom()
		if err != nil {
			return nil, fmt.Errorf("users: import: %w", err)
		}
		out[i] = &User{ID: id.String(), Username: name, PasswordHash: in.PasswordHash, Scopes: scopes, Disabled: in.Disabled, CreatedAt: now, UpdatedAt: now}
	}
	if err := s.store.CreateUsers(ctx, out); err != nil {
		var item *storage.ItemError
		if errors.As(err, &item) && errors.Is(err, storage.ErrUsernameTaken) {
			return nil, &ImportError{Index: item.Index, Field: "username", Message: fmt.Sprintf("%q is taken", out[item.Index].Username), Earlier: -1}
		}
		return nil, err
	}
	return out, nil
}
