package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/users"
)

// Grant types of RFC 6749.
const (
	GrantPassword     = "password"
	GrantRefreshToken = "refresh_token"
)

// PublicClientID is the `client_id` claim of tokens requested by a client
// that did not identify itself; no registered client may have it.
const PublicClientID = users.PublicClientID

const maxClientIDLen = 128

// Default refresh token lifetimes: idle (each token) and absolute (the
// login), after which the user must log in again.
const (
	DefaultRefreshTTL       = 30 * 24 * time.Hour
	DefaultRefreshFamilyTTL = 90 * 24 * time.Hour
)

// UserSource is what the token endpoint needs from the users package.
type UserSource interface {
	// Authenticate returns users.ErrInvalidCredentials or users.ErrDisabled
	// for a refused login.
	Authenticate(ctx context.Context, username, password string) (*users.User, error)
	ByID(ctx context.Context, id string) (*users.User, error)
}

// ClientAuthenticator checks registered clients' credentials. It returns
// users.ErrNotFound for an unregistered client_id and
// users.ErrInvalidCredentials for a wrong or missing secret.
type ClientAuthenticator interface {
	AuthenticateClient(ctx context.Context, id, secret string) (*users.Client, error)
}

// TokenStore is what the token, revocation and introspection endpoints
// need from the store.
type TokenStore interface {
	RefreshToken(ctx context.Context, hash string) (*users.RefreshToken, error)
	RotateRefreshToken(ctx context.Context, hash string, now time.Time, fn func(old *users.RefreshToken) (*users.RefreshToken, error)) (*users.RefreshToken, error)
	RevokeRefreshFamily(ctx context.Context, familyID string, now time.Time) error
	// IssueTokens stores a grant's tokens only while the user's account
	// is as it was when the grant was authorised (users.ErrGrantStale).
	IssueTokens(ctx context.Context, is users.Issue) error
	RevokeAccessToken(ctx context.Context, jti string, now time.Time) error
}

// TokenRequest holds the parameters of a token request (RFC 6749 §4.3.2,
// §6) and the client credentials, from the body or HTTP Basic (§2.3.1).
type TokenRequest struct {
	GrantType    string
	Username     string
	Password     string
	Scope        string
	RefreshToken string
	ClientID     string
	ClientSecret string
	// BasicAuth records that the client authenticated with HTTP Basic.
	BasicAuth bool
	// ClientAddr is the requester's IP address, for throttling.
	ClientAddr string
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
	// RefreshTTL is each refresh token's idle lifetime, RefreshFamilyTTL
	// the absolute lifetime of a login's refresh tokens.
	RefreshTTL       time.Duration
	RefreshFamilyTTL time.Duration
	// Scopes is every scope the server knows (from the OpenAPI document).
	Scopes []string
	Now    func() time.Time
}

// IssuerDeps are the Issuer's collaborators.
type IssuerDeps struct {
	Users   UserSource
	Clients ClientAuthenticator
	Tokens  TokenStore
	Keys    *Keys
	// Validator checks access tokens presented to /revoke and /introspect.
	Validator *Validator
	// DenyList learns revocations at once.
	DenyList *DenyList
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
	// and before its tokens are stored, with the refresh token about to be
	// answered: tests change the account there to prove the store write
	// refuses a grant the change ended.
	testHookBeforeStore func(ctx context.Context, refresh string)
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
	default:
		return nil, oauthError(CodeUnsupportedGrantType, `grant_type must be "password" or "refresh_token"`)
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
	registered, err := i.Clients.AuthenticateClient(ctx, cred.ID, cred.Secret)
	switch {
	case errors.Is(err, users.ErrNotFound):
		if cred.Secret != "" {
			return client{}, oauthError(CodeInvalidClient, "client authentication failed")
		}
		return client{id: cred.ID}, nil
	case errors.Is(err, users.ErrInvalidCredentials):
		return client{}, oauthError(CodeInvalidClient, "client authentication failed")
	case err != nil:
		return client{}, ServerError(err)
	}
	c := client{id: registered.ID}
	if len(registered.Scopes) > 0 {
		c.scopes = registered.Scopes
	}
	return c, nil
}

