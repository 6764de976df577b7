// Package audit records security-relevant events (logins, token rotations
// and revocations, account and key changes) as log records of their own,
// distinct from the access log, and hands each to a counter. Events never
// carry passwords, tokens or hashes.
package audit

import (
	"context"
	"log/slog"
)

// Event names.
const (
	Login         = "login"                 // outcomes: succeeded, failed, throttled, busy, unavailable, disabled, stale
	Refresh       = "refresh"               // outcomes: rotated, grace_replay, reuse_detected, failed, stale
	TokenRevoked  = "token.revoked"         // outcome: ok
	SessionEnded  = "session.revoked"       // outcome: revoked
	UserCreated   = "user.created"          // outcome: ok
	UserChanged   = "user.changed"          // outcome: ok
	UserDisabled  = "user.disabled"         // outcome: ok
	UserDeleted   = "user.deleted"          // outcome: ok
	KeyRotated    = "key.rotated"           // outcome: ok
	ClientCreated = "client.created"        // outcome: ok
	ClientDeleted = "client.deleted"        // outcome: ok
	ClientChanged = "client.changed"        // outcome: ok
	SecretAdded   = "client.secret_added"   // outcome: ok
	SecretRemoved = "client.secret_removed" // outcome: ok
	ClientToken   = "client.token"          // outcomes: succeeded, failed
)

// Outcomes shared by several events.
const (
	OK        = "ok"
	Succeeded = "succeeded"
	Failed    = "failed"
	Throttled = "throttled"
	Busy      = "busy"
	// Unavailable: the store could not do the work (a fault); the
	// request may succeed when it is back.
	Unavailable   = "unavailable"
	Disabled      = "disabled"
	Rotated       = "rotated"
	ReuseDetected = "reuse_detected"
	// Stale: the account changed while the grant was issued (a new
	// password, disabled, deleted, a scope removed); no token was stored.
	Stale = "stale"
	// MFARequired: a right password of a user with a second factor, sent
	// without a code; the answer carried an mfa_token.
	MFARequired = "mfa_required"
	// GraceReplay: the parent of the current refresh token came again
	// within the reuse window and got the same child.
	GraceReplay = "grace_replay"
	// Revoked: sessions ended on request (session.revoked).
	Revoked = "revoked"
)

// Event is one recorded event.
type Event struct {
	Name    string
	Outcome string
}

// Recorder writes events. The zero value and a nil *Recorder discard them.
type Recorder struct {
	log   *slog.Logger
	count func(Event)
}

// New returns a recorder logging to log and passing each event to count
// (either may be nil).
func New(log *slog.Logger, count func(Event)) *Recorder {
	return &Recorder{log: log, count: count}
}

// Record writes the event name with its outcome and attributes as an
// "audit" log record at info level.
func (r *Recorder) Record(ctx context.Context, name, outcome string, attrs ...slog.Attr) {
	if r == nil {
		return
	}
	if r.count != nil {
		r.count(Event{Name: name, Outcome: outcome})
	}
	if r.log != nil {
		all := append([]slog.Attr{slog.String("event", name), slog.String("outcome", outcome)}, attrs...)
		r.log.LogAttrs(ctx, slog.LevelInfo, "audit", all...)
	}
}
