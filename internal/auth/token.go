package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse/gatehouse/internal/users"
)

// Grant types of RFC 6749.
const (
	GrantPassword     = "password"
	GrantRefreshToken = "refresh_token"
)

// PublicClientID is the `client_id` claim of tokens requested by a client
// that did not identify itself.
const PublicClientID = "public"

const maxClientIDLen = 128

// PasswordAuthenticator checks a resource owner's credentials. It returns
// users.ErrInvalidCredentials or users.ErrDisabled for a refused login.
type PasswordAuthenticator interface {
	Authenticate(ctx context.Context, username, password string) (*users.User, error)
}

// TokenRequest holds the parameters of a token request (RFC 6749 §4.3.2)
// and the client credentials, from the body or HTTP Basic (§2.3.1).
type TokenRequest struct {
	GrantType    string
	Username     string
	Password     string
	Scope        string
	RefreshToken string
	ClientID     string
	ClientSecret string
	// BasicAuth records that the client authenticated with HTTP Basic, so a
	// failure answers with a Basic challenge (§5.2 invalid_client).
	BasicAuth bool
}

// TokenResponse is the successful response of RFC 6749 §5.1.
type TokenResponse struct {
	AccessToken string
	TokenType   string
	ExpiresIn   int
	Scope       string
}

// IssuerConfig says what goes into access tokens.
type IssuerConfig struct {
	Issuer   string
	Audience string
	TTL      time.Duration
	// Scopes is every scope the server knows (from the OpenAPI document).
	Scopes []string
	Now    func() time.Time
}

// Issuer is the token endpoint: it turns token requests into signed access
// tokens.
type Issuer struct {
	users  PasswordAuthenticator
	keys   *Keys
	cfg    IssuerConfig
	scopes map[string]bool
}

// NewIssuer returns the token endpoint for cfg.
func NewIssuer(authn PasswordAuthenticator, keys *Keys, cfg IssuerConfig) *Issuer {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	known := make(map[string]bool, len(cfg.Scopes))
	for _, s := range cfg.Scopes {
		known[s] = true
	}
	return &Issuer{users: authn, keys: keys, cfg: cfg, scopes: known}
}

// Token handles a token request (RFC 6749 §3.2). Every refusal is an *Error.
func (i *Issuer) Token(ctx context.Context, req TokenRequest) (*TokenResponse, error) {
	client, err := i.authenticateClient(req)
	if err != nil {
		return nil, err
	}
	switch req.GrantType {
	case "":
		return nil, InvalidRequest("grant_type is required")
	case GrantPassword:
		return i.passwordGrant(ctx, client, req)
	case GrantRefreshToken:
		return nil, oauthError(CodeUnsupportedGrantType, "this server does not issue refresh tokens yet")
	default:
		return nil, oauthError(CodeUnsupportedGrantType, "grant_type must be \"password\"")
	}
}

// authenticateClient implements RFC 6749 §2.3 for a server whose clients
// are all public (§2.1): a client may name itself, but there is no
// confidential client a secret could authenticate.
func (i *Issuer) authenticateClient(req TokenRequest) (string, error) {
	if req.ClientSecret != "" {
		e := oauthError(CodeInvalidClient, "client authentication failed: no confidential clients are registered")
		if req.BasicAuth {
			e.Description += " (send client_id alone, without a secret)"
		}
		return "", e
	}
	if req.ClientID == "" {
		return PublicClientID, nil
	}
	if len(req.ClientID) > maxClientIDLen || !isVSChars(req.ClientID) {
		return "", InvalidRequest("client_id is malformed")
	}
	return req.ClientID, nil
}

