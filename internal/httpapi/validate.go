package httpapi

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/go-chi/chi/v5"
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
	routes  map[opKey]*operation
	options *openapi3filter.Options
	errors  errorWriter
	maxBody int64
}

func newSpecValidator(doc *openapi3.T, mux *chi.Mux, authn openapi3filter.AuthenticationFunc, ew errorWriter, maxBody int64) *specValidator {
	routes := make(map[opKey]*operation)
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			o := &operation{route: &routers.Route{Spec: doc, Path: path, PathItem: item, Method: method, Operation: op}}
			o.security = op.Security
			if o.security == nil {
				o.security = &doc.Security
			}
			o.form, o.formBody = formSchema(op)
			if len(item.Parameters) > 0 {
				o.form = nil
			}
			o.formCheck = compileFormCheck(o.form)
			o.formCredentials = o.form != nil && hasBasicAlternative(doc, o.security)
			if len(op.Parameters) > 0 || len(item.Parameters) > 0 || op.RequestBody != nil {
				// The same operation without its security requirements:
				// kin-openapi's ValidateRequest over it checks the
				// parameters and the body only.
				rest := *op
				rest.Security = &openapi3.SecurityRequirements{}
				o.rest = &routers.Route{Spec: doc, Path: path, PathItem: item, Method: method, Operation: &rest}
			}
			o.static = !strings.Contains(path, "{")
			routes[opKey{method, path}] = o
		}
	}
	options := &openapi3filter.Options{AuthenticationFunc: authn}
	options.WithCustomSchemaErrorFunc(schemaReason)
	return &specValidator{mux: mux, routes: routes, options: options, errors: ew, maxBody: maxBody}
}

// isOAuthEndpoint reports whether r was matched to /token, /revoke or
// /introspect, whose errors take the RFC 6749 §5.2 format.
func isOAuthEndpoint(r *http.Request) bool {
	s := stateOf(r.Context())
	return s != nil && s.route != nil && oauthOperations[s.route.Operation.OperationID]
}

// operation is one operation of the spec, as the validator checks it: its
// security requirements first, with kin-openapi's
// ValidateSecurityRequirements, then, when it has parameters or a body,
// kin-openapi's ValidateRequest over rest, the operation without its
// security. Done in one ValidateRequest, the security step would read
// the whole body into memory to hand each AuthenticationFunc a copy,
// and the body step read it again; the bearer validator reads headers
// only, so the body is kept from the security step, and a request that
// fails it is refused without its body being read at all.
type operation struct {
	route    *routers.Route
	security *openapi3.SecurityRequirements
	rest     *routers.Route // nil: nothing but security to check
	// form is the schema of a form-encoded body (the OAuth endpoints),
	// and formBody the request body it belongs to: a body of that media
	// type is parsed once, by net/http, and its values checked against
	// the schema by kin-openapi, instead of kin-openapi reading the body
	// into memory, decoding it, and the handler's ParseForm reading and
	// decoding it again (a third of an introspection request).
	form     *openapi3.Schema
	formBody *openapi3.RequestBody
	// formCheck, when form allows it, stands for kin-openapi's check of
	// a form that passes (formcheck.go).
	formCheck *formCheck
	// static: the path has no parameters, so a request for exactly that
	// path is routed to this operation.
	static bool
	// formCredentials: the operation offers a client alternative (an
	// http basic scheme) and takes a form, so a client may authenticate
	// with client_secret_post: the form is parsed before the security
	// step when the request has no Authorization header.
	formCredentials bool
}

// formType is the media type of the OAuth endpoints' bodies.
const formType = "application/x-www-form-urlencoded"

// formSchema returns the schema of op's form-encoded body when op takes
// one and no parameters.
func formSchema(op *openapi3.Operation) (*openapi3.Schema, *openapi3.RequestBody) {
	if len(op.Parameters) > 0 || op.RequestBody == nil || op.RequestBody.Value == nil {
		return nil, nil
	}
	mt := op.RequestBody.Value.Content.Get(formType)
	if mt == nil || mt.Schema == nil || mt.Schema.Value == nil {
		return nil, nil
	}
	return mt.Schema.Value, op.RequestBody.Value
}

