package auth

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/gatehouse/gatehouse/internal/audit"
)

// clientCredentialsGrant implements RFC 6749 §4.4: a confidential client
// allowed the grant obtains, with its own credentials, an access token for
// itself. The token's `sub` is its client_id (RFC 9068 §2.2), its `sid`
// the id of the secret it authenticated with, and its scopes are drawn
// from the client's service scopes. No refresh token is issued (§4.4.3),
// and nothing is stored: removing the secret, deleting the client or
// taking the grant or a scope away ends the token through the client view.
func (i *Issuer) clientCredentialsGrant(ctx context.Context, c client, req TokenRequest) (*TokenResponse, error) {
	if c.registered == nil {
		// §5.2: no client authentication included, or an unknown client.
		return nil, oauthError(CodeInvalidClient, "the client_credentials grant needs a registered client's credentials")
	}
	cl := c.registered
	who := []slog.Attr{slog.String("client_id", cl.ID), slog.String("client_ip", req.ClientAddr)}
	switch {
	case !cl.Confidential():
		i.Audit.Record(ctx, audit.ClientToken, audit.Failed, append(who, slog.String("error", CodeUnauthorizedClient))...)
		return nil, oauthError(CodeUnauthorizedClient, "a public client may not use the client_credentials grant (RFC 6749 §4.4)")
	case !cl.Allows(GrantClientCredentials) || userIDForm(cl.ID):
		i.Audit.Record(ctx, audit.ClientToken, audit.Failed, append(who, slog.String("error", CodeUnauthorizedClient))...)
		return nil, oauthError(CodeUnauthorizedClient, "this client is not allowed the client_credentials grant")
	}
	requested, err := i.parseScope(req.Scope)
	if err != nil {
		return nil, err
	}
	granted := slices.Clone(cl.ServiceScopes)
	if requested != nil {
		for _, s := range requested {
			if !slices.Contains(cl.ServiceScopes, s) {
				return nil, oauthError(CodeInvalidScope, fmt.Sprintf("scope %q is not held by this client", s))
			}
		}
		granted = requested
	}
	if len(granted) == 0 {
		return nil, oauthError(CodeInvalidScope, "this client holds no scope itself (service_scopes)")
	}
	resp, err := i.sign(cl.ID, "", cl.ID, granted, c.secretID, i.now())
	if err != nil {
		return nil, err
	}
	i.Audit.Record(ctx, audit.ClientToken, audit.Succeeded, append(who, slog.String("sid", c.secretID), slog.String("scope", resp.Scope))...)
	return resp, nil
}