// passwordGrant handles RFC 6749 §4.3.2.
func (i *Issuer) passwordGrant(ctx context.Context, client string, req TokenRequest) (*TokenResponse, error) {
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
	u, err := i.users.Authenticate(ctx, req.Username, req.Password)
	switch {
	case errors.Is(err, users.ErrInvalidCredentials):
		return nil, oauthError(CodeInvalidGrant, "invalid username or password")
	case errors.Is(err, users.ErrDisabled):
		return nil, oauthError(CodeInvalidGrant, "the account is disabled")
	case err != nil:
		return nil, ServerError(err)
	}

	granted := u.Scopes
	if requested != nil {
		for _, s := range requested {
			if !u.HasScope(s) {
				return nil, oauthError(CodeInvalidScope, fmt.Sprintf("scope %q is not granted to this user", s))
			}
		}
		granted = requested
	}
	return i.issue(u, client, granted)
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

func (i *Issuer) issue(u *users.User, client string, scopes []string) (*TokenResponse, error) {
	now := i.cfg.Now().UTC().Truncate(time.Second)
	exp := now.Add(i.cfg.TTL)
	jti, err := randomID()
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
		ClientID:          client,
		Scope:             scope,
		PreferredUsername: u.Username,
	}
	tok := jwt.NewWithClaims(i.keys.signing.method, claims)
	tok.Header["typ"] = AccessTokenType
	tok.Header["kid"] = i.keys.signing.id
	signed, err := tok.SignedString(i.keys.signing.sign)
	if err != nil {
		return nil, ServerError(fmt.Errorf("sign access token: %w", err))
	}
	return &TokenResponse{
		AccessToken: signed,
		TokenType:   "Bearer",
		ExpiresIn:   int(exp.Sub(now) / time.Second),
		Scope:       scope,
	}, nil
}

func randomID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// tokenParams are the parameters the token endpoint reads.
var tokenParams = []string{"grant_type", "username", "password", "scope", "refresh_token", "client_id", "client_secret"}

// ParseTokenRequest reads a token request from r, whose form must already be
// parsed. It enforces RFC 6749 §3.2: parameters come from the body (never
// the URI, where credentials would be logged, §2.3.1) and none is repeated.
func ParseTokenRequest(r *http.Request) (TokenRequest, error) {
	query := r.URL.Query()
	for _, name := range tokenParams {
		if query.Has(name) {
			return TokenRequest{}, InvalidRequest(name + " must be sent in the request body, not the URL")
		}
	}
	for name, values := range r.PostForm {
		if len(values) > 1 {
			return TokenRequest{}, InvalidRequest(name + " is repeated")
		}
	}
	form := r.PostForm
	req := TokenRequest{
		GrantType:    form.Get("grant_type"),
		Username:     form.Get("username"),
		Password:     form.Get("password"),
		Scope:        form.Get("scope"),
		RefreshToken: form.Get("refresh_token"),
		ClientID:     form.Get("client_id"),
		ClientSecret: form.Get("client_secret"),
	}
	return req, readBasicClient(r, &req)
}

// readBasicClient applies client credentials sent with HTTP Basic
// (RFC 6749 §2.3.1): both parts are form-urlencoded before base64.
// Empty credentials (`Basic Og==`, what Swagger UI sends by default) mean
// a public client.
func readBasicClient(r *http.Request, req *TokenRequest) error {
	values := r.Header.Values("Authorization")
	if len(values) == 0 {
		return nil
	}
	if len(values) > 1 {
		return InvalidRequest("more than one Authorization header")
	}
	scheme, payload, _ := strings.Cut(values[0], " ")
	if !strings.EqualFold(scheme, "Basic") {
		return InvalidRequest("the token endpoint accepts only HTTP Basic client authentication")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(payload))
	if err != nil {
		return oauthError(CodeInvalidClient, "malformed Basic credentials")
	}
	rawID, rawSecret, ok := strings.Cut(string(raw), ":")
	if !ok {
		return oauthError(CodeInvalidClient, "malformed Basic credentials")
	}
	id, err1 := url.QueryUnescape(rawID)
	secret, err2 := url.QueryUnescape(rawSecret)
	if err1 != nil || err2 != nil {
		return oauthError(CodeInvalidClient, "malformed Basic credentials")
	}
	if id == "" && secret == "" {
		return nil
	}
	// §2.3: a client must not use more than one authentication method.
	if req.ClientSecret != "" || (req.ClientID != "" && req.ClientID != id) {
		return InvalidRequest("client credentials sent both in the body and with HTTP Basic")
	}
	req.ClientID, req.ClientSecret, req.BasicAuth = id, secret, true
	return nil
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
