package auth

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/storage"
	"github.com/gatehouse/gatehouse/internal/users"
)

// passwordGrant handles RFC 6749 §4.3.2. A login costs two store calls:
// the throttle's reservation, which also reads the account, and then the
// new session together with the throttle's settlement, stored only while
// the account is as the password check saw it (storage.ErrGrantStale).
// It takes its hashing slot before either, so a login shed for load costs
// none.
func (i *Issuer) passwordGrant(ctx context.Context, c client, req TokenRequest) (*TokenResponse, error) {
	if req.Username == "" {
		return nil, InvalidRequest("username is required")
	}
	if req.Password == "" {
		return nil, InvalidRequest("password is required")
	}
	requested, err := i.parseScope(req.Scope)
	if err != nil {
		return nil, err
	}
	// A failed login's username may be junk or a mistyped password: the
	// log gets its canonical form when valid, a bounded keyed hash if not.
	who := []slog.Attr{slog.String("username", LogUsername(req.Username)), slog.String("client_id", c.id), slog.String("client_ip", req.ClientAddr)}
	u, err := i.checkPassword(ctx, req, who)
	if err != nil {
		if e, ok := errors.AsType[*Error](err); ok && e.Code == CodeInvalidGrant && req.OTP != "" && e.Description == errWrongPassword {
			// With a code sent, a wrong password and a wrong code read
			// the same: neither says which factor failed.
			return nil, oauthError(CodeInvalidGrant, errWrongCredentials)
		}
		return nil, err
	}
	if u.TOTP.Enforced() {
		// Nothing is settled before the second factor passes: the
		// password's reserved failure stays counted, so a right password
		// alone never clears the throttle for guessing codes.
		if req.OTP == "" {
			granted, err := grant(requested, u.Scopes, c)
			if err != nil {
				return nil, err
			}
			return nil, i.requireFactor(ctx, u, c, granted, who)
		}
		if u, err = i.checkCode(ctx, u, req.OTP, errWrongCredentials, who); err != nil {
			return nil, err
		}
	}
	granted, err := grant(requested, u.Scopes, c)
	if err != nil {
		i.settle(ctx, req, true)
		return nil, err
	}
	return i.startSession(ctx, u, c, granted, u.TokenEpoch, req, who)
}

// Descriptions of a refused login.
const (
	errWrongPassword = "invalid username or password"
	// errWrongCredentials answers a login that sent a code, whichever
	// factor was wrong.
	errWrongCredentials = "invalid username, password or code"
)

// startSession stores the session of a login of u (its password, and its
// code when it has a factor, checked) with the throttle's settlement, and
// issues its first tokens. epoch is u's token epoch when its password was
// checked: an account changed since refuses the login (ErrGrantStale).
func (i *Issuer) startSession(ctx context.Context, u *storage.User, c client, granted []string, epoch int64, req TokenRequest, who []slog.Attr) (*TokenResponse, error) {
	now := i.now()
	secret := newRefreshSecret()
	s := &storage.Session{
		ID:            newSessionID(),
		UserID:        u.ID,
		ClientID:      c.id,
		Scopes:        slices.Clone(granted),
		CreatedAt:     now,
		LastUsedAt:    now,
		IdleExpiresAt: earliest(now.Add(i.cfg.RefreshTTL), now.Add(i.cfg.RefreshFamilyTTL)),
		ExpiresAt:     now.Add(i.cfg.RefreshFamilyTTL),
		SecretHash:    secretHash(secret),
		RotatedAt:     now,
		ClientAddr:    req.ClientAddr,
		UserAgent:     truncateUserAgent(req.UserAgent),
	}
	var settle *storage.AttemptUpdate
	if i.Throttle != nil {
		up := i.Throttle.Success(u.Username, req.ClientAddr)
		settle = &up
	}
	if i.testHookBeforeStore != nil {
		i.testHookBeforeStore(ctx)
	}
	if err := i.Sessions.CreateSession(ctx, s, epoch, settle); err != nil {
		if errors.Is(err, storage.ErrGrantStale) {
			i.Audit.Record(ctx, audit.Login, audit.Stale, append(who, slog.String("sub", u.ID))...)
			return nil, errGrantStale()
		}
		return nil, ServerError(err)
	}
	resp, err := i.issue(u, c, granted, s.ID, now)
	if err != nil {
		return nil, err
	}
	resp.RefreshToken = formatRefreshToken(s.ID, 0, secret)
	i.Audit.Record(ctx, audit.Login, audit.Succeeded, append(who, slog.String("sub", u.ID), slog.String("sid", s.ID), slog.String("scope", resp.Scope))...)
	return resp, nil
}

// admitter is a UserSource that hands out hashing slots ahead of the
// password check (users.Service).
type admitter interface {
	Admit(ctx context.Context) (*users.Slot, error)
}

