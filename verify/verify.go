// Package verify protects Go services that accept gatehouse access tokens:
// it is to an HTTP handler what FastAPI's get_current_user dependency is to
// a FastAPI route.
//
// A Verifier reads gatehouse's authorization server metadata (RFC 8414),
// caches its JWK Set (RFC 7517) and checks access tokens locally as
// RFC 9068 §4 asks: the `typ` header, the signature under an allowed
// asymmetric algorithm and a published key, the issuer, the audience and
// the lifetime. It follows gatehouse's key rotation: a token signed by an
// unknown key makes it fetch the JWK Set again, at most once per
// MinRefreshInterval however many requests ask, and the set is refreshed
// every CacheTTL so retired keys disappear.
//
// Middleware answers refused requests as gatehouse itself does (RFC 6750
// §3) and hands the token's claims to the handler through the request
// context (ClaimsFrom). Local verification cannot see a revocation; routes
// that must, add RequireActive, which asks gatehouse's introspection
// endpoint (RFC 7662) about every request.
package verify

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"

	"github.com/gatehouse/gatehouse/bearer"
	"github.com/gatehouse/gatehouse/jwtdate"
)

// Defaults of Config.
const (
	// DefaultMinRefreshInterval is the shortest time between two fetches
	// of the JWK Set.
	DefaultMinRefreshInterval = 10 * time.Second
	// DefaultCacheTTL is how long a fetched JWK Set is used before it is
	// fetched again.
	DefaultCacheTTL = 5 * time.Minute
	// DefaultLeeway absorbs clock skew between gatehouse and the resource
	// server when checking exp, nbf and iat; gatehouse allows the same.
	DefaultLeeway = 30 * time.Second
	// DefaultRealm is the realm of the RFC 6750 §3 challenges, gatehouse's
	// own.
	DefaultRealm = "gatehouse"
)

// DefaultAlgorithms are the `alg` values accepted when Config.Algorithms is
// empty: those gatehouse signs with (RFC 7518 §3.3, §3.4; RFC 8037 §3.1).
var DefaultAlgorithms = []string{"RS256", "ES256", "EdDSA"}

// supportedAlgorithms are the asymmetric signature algorithms of RFC 7518
// §3.1 and RFC 8037 §3.1. "none" and the HMAC algorithms are absent on
// purpose: a resource server holds no shared secret, and accepting HS256
// would let anyone sign with the public key (RFC 8725 §2.1).
var supportedAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// maxTokenBytes bounds the work a hostile token can cause before its
// signature is checked; gatehouse uses the same bound.
const maxTokenBytes = 8 << 10

// maxDocumentBytes bounds the metadata, JWK Set and introspection
// responses read.
const maxDocumentBytes = 1 << 20

// fetchTimeout bounds each request to gatehouse when Config.HTTPClient has
// no timeout of its own.
const fetchTimeout = 10 * time.Second

// accessTokenType is the `typ` of RFC 9068 §2.1.
const accessTokenType = "at+jwt"

