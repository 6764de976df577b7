package client

// The hand-written half of the package: a log-in that turns a username and
// a password into an API client whose requests carry an access token that
// refreshes itself, built on golang.org/x/oauth2.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// ErrLoggedOut is returned by a Session's TokenSource (wrapped in the
// error of the request that needed a token) once Logout has ended the
// login.
var ErrLoggedOut = errors.New("gatehouse: the session was logged out")

// Session is a logged-in gatehouse user: an API client whose requests carry
// the session's access token (RFC 6750 §2.1), refreshed with the refresh
// token grant (RFC 6749 §6) before it expires. gatehouse rotates refresh
// tokens on every use and treats a rotated token presented again as theft
// (RFC 9700 §4.14.2), so a Session always presents the refresh token of
// the latest response, and refreshes one at a time.
//
// A Session is safe for concurrent use. Use one Session per login: two
// Sessions resumed from the same token would present the same refresh
// token and end the login.
type Session struct {
	// Client calls the gatehouse API as the logged-in user.
	Client *ClientWithResponses
	// HTTPClient is the *http.Client under Client: it adds the bearer
	// token to every request, for calls Client does not offer and for
	// resource servers that accept gatehouse tokens. It sends the token
	// to whatever URL it is given: give it only URLs you trust with it.
	HTTPClient *http.Client
	// TokenSource returns the current token and refreshes it when it is
	// about to expire: an oauth2.ReuseTokenSource over the refresh grant of
	// the session's oauth2.Config. The token it returns (access and refresh
	// token) is what Resume needs to continue the session later.
	TokenSource oauth2.TokenSource

	refresher *refresher
	revoker   *ClientWithResponses
	cfg       loginConfig
}

// LoginOption configures Login and Resume.
type LoginOption func(*loginConfig)

type loginConfig struct {
	clientID, clientSecret string
	scopes                 []string
	httpClient             *http.Client
	expiryDelta            time.Duration
	clientOptions          []ClientOption
	otp                    string
	otpPrompt              func(ctx context.Context) (string, error)
}

// WithOTP sends the user's second-factor code (a TOTP code, or a recovery
// code) with the password, in one request: for a user with a factor
// enrolled. A user without one logs in as without it.
func WithOTP(code string) LoginOption {
	return func(c *loginConfig) { c.otp = code }
}

// WithOTPPrompt supplies the code only when the server asks for it: a
// login of a user with a factor, sent without a code, is answered
// mfa_required with a single-use mfa_token, and Login calls prompt (to
// read the code from the user, say) and exchanges the token with it
// (grant_type MFAOTPGrant). Without WithOTP or WithOTPPrompt such a login
// fails with an *oauth2.RetrieveError whose ErrorCode is "mfa_required".
func WithOTPPrompt(prompt func(ctx context.Context) (string, error)) LoginOption {
	return func(c *loginConfig) { c.otpPrompt = prompt }
}

// MFAOTPGrant is the grant type of a two-step login's second step, which
// gatehouse takes from Auth0.
const MFAOTPGrant = "http://auth0.com/oauth/grant-type/mfa-otp"

// WithOAuthClient names the OAuth 2.0 client the session logs in as
// (RFC 6749 §2). Without it the session is gatehouse's default public
// client. A registered confidential client passes its secret, sent with
// HTTP Basic (client_secret_basic, RFC 6749 §2.3.1); a public client
// passes an empty secret and sends client_id alone in the form.
func WithOAuthClient(clientID, clientSecret string) LoginOption {
	return func(c *loginConfig) { c.clientID, c.clientSecret = clientID, clientSecret }
}

// WithScopes asks for these scopes (RFC 6749 §3.3). Without it gatehouse
// grants every scope the user holds that the client may have. Refreshes
// keep the scopes of the login.
func WithScopes(scopes ...string) LoginOption {
	return func(c *loginConfig) { c.scopes = append([]string(nil), scopes...) }
}

// WithBaseHTTPClient sends every request, to the token endpoint and to the
// API, through hc (its Transport, Timeout, Jar and CheckRedirect); the
// session adds the bearer token on top of it. http.DefaultClient when not
// set.
func WithBaseHTTPClient(hc *http.Client) LoginOption {
	return func(c *loginConfig) { c.httpClient = hc }
}

// WithExpiryDelta refreshes the access token d before its expiry instead
// of golang.org/x/oauth2's default 10 seconds, to absorb clock skew or slow
// networks. A d longer than the token lifetime refreshes before every
// request.
func WithExpiryDelta(d time.Duration) LoginOption {
	return func(c *loginConfig) { c.expiryDelta = d }
}

// WithClientOptions passes options, such as WithRequestEditorFn, to the
// generated client in Session.Client. A WithHTTPClient among them is
// overridden by the session's own: use WithBaseHTTPClient, which the
// session wraps.
func WithClientOptions(opts ...ClientOption) LoginOption {
	return func(c *loginConfig) { c.clientOptions = append(c.clientOptions, opts...) }
}

