package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/storage"
	"github.com/gatehouse/gatehouse/internal/users"
)

// Grant types of RFC 6749.
const (
	GrantPassword          = "password"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
)

// PublicClientID is the `client_id` claim of tokens requested by a client
// that did not identify itself; no registered client may have it.
const PublicClientID = "public"

const maxClientIDLen = 128

// Default session lifetimes: idle (since the last refresh) and absolute
// (since the login), after which the user must log in again.
const (
	DefaultRefreshTTL       = 30 * 24 * time.Hour
	DefaultRefreshFamilyTTL = 90 * 24 * time.Hour
)

// DefaultReuseWindow is the refresh grace window: presenting the parent
// of the current refresh token within it after a rotation (parallel tabs,
// a retried request whose answer was lost) answers the same child.
const DefaultReuseWindow = 10 * time.Second

// maxGraceUses bounds how often one rotation's parent is answered with its
// child inside the window: enough for 50 concurrent refreshes of one
// token, few enough that a copied parent mints no stream of access tokens.
const maxGraceUses = 64

// UserSource is what the token endpoint needs from the users package.
type UserSource interface {
	// Verify checks a password against the account a login names (nil
	// when none): users.ErrInvalidCredentials or users.ErrDisabled for a
	// refused login.
	Verify(ctx context.Context, u *storage.User, password string) (*storage.User, error)
	// Get reads the account a login names when no throttle read it
	// already (storage.ErrNotFound when none).
	Get(ctx context.Context, username string) (*storage.User, error)
	// ByID reads an account by its id (storage.ErrNotFound when none).
	ByID(ctx context.Context, id string) (*storage.User, error)
	// CheckCode checks and uses up the second factor's code of a user
	// whose password was right (users.ErrInvalidCode when wrong).
	CheckCode(ctx context.Context, u *storage.User, code string) (*storage.User, error)
}