// Config says which tokens a Verifier accepts and how it reaches gatehouse.
type Config struct {
	// Issuer is gatehouse's issuer identifier (its GATEHOUSE_ISSUER, the
	// `iss` of its tokens). The metadata is fetched from
	// Issuer + "/.well-known/oauth-authorization-server" and must name
	// exactly this issuer (RFC 8414 §3.3). Required.
	Issuer string
	// Audience is the `aud` a token must contain (RFC 9068 §4): gatehouse's
	// GATEHOUSE_AUDIENCE, "gatehouse" unless configured. Required.
	Audience string
	// Algorithms is the allow-list of `alg` values (RFC 8725 §3.1);
	// DefaultAlgorithms when empty. Only asymmetric algorithms are
	// accepted: never "none", never HS256.
	Algorithms []string
	// HTTPClient fetches the metadata and the JWK Set and calls the
	// introspection endpoint; http.DefaultClient when nil.
	HTTPClient *http.Client
	// MinRefreshInterval is the shortest time between two JWK Set fetches,
	// whatever triggered them, so that tokens naming made-up key ids
	// cannot make the Verifier hammer gatehouse; DefaultMinRefreshInterval
	// when 0. A token of a key published less than this after the last
	// fetch is refused until the interval has passed; gatehouse publishes
	// keys GATEHOUSE_KEY_PREPUBLISH (15 minutes) before signing with them,
	// so this does not happen in practice.
	MinRefreshInterval time.Duration
	// CacheTTL is how long a fetched JWK Set is trusted before the next
	// Verify refreshes it in the background; DefaultCacheTTL when 0.
	CacheTTL time.Duration
	// Leeway is the clock skew allowed on exp, nbf and iat; DefaultLeeway
	// when 0, none when negative.
	Leeway time.Duration
	// Now is the clock tokens are checked against; time.Now when nil. The
	// JWK Set cache keeps its own (monotonic) time.
	Now func() time.Time
	// Realm names the protection space in challenges (RFC 6750 §3);
	// DefaultRealm when empty.
	Realm string
	// Logger receives what no request can report: failed JWK Set fetches
	// and failed introspection requests. Discarded when nil.
	Logger *slog.Logger
	// Introspection, when set, lets RequireActive and Active ask gatehouse
	// whether a token is still active (RFC 7662). The metadata must then
	// name an introspection_endpoint.
	Introspection *IntrospectionConfig
}

// IntrospectionConfig authenticates the Verifier at gatehouse's
// introspection endpoint, which requires a bearer token holding the scope
// tokens:introspect. Set exactly one of Token and TokenSource.
type IntrospectionConfig struct {
	// Token is a gatehouse access token holding tokens:introspect. It
	// expires like any other (GATEHOUSE_ACCESS_TOKEN_TTL), so it suits
	// short-lived programs and tests.
	Token string
	// TokenSource returns such a token, refreshing it; for example the
	// TokenSource of a client.Session logged in as a service account.
	TokenSource oauth2.TokenSource
}