// Login logs in with the resource owner password credentials grant
// (RFC 6749 §4.3) at serverURL's token endpoint (serverURL + "/token") and
// returns the session. Refused credentials come back as an error wrapping
// the *oauth2.RetrieveError of the RFC 6749 §5.2 response, whose ErrorCode
// is "invalid_grant" for a wrong username or password (or code). For a user
// with a second factor, pass WithOTP or WithOTPPrompt.
//
// ctx bounds the login request. Later refreshes use ctx's values (such as
// an oauth2.HTTPClient) but not its cancellation, so the session outlives
// a request-scoped ctx.
func Login(ctx context.Context, serverURL, username, password string, opts ...LoginOption) (*Session, error) {
	cfg := newLoginConfig(opts)
	conf := cfg.oauth2Config(serverURL)
	var tok *oauth2.Token
	var err error
	if cfg.otp != "" {
		// x/oauth2's password grant takes no extra parameter.
		tok, err = cfg.token(ctx, conf, url.Values{"grant_type": {"password"}, "username": {username}, "password": {password}, "otp": {cfg.otp}})
	} else {
		tok, err = conf.PasswordCredentialsToken(cfg.tokenContext(ctx), username, password)
	}
	if re, ok := errors.AsType[*oauth2.RetrieveError](err); ok && re.ErrorCode == "mfa_required" && cfg.otpPrompt != nil {
		tok, err = cfg.secondStep(ctx, conf, re)
	}
	if err != nil {
		return nil, fmt.Errorf("gatehouse: log in as %q: %w", username, err)
	}
	if tok.RefreshToken == "" {
		return nil, fmt.Errorf("gatehouse: log in as %q: the token response carries no refresh token", username)
	}
	return newSession(ctx, serverURL, conf, tok, cfg)
}

// Resume continues a session from a token an earlier Session's TokenSource
// returned (for example one saved to disk by a command-line tool): its
// access token is used while it is valid, then its refresh token. Pass the
// options of the original Login: a refresh token is bound to its client.
// The old Session must not be used any more: the first refresh rotates the
// refresh token, and gatehouse ends a login whose rotated refresh token is
// presented again (RFC 9700 §4.14.2).
func Resume(ctx context.Context, serverURL string, tok *oauth2.Token, opts ...LoginOption) (*Session, error) {
	if tok == nil || tok.RefreshToken == "" {
		return nil, errors.New("gatehouse: resume: the token has no refresh token")
	}
	cfg := newLoginConfig(opts)
	conf := cfg.oauth2Config(serverURL)
	// Our own copy: ReuseTokenSource sets its expiry delta on the token.
	own := *tok
	return newSession(ctx, serverURL, conf, &own, cfg)
}

func newLoginConfig(opts []LoginOption) loginConfig {
	var cfg loginConfig
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.httpClient == nil {
		cfg.httpClient = http.DefaultClient
	}
	return cfg
}

func (cfg loginConfig) oauth2Config(serverURL string) *oauth2.Config {
	// client_secret_basic for a confidential client, client_id in the form
	// for a public one (RFC 6749 §2.3.1). Auto-detection would retry a
	// refused password grant, counting two failed logins.
	style := oauth2.AuthStyleInParams
	if cfg.clientSecret != "" {
		style = oauth2.AuthStyleInHeader
	}
	return &oauth2.Config{
		ClientID:     cfg.clientID,
		ClientSecret: cfg.clientSecret,
		Endpoint:     oauth2.Endpoint{TokenURL: strings.TrimRight(serverURL, "/") + "/token", AuthStyle: style},
		Scopes:       cfg.scopes,
	}
}

// secondStep answers an mfa_required refusal: the code from the prompt,
// exchanged with the answer's mfa_token.
func (cfg loginConfig) secondStep(ctx context.Context, conf *oauth2.Config, re *oauth2.RetrieveError) (*oauth2.Token, error) {
	var body struct {
		MFAToken string `json:"mfa_token"`
	}
	if err := json.Unmarshal(re.Body, &body); err != nil || body.MFAToken == "" {
		return nil, fmt.Errorf("mfa_required without an mfa_token: %w", re)
	}
	code, err := cfg.otpPrompt(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the second factor's code: %w", err)
	}
	return cfg.token(ctx, conf, url.Values{"grant_type": {MFAOTPGrant}, "mfa_token": {body.MFAToken}, "otp": {code}})
}

