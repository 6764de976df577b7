package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/storage"
	"github.com/gatehouse/gatehouse/internal/users"
)

// GrantMFAOTP is the grant type of a two-step login's second step: the
// mfa_token of the first step's mfa_required answer, exchanged with the
// code (`otp`). gatehouse follows Auth0's shape, the one client libraries
// already speak (Auth0, "Multi-factor authentication and the Resource
// Owner Password Flow": error mfa_required with mfa_token, then this grant
// type with mfa_token and otp); the IETF's OAuth 2.0 for First-Party
// Applications draft is the other reference.
const GrantMFAOTP = "http://auth0.com/oauth/grant-type/mfa-otp"

// MFATokenTTL is how long a first step's mfa_token may be exchanged.
const MFATokenTTL = 5 * time.Minute

// mfaTokenPrefix types the token: no other artefact (a refresh token, an
// access token, a session id) has it, and it is accepted nowhere but the
// second step.
const mfaTokenPrefix = "mfa."

// requireFactor answers the first step of a two-step login: u's password
// was right and no code came. It stores a single-use MFA token bound to u,
// the client, the scopes granted and u's token epoch, and answers
// mfa_required (403, as Auth0) with it.
func (i *Issuer) requireFactor(ctx context.Context, u *storage.User, c client, granted []string, who []slog.Attr) error {
	if i.MFATokens == nil {
		return ServerError(errors.New("no MFA token store"))
	}
	id, err := randomToken(16)
	if err != nil {
		return ServerError(err)
	}
	secret, err := randomToken(32)
	if err != nil {
		return ServerError(err)
	}
	now := i.now()
	t := &storage.MFAToken{ID: id, SecretHash: secretHash([]byte(secret)), UserID: u.ID, ClientID: c.id, Scopes: granted,
		Epoch: u.TokenEpoch, CreatedAt: now, ExpiresAt: now.Add(MFATokenTTL)}
	if err := i.MFATokens.CreateMFAToken(ctx, t); err != nil {
		return ServerError(err)
	}
	i.Audit.Record(ctx, audit.Login, audit.MFARequired, append(who, slog.String("sub", u.ID))...)
	return &Error{Code: CodeMFARequired, Status: http.StatusForbidden,
		Description: "a second factor is required: send the code as otp, or exchange mfa_token with it (grant_type " + GrantMFAOTP + ")",
		MFAToken:    mfaTokenPrefix + id + "." + secret}
}

// mfaGrant is a two-step login's second step: the MFA token is taken (it
// works once, whatever the outcome), must be the client's and unexpired,
// its user enabled and unchanged since the first step; the code counts in
// the throttle as a password does.
func (i *Issuer) mfaGrant(ctx context.Context, c client, req TokenRequest) (*TokenResponse, error) {
	switch {
	case req.MFAToken == "":
		return nil, InvalidRequest("mfa_token is required")
	case req.OTP == "":
		return nil, InvalidRequest("otp is required")
	}
	who := []slog.Attr{slog.String("client_id", c.id), slog.String("client_ip", req.ClientAddr)}
	refused := func(outcome string) (*TokenResponse, error) {
		i.Audit.Record(ctx, audit.Login, outcome, append(who, slog.String("step", "mfa_token"))...)
		return nil, oauthError(CodeInvalidGrant, "the mfa_token is invalid, expired or used")
	}
	id, secret, ok := parseMFAToken(req.MFAToken)
	if !ok || i.MFATokens == nil {
		return refused(audit.Failed)
	}
	t, err := i.MFATokens.TakeMFAToken(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return refused(audit.Failed)
	}
	if err != nil {
		return nil, ServerError(err)
	}
	if subtle.ConstantTimeCompare([]byte(secretHash([]byte(secret))), []byte(t.SecretHash)) != 1 || !i.now().Before(t.ExpiresAt) || t.ClientID != c.id {
		return refused(audit.Failed)
	}
	// From the store, not the bearer path's view: the factor's state
	// must be the one just written.
	u, err := i.Users.ByID(ctx, t.UserID)
	if errors.Is(err, storage.ErrNotFound) {
		return refused(audit.Stale)
	}
	if err != nil {
		return nil, ServerError(err)
	}
	if u.TokenEpoch != t.Epoch {
		return refused(audit.Stale)
	}
	who = append(who, slog.String("username", u.Username), slog.String("sub", u.ID))
	if u.Disabled {
		i.Audit.Record(ctx, audit.Login, audit.Disabled, who...)
		return nil, oauthError(CodeInvalidGrant, "the account is disabled")
	}
	if !u.TOTP.Enforced() {
		return refused(audit.Stale) // the factor was reset or disabled meanwhile
	}
	if i.Throttle != nil {
		// The code is guessed under the password's limits: reserved as a
		// failure now, cleared only by the session's settlement.
		reserved, err := i.Throttle.Reserve(ctx, u.Username, req.ClientAddr)
		if err != nil {
			i.Audit.Record(ctx, audit.Login, audit.Throttled, who...)
			return nil, err
		}
		if reserved != nil && reserved.ID == u.ID {
			u = reserved
		}
	}
	if u, err = i.checkCode(ctx, u, req.OTP, "the code is wrong, expired or already used", who); err != nil {
		return nil, err
	}
	// The first step's scopes, as the account and the client allow them
	// now (either may have been narrowed in between).
	granted, _ := grant(nil, intersect(t.Scopes, u.Scopes), c)
	return i.startSession(ctx, u, c, granted, t.Epoch, TokenRequest{ClientAddr: req.ClientAddr, UserAgent: req.UserAgent}, who)
}

// checkCode checks u's second factor with code; a wrong code keeps the
// attempt the throttle reserved counted and answers invalid_grant with
// description.
func (i *Issuer) checkCode(ctx context.Context, u *storage.User, code, description string, who []slog.Attr) (*storage.User, error) {
	checked, err := i.Users.CheckCode(ctx, u, code)
	switch {
	case errors.Is(err, users.ErrInvalidCode), errors.Is(err, users.ErrNoFactor), errors.Is(err, storage.ErrNotFound):
		i.Audit.Record(ctx, audit.Login, audit.Failed, append(who, slog.String("factor", "totp"))...)
		return nil, oauthError(CodeInvalidGrant, description)
	case err != nil:
		return nil, ServerError(err)
	}
	return checked, nil
}

func parseMFAToken(token string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(token, mfaTokenPrefix)
	if !ok || len(token) > 256 {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, ".")
	return id, secret, ok && id != "" && secret != ""
}
