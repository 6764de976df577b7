package verify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// ErrNoIntrospection is returned by Active when Config.Introspection is
// not set.
var ErrNoIntrospection = errors.New("verify: Config.Introspection is not set")

// Active asks gatehouse's introspection endpoint (the metadata's
// introspection_endpoint) whether token is active (RFC 7662 §2.1), with
// the bearer token of Config.Introspection. gatehouse answers
// {"active":false} for a token that is revoked (RFC 7009), expired,
// malformed or unknown (§2.2); it sees a revocation at once, which local
// verification cannot. An error means there is no answer: gatehouse could
// not be reached, refused the Verifier's own token, or answered something
// other than an RFC 7662 §2.2 response.
func (v *Verifier) Active(ctx context.Context, token string) (bool, error) {
	in := v.cfg.Introspection
	if in == nil {
		return false, ErrNoIntrospection
	}
	bearer := in.Token
	if in.TokenSource != nil {
		t, err := in.TokenSource.Token()
		if err != nil {
			return false, fmt.Errorf("verify: introspection: the Verifier's own token: %w", err)
		}
		bearer = t.AccessToken
	}
	ctx, cancel := withFetchTimeout(ctx, v.cfg.HTTPClient)
	defer cancel()
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.meta.IntrospectionEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return false, fmt.Errorf("verify: introspection: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := v.cfg.HTTPClient.Do(req)
	if err != nil {
		return false, fmt.Errorf("verify: introspection: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		Active *bool `json:"active"`
	}
	if err := decodeJSON(resp, v.meta.IntrospectionEndpoint, &body); err != nil {
		if c := resp.Header.Get("WWW-Authenticate"); c != "" {
			err = fmt.Errorf("%w (%s)", err, c)
		}
		return false, fmt.Errorf("verify: introspection: %w", err)
	}
	if body.Active == nil {
		return false, errors.New("verify: introspection: the response has no \"active\" member (RFC 7662 §2.2)")
	}
	return *body.Active, nil
}

// RequireActive refuses, with 401 invalid_token, a request whose token
// gatehouse's introspection endpoint reports inactive (Active): for
// revocation-sensitive routes, at the price of a request to gatehouse per
// request. Place it inside Middleware, which verifies the token and checks
// scopes first:
//
//	v.Middleware("me")(v.RequireActive()(handler))
//
// Used alone it verifies the token as Middleware() does first. When
// gatehouse gives no answer the request fails closed with 503 and a
// problem details body, and the cause goes to Config.Logger.
//
// RequireActive panics when Config.Introspection is not set: that is a
// mistake in the program, found when routes are built.
func (v *Verifier) RequireActive() func(http.Handler) http.Handler {
	if v.cfg.Introspection == nil {
		panic("verify: RequireActive needs Config.Introspection")
	}
	return func(next http.Handler) http.Handler {
		active := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a, _ := r.Context().Value(contextKey{}).(*authenticated)
			if a == nil || a.token == "" {
				v.writeError(w, invalidToken("the access token cannot be introspected", nil))
				return
			}
			ok, err := v.Active(r.Context(), a.token)
			if err != nil {
				v.cfg.Logger.ErrorContext(r.Context(), "verify: introspection failed", "err", err)
				writeProblem(w, http.StatusServiceUnavailable, "could not check whether the access token is still active")
				return
			}
			if !ok {
				v.writeError(w, invalidToken("the access token is no longer active", nil))
				return
			}
			next.ServeHTTP(w, r)
		})
		verified := v.Middleware()(active)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, ok := r.Context().Value(contextKey{}).(*authenticated); ok {
				active.ServeHTTP(w, r)
				return
			}
			verified.ServeHTTP(w, r)
		})
	}
}