// check fills in the defaults and reports every problem of c at once.
func (c Config) check() (Config, error) {
	var errs []error
	if c.Issuer == "" {
		errs = append(errs, errors.New("Issuer is required"))
	} else if u, err := url.Parse(c.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		// RFC 8414 §2: an https URL without query or fragment (http is
		// accepted for local development).
		errs = append(errs, fmt.Errorf("Issuer %q must be an http(s) URL without query or fragment", c.Issuer))
	}
	if c.Audience == "" {
		errs = append(errs, errors.New("Audience is required (RFC 9068 §4): gatehouse's GATEHOUSE_AUDIENCE, \"gatehouse\" by default"))
	}
	if len(c.Algorithms) == 0 {
		c.Algorithms = DefaultAlgorithms
	}
	c.Algorithms = slices.Clone(c.Algorithms)
	for _, alg := range c.Algorithms {
		if !slices.Contains(supportedAlgorithms, alg) {
			errs = append(errs, fmt.Errorf("algorithm %q is not allowed (want an asymmetric one of %s)", alg, strings.Join(supportedAlgorithms, ", ")))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"MinRefreshInterval", c.MinRefreshInterval}, {"CacheTTL", c.CacheTTL}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative", d.name))
		}
	}
	if c.MinRefreshInterval == 0 {
		c.MinRefreshInterval = DefaultMinRefreshInterval
	}
	if c.CacheTTL == 0 {
		c.CacheTTL = DefaultCacheTTL
	}
	switch {
	case c.Leeway == 0:
		c.Leeway = DefaultLeeway
	case c.Leeway < 0:
		c.Leeway = 0
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.HTTPClient == nil {
		c.HTTPClient = http.DefaultClient
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Realm == "" {
		c.Realm = DefaultRealm
	}
	if c.Realm != bearer.Sanitize(c.Realm) {
		errs = append(errs, fmt.Errorf("Realm %q must be printable ASCII without quotes or backslashes (RFC 6750 §3)", c.Realm))
	}
	if in := c.Introspection; in != nil && (in.Token == "") == (in.TokenSource == nil) {
		errs = append(errs, errors.New("Introspection needs exactly one of Token and TokenSource"))
	}
	return c, errors.Join(errs...)
}

// Verifier checks gatehouse access tokens. It is safe for concurrent use;
// make one per process and share it.
type Verifier struct {
	cfg    Config
	meta   metadata
	keys   *keySet
	parser *jwt.Parser
}

// metadata is the part of RFC 8414 §2 the Verifier uses.
type metadata struct {
	Issuer                string `json:"issuer"`
	JWKSURI               string `json:"jwks_uri"`
	IntrospectionEndpoint string `json:"introspection_endpoint"`
}

// New fetches gatehouse's authorization server metadata (RFC 8414 §3) from
// cfg.Issuer + "/.well-known/oauth-authorization-server", checks that it
// names cfg.Issuer (§3.3: otherwise an attacker's metadata could pass for
// it), and fetches the JWK Set at its jwks_uri. ctx bounds these requests
// only. Every problem of cfg is reported at once.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	cfg, err := cfg.check()
	if err != nil {
		return nil, fmt.Errorf("verify: invalid config: %w", err)
	}
	v := &Verifier{cfg: cfg}
	if err := v.discover(ctx); err != nil {
		return nil, err
	}
	v.keys = newKeySet(cfg.HTTPClient, v.meta.JWKSURI, cfg.MinRefreshInterval, cfg.CacheTTL, cfg.Logger)
	if err := v.keys.load(ctx); err != nil {
		return nil, err
	}
	v.parser = jwt.NewParser(
		// Checked before any key is looked up: never "none", never HMAC.
		jwt.WithValidMethods(cfg.Algorithms),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Now),
		jwt.WithStrictDecoding(),
	)
	return v, nil
}

func (v *Verifier) discover(ctx context.Context) error {
	where := strings.TrimSuffix(v.cfg.Issuer, "/") + "/.well-known/oauth-authorization-server"
	var m metadata
	if err := getJSON(ctx, v.cfg.HTTPClient, where, &m); err != nil {
		return fmt.Errorf("verify: authorization server metadata: %w", err)
	}
	if m.Issuer != v.cfg.Issuer {
		return fmt.Errorf("verify: the metadata at %s names the issuer %q, want %q (RFC 8414 §3.3)", where, m.Issuer, v.cfg.Issuer)
	}
	if err := checkEndpoint(m.JWKSURI); err != nil {
		return fmt.Errorf("verify: the metadata's jwks_uri: %w", err)
	}
	if v.cfg.Introspection != nil {
		if err := checkEndpoint(m.IntrospectionEndpoint); err != nil {
			return fmt.Errorf("verify: Introspection is configured, but the metadata's introspection_endpoint: %w", err)
		}
	}
	v.meta = m
	return nil
}

func checkEndpoint(s string) error {
	if s == "" {
		return errors.New("missing")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", s)
	}
	return nil
}

// getJSON GETs a JSON document of at most maxDocumentBytes.
func getJSON(ctx context.Context, hc *http.Client, where string, v any) error {
	ctx, cancel := withFetchTimeout(ctx, hc)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, where, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return decodeJSON(resp, where, v)
}

func decodeJSON(resp *http.Response, where string, v any) error {
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentBytes+1))
	if err != nil {
		return fmt.Errorf("GET %s: %w", where, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", where, resp.Status)
	}
	if len(body) > maxDocumentBytes {
		return fmt.Errorf("%s: the response exceeds %d bytes", where, maxDocumentBytes)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	return nil
}

func withFetchTimeout(ctx context.Context, hc *http.Client) (context.Context, context.CancelFunc) {
	if hc.Timeout > 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, fetchTimeout)
}

