package auth

import (
	"context"
	"log/slog"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/storage"
)

// ListSessions returns the user's live sessions, most recently used first:
// what a person needs to recognise each login.
func (i *Issuer) ListSessions(ctx context.Context, userID string) ([]*storage.Session, error) {
	return i.Sessions.ListSessions(ctx, userID, i.now())
}

// RevokeSessions ends the user's live sessions: the one named id, or every
// one when id is "", except the one named except. Their access tokens are
// refused by this process when it returns and by every other within the
// change feed's bound. It reports how many it ended; ending a session of
// another user, or an unknown one, ends nothing.
func (i *Issuer) RevokeSessions(ctx context.Context, userID, id, except string) (int, error) {
	n, err := i.Sessions.RevokeSessions(ctx, userID, id, except, i.now())
	if err != nil {
		return 0, err
	}
	if n > 0 {
		i.Audit.Record(ctx, audit.SessionEnded, audit.Revoked, slog.String("sub", userID), slog.String("sid", id), slog.String("except", except), slog.Int("count", n))
	}
	if i.Revocations != nil {
		if err := i.Revocations.Sync(ctx); err != nil {
			return n, err
		}
	}
	return n, nil
}