// token sends a token request x/oauth2 has no call for, with conf's
// client authentication, and reads the answer as x/oauth2 does: an
// *oauth2.Token, or an *oauth2.RetrieveError for an RFC 6749 §5.2 error.
func (cfg loginConfig) token(ctx context.Context, conf *oauth2.Config, form url.Values) (*oauth2.Token, error) {
	if len(conf.Scopes) > 0 && form.Get("grant_type") == "password" {
		form.Set("scope", strings.Join(conf.Scopes, " "))
	}
	if conf.ClientID != "" && conf.ClientSecret == "" {
		form.Set("client_id", conf.ClientID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, conf.Endpoint.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if conf.ClientSecret != "" {
		req.SetBasicAuth(url.QueryEscape(conf.ClientID), url.QueryEscape(conf.ClientSecret))
	}
	resp, err := cfg.httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	var body struct {
		AccessToken      string `json:"access_token"`
		TokenType        string `json:"token_type"`
		RefreshToken     string `json:"refresh_token"`
		ExpiresIn        int64  `json:"expires_in"`
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
		ErrorURI         string `json:"error_uri"`
	}
	if err := json.Unmarshal(raw, &body); err != nil && resp.StatusCode == http.StatusOK {
		return nil, fmt.Errorf("the token response is not JSON: %w", err)
	}
	if resp.StatusCode != http.StatusOK || body.AccessToken == "" {
		return nil, &oauth2.RetrieveError{Response: resp, Body: raw, ErrorCode: body.Error, ErrorDescription: body.ErrorDescription, ErrorURI: body.ErrorURI}
	}
	tok := &oauth2.Token{AccessToken: body.AccessToken, TokenType: body.TokenType, RefreshToken: body.RefreshToken}
	if body.ExpiresIn > 0 {
		tok.Expiry = time.Now().Add(time.Duration(body.ExpiresIn) * time.Second)
		tok.ExpiresIn = body.ExpiresIn
	}
	return tok, nil
}

// tokenContext makes x/oauth2 send token requests through the base client.
func (cfg loginConfig) tokenContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, cfg.httpClient)
}

func newSession(ctx context.Context, serverURL string, conf *oauth2.Config, tok *oauth2.Token, cfg loginConfig) (*Session, error) {
	r := &refresher{ctx: cfg.tokenContext(context.WithoutCancel(ctx)), conf: conf, refreshToken: tok.RefreshToken}
	ts := oauth2.ReuseTokenSourceWithExpiry(tok, r, cfg.expiryDelta)
	base := cfg.httpClient
	transport := base.Transport
	if transport == nil {
		transport = http.DefaultTransport
	}
	hc := &http.Client{
		Transport:     &oauth2.Transport{Base: transport, Source: ts},
		CheckRedirect: base.CheckRedirect,
		Jar:           base.Jar,
		Timeout:       base.Timeout,
	}
	api, err := NewClientWithResponses(serverURL, append(append([]ClientOption(nil), cfg.clientOptions...), WithHTTPClient(hc))...)
	if err != nil {
		return nil, fmt.Errorf("gatehouse: %w", err)
	}
	// Revocation authenticates the client, not the user: no bearer token.
	revoker, err := NewClientWithResponses(serverURL, WithHTTPClient(base))
	if err != nil {
		return nil, fmt.Errorf("gatehouse: %w", err)
	}
	return &Session{Client: api, HTTPClient: hc, TokenSource: ts, refresher: r, revoker: revoker, cfg: cfg}, nil
}

// refresher is the refresh token grant (RFC 6749 §6) of an oauth2.Config,
// remembering the refresh token of each response so that the rotated one
// (RFC 9700 §4.14.2) is presented next. It refreshes on every call: the
// ReuseTokenSource above it decides when.
type refresher struct {
	ctx  context.Context
	conf *oauth2.Config

	mu           sync.Mutex
	refreshToken string
	loggedOut    bool
}

// Token implements oauth2.TokenSource.
func (r *refresher) Token() (*oauth2.Token, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.loggedOut {
		return nil, ErrLoggedOut
	}
	// The config's own TokenSource, given a token without an access token,
	// refreshes at once; x/oauth2 keeps the presented refresh token when a
	// response carries none.
	tok, err := r.conf.TokenSource(r.ctx, &oauth2.Token{RefreshToken: r.refreshToken}).Token()
	if err != nil {
		return nil, fmt.Errorf("gatehouse: refresh the access token: %w", err)
	}
	r.refreshToken = tok.RefreshToken
	return tok, nil
}

// logout hands over the current refresh token and stops refreshing.
func (r *refresher) logout() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.loggedOut = true
	return r.refreshToken
}

// Logout ends the login: it revokes the current refresh token at
// serverURL + "/revoke" (RFC 7009 §2.1), which in gatehouse revokes the
// login's whole token family, its access tokens included, and stops the
// session from refreshing. Requests made afterwards fail with ErrLoggedOut
// once the access token expires, and are refused by gatehouse before that.
func (s *Session) Logout(ctx context.Context) error {
	rt := s.refresher.logout()
	hint := "refresh_token"
	body := RevocationRequest{Token: rt, TokenTypeHint: &hint}
	if s.cfg.clientID != "" {
		body.ClientId = &s.cfg.clientID
	}
	if s.cfg.clientSecret != "" {
		body.ClientSecret = &s.cfg.clientSecret
	}
	resp, err := s.revoker.RevokeTokenWithFormdataBodyWithResponse(ctx, body)
	if err != nil {
		return fmt.Errorf("gatehouse: log out: %w", err)
	}
	if resp.StatusCode() != http.StatusOK {
		return fmt.Errorf("gatehouse: log out: %s: %s", resp.Status(), strings.TrimSpace(string(resp.Body)))
	}
	return nil
}