// checkPassword takes a hashing slot, reserves the attempt with the
// throttle (which reads the account) and checks the password in that
// slot, in that order: a login refused for load (queue full, or no slot
// within the wait) is answered 503 having made no store call, so a flood
// is shed without the store writes of a reservation and its
// cancellation. A pair the throttle remembers as blocked is refused
// before it queues. The slot is released once the password is checked,
// before any settlement or session write; a refused reservation hashed
// nothing, so its slot never rests. Every refusal is an *Error.
func (i *Issuer) checkPassword(ctx context.Context, req TokenRequest, who []slog.Attr) (*storage.User, error) {
	if i.Throttle != nil {
		if err := i.Throttle.Blocked(req.Username, req.ClientAddr); err != nil {
			i.Audit.Record(ctx, audit.Login, audit.Throttled, who...)
			return nil, err
		}
	}
	verify, release := i.Users.Verify, func() {}
	if a, ok := i.Users.(admitter); ok {
		slot, err := a.Admit(ctx)
		if errors.Is(err, users.ErrBusy) {
			i.Audit.Record(ctx, audit.Login, audit.Busy, who...)
			return nil, Overloaded(err)
		}
		if err != nil {
			return nil, ServerError(err) // the request's context ended
		}
		verify, release = slot.Verify, slot.Release
		defer release() // a second call does nothing
	}
	var account *storage.User
	var err error
	if i.Throttle != nil {
		if account, err = i.Throttle.Reserve(ctx, req.Username, req.ClientAddr); err != nil {
			// A limit reached is throttling; a store that could not take
			// the reservation is not, and must not look like guessing.
			outcome := audit.Unavailable
			if e, ok := errors.AsType[*Error](err); ok && e.Status == http.StatusTooManyRequests {
				outcome = audit.Throttled
			}
			i.Audit.Record(ctx, audit.Login, outcome, who...)
			return nil, err
		}
	} else if name, nerr := users.NormalizeUsername(req.Username); nerr == nil {
		account, err = i.Users.Get(ctx, name)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, ServerError(err)
		}
	}
	u, err := verify(ctx, account, req.Password)
	// The settlement and the session write need no slot.
	release()
	switch {
	case errors.Is(err, users.ErrInvalidCredentials):
		// The reserved failure stays counted.
		i.Audit.Record(ctx, audit.Login, audit.Failed, who...)
		return nil, oauthError(CodeInvalidGrant, errWrongPassword)
	case errors.Is(err, users.ErrDisabled):
		i.settle(ctx, req, true)
		i.Audit.Record(ctx, audit.Login, audit.Disabled, who...)
		return nil, oauthError(CodeInvalidGrant, "the account is disabled")
	case errors.Is(err, users.ErrBusy):
		// Only from a UserSource without slots of its own to give: the
		// password was never compared, so the reservation is taken back.
		i.settle(ctx, req, false)
		i.Audit.Record(ctx, audit.Login, audit.Busy, who...)
		return nil, Overloaded(err)
	case err != nil:
		i.settle(ctx, req, false)
		return nil, ServerError(err)
	}
	return u, nil
}

// settle books the outcome of a reserved password check that is not a
// wrong password: right (even of a disabled account) clears the pair, a
// check that never compared the password is taken back. A failure to
// store it leaves the attempt counted, which the next Reserve sees.
func (i *Issuer) settle(ctx context.Context, req TokenRequest, right bool) {
	if i.Throttle == nil {
		return
	}
	var err error
	if right {
		err = i.Throttle.Succeeded(ctx, req.Username, req.ClientAddr)
	} else {
		err = i.Throttle.Cancel(ctx, req.Username, req.ClientAddr)
	}
	if err != nil && i.Log != nil {
		i.Log.WarnContext(ctx, "recording a login attempt failed", "err", err)
	}
}

// errGrantStale answers a grant whose account changed while it was being
// issued: the change (a new password, disabling, a scope taken away)
// ended every session, and the grant stored nothing.
func errGrantStale() *Error {
	return oauthError(CodeInvalidGrant, "the account changed while the token was issued; authenticate again")
}

// maxUserAgent bounds what a session keeps of the User-Agent header.
const maxUserAgent = 256

// truncateUserAgent keeps the start of ua, cut at a character boundary,
// without control characters (it is shown in session lists).
func truncateUserAgent(ua string) string {
	out := make([]rune, 0, min(len(ua), maxUserAgent))
	n := 0
	for _, r := range ua {
		if r < 0x20 || r == 0x7f {
			continue
		}
		n += len(string(r))
		if n > maxUserAgent {
			break
		}
		out = append(out, r)
	}
	return string(out)
}