// Claims are the claims of a verified access token (RFC 9068 §2.2).
type Claims struct {
	// Issuer is `iss`, the Config's Issuer.
	Issuer string
	// Subject is `sub`: the user's stable id (gatehouse's User.id).
	Subject string
	// Username is `preferred_username` (OpenID Connect Core §5.1), the
	// user's lower-case username at the time of issue.
	Username string
	// ClientID is `client_id` (RFC 9068 §2.2, RFC 8693 §4.3): the OAuth 2.0
	// client the token was issued to.
	ClientID string
	// Scopes are the space-separated `scope` (RFC 9068 §2.2.3) as a list.
	Scopes []string
	// Audience is `aud`; it contains the Config's Audience.
	Audience []string
	// ID is `jti`, unique per token: what revocation refers to.
	ID string
	// ExpiresAt is `exp`.
	ExpiresAt time.Time
	// IssuedAt is `iat`.
	IssuedAt time.Time
	// NotBefore is `nbf`, zero when absent.
	NotBefore time.Time
}

// HasScope reports whether the token was granted scope s (RFC 6749 §3.3).
func (c *Claims) HasScope(s string) bool {
	return slices.Contains(c.Scopes, s)
}

// jwtClaims is the JSON form of Claims.
type jwtClaims struct {
	jwt.RegisteredClaims
	ClientID          string `json:"client_id"`
	Scope             string `json:"scope"`
	PreferredUsername string `json:"preferred_username"`
}

// UnmarshalJSON decodes the claims and refuses an `exp`, `nbf` or `iat`
// that is present but not a JSON number (RFC 7519 §2, jwtdate.Strict).
func (c *jwtClaims) UnmarshalJSON(b []byte) error {
	type plain jwtClaims // without this method
	if err := json.Unmarshal(b, (*plain)(c)); err != nil {
		return err
	}
	return jwtdate.Strict(b, &c.RegisteredClaims)
}

// Verify checks an access token as RFC 9068 §4 asks and returns its
// claims: `typ` is at+jwt or application/at+jwt (case-insensitive, §2.1);
// `alg` is in Config.Algorithms and matches the key's alg and type
// (RFC 8725 §3.1); `kid` names a key of gatehouse's JWK Set, fetched again
// once when it is unknown; no `crit` header (RFC 7515 §4.1.11); the
// signature verifies; `iss` is Config.Issuer; `aud` contains
// Config.Audience; `exp`, `iat` and, when present, `nbf` hold at
// Config.Now within Config.Leeway, and each of them present is a JSON
// number (RFC 7519 §2 NumericDate, not a string); `sub`, `client_id` and
// `jti` are present (§2.2). A refused token is an *Error with Code invalid_token,
// wrapping the cause.
//
// Verify does not see revocations; Active does.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	if token == "" {
		return nil, invalidToken("the access token is empty", nil)
	}
	if len(token) > maxTokenBytes {
		return nil, invalidToken("the access token is too large", nil)
	}
	v.keys.refreshIfStale(ctx)
	var jc jwtClaims
	_, err := v.parser.ParseWithClaims(token, &jc, func(t *jwt.Token) (any, error) {
		return v.lookup(ctx, t)
	})
	if err != nil {
		return nil, invalidToken(describe(err), err)
	}
	if jc.Subject == "" || jc.ID == "" || jc.ClientID == "" || jc.IssuedAt == nil {
		return nil, invalidToken("the access token lacks sub, client_id, iat or jti", errMissingClaim)
	}
	c := &Claims{
		Issuer:    jc.Issuer,
		Subject:   jc.Subject,
		Username:  jc.PreferredUsername,
		ClientID:  jc.ClientID,
		Scopes:    strings.Fields(jc.Scope),
		Audience:  []string(jc.Audience),
		ID:        jc.ID,
		ExpiresAt: jc.ExpiresAt.Time,
		IssuedAt:  jc.IssuedAt.Time,
	}
	if jc.NotBefore != nil {
		c.NotBefore = jc.NotBefore.Time
	}
	return c, nil
}

