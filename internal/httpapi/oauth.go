package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/storage"
)

// TokenIssuer is the token, revocation and introspection logic.
type TokenIssuer interface {
	Token(ctx context.Context, req auth.TokenRequest) (*auth.TokenResponse, error)
	Revoke(ctx context.Context, req auth.RevocationRequest) error
	Introspect(ctx context.Context, token, hint string) (*auth.Introspection, error)
}

// KeyPublisher publishes and rotates the signing keys.
type KeyPublisher interface {
	JWKS() auth.JWKSet
	Rotate(ctx context.Context) (storage.SigningKey, error)
}

// requestFrom gives strict handlers the *http.Request: the form endpoints
// must see the body apart from the query string, and the Authorization
// header, which the generated binding merges or drops. It is the request
// the outer handler made; the middleware after it replace its body (the
// size bound, kin-openapi's re-readable copy) in place, never the request.
func requestFrom(ctx context.Context) (*http.Request, error) {
	var r *http.Request
	if s := stateOf(ctx); s != nil {
		r = s.req
	}
	if r == nil {
		return nil, errors.New("form endpoint called without its request")
	}
	return r, nil
}

var noStore, noCache = "no-store", "no-cache"

// IssueToken handles the token endpoint (RFC 6749 §3.2).
func (h *Handlers) IssueToken(ctx context.Context, _ IssueTokenRequestObject) (IssueTokenResponseObject, error) {
	r, err := requestFrom(ctx)
	if err != nil {
		return nil, err
	}
	req, err := auth.ParseTokenRequest(r)
	if err != nil {
		return nil, err
	}
	req.ClientAddr = requestAddr(r, h.proxies)
	req.UserAgent = r.UserAgent()
	tok, err := h.tokens.Token(ctx, req)
	if err != nil {
		return nil, err
	}
	body := TokenResponse{AccessToken: tok.AccessToken, TokenType: tok.TokenType, ExpiresIn: tok.ExpiresIn}
	if tok.Scope != "" {
		body.Scope = &tok.Scope
	}
	if tok.RefreshToken != "" {
		body.RefreshToken = &tok.RefreshToken
	}
	return IssueToken200JSONResponse{
		Body:    body,
		Headers: IssueToken200ResponseHeaders{CacheControl: &noStore, Pragma: &noCache},
	}, nil
}

// RevokeToken handles RFC 7009 §2.1.
func (h *Handlers) RevokeToken(ctx context.Context, _ RevokeTokenRequestObject) (RevokeTokenResponseObject, error) {
	r, err := requestFrom(ctx)
	if err != nil {
		return nil, err
	}
	req, err := auth.ParseRevocationRequest(r)
	if err != nil {
		return nil, err
	}
	if err := h.tokens.Revoke(ctx, req); err != nil {
		return nil, err
	}
	return RevokeToken200Response{}, nil
}

// IntrospectToken handles RFC 7662 §2.1; the spec requires the caller's
// bearer token to hold tokens:introspect.
func (h *Handlers) IntrospectToken(ctx context.Context, _ IntrospectTokenRequestObject) (IntrospectTokenResponseObject, error) {
	if _, ok := auth.ServiceClientFromContext(ctx); !ok {
		// No client authenticated for itself: a bearer must have (fail
		// closed).
		if _, err := claims(ctx); err != nil {
			return nil, err
		}
	}
	r, err := requestFrom(ctx)
	if err != nil {
		return nil, err
	}
	token, err := auth.ParseIntrospectionRequest(r)
	if err != nil {
		return nil, err
	}
	in, err := h.tokens.Introspect(ctx, token, r.PostForm.Get("token_type_hint"))
	if err != nil {
		return nil, err
	}
	body := Introspection{Active: in.Active}
	if in.Active {
		body.Scope, body.ClientId, body.Username, body.TokenType = &in.Scope, &in.ClientID, &in.Username, &in.TokenType
		body.Sub, body.Iss = &in.Sub, &in.Iss
		body.Exp, body.Iat = &in.Exp, &in.Iat
		if in.Nbf != 0 {
			body.Nbf = &in.Nbf
		}
		if in.Aud != "" {
			body.Aud = &in.Aud
		}
		if in.Jti != "" {
			body.Jti = &in.Jti
		}
	}
	return encodedIntrospection{body}, nil
}

// GetServerMetadata serves RFC 8414 §3.
func (h *Handlers) GetServerMetadata(context.Context, GetServerMetadataRequestObject) (GetServerMetadataResponseObject, error) {
	return GetServerMetadata200JSONResponse(h.meta), nil
}

// GetJWKS serves the public keys (RFC 7517 §5).
func (h *Handlers) GetJWKS(context.Context, GetJWKSRequestObject) (GetJWKSResponseObject, error) {
	set := h.keys.JWKS()
	out := JWKSet{Keys: make([]JWK, 0, len(set.Keys))}
	for _, k := range set.Keys {
		j := JWK{Kty: k.Kty, Kid: k.Kid, Use: k.Use, Alg: k.Alg}
		j.N, j.E, j.Crv, j.X, j.Y = optional(k.N), optional(k.E), optional(k.Crv), optional(k.X), optional(k.Y)
		out.Keys = append(out.Keys, j)
	}
	return GetJWKS200JSONResponse(out), nil
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// RotateSigningKey starts a key rotation.
func (h *Handlers) RotateSigningKey(ctx context.Context, _ RotateSigningKeyRequestObject) (RotateSigningKeyResponseObject, error) {
	if _, err := claims(ctx); err != nil {
		return nil, err
	}
	k, err := h.keys.Rotate(ctx)
	if errors.Is(err, auth.ErrRotationUnsupported) {
		return nil, fmt.Errorf("%w: %w", errHMACRotation, err)
	}
	if err != nil {
		return nil, err
	}
	return RotateSigningKey201JSONResponse{Kid: k.ID, Alg: k.Algorithm, CreatedAt: k.CreatedAt, ActivatesAt: k.ActivatesAt}, nil
}

// NewServerMetadata builds the RFC 8414 document for an issuer URL.
func NewServerMetadata(issuer string, scopes []string) ServerMetadata {
	clientAuth := []string{"client_secret_basic", "client_secret_post", "none"}
	revocation, introspection := issuer+"/revoke", issuer+"/introspect"
	// "bearer" is no registered client authentication method: it says a
	// bearer token granted tokens:introspect is accepted as well.
	introspectAuth := []string{"client_secret_basic", "client_secret_post", "bearer"}
	return ServerMetadata{
		Issuer:                                    issuer,
		TokenEndpoint:                             issuer + "/token",
		JwksUri:                                   issuer + "/.well-known/jwks.json",
		RevocationEndpoint:                        &revocation,
		IntrospectionEndpoint:                     &introspection,
		GrantTypesSupported:                       []string{auth.GrantPassword, auth.GrantRefreshToken, auth.GrantClientCredentials, auth.GrantMFAOTP},
		ResponseTypesSupported:                    []string{},
		ScopesSupported:                           &scopes,
		TokenEndpointAuthMethodsSupported:         &clientAuth,
		RevocationEndpointAuthMethodsSupported:    &clientAuth,
		IntrospectionEndpointAuthMethodsSupported: &introspectAuth,
	}
}
