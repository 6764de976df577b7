package auth

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse/gatehouse/bearer"
	"github.com/gatehouse/gatehouse/internal/storage"
)

// maxTokenBytes bounds the work a hostile token can cause before its
// signature is checked.
const maxTokenBytes = 8 << 10

// DefaultLeeway absorbs clock skew between gatehouse replicas when checking
// exp, nbf and iat.
const DefaultLeeway = 30 * time.Second

// ValidatorConfig says which tokens a Validator accepts.
type ValidatorConfig struct {
	Issuer   string
	Audience string
	Leeway   time.Duration
	Now      func() time.Time
	// Revocations, when set, refuses tokens of revoked sessions and
	// revoked tokens (RFC 7009).
	Revocations *Revocations
	// Users, when set, refuses tokens of disabled or deleted users and
	// gives handlers the user without a store read.
	Users *UserView
	// Clients, when set, lets a registered confidential client call an
	// operation whose spec offers an `http` basic alternative (the
	// introspection endpoint) with its own credentials.
	Clients *Clients
	// ClientView, when set, accepts tokens of the client-credentials
	// grant on operations whose spec marks them (ClientTokensExtension)
	// while their client, grant, secret and scopes stand; without it such
	// tokens are refused everywhere.
	ClientView *ClientView
	// CacheSize is how many verified tokens are remembered so that their
	// signature is checked once, not on every request; 0 turns the cache
	// off. DefaultCacheSize suits a server. Expiry, revocation and key
	// retirement are checked on every use all the same.
	CacheSize int
}

// Validator checks bearer access tokens (RFC 6750) issued with keys.
type Validator struct {
	keys    *Keys
	parser  *jwt.Parser
	deny    *Revocations
	users   *UserView
	clients *Clients
	// clientView holds the clients of client-credentials tokens.
	clientView *ClientView
	now        func() time.Time
	leeway     time.Duration
	cache      *tokenCache // nil when off
	// lookup finds the verification key: keys.Lookup, wrapped by tests
	// that count signature checks.
	lookup jwt.Keyfunc
}

// NewValidator prepares a validator; the parser and the key table are built
// once, not per request.
func NewValidator(keys *Keys, cfg ValidatorConfig) *Validator {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	parser := jwt.NewParser(
		// The allow-list is exactly the algorithms of the loaded keys: never
		// "none", never one an attacker picks.
		jwt.WithValidMethods(keys.Algorithms()),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Now),
		jwt.WithStrictDecoding(),
	)
	return &Validator{
		keys:       keys,
		parser:     parser,
		deny:       cfg.Revocations,
		users:      cfg.Users,
		clients:    cfg.Clients,
		clientView: cfg.ClientView,
		now:        cfg.Now,
		leeway:     cfg.Leeway,
		cache:      newTokenCache(cfg.CacheSize),
		lookup:     keys.Lookup,
	}
}

// Verify checks an access token's signature, `typ` (RFC 9068 §4), issuer,
// audience, lifetime and revocation, and returns its claims. Every failure is an
// invalid_token *BearerError. The lifetime's exp, nbf and iat must be JSON
// numbers (RFC 7519 §2 NumericDate; see Claims.UnmarshalJSON): a token
// with "exp":"1999999999" is malformed.
//
// With the cache on, a token verified before is answered from it: its
// signature, typ, issuer and audience cannot have changed, and its
// lifetime, revocation and key are checked again. The claims returned are
// the caller's own copy either way.
func (v *Validator) Verify(token string) (*Claims, error) {
	if len(token) > maxTokenBytes {
		return nil, invalidToken("the access token is too large")
	}
	if v.cache == nil {
		claims, _, err := v.verify(token)
		return claims, err
	}
	if e := v.cached(token); e != nil {
		// A revoked token stays cached: refusing it again is as cheap.
		if v.revoked(&e.claims) {
			return nil, errRevoked()
		}
		claims := e.claims
		return &claims, nil
	}
	claims, kid, err := v.verify(token)
	if err != nil {
		// Failures are not cached: a bad token costs a check every time,
		// bounded by maxTokenBytes.
		return nil, err
	}
	v.cache.put(token, newCacheEntry(claims, kid, v.leeway), v.now())
	return claims, nil
}

// verify is Verify without the cache; it also returns the kid of the key
// that checked the signature.
func (v *Validator) verify(token string) (*Claims, string, error) {
	if !bearer.ValidSyntax(token) {
		return nil, "", invalidToken("the access token is malformed")
	}
	claims := &Claims{}
	var kid string
	_, err := v.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); !isAccessTokenType(typ) {
			return nil, errWrongType
		}
		// RFC 7515 §4.1.11: we understand no extension, so any crit fails.
		if _, ok := t.Header["crit"]; ok {
			return nil, errors.New("unsupported critical header")
		}
		kid, _ = t.Header["kid"].(string)
		return v.lookup(t)
	})
	if err != nil {
		return nil, "", invalidToken(describeJWTError(err))
	}
	if claims.Subject == "" || claims.ID == "" || claims.SessionID == "" {
		// Every access token belongs to a session: one without `sid` was
		// issued before sessions, or not by gatehouse.
		return nil, "", invalidToken("the access token lacks sub, jti or sid")
	}
	if v.revoked(claims) {
		return nil, "", errRevoked()
	}
	return claims, kid, nil
}

