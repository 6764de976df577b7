package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/go-chi/cors"

	"github.com/gatehouse/gatehouse/api"
	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/auth"
)

// MaxBodyBytes caps request bodies; larger ones get 413.
const MaxBodyBytes = 64 << 10

// Deps are what the HTTP layer needs from the rest of gatehouse.
type Deps struct {
	Users   UserService
	Tokens  TokenIssuer
	Keys    KeyPublisher
	Clients ClientService
	// Sessions lists and ends logins.
	Sessions SessionService
	// Issuer is the server's public URL, the base of the RFC 8414 document.
	Issuer string
	// TrustedProxies may set X-Forwarded-For (the client address used for
	// login throttling).
	TrustedProxies []netip.Prefix
	// CORSOrigins may call the API from browsers on other origins; none
	// when empty.
	CORSOrigins []string
	// Audit records account and client changes; nil discards.
	Audit *audit.Recorder
	// Requests counts finished requests; nil counts nothing.
	Requests RequestObserver
	// Metrics, when set, is served at /metrics (set it to nil to serve
	// metrics on a separate listener instead).
	Metrics http.Handler
	// Version is reported by /healthz.
	Version string
	// Authenticate is the bearer validator kin-openapi calls for each
	// operation's security requirement.
	Authenticate openapi3filter.AuthenticationFunc
	// Throttle limits password guessing on the paths other than the
	// token endpoint that check a password; nil means none.
	Throttle PasswordThrottle
	// Load, when set, follows the requests other than those to the token
	// endpoint: what a password hash competes with for the CPU
	// (users.Options.Contended).
	Load *Load
	// Ready reports whether the server can serve (store reachable, keys
	// loaded).
	Ready  func(ctx context.Context) error
	Logger *slog.Logger
	// AccessLog writes a record per request; nil writes "request"
	// records to Logger.
	AccessLog AccessLogger
}

var loadSpec = sync.OnceValues(func() (*openapi3.T, error) {
	doc, err := GetSwagger()
	if err != nil {
		return nil, fmt.Errorf("load embedded OpenAPI document: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("embedded OpenAPI document is invalid: %w", err)
	}
	return doc, nil
})

// Spec returns the OpenAPI document the server was generated from, parsed
// once. Callers must not modify it.
func Spec() (*openapi3.T, error) { return loadSpec() }

// SpecScopes returns the scopes the spec's oauth2 password flow declares,
// sorted: every scope the server knows.
func SpecScopes(doc *openapi3.T) []string {
	return auth.SchemeScopes(doc, oauthScheme)
}

// oauthScheme is the security scheme of api/openapi.yaml.
const oauthScheme = "oauth2"

// NewHandler builds the whole HTTP surface.
func NewHandler(d Deps) (http.Handler, error) {
	doc, err := Spec()
	if err != nil {
		return nil, err
	}
	specJSON, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode OpenAPI document: %w", err)
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	ew := errorWriter{log: d.Logger}

	r := chi.NewRouter()
	validator := newSpecValidator(doc, r, d.Authenticate, ew, MaxBodyBytes)
	r.Use(recoverer(ew))
	if len(d.CORSOrigins) > 0 {
		// Before validation: preflight requests carry no token.
		r.Use(cors.Handler(cors.Options{
			AllowedOrigins: d.CORSOrigins,
			AllowedMethods: []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete},
			AllowedHeaders: []string{"Authorization", "Content-Type"},
			ExposedHeaders: []string{"WWW-Authenticate", "Location", "Retry-After"},
			MaxAge:         600,
		}))
	}
	r.Use(securityHeaders, validator.middleware, middleware.GetHead)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, http.StatusNotFound, "no such resource", nil)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		// RFC 9110 §15.5.6: a 405 lists the methods the resource has.
		w.Header().Set("Allow", strings.Join(allowedMethods(r, req), ", "))
		writeProblem(w, http.StatusMethodNotAllowed, "method not allowed on this resource", nil)
	})

	if d.Metrics != nil {
		r.Get("/metrics", d.Metrics.ServeHTTP)
	}

	// The root points a newcomer (or a browser) at what there is to read.
	// Exactly "/": chi also routes paths such as //users here.
	root := serveBytes("application/json", rootJSON)
	r.Get("/", func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/" || req.URL.RawPath != "" {
			writeProblem(w, http.StatusNotFound, "no such resource", nil)
			return
		}
		root(w, req)
	})

	// The spec itself: the exact bytes as written, and as JSON.
	r.Get("/openapi.yaml", serveBytes("application/yaml", api.OpenAPI))
	r.Get("/openapi.json", serveBytes("application/json", specJSON))
	// Swagger UI over it, whose Authorize button runs the password flow.
	docs := newDocs("/openapi.json")
	r.Get("/docs", docs.ServeHTTP)
	r.Get("/docs/*", docs.ServeHTTP)

	// Every operation of api/openapi.yaml (/token, /users…, /healthz, /readyz).
	h := &Handlers{
		users:    d.Users,
		tokens:   d.Tokens,
		keys:     d.Keys,
		clients:  d.Clients,
		sessions: d.Sessions,
		meta:     NewServerMetadata(d.Issuer, SpecScopes(doc)),
		ready:    d.Ready,
		proxies:  d.TrustedProxies,
		throttle: d.Throttle,
		audit:    d.Audit,
		version:  d.Version,
	}
	if h.health, err = newHealth(d.Version); err != nil {
		return nil, fmt.Errorf("encode the health answer: %w", err)
	}
	strict := NewStrictHandlerWithOptions(h, nil, StrictHTTPServerOptions{
		RequestErrorHandlerFunc:  ew.write,
		ResponseErrorHandlerFunc: ew.write,
	})
	HandlerWithOptions(formOperations{ServerInterface: strict, h: h, ew: ew}, ChiServerOptions{
		BaseRouter:       r,
		ErrorHandlerFunc: ew.write,
	})
	access := d.AccessLog
	if access == nil {
		access = slogAccessLog{d.Logger}
	}
	return &server{mux: r, access: access, obs: d.Requests, proxies: d.TrustedProxies, load: d.Load}, nil
}

var routableMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions,
}

// allowedMethods lists the methods mux routes for req's path: HEAD
// wherever GET is (middleware.GetHead).
func allowedMethods(mux *chi.Mux, req *http.Request) []string {
	path := req.URL.RawPath
	if path == "" {
		path = req.URL.Path
	}
	var allowed []string
	for _, m := range routableMethods {
		routed := mux.Find(chi.NewRouteContext(), m, path) != ""
		if m == http.MethodHead && !routed {
			routed = mux.Find(chi.NewRouteContext(), http.MethodGet, path) != ""
		}
		if routed {
			allowed = append(allowed, m)
		}
	}
	return allowed
}

// rootJSON is GET /'s answer: where the documentation, the spec and the
// RFC 8414 metadata are.
var rootJSON = []byte(`{"name":"gatehouse","docs":"/docs","openapi":"/openapi.yaml","openapi_json":"/openapi.json","metadata":"/.well-known/oauth-authorization-server","jwks":"/.well-known/jwks.json","token_endpoint":"/token"}` + "\n")

func serveBytes(contentType string, b []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		_, _ = w.Write(b)
	}
}

// The values of securityHeaders, shared by every response rather than
// allocated for each: net/http only reads them, and Header.Set replaces
// the slice rather than writing into it. Full slices (len == cap), so an
// Add appends to a copy.
var (
	nosniff      = []string{"nosniff"}
	noReferrer   = []string{"no-referrer"}
	noStoreValue = []string{"no-store"}
)

// securityHeaders sets headers every response should carry. API responses
// hold tokens or user data, so none may be cached.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["X-Content-Type-Options"] = nosniff
		h["Referrer-Policy"] = noReferrer
		h["Cache-Control"] = noStoreValue
		next.ServeHTTP(w, r)
	})
}

// recoverer turns a panic into a logged 500 instead of a dropped connection.
func recoverer(ew errorWriter) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if p := recover(); p != nil {
					if p == http.ErrAbortHandler {
						panic(p)
					}
					ew.write(w, r, fmt.Errorf("panic: %v", p))
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}
