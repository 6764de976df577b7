package httpapi

import (
	"context"
	"log/slog"
	"net/url"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/storage"
)

// ClientService manages registered OAuth 2.0 clients.
type ClientService interface {
	RegisterClient(ctx context.Context, nc auth.NewClient) (*storage.Client, string, error)
	ListClients(ctx context.Context) ([]*storage.Client, error)
	DeleteClient(ctx context.Context, id string) error
}

func (h *Handlers) ListClients(ctx context.Context, _ ListClientsRequestObject) (ListClientsResponseObject, error) {
	if _, err := claims(ctx); err != nil {
		return nil, err
	}
	list, err := h.clients.ListClients(ctx)
	if err != nil {
		return nil, err
	}
	out := make(ListClients200JSONResponse, 0, len(list))
	for _, c := range list {
		out = append(out, toClient(c))
	}
	return out, nil
}

func (h *Handlers) CreateClient(ctx context.Context, req CreateClientRequestObject) (CreateClientResponseObject, error) {
	if _, err := claims(ctx); err != nil {
		return nil, err
	}
	nc := auth.NewClient{Confidential: true}
	if req.Body.ClientId != nil {
		nc.ID = *req.Body.ClientId
	}
	if req.Body.Confidential != nil {
		nc.Confidential = *req.Body.Confidential
	}
	if req.Body.Scopes != nil {
		nc.Scopes = *req.Body.Scopes
	}
	if req.Body.ServiceScopes != nil {
		nc.ServiceScopes = *req.Body.ServiceScopes
	}
	c, secret, err := h.clients.RegisterClient(ctx, nc)
	if err != nil {
		return nil, err
	}
	h.audit.Record(ctx, audit.ClientCreated, audit.OK, actor(ctx), slog.String("client_id", c.ID), slog.Bool("confidential", c.Confidential()), slog.Any("service_scopes", c.ServiceScopes))
	oc := toClient(c)
	body := RegisteredOAuthClient{ClientId: oc.ClientId, Confidential: oc.Confidential, Scopes: oc.Scopes, ServiceScopes: oc.ServiceScopes, CreatedAt: oc.CreatedAt}
	if secret != "" {
		body.ClientSecret = &secret
	}
	location := "/clients/" + url.PathEscape(c.ID)
	return CreateClient201JSONResponse{Body: body, Headers: CreateClient201ResponseHeaders{Location: &location, CacheControl: &noStore}}, nil
}

func (h *Handlers) DeleteClient(ctx context.Context, req DeleteClientRequestObject) (DeleteClientResponseObject, error) {
	if _, err := claims(ctx); err != nil {
		return nil, err
	}
	if err := h.clients.DeleteClient(ctx, req.ClientId); err != nil {
		return nil, err
	}
	h.audit.Record(ctx, audit.ClientDeleted, audit.OK, actor(ctx), slog.String("client_id", req.ClientId))
	return DeleteClient204Response{}, nil
}

func toClient(c *storage.Client) OAuthClient {
	scopes := c.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	service := c.ServiceScopes
	if service == nil {
		service = []string{}
	}
	return OAuthClient{ClientId: c.ID, Confidential: c.Confidential(), Scopes: scopes, ServiceScopes: service, CreatedAt: c.CreatedAt}
}