// revoked reports whether the token's session or the token itself was
// revoked.
func (v *Validator) revoked(c *Claims) bool {
	return v.deny != nil && (v.deny.SessionRevoked(c.SessionID) || v.deny.TokenRevoked(c.ID))
}

func errRevoked() *BearerError { return invalidToken("the access token was revoked") }

var errWrongType = errors.New("not an access token")

// isAccessTokenType accepts "at+jwt" and its media-type form, compared
// case-insensitively (RFC 9068 §4, RFC 7515 §4.1.9).
func isAccessTokenType(typ string) bool {
	return strings.EqualFold(typ, AccessTokenType) || strings.EqualFold(typ, "application/"+AccessTokenType)
}

// describeJWTError gives the client a short reason without echoing input.
func describeJWTError(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "the access token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "the access token is not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "the access token has the wrong issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "the access token is not for this audience"
	case errors.Is(err, errWrongType):
		return "the token is not an access token"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "the access token is malformed"
	default:
		return "the access token is invalid"
	}
}

// Authenticate is an openapi3filter.AuthenticationFunc. kin-openapi calls it
// for each security requirement of the matched operation, with the scopes
// the OpenAPI document lists there, so which scopes an operation needs is
// read from the spec. On success the claims go into the holder that
// WithClaimsHolder put in the request context.
func (v *Validator) Authenticate(ctx context.Context, input *openapi3filter.AuthenticationInput) error {
	h, _ := ctx.Value(HolderKey).(*ClaimsHolder)
	if h == nil {
		return errors.New("no claims holder in the request context")
	}
	if isBasicScheme(input.SecurityScheme) {
		return v.authenticateService(ctx, h, input)
	}
	if input.SecurityScheme == nil || input.SecurityScheme.Type != "oauth2" {
		return errors.New("unsupported security scheme " + input.SecuritySchemeName)
	}
	// The token's b64token syntax is checked by Verify, on a cache miss
	// only: a token in the cache was verified, so its syntax is sound,
	// and checking an RS256 token byte by byte cost a tenth of a cached
	// request.
	token, err := bearer.Token(input.RequestValidationInput.Request)
	if err != nil {
		return err
	}
	claims, err := v.Verify(token)
	if err != nil {
		return err
	}
	if claims.ClientToken() {
		if !acceptsClientTokens(input.RequestValidationInput.Route) {
			return &BearerError{Status: http.StatusForbidden, Code: bearer.InsufficientScope, Scope: strings.Join(input.Scopes, " "),
				Description: "this operation acts for a user: a token of the client_credentials grant is refused"}
		}
		if _, err := v.checkClient(ctx, claims); err != nil {
			return err
		}
	} else {
		u, err := v.checkUser(ctx, claims)
		if err != nil {
			return err
		}
		h.user = u
	}
	if !hasScopes(claims.Scope, input.Scopes) {
		return bearer.Insufficient(input.Scopes)
	}
	h.claims = claims
	return nil
}

// checkUser refuses a user's token whose account was disabled or deleted
// (RFC 6750 §3.1 invalid_token), from the in-memory view, and returns the
// account; without a view it checks nothing and returns nil.
func (v *Validator) checkUser(ctx context.Context, c *Claims) (*storage.User, error) {
	if v.users == nil {
		return nil, nil
	}
	u, err := v.users.Get(ctx, c.Subject)
	if err != nil {
		return nil, err
	}
	if u == nil {
		return nil, invalidToken("the token's user no longer exists")
	}
	if u.Disabled {
		return nil, invalidToken("the token's user is disabled")
	}
	return u, nil
}

// checkClient refuses a token of the client-credentials grant whose
// client was deleted, lost the grant or a scope the token carries, or no
// longer holds the secret the token was obtained with (its sid), from the
// in-memory view; it returns the client.
func (v *Validator) checkClient(ctx context.Context, c *Claims) (*storage.Client, error) {
	if v.clientView == nil {
		return nil, invalidToken("tokens of the client_credentials grant are not accepted here")
	}
	cl, err := v.clientView.Get(ctx, c.ClientID)
	if err != nil {
		return nil, err
	}
	switch {
	case cl == nil:
		return nil, invalidToken("the token's client no longer exists")
	case !cl.Allows(GrantClientCredentials):
		return nil, invalidToken("the token's client may no longer use the client_credentials grant")
	case !slices.ContainsFunc(cl.Secrets, func(s storage.ClientSecret) bool { return s.ID == c.SessionID }):
		return nil, invalidToken("the client secret the token was obtained with was removed")
	}
	for s := range strings.FieldsSeq(c.Scope) {
		if !slices.Contains(cl.ServiceScopes, s) {
			return nil, invalidToken("the token's client no longer holds the scope " + s)
		}
	}
	return cl, nil
}

