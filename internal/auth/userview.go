package auth

import (
	"context"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// UserReader is what the user view reads on a miss.
type UserReader interface {
	UserByID(ctx context.Context, id string) (*storage.User, error)
}

// DefaultUserViewSize bounds the users the bearer path remembers.
const DefaultUserViewSize = 100_000

// UserView is the bearer path's bounded, in-memory copy of what it needs
// of each user (exists, disabled, scopes, username, created_at, whether it
// has a second factor), so that a
// bearer-authenticated request reads no store in steady state. The change
// feed (Revocations) invalidates an entry whenever the store records a
// change of that user; a miss reads the store once.
type UserView struct{ view[storage.User] }

// NewUserView returns an empty view over store holding at most size
// users (DefaultUserViewSize when size <= 0).
func NewUserView(store UserReader, size int) *UserView {
	if size <= 0 {
		size = DefaultUserViewSize
	}
	return &UserView{newView(func(ctx context.Context, id string) (*storage.User, error) {
		u, err := store.UserByID(ctx, id)
		if u != nil {
			// The bearer path never checks a code: the view keeps no
			// recovery code hashes (a kilobyte per user with a factor).
			u.TOTP.RecoveryCodes = nil
		}
		return u, err
	}, size)}
}

// ClientReader is what the client view reads on a miss.
type ClientReader interface {
	ClientByID(ctx context.Context, id string) (*storage.Client, error)
}

// DefaultClientViewSize bounds the clients the bearer path remembers.
const DefaultClientViewSize = 10_000

// ClientView is the bearer path's in-memory copy of registered clients,
// for tokens of the client-credentials grant: a client deleted, stripped
// of the grant or of a scope, or whose secret was removed, stops its
// tokens as soon as the change feed reports it (ChangeClient).
type ClientView struct{ view[storage.Client] }

// NewClientView returns an empty view over store holding at most size
// clients (DefaultClientViewSize when size <= 0).
func NewClientView(store ClientReader, size int) *ClientView {
	if size <= 0 {
		size = DefaultClientViewSize
	}
	return &ClientView{newView(store.ClientByID, size)}
}