// passwordGrant handles RFC 6749 §4.3.2.
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
	// Shed a login flood before it costs a throttle write in the store.
	if s, ok := i.Users.(interface{ Saturated() bool }); ok && s.Saturated() {
		i.Audit.Record(ctx, audit.Login, audit.Busy, who...)
		return nil, Overloaded(users.ErrBusy)
	}
	if i.Throttle != nil {
		if err := i.Throttle.Reserve(ctx, req.Username, req.ClientAddr); err != nil {
			i.Audit.Record(ctx, audit.Login, audit.Throttled, who...)
			return nil, err
		}
	}
	u, err := i.Users.Authenticate(ctx, req.Username, req.Password)
	if i.Throttle != nil {
		i.settleThrottle(ctx, req, err)
	}
	switch {
	case errors.Is(err, users.ErrInvalidCredentials):
		i.Audit.Record(ctx, audit.Login, audit.Failed, who...)
		return nil, oauthError(CodeInvalidGrant, "invalid username or password")
	case errors.Is(err, users.ErrDisabled):
		i.Audit.Record(ctx, audit.Login, audit.Disabled, who...)
		return nil, oauthError(CodeInvalidGrant, "the account is disabled")
	case errors.Is(err, users.ErrBusy):
		i.Audit.Record(ctx, audit.Login, audit.Busy, who...)
		return nil, Overloaded(err)
	case err != nil:
		return nil, ServerError(err)
	}
	granted, err := grant(requested, u.Scopes, c)
	if err != nil {
		return nil, err
	}

	now := i.now()
	refresh, raw, err := i.newRefreshToken(u, c, granted, now, "", now.Add(i.cfg.RefreshFamilyTTL))
	if err != nil {
		return nil, err
	}
	resp, err := i.issue(ctx, u, c, granted, "", refresh, raw, now)
	switch {
	case errors.Is(err, users.ErrGrantStale):
		i.Audit.Record(ctx, audit.Login, audit.Stale, append(who, slog.String("sub", u.ID))...)
		return nil, errGrantStale()
	case err == nil:
		i.Audit.Record(ctx, audit.Login, audit.Succeeded, append(who, slog.String("sub", u.ID), slog.String("scope", resp.Scope))...)
	}
	return resp, err
}

// errGrantStale answers a grant whose account changed while it was being
// issued: the change (a new password, disabling, a scope taken away)
// ended every token, and the grant's tokens were not stored.
func errGrantStale() *Error {
	return oauthError(CodeInvalidGrant, "the account changed while the token was issued; authenticate again")
}

// settleThrottle books the outcome of a reserved password check: the right
// password (even of a disabled account) clears the pair, a check that never
// ran is taken back, and a wrong password stays counted.
func (i *Issuer) settleThrottle(ctx context.Context, req TokenRequest, authErr error) {
	var err error
	switch {
	case authErr == nil, errors.Is(authErr, users.ErrDisabled):
		err = i.Throttle.Succeeded(ctx, req.Username, req.ClientAddr)
	case errors.Is(authErr, users.ErrInvalidCredentials):
	default:
		err = i.Throttle.Cancel(ctx, req.Username, req.ClientAddr)
	}
	if err != nil && i.Log != nil {
		// The login's own outcome stands; the next Reserve sees the store as it is.
		i.Log.WarnContext(ctx, "recording a login attempt failed", "err", err)
	}
}