// ClientTokensExtension is the operation extension of the OpenAPI
// document that lets tokens of the client-credentials grant call an
// operation (`x-gatehouse-client-tokens: true`); every other operation
// acts for a user and refuses them.
const ClientTokensExtension = "x-gatehouse-client-tokens"

func acceptsClientTokens(route *routers.Route) bool {
	if route == nil || route.Operation == nil {
		return false
	}
	on, _ := route.Operation.Extensions[ClientTokensExtension].(bool)
	return on
}

var _ openapi3filter.AuthenticationFunc = (*Validator)(nil).Authenticate

// hasScopes reports whether the space-separated scope claim grants every
// scope in need, without splitting it (this runs on every request).
func hasScopes(granted string, need []string) bool {
	for _, s := range need {
		if !hasScope(granted, s) {
			return false
		}
	}
	return true
}

// hasScope is Claims.HasScope without the allocation of strings.Fields.
func hasScope(granted, s string) bool {
	for have := range strings.FieldsSeq(granted) {
		if have == s {
			return true
		}
	}
	return false
}

// BearerToken extracts the token from the Authorization header and checks
// its syntax, by package bearer's rule (RFC 6750 §2.1, §3.1).
func BearerToken(r *http.Request) (string, error) {
	token, err := bearer.Token(r)
	if err != nil {
		return "", err
	}
	if !bearer.ValidSyntax(token) {
		return "", invalidToken("the access token is malformed")
	}
	return token, nil
}

type holderKey struct{}

// HolderKey is the context key a ClaimsHolder is found under: a context
// that embeds its own holder (the HTTP layer's request state) answers it
// with the holder's address.
var HolderKey any = holderKey{}

// ClaimsHolder is where Authenticate leaves what it validated for the
// handler: an AuthenticationFunc cannot return values, so the router puts
// an empty holder in the request context before validation (its zero
// value is empty).
type ClaimsHolder struct {
	claims *Claims
	user   *storage.User
	// service is the client that authenticated for itself (the Basic
	// alternative), when no bearer did.
	service *storage.Client
}

// holderContext is both a holder and the context carrying it: one
// allocation instead of two (context.WithValue's and the holder's).
type holderContext struct {
	context.Context
	h ClaimsHolder
}

// Value answers HolderKey with the holder and every other key from the
// parent, as context.WithValue would.
func (c *holderContext) Value(key any) any {
	if key == HolderKey {
		return &c.h
	}
	return c.Context.Value(key)
}

// WithClaimsHolder returns ctx with an empty holder in it.
func WithClaimsHolder(ctx context.Context) context.Context {
	return &holderContext{Context: ctx}
}

// ClaimsFromContext returns the claims of the validated access token. It
// reports false when the request was not authenticated, and handlers of
// protected operations must then refuse (fail closed).
func ClaimsFromContext(ctx context.Context) (*Claims, bool) {
	h, _ := ctx.Value(HolderKey).(*ClaimsHolder)
	if h == nil || h.claims == nil {
		return nil, false
	}
	return h.claims, true
}

// UserFromContext returns the account of the validated access token, as
// the user view holds it (shared: do not change it). It reports false
// when the request was not authenticated or the validator has no view.
func UserFromContext(ctx context.Context) (*storage.User, bool) {
	h, _ := ctx.Value(HolderKey).(*ClaimsHolder)
	if h == nil || h.claims == nil || h.user == nil {
		return nil, false
	}
	return h.user, true
}

// ServiceClientFromContext returns the registered client that
// authenticated with its own credentials (client_secret_basic) on an
// operation whose spec allows it. It reports false when no client did.
func ServiceClientFromContext(ctx context.Context) (*storage.Client, bool) {
	h, _ := ctx.Value(HolderKey).(*ClaimsHolder)
	if h == nil || h.service == nil {
		return nil, false
	}
	return h.service, true
}

// Unauthenticated is the error a handler returns when it finds no claims.
func Unauthenticated() error {
	return missingToken()
}

// SchemeScopes returns the scopes the OpenAPI document declares for the
// oauth2 password flow, sorted: the scopes the server knows.
func SchemeScopes(doc *openapi3.T, scheme string) []string {
	if doc.Components == nil || doc.Components.SecuritySchemes == nil {
		return nil
	}
	ref := doc.Components.SecuritySchemes[scheme]
	if ref == nil || ref.Value == nil || ref.Value.Flows == nil || ref.Value.Flows.Password == nil {
		return nil
	}
	var out []string
	for s := range ref.Value.Flows.Password.Scopes {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}