// validateForm checks a form-encoded body against the operation's schema:
// r.ParseForm reads it (bounded), kin-openapi checks the values, and the
// failures are the RequestErrors ValidateRequestBody would return. A
// repeated parameter is checked by its first value here and refused by
// the endpoint (RFC 6749 §3.2).
func (v *specValidator) validateForm(input *openapi3filter.RequestValidationInput, op *operation) error {
	r := input.Request
	if err := parseFormBody(r); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return err
		}
		return &openapi3filter.RequestError{Input: input, RequestBody: op.formBody, Reason: "failed to decode request body", Err: err}
	}
	if len(r.PostForm) == 0 && op.formBody.Required {
		return &openapi3filter.RequestError{Input: input, RequestBody: op.formBody, Err: openapi3filter.ErrInvalidRequired}
	}
	if op.formCheck != nil && op.formCheck.passes(r.PostForm) {
		return nil
	}
	values := make(map[string]any, len(r.PostForm))
	for name, vs := range r.PostForm {
		values[name] = vs[0]
	}
	if err := op.form.VisitJSON(values, formVisitOptions...); err != nil {
		return &openapi3filter.RequestError{Input: input, RequestBody: op.formBody, Reason: "doesn't match schema", Err: err}
	}
	return nil
}

// formVisitOptions are kin-openapi's options for a form body's values, made
// once.
var formVisitOptions = []openapi3.SchemaValidationOption{openapi3.VisitAsRequest(), openapi3.SetSchemaErrorMessageCustomizer(schemaReason)}

// parseFormBody sets r.PostForm and r.Form (what r.ParseForm sets, so a
// later ParseForm does nothing) from r's form-encoded body. A body of
// declared length without a query string, the OAuth endpoints' usual
// request, is read into one buffer of that length and decoded by
// url.ParseQuery, r.Form being the same values (nothing else would be
// in it); ParseForm read it through io.ReadAll's growing buffers and
// copied the values into r.Form. Any other request goes to ParseForm
// itself. The caller has checked the media type and bounded the body.
func parseFormBody(r *http.Request) error {
	if r.PostForm != nil {
		return nil // parsed before the security step (formCredentials)
	}
	if r.ContentLength < 0 || r.URL.RawQuery != "" || r.Body == nil {
		return r.ParseForm()
	}
	body := make([]byte, r.ContentLength)
	if _, err := io.ReadFull(r.Body, body); err != nil {
		r.PostForm, r.Form = url.Values{}, url.Values{}
		return err
	}
	values, err := parseQuery(string(body))
	r.PostForm, r.Form = values, values
	return err
}

// fastQueryPairs is how many pairs parseQuery splits itself; a longer
// form goes to url.ParseQuery (and its limit on the number of pairs).
const fastQueryPairs = 32

// parseQuery is url.ParseQuery, the same values and errors, with a
// shortcut for a form without a '%', '+' or ';' and of few pairs: there
// nothing is unescaped and nothing refused, so the pairs are split and
// kept as they are, where ParseQuery scans every value byte by byte for
// escapes (a tenth of an introspection, whose token is most of its form).
func parseQuery(s string) (url.Values, error) {
	seps := strings.Count(s, "&")
	if seps >= fastQueryPairs || strings.IndexByte(s, '%') >= 0 || strings.IndexByte(s, '+') >= 0 || strings.IndexByte(s, ';') >= 0 {
		return url.ParseQuery(s)
	}
	values := make(url.Values, seps+1)
	for s != "" {
		var pair string
		pair, s, _ = strings.Cut(s, "&")
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		values[k] = append(values[k], v)
	}
	return values, nil
}

// schemaReason is how schema errors read: their reason alone, never the
// rejected value.
func schemaReason(err *openapi3.SchemaError) string { return err.Reason }

// opKey names an operation: its method and the path template chi routes.
type opKey struct{ method, pattern string }

// routeContexts recycles the chi contexts the middleware looks operations
// up with: one per request otherwise.
var routeContexts = sync.Pool{New: func() any { return chi.NewRouteContext() }}