// account returns the user with that id, nil when there is none: from the
// validator's in-memory view when it has one, else from the store.
func (i *Issuer) account(ctx context.Context, id string) (*storage.User, error) {
	if i.Validator != nil && i.Validator.users != nil {
		return i.Validator.users.Get(ctx, id)
	}
	u, err := i.Users.ByID(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	return u, err
}

// ClientAuthenticator checks registered clients' credentials and names
// the secret that matched ("" for a public client). It returns
// storage.ErrNotFound for an unregistered client_id and
// users.ErrInvalidCredentials for a wrong or missing secret.
type ClientAuthenticator interface {
	AuthenticateClient(ctx context.Context, id, secret string) (*storage.Client, string, error)
}

// SessionStore is what the token, revocation, introspection and session
// endpoints need from the store (storage.SessionStore and ChangeLog).
type SessionStore interface {
	CreateSession(ctx context.Context, s *storage.Session, epoch int64, settle *storage.AttemptUpdate) error
	Session(ctx context.Context, id string) (*storage.Session, error)
	UpdateSession(ctx context.Context, id string, fn func(s *storage.Session, u *storage.User) error) (*storage.Session, *storage.User, error)
	ListSessions(ctx context.Context, userID string, now time.Time) ([]*storage.Session, error)
	RevokeSessions(ctx context.Context, userID, id, except string, now time.Time) (int, error)
	RevokeToken(ctx context.Context, jti string, exp, now time.Time) error
}

// TokenRequest holds the parameters of a token request (RFC 6749 §4.3.2,
// §6) and the client credentials, from the body or HTTP Basic (§2.3.1).
type TokenRequest struct {
	GrantType    string
	Username     string
	Password     string
	Scope        string
	RefreshToken string
	// OTP is the second factor's code (or a recovery code): with the
	// password grant for a user with a factor, or with MFAToken.
	OTP string
	// MFAToken is the first step's token of a two-step login (GrantMFAOTP).
	MFAToken     string
	ClientID     string
	ClientSecret string
	// BasicAuth records that the client authenticated with HTTP Basic.
	BasicAuth bool
	// ClientAddr is the requester's IP address, for throttling and the
	// session list; UserAgent its User-Agent header, for the list only.
	ClientAddr string
	UserAgent  string
}

// TokenResponse is the successful response of RFC 6749 §5.1.
type TokenResponse struct {
	AccessToken  string
	TokenType    string
	ExpiresIn    int
	Scope        string
	RefreshToken string
}

// IssuerConfig says what goes into tokens and how long they live.
type IssuerConfig struct {
	Issuer   string
	Audience string
	// TTL is the access token lifetime.
	TTL time.Duration
	// RefreshTTL is a session's idle lifetime (each refresh starts it
	// again), RefreshFamilyTTL its absolute lifetime.
	RefreshTTL       time.Duration
	RefreshFamilyTTL time.Duration
	// ReuseWindow is how long after a rotation presenting the parent
	// again answers the same child (GATEHOUSE_REFRESH_REUSE_WINDOW); 0
	// turns it off, negative means DefaultReuseWindow.
	ReuseWindow time.Duration
	// Scopes is every scope the server knows (from the OpenAPI document).
	Scopes []string
	Now    func() time.Time
}

// IssuerDeps are the Issuer's collaborators.
type IssuerDeps struct {
	Users    UserSource
	Clients  ClientAuthenticator
	Sessions SessionStore
	// MFATokens keeps the first steps of two-step logins.
	MFATokens storage.MFATokenStore
	Keys      *Keys
	// Refresh derives and checks refresh tokens (LoadRefreshKey).
	Refresh RefreshKey
	// Validator checks access tokens presented to /revoke and /introspect.
	Validator *Validator
	// Revocations learns this process's revocations before it answers.
	Revocations *Revocations
	// Throttle, when set, limits password guessing.
	Throttle *Throttle
	// Log receives failures that do not change a request's outcome.
	Log *slog.Logger
	// Audit records logins, refreshes and revocations; nil discards.
	Audit *audit.Recorder
}

// Issuer is the token side of the authorization server: the token endpoint
// (RFC 6749 §3.2), revocation (RFC 7009) and introspection (RFC 7662).
type Issuer struct {
	IssuerDeps
	cfg    IssuerConfig
	scopes map[string]bool
	// testHookBeforeStore, when set, runs after a grant was authorised
	// and before the store write that issues it (for a refresh, before the
	// session update, whose transaction checks the account again): tests
	// change the account there to prove the write refuses a grant the
	// change ended.
	testHookBeforeStore func(ctx context.Context)
}

// NewIssuer returns the token endpoint for cfg.
func NewIssuer(deps IssuerDeps, cfg IssuerConfig) *Issuer {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RefreshTTL == 0 {
		cfg.RefreshTTL = DefaultRefreshTTL
	}
	if cfg.RefreshFamilyTTL == 0 {
		cfg.RefreshFamilyTTL = DefaultRefreshFamilyTTL
	}
	if cfg.ReuseWindow < 0 {
		cfg.ReuseWindow = DefaultReuseWindow
	}
	known := make(map[string]bool, len(cfg.Scopes))
	for _, s := range cfg.Scopes {
		known[s] = true
	}
	return &Issuer{IssuerDeps: deps, cfg: cfg, scopes: known}
}

// client is an authenticated (or anonymous public) client.
type client struct {
	id string
	// scopes limits what the client may be granted; nil means any.
	scopes []string
	// registered is the client as stored, nil for an unregistered one;
	// secretID names the secret it authenticated with.
	registered *storage.Client
	secretID   string
}

func (c client) allows(scope string) bool {
	return c.scopes == nil || slices.Contains(c.scopes, scope)
}

// Token handles a token request (RFC 6749 §3.2). Every refusal is an *Error.
func (i *Issuer) Token(ctx context.Context, req TokenRequest) (*TokenResponse, error) {
	c, err := i.authenticateClient(ctx, clientCredentials{ID: req.ClientID, Secret: req.ClientSecret, Basic: req.BasicAuth})
	if err != nil {
		return nil, err
	}
	switch req.GrantType {
	case "":
		return nil, InvalidRequest("grant_type is required")
	case GrantPassword:
		return i.passwordGrant(ctx, c, req)
	case GrantRefreshToken:
		return i.refreshGrant(ctx, c, req)
	case GrantClientCredentials:
		return i.clientCredentialsGrant(ctx, c, req)
	case GrantMFAOTP:
		return i.mfaGrant(ctx, c, req)
	default:
		return nil, UnsupportedGrantType()
	}
}

// authenticateClient implements RFC 6749 §2.3. A registered client must
// authenticate as registered; an unregistered client_id is accepted as a
// public client (§2.1) that merely names itself, and may send no secret.
func (i *Issuer) authenticateClient(ctx context.Context, cred clientCredentials) (client, error) {
	if cred.ID == "" {
		if cred.Secret != "" {
			return client{}, oauthError(CodeInvalidClient, "client_secret sent without client_id")
		}
		return client{id: PublicClientID}, nil
	}
	if len(cred.ID) > maxClientIDLen || !isVSChars(cred.ID) {
		return client{}, InvalidRequest("client_id is malformed")
	}
	if strings.EqualFold(cred.ID, PublicClientID) {
		// Reserved for anonymous callers: never a registered client, even
		// one a store from before the reservation may hold.
		if cred.Secret != "" {
			return client{}, oauthError(CodeInvalidClient, "client authentication failed")
		}
		return client{id: PublicClientID}, nil
	}
	registered, secretID, err := i.Clients.AuthenticateClient(ctx, cred.ID, cred.Secret)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		if cred.Secret != "" {
			return client{}, oauthError(CodeInvalidClient, "client authentication failed")
		}
		if userIDForm(cred.ID) {
			// Its tokens' sub would equal their client_id, the mark of a
			// client's own token (Claims.ClientToken).
			return client{}, InvalidRequest("client_id must not have the form of a user id (a UUID)")
		}
		return client{id: cred.ID}, nil
	case errors.Is(err, users.ErrInvalidCredentials):
		return client{}, oauthError(CodeInvalidClient, "client authentication failed")
	case err != nil:
		return client{}, ServerError(err)
	}
	c := client{id: registered.ID, registered: registered, secretID: secretID}
	if len(registered.Scopes) > 0 {
		c.scopes = registered.Scopes
	}
	return c, nil
}

