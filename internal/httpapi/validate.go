package httpapi

import (
	"context"
	"net/http"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/go-chi/chi/v5"

	"github.com/gatehouse/gatehouse/internal/auth"
)

// oauthOperations are the operationIds of the form-encoded OAuth 2.0
// endpoints, whose client errors take the RFC 6749 §5.2 format.
var oauthOperations = map[string]bool{"issueToken": true, "revokeToken": true, "introspectToken": true}

// specValidator validates each request against the operation of the OpenAPI
// document that chi will route it to, before any handler or parameter
// binding runs: security first (so an unauthenticated malformed request
// gets 401, not 400), then parameters and body.
type specValidator struct {
	mux     *chi.Mux
	routes  map[string]*routers.Route // "METHOD pattern" → operation
	options *openapi3filter.Options
	errors  errorWriter
	maxBody int64
}

func newSpecValidator(doc *openapi3.T, mux *chi.Mux, authn openapi3filter.AuthenticationFunc, ew errorWriter, maxBody int64) *specValidator {
	routes := make(map[string]*routers.Route)
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			routes[method+" "+path] = &routers.Route{Spec: doc, Path: path, PathItem: item, Method: method, Operation: op}
		}
	}
	options := &openapi3filter.Options{AuthenticationFunc: authn}
	options.WithCustomSchemaErrorFunc(func(err *openapi3.SchemaError) string { return err.Reason })
	return &specValidator{mux: mux, routes: routes, options: options, errors: ew, maxBody: maxBody}
}

type routeKey struct{}

// isOAuthEndpoint reports whether r was matched to /token, /revoke or
// /introspect, whose errors take the RFC 6749 §5.2 format.
func isOAuthEndpoint(r *http.Request) bool {
	route, _ := r.Context().Value(routeKey{}).(*routers.Route)
	return route != nil && oauthOperations[route.Operation.OperationID]
}

// routeContexts recycles the chi contexts the middleware looks operations
// up with: one per request otherwise.
var routeContexts = sync.Pool{New: func() any { return chi.NewRouteContext() }}

// find returns the operation chi will route the request to, and the path
// parameters chi will bind (nil when there are none).
func (v *specValidator) find(method, path string) (*routers.Route, map[string]string) {
	rctx := routeContexts.Get().(*chi.Context)
	defer routeContexts.Put(rctx)
	rctx.Reset()
	route := v.routes[method+" "+v.mux.Find(rctx, method, path)]
	if route == nil || len(rctx.URLParams.Keys) == 0 {
		return route, nil
	}
	params := make(map[string]string, len(rctx.URLParams.Keys))
	for i, k := range rctx.URLParams.Keys {
		params[k] = rctx.URLParams.Values[i]
	}
	return route, params
}

func (v *specValidator) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Look the operation up exactly as chi will route the request: on
		// the raw path when it has escapes. Matching on the decoded path
		// instead would let /users/a%2Fb skip validation.
		path := r.URL.RawPath
		if path == "" {
			path = r.URL.Path
		}
		route, params := v.find(r.Method, path)
		if route == nil {
			// Not an operation of the spec: a 404, a 405, or one of the
			// few unversioned routes (/openapi.yaml, …) chi serves itself.
			next.ServeHTTP(w, r)
			return
		}

		ctx := context.WithValue(auth.WithClaimsHolder(r.Context()), routeKey{}, route)
		r = r.WithContext(ctx)
		// kin-openapi reads the whole body before authenticating: bound it.
		if r.ContentLength > v.maxBody {
			v.errors.write(w, r, &http.MaxBytesError{Limit: v.maxBody})
			return
		}
		// A request without a body (net/http gives it http.NoBody) has
		// nothing to bound; wrapping it would also make kin-openapi read
		// and replace it.
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, v.maxBody)
		}

		input := &openapi3filter.RequestValidationInput{
			Request:    r,
			PathParams: params,
			Route:      route,
			Options:    v.options,
		}
		if err := openapi3filter.ValidateRequest(ctx, input); err != nil {
			v.errors.write(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}
