package auth

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/gatehouse/gatehouse/internal/storage"
	"github.com/gatehouse/gatehouse/internal/users"
)

// errNoBasic is the client alternative's answer to a request without
// Basic credentials: not an OAuth error, so the bearer alternative's
// challenge is what the caller sees.
var errNoBasic = errors.New("no HTTP Basic client credentials")

// isBasicScheme reports whether s is an `http` scheme of type basic: the
// spec's way of saying a registered client may call the operation for
// itself with client_secret_basic (RFC 6749 §2.3.1).
func isBasicScheme(s *openapi3.SecurityScheme) bool {
	return s != nil && s.Type == "http" && strings.EqualFold(s.Scheme, "basic")
}

// authenticateService checks the client alternative of an operation (RFC
// 7662 §2.1 lets a resource server introspect with its own client
// credentials): client_secret_basic, or client_secret_post when the
// router parsed the form body before the security step (it does for an
// operation with this alternative and no Authorization header). The client must be registered and confidential,
// present its secret, and hold itself (storage.Client.ServiceScopes) every
// scope the operation's oauth2 requirements name: the scopes come from the
// spec, as for a bearer.
//
// A wrong or unknown client is invalid_client (401 with a Basic
// challenge); a client that authenticated but does not hold the scopes is
// unauthorized_client (403).
func (v *Validator) authenticateService(ctx context.Context, h *ClaimsHolder, input *openapi3filter.AuthenticationInput) error {
	if v.clients == nil {
		return errors.New("no client registry: the Basic alternative is off")
	}
	r := input.RequestValidationInput.Request
	form := url.Values{}
	switch {
	case hasBasic(r):
	case r.PostForm.Get("client_secret") != "" && len(r.Header.Values("Authorization")) == 0:
		// client_secret_post (RFC 6749 §2.3.1), each parameter once.
		if len(r.PostForm["client_id"]) != 1 || len(r.PostForm["client_secret"]) != 1 {
			return InvalidRequest("client_id and client_secret must each be sent once")
		}
		form = r.PostForm
	default:
		return errNoBasic
	}
	cred, err := readClient(r, form)
	if err != nil {
		return err
	}
	if cred.ID == "" || cred.Secret == "" {
		return oauthError(CodeInvalidClient, "client authentication failed")
	}
	c, _, err := v.clients.AuthenticateClient(ctx, cred.ID, cred.Secret)
	switch {
	case errors.Is(err, storage.ErrNotFound), errors.Is(err, users.ErrInvalidCredentials):
		return oauthError(CodeInvalidClient, "client authentication failed")
	case storage.IsFault(err):
		return Unavailable(err)
	case err != nil:
		return ServerError(err)
	case !c.Confidential():
		return oauthError(CodeInvalidClient, "client authentication failed")
	}
	need, ok := operationScopes(input.RequestValidationInput.Route)
	if !ok {
		// Fail closed: an operation that names no oauth2 scopes gives a
		// client nothing to hold.
		return errors.New("the operation names no oauth2 scopes for a client to hold")
	}
	for _, s := range need {
		if !slices.Contains(c.ServiceScopes, s) {
			return &Error{Code: CodeUnauthorizedClient, Status: http.StatusForbidden,
				Description: "the client does not hold the scope " + s + " itself"}
		}
	}
	h.service = c
	return nil
}

// hasBasic reports whether r carries an Authorization header of the Basic
// scheme.
func hasBasic(r *http.Request) bool {
	for _, v := range r.Header.Values("Authorization") {
		if scheme, _, _ := strings.Cut(v, " "); strings.EqualFold(scheme, "Basic") {
			return true
		}
	}
	return false
}

// operationScopes returns the scopes the route's operation requires
// through its oauth2 requirements (the operation's own security, else the
// document's); ok is false when it has none.
func operationScopes(route *routers.Route) (need []string, ok bool) {
	if route == nil || route.Operation == nil || route.Spec == nil || route.Spec.Components == nil {
		return nil, false
	}
	reqs := route.Spec.Security
	if route.Operation.Security != nil {
		reqs = *route.Operation.Security
	}
	for _, req := range reqs {
		for name, scopes := range req {
			ref := route.Spec.Components.SecuritySchemes[name]
			if ref == nil || ref.Value == nil || ref.Value.Type != "oauth2" {
				continue
			}
			ok = true
			need = append(need, scopes...)
		}
	}
	return need, ok
}