// refreshGrant handles RFC 6749 §6 with rotation: the presented token is
// exchanged for a new one, and presenting it again revokes the whole
// family (RFC 9700 §4.14.2).
func (i *Issuer) refreshGrant(ctx context.Context, c client, req TokenRequest) (*TokenResponse, error) {
	if req.RefreshToken == "" {
		return nil, InvalidRequest("refresh_token is required")
	}
	requested, err := i.parseScope(req.Scope)
	if err != nil {
		return nil, err
	}
	now := i.now()
	hash := hashToken(req.RefreshToken)
	// The token's user is read before the rotation, so the store's updater
	// below needs no store access of its own: a store may run it inside a
	// write transaction, holding a connection of a bounded pool. Disabling
	// or deleting the user revokes the token, which the rotation then sees.
	var u *users.User
	if current, err := i.Tokens.RefreshToken(ctx, hash); err == nil {
		u, err = i.Users.ByID(ctx, current.UserID)
		if errors.Is(err, users.ErrNotFound) {
			return nil, oauthError(CodeInvalidGrant, "the refresh token's user no longer exists")
		}
		if err != nil {
			return nil, ServerError(err)
		}
		if u.Disabled {
			return nil, oauthError(CodeInvalidGrant, "the account is disabled")
		}
	} else if !errors.Is(err, users.ErrNotFound) {
		return nil, ServerError(err)
	}
	var (
		granted []string
		raw     string
	)
	next, err := i.Tokens.RotateRefreshToken(ctx, hash, now, func(old *users.RefreshToken) (*users.RefreshToken, error) {
		// §6: the token is bound to the client it was issued to.
		if old.ClientID != c.id {
			return nil, oauthError(CodeInvalidGrant, "the refresh token was issued to another client")
		}
		if u == nil || u.ID != old.UserID {
			return nil, oauthError(CodeInvalidGrant, "unknown refresh token")
		}
		// §6: a narrower scope may be requested, never a wider one.
		if requested != nil {
			for _, s := range requested {
				if !slices.Contains(old.Scopes, s) {
					return nil, oauthError(CodeInvalidScope, fmt.Sprintf("scope %q exceeds the scope originally granted", s))
				}
			}
		}
		held := intersect(old.Scopes, u.Scopes)
		var err error
		if granted, err = grant(requested, held, c); err != nil {
			return nil, err
		}
		// §6: the new refresh token keeps the original scope.
		var successor *users.RefreshToken
		successor, raw, err = i.newRefreshToken(u, c, held, now, old.FamilyID, old.FamilyExpiresAt)
		return successor, err
	})
	who := slog.String("client_id", c.id)
	var oerr *Error
	switch {
	case errors.As(err, &oerr):
		i.Audit.Record(ctx, audit.Refresh, audit.Failed, who, slog.String("error", oerr.Code))
		return nil, err
	case errors.Is(err, users.ErrNotFound):
		i.Audit.Record(ctx, audit.Refresh, audit.Failed, who, slog.String("error", "unknown"))
		return nil, oauthError(CodeInvalidGrant, "unknown refresh token")
	case errors.Is(err, users.ErrTokenReused):
		// The family, with its access tokens, is revoked in the store.
		if i.DenyList != nil {
			_ = i.DenyList.Sync(ctx)
		}
		i.Audit.Record(ctx, audit.Refresh, audit.ReuseDetected, who)
		return nil, oauthError(CodeInvalidGrant, "the refresh token was already used; the login it belongs to has been revoked")
	case errors.Is(err, users.ErrTokenInactive):
		i.Audit.Record(ctx, audit.Refresh, audit.Failed, who, slog.String("error", "inactive"))
		return nil, oauthError(CodeInvalidGrant, "the refresh token expired or was revoked")
	case err != nil:
		return nil, ServerError(err)
	}
	resp, err := i.issue(ctx, u, c, granted, next.FamilyID, nil, raw, now)
	switch {
	case errors.Is(err, users.ErrGrantStale):
		// The change revoked the successor with every other token.
		i.Audit.Record(ctx, audit.Refresh, audit.Stale, who, slog.String("sub", u.ID))
		return nil, errGrantStale()
	case err == nil:
		i.Audit.Record(ctx, audit.Refresh, audit.Rotated, who, slog.String("sub", u.ID), slog.String("username", u.Username))
	}
	return resp, err
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

func (i *Issuer) now() time.Time { return i.cfg.Now().UTC().Truncate(time.Second) }

// newRefreshToken makes an opaque refresh token: 256 bits from crypto/rand,
// stored only as its SHA-256. familyID "" starts a new family.
func (i *Issuer) newRefreshToken(u *users.User, c client, scopes []string, now time.Time, familyID string, familyExp time.Time) (*users.RefreshToken, string, error) {
	raw, err := randomToken(32)
	if err != nil {
		return nil, "", ServerError(err)
	}
	if familyID == "" {
		if familyID, err = randomToken(16); err != nil {
			return nil, "", ServerError(err)
		}
	}
	exp := now.Add(i.cfg.RefreshTTL)
	if exp.After(familyExp) {
		exp = familyExp
	}
	return &users.RefreshToken{
		Hash:            hashToken(raw),
		FamilyID:        familyID,
		UserID:          u.ID,
		ClientID:        c.id,
		Scopes:          slices.Clone(scopes),
		IssuedAt:        now,
		ExpiresAt:       exp,
		FamilyExpiresAt: familyExp,
	}, raw, nil
}

// issue signs an access token (RFC 9068) of the login familyID and stores
// it (its jti, so it can be revoked) with newFamily, the first refresh
// token of a new login (nil on a refresh, whose successor the rotation
// stored); refresh is the raw refresh token to answer. The store refuses with
// users.ErrGrantStale, returned unwrapped, when u's account changed since
// u was read.
func (i *Issuer) issue(ctx context.Context, u *users.User, c client, scopes []string, familyID string, newFamily *users.RefreshToken, refresh string, now time.Time) (*TokenResponse, error) {
	exp := now.Add(i.cfg.TTL)
	jti, err := randomToken(16)
	if err != nil {
		return nil, ServerError(err)
	}
	scope := strings.Join(scopes, " ")
	claims := &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    i.cfg.Issuer,
			Subject:   u.ID,
			Audience:  jwt.ClaimStrings{i.cfg.Audience},
			ExpiresAt: jwt.NewNumericDate(exp),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        jti,
		},
		ClientID:          c.id,
		Scope:             scope,
		PreferredUsername: u.Username,
	}
	kid, method, key := i.Keys.Signer()
	tok := jwt.NewWithClaims(method, claims)
	tok.Header["typ"] = AccessTokenType
	tok.Header["kid"] = kid
	signed, err := tok.SignedString(key)
	if err != nil {
		return nil, ServerError(fmt.Errorf("sign access token: %w", err))
	}
	if newFamily != nil {
		familyID = newFamily.FamilyID
	}
	if i.testHookBeforeStore != nil {
		i.testHookBeforeStore(ctx, refresh)
	}
	err = i.Tokens.IssueTokens(ctx, users.Issue{
		Epoch:   u.TokenEpoch,
		Refresh: newFamily,
		Access:  &users.AccessToken{JTI: jti, UserID: u.ID, FamilyID: familyID, ClientID: c.id, ExpiresAt: exp},
	})
	if errors.Is(err, users.ErrGrantStale) {
		return nil, err
	}
	if err != nil {
		return nil, ServerError(err)
	}
	return &TokenResponse{
		AccessToken:  signed,
		TokenType:    "Bearer",
		ExpiresIn:    int(exp.Sub(now) / time.Second),
		Scope:        scope,
		RefreshToken: refresh,
	}, nil
}

func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// hashToken is how refresh tokens are looked up: the store never holds one.
func hashToken(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return hex.EncodeToString(sum[:])
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
