package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"

	"github.com/gatehouse/gatehouse/internal/users"
)

// bootstrapAdmin creates the first admin, holding every scope, when the
// store has no user. A generated password is shown once, on stderr, and
// never logged.
func bootstrapAdmin(ctx context.Context, a *server, stderr io.Writer, logger *slog.Logger) error {
	n, err := a.Store.CountUsers(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	password, generated := a.cfg.AdminPassword, false
	if password == "" {
		b := make([]byte, 18)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		password, generated = base64.RawURLEncoding.EncodeToString(b), true
	}
	// The dummy hash's argon2id work area (Hasher.Memory, 19 MiB by
	// default) is garbage by now: collect it, so that the admin's hash
	// reuses its pages instead of growing the heap to twice that. After
	// the larger peak, the forced scavenge at the end of start-up left up
	// to 3.7 MiB of it resident in about one start in five (BENCHMARKS.md,
	// seventh session); after this, in none of 20.
	runtime.GC()
	u, err := a.Users.Create(ctx, users.CLIActor(), users.NewUser{Username: a.cfg.AdminUsername, Password: password, Scopes: a.Users.KnownScopes()})
	if errors.Is(err, users.ErrUsernameTaken) {
		return nil // another replica bootstrapped first
	}
	if err != nil {
		return fmt.Errorf("create bootstrap admin: %w", err)
	}
	logger.Info("bootstrap admin created", "username", u.Username, "scopes", strings.Join(u.Scopes, " "))
	if generated {
		fmt.Fprintf(stderr, "\n  gatehouse created the admin user %q with the password:\n\n      %s\n\n  It is shown only this once. Change it with POST /users/me/password.\n\n", u.Username, password)
	}
	return nil
}
