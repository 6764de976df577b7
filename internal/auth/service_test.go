package auth

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
)

// serviceInput is what kin-openapi passes for the Basic alternative of an
// operation with security reqs, in a spec with an oauth2 and a Basic
// scheme.
func serviceInput(r *http.Request, reqs openapi3.SecurityRequirements) *openapi3filter.AuthenticationInput {
	doc := &openapi3.T{Components: &openapi3.Components{SecuritySchemes: openapi3.SecuritySchemes{
		"oauth2":            {Value: &openapi3.SecurityScheme{Type: "oauth2"}},
		"clientSecretBasic": {Value: &openapi3.SecurityScheme{Type: "http", Scheme: "basic"}},
	}}}
	route := &routers.Route{Spec: doc, Operation: &openapi3.Operation{Security: &reqs}}
	return &openapi3filter.AuthenticationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: r, Route: route},
		SecuritySchemeName:     "clientSecretBasic",
		SecurityScheme:         doc.Components.SecuritySchemes["clientSecretBasic"].Value,
	}
}

func TestAuthenticateServiceTakesTheScopesFromTheOperation(t *testing.T) {
	f := newFixture(t, AlgRS256, nil)
	rs, secret, err := f.clients.RegisterClient(t.Context(), NewClient{ID: "rs", Confidential: true, ServiceScopes: []string{"tokens:introspect"}})
	if err != nil {
		t.Fatal(err)
	}
	introspect := openapi3.SecurityRequirements{{"oauth2": {"tokens:introspect"}}, {"clientSecretBasic": {}}}
	// call reports whether rs was left in the context for the handler.
	call := func(reqs openapi3.SecurityRequirements, id, secret string) (bool, error) {
		r := httptest.NewRequest(http.MethodPost, "/introspect", nil)
		r.SetBasicAuth(id, secret)
		ctx := WithClaimsHolder(r.Context())
		err := f.validator.Authenticate(ctx, serviceInput(r.WithContext(ctx), reqs))
		c, ok := ServiceClientFromContext(ctx)
		return ok && c.ID == rs.ID, err
	}

	if got, err := call(introspect, "rs", secret); err != nil || !got {
		t.Fatalf("rs on an operation needing tokens:introspect: %v, client in context %v; want it authenticated", err, got)
	}
	var oe *Error
	if got, err := call(openapi3.SecurityRequirements{{"oauth2": {"users:write"}}, {"clientSecretBasic": {}}}, "rs", secret); !errors.As(err, &oe) || oe.Code != CodeUnauthorizedClient || oe.Status != 403 || got {
		t.Errorf("rs on an operation needing users:write: %v; want 403 unauthorized_client and no client in context", err)
	}
	// An operation whose spec names no oauth2 scopes gives a client
	// nothing to hold: refused, whatever the client holds.
	if got, err := call(openapi3.SecurityRequirements{{"clientSecretBasic": {}}}, "rs", secret); err == nil || got {
		t.Errorf("rs on an operation with only the Basic alternative: %v; want a refusal", err)
	}
	if got, err := call(introspect, "rs", "wrong"); !errors.As(err, &oe) || oe.Code != CodeInvalidClient || got {
		t.Errorf("a wrong secret: %v; want invalid_client", err)
	}
	// Without Basic credentials the alternative is silent: no OAuth
	// error, so the bearer alternative's challenge is the answer.
	r := httptest.NewRequest(http.MethodPost, "/introspect", nil)
	ctx := WithClaimsHolder(r.Context())
	if err := f.validator.Authenticate(ctx, serviceInput(r, introspect)); !errors.Is(err, errNoBasic) {
		t.Errorf("no Authorization header: %v; want errNoBasic", err)
	}
}
