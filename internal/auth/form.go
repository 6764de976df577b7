package auth

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Parameter sets of the form-encoded endpoints.
var (
	tokenParams      = []string{"grant_type", "username", "password", "scope", "refresh_token", "client_id", "client_secret", "otp", "mfa_token"}
	revocationParams = []string{"token", "token_type_hint", "client_id", "client_secret"}
	introspectParams = []string{"token", "token_type_hint", "client_id", "client_secret"}
)

// clientCredentials are what a client sent to authenticate (RFC 6749 §2.3).
type clientCredentials struct {
	ID, Secret string
	// Basic records HTTP Basic, whose failure is answered with a Basic
	// challenge (§5.2 invalid_client).
	Basic bool
}

// readForm enforces RFC 6749 §3.2 on a parsed form request: the endpoint's
// parameters come from the body (never the URI, where credentials would be
// logged, §2.3.1) and none is repeated.
func readForm(r *http.Request, params []string) (url.Values, error) {
	if r.URL.RawQuery != "" {
		query := r.URL.Query()
		for _, name := range params {
			if query.Has(name) {
				return nil, InvalidRequest(name + " must be sent in the request body, not the URL")
			}
		}
	}
	for name, values := range r.PostForm {
		if len(values) > 1 {
			if !slices.Contains(params, name) {
				// Never echo a name the client made up.
				return nil, InvalidRequest("a parameter is repeated")
			}
			return nil, InvalidRequest(name + " is repeated")
		}
	}
	return r.PostForm, nil
}

// readClient collects the client credentials from the body and from HTTP
// Basic (RFC 6749 §2.3.1): both Basic parts are form-urlencoded before
// base64. Empty Basic credentials (`Basic Og==`, what Swagger UI sends by
// default) mean a public client.
func readClient(r *http.Request, form url.Values) (clientCredentials, error) {
	c := clientCredentials{ID: form.Get("client_id"), Secret: form.Get("client_secret")}
	values := r.Header.Values("Authorization")
	if len(values) == 0 {
		return c, nil
	}
	if len(values) > 1 {
		return c, InvalidRequest("more than one Authorization header")
	}
	scheme, payload, _ := strings.Cut(values[0], " ")
	if !strings.EqualFold(scheme, "Basic") {
		return c, InvalidRequest("this endpoint accepts only HTTP Basic client authentication")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(payload))
	if err != nil {
		return c, oauthError(CodeInvalidClient, "malformed Basic credentials")
	}
	rawID, rawSecret, ok := strings.Cut(string(raw), ":")
	if !ok {
		return c, oauthError(CodeInvalidClient, "malformed Basic credentials")
	}
	id, err1 := url.QueryUnescape(rawID)
	secret, err2 := url.QueryUnescape(rawSecret)
	if err1 != nil || err2 != nil {
		return c, oauthError(CodeInvalidClient, "malformed Basic credentials")
	}
	if id == "" && secret == "" {
		return c, nil
	}
	// §2.3: a client must not use more than one authentication method.
	if c.Secret != "" || (c.ID != "" && c.ID != id) {
		return c, InvalidRequest("client credentials sent both in the body and with HTTP Basic")
	}
	return clientCredentials{ID: id, Secret: secret, Basic: true}, nil
}

// ParseTokenRequest reads a token request (RFC 6749 §4.3.2, §6) from r,
// whose form must already be parsed.
func ParseTokenRequest(r *http.Request) (TokenRequest, error) {
	form, err := readForm(r, tokenParams)
	if err != nil {
		return TokenRequest{}, err
	}
	c, err := readClient(r, form)
	if err != nil {
		return TokenRequest{}, err
	}
	return TokenRequest{
		GrantType:    form.Get("grant_type"),
		Username:     form.Get("username"),
		Password:     form.Get("password"),
		Scope:        form.Get("scope"),
		RefreshToken: form.Get("refresh_token"),
		OTP:          form.Get("otp"),
		MFAToken:     form.Get("mfa_token"),
		ClientID:     c.ID,
		ClientSecret: c.Secret,
		BasicAuth:    c.Basic,
	}, nil
}

// RevocationRequest is a request to POST /revoke (RFC 7009 §2.1).
type RevocationRequest struct {
	Token         string
	TokenTypeHint string
	ClientID      string
	ClientSecret  string
}

// ParseRevocationRequest reads a revocation request from r, whose form
// must already be parsed.
func ParseRevocationRequest(r *http.Request) (RevocationRequest, error) {
	form, err := readForm(r, revocationParams)
	if err != nil {
		return RevocationRequest{}, err
	}
	c, err := readClient(r, form)
	if err != nil {
		return RevocationRequest{}, err
	}
	return RevocationRequest{Token: form.Get("token"), TokenTypeHint: form.Get("token_type_hint"), ClientID: c.ID, ClientSecret: c.Secret}, nil
}

// ParseIntrospectionRequest reads the token of an introspection request
// (RFC 7662 §2.1) from r, whose form must already be parsed. The caller is
// authenticated by its bearer token, not by client credentials.
func ParseIntrospectionRequest(r *http.Request) (token string, err error) {
	form, err := readForm(r, introspectParams)
	if err != nil {
		return "", err
	}
	if form.Has("client_secret") && len(r.Header.Values("Authorization")) > 0 {
		// RFC 6749 §2.3: one authentication method per request.
		return "", InvalidRequest("client credentials sent both in the body and in the Authorization header")
	}
	if form.Get("token") == "" {
		return "", InvalidRequest("token is required")
	}
	return form.Get("token"), nil
}