// grant decides the scope of a token: what was requested (every scope
// requested must be held and allowed to the client, §3.3), or everything
// held that the client may have.
func grant(requested, held []string, c client) ([]string, error) {
	if requested == nil {
		var out []string
		for _, s := range held {
			if c.allows(s) {
				out = append(out, s)
			}
		}
		return out, nil
	}
	for _, s := range requested {
		if !slices.Contains(held, s) {
			return nil, oauthError(CodeInvalidScope, fmt.Sprintf("scope %q is not granted to this user", s))
		}
		if !c.allows(s) {
			return nil, oauthError(CodeInvalidScope, fmt.Sprintf("scope %q is not allowed for this client", s))
		}
	}
	return requested, nil
}

func intersect(a, b []string) []string {
	var out []string
	for _, s := range a {
		if slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

// parseScope splits the scope parameter (RFC 6749 §3.3). nil means none was
// requested; every requested scope must be one the server knows.
func (i *Issuer) parseScope(scope string) ([]string, error) {
	if scope == "" {
		return nil, nil
	}
	var out []string
	for _, s := range strings.Split(scope, " ") {
		if s == "" {
			continue
		}
		if !i.scopes[s] {
			return nil, oauthError(CodeInvalidScope, fmt.Sprintf("unknown scope %q", s))
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if out == nil {
		return nil, oauthError(CodeInvalidScope, "scope is empty")
	}
	slices.Sort(out)
	return out, nil
}

func (i *Issuer) now() time.Time { return i.cfg.Now().UTC() }

func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// isVSChars reports whether s has only VSCHAR characters (RFC 6749 App. A).
func isVSChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