// find returns the operation chi will route the request to, and the path
// parameters chi will bind (nil when there are none).
func (v *specValidator) find(method, path string) (*operation, map[string]string) {
	if op := v.routes[opKey{method, path}]; op != nil && op.static {
		// A path spelled exactly as a pattern without parameters: chi
		// routes it there (a static route wins over any pattern with
		// parameters), so there is no tree to walk.
		return op, nil
	}
	rctx := routeContexts.Get().(*chi.Context)
	defer routeContexts.Put(rctx)
	rctx.Reset()
	route := v.routes[opKey{method, v.mux.Find(rctx, method, path)}]
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
		op, params := v.find(r.Method, path)
		if op == nil && r.Method == http.MethodHead {
			// HEAD is GET without the body (RFC 9110 §9.3.2): chi routes
			// it to the GET handler (middleware.GetHead), so it is checked
			// as that GET operation, security first.
			op, params = v.find(http.MethodGet, path)
		}
		if op == nil {
			// Not an operation of the spec: a 404, a 405, or one of the
			// few unversioned routes (/openapi.yaml, …) chi serves itself.
			next.ServeHTTP(w, r)
			return
		}

		// The state the server's outer handler gave the request carries
		// the operation (for the error format) and the claims holder the
		// bearer validator fills.
		ctx := r.Context()
		st := stateOf(ctx)
		if st == nil {
			v.errors.write(w, r, errors.New("request without the server's state"))
			return
		}
		st.route = op.route
		if len(*op.security) == 0 && op.rest == nil {
			// Nothing to check (/healthz, /readyz, the JWKS…).
			next.ServeHTTP(w, r)
			return
		}

		input := &openapi3filter.RequestValidationInput{
			Request:    r,
			PathParams: params,
			Route:      op.route,
			Options:    v.options,
		}
		formChecked := false
		if op.formCredentials && isFormRequest(r) && len(r.Header.Values("Authorization")) == 0 {
			// A form operation takes no parameters: its form is all
			// there is to check, once, here.
			if err := v.bound(w, r); err != nil {
				v.errors.write(w, r, err)
				return
			}
			if err := v.validateForm(input, op); err != nil {
				v.errors.write(w, r, err)
				return
			}
			formChecked = true
		}
		body := r.Body
		r.Body = http.NoBody
		err := openapi3filter.ValidateSecurityRequirements(ctx, input, *op.security)
		r.Body = body
		if err != nil {
			v.errors.write(w, r, err)
			return
		}
		if op.rest != nil && !formChecked {
			// kin-openapi reads the whole body: bound it.
			if err := v.bound(w, r); err != nil {
				v.errors.write(w, r, err)
				return
			}
			input.Route = op.rest
			var err error
			if op.form != nil && isFormRequest(r) {
				err = v.validateForm(input, op)
			} else {
				err = openapi3filter.ValidateRequest(ctx, input)
			}
			if err != nil {
				v.errors.write(w, r, err)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// bound refuses a body declared longer than the limit and caps the rest.
// A request without a body (net/http gives it http.NoBody) has nothing to
// bound; wrapping it would also make kin-openapi read and replace it.
func (v *specValidator) bound(w http.ResponseWriter, r *http.Request) error {
	if r.ContentLength > v.maxBody {
		return &http.MaxBytesError{Limit: v.maxBody}
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(w, r.Body, v.maxBody)
	}
	return nil
}

// hasBasicAlternative reports whether one of the requirements is an http
// basic scheme alone: a registered client calling for itself.
func hasBasicAlternative(doc *openapi3.T, reqs *openapi3.SecurityRequirements) bool {
	if doc.Components == nil {
		return false
	}
	for _, req := range *reqs {
		for name := range req {
			ref := doc.Components.SecuritySchemes[name]
			if ref != nil && ref.Value != nil && ref.Value.Type == "http" && strings.EqualFold(ref.Value.Scheme, "basic") {
				return true
			}
		}
	}
	return false
}

// isFormRequest reports whether r's Content-Type is exactly the form media
// type (parameters aside); any other goes to kin-openapi's own checks,
// which refuse types the operation does not declare.
func isFormRequest(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), formType)
}