// Causes Verify wraps, for errors.Is.
var (
	// ErrWrongType: the `typ` header is not at+jwt (RFC 9068 §4).
	ErrWrongType = errors.New("verify: the token is not an access token (typ at+jwt)")
	// ErrNoKeyID: the header names no `kid`; gatehouse always sets one.
	ErrNoKeyID = errors.New("verify: the token names no key id")
	// ErrUnknownKey: no key of the JWK Set has the token's `kid`, even
	// after fetching the set again when MinRefreshInterval allowed it.
	ErrUnknownKey = errors.New("verify: the token's key is unknown or retired")
	// ErrKeyMismatch: the key with the token's `kid` is not one for its
	// `alg` (RFC 8725 §3.1).
	ErrKeyMismatch = errors.New("verify: the token's algorithm does not match its key")
	// ErrCritical: the token has a `crit` header, none of which this
	// package understands (RFC 7515 §4.1.11).
	ErrCritical = errors.New("verify: unsupported critical header")
)

var errMissingClaim = errors.New("verify: missing required claim")

// lookup is the jwt.Keyfunc: the key for the token's `kid`, after the
// header checks of RFC 9068 §4. The alg allow-list was checked by the
// parser before it calls here.
func (v *Verifier) lookup(ctx context.Context, t *jwt.Token) (any, error) {
	typ, _ := t.Header["typ"].(string)
	if !strings.EqualFold(typ, accessTokenType) && !strings.EqualFold(typ, "application/"+accessTokenType) {
		return nil, ErrWrongType
	}
	if _, ok := t.Header["crit"]; ok {
		return nil, ErrCritical
	}
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, ErrNoKeyID
	}
	alg := t.Method.Alg()
	known, keys := v.keys.lookup(kid, alg)
	if !known {
		// A rotation may have published it since the last fetch.
		v.keys.refreshNow(ctx)
		known, keys = v.keys.lookup(kid, alg)
	}
	switch {
	case !known:
		return nil, ErrUnknownKey
	case len(keys) == 0:
		return nil, ErrKeyMismatch
	case len(keys) == 1:
		return keys[0], nil
	default:
		// RFC 7517 §4.5 lets a set reuse a kid (for different key types).
		set := jwt.VerificationKeySet{}
		for _, k := range keys {
			set.Keys = append(set.Keys, k)
		}
		return set, nil
	}
}

// keyFits reports whether key is of the type and size alg needs
// (RFC 7518 §3.3-3.5, RFC 8037 §3.1).
func keyFits(alg string, key any) bool {
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		k, ok := key.(*rsa.PublicKey)
		// RFC 7518 §3.3: 2048 bits or larger.
		return ok && k.N.BitLen() >= 2048
	case "ES256":
		k, ok := key.(*ecdsa.PublicKey)
		return ok && k.Curve == elliptic.P256()
	case "ES384":
		k, ok := key.(*ecdsa.PublicKey)
		return ok && k.Curve == elliptic.P384()
	case "ES512":
		k, ok := key.(*ecdsa.PublicKey)
		return ok && k.Curve == elliptic.P521()
	case "EdDSA":
		k, ok := key.(ed25519.PublicKey)
		return ok && len(k) == ed25519.PublicKeySize
	}
	return false
}

// describe gives the client a short reason without echoing the token.
func describe(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "the access token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "the access token is not valid yet"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "the access token lacks a required claim"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "the access token has the wrong issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "the access token is not for this audience"
	case errors.Is(err, ErrWrongType):
		return "the token is not an access token"
	case errors.Is(err, ErrUnknownKey), errors.Is(err, ErrNoKeyID):
		return "the access token was signed by an unknown key"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "the access token is malformed"
	default:
		return "the access token is invalid"
	}
}
