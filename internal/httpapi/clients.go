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
	UpdateClient(ctx context.Context, id string, up auth.ClientUpdate) (*storage.Client, error)
	AddClientSecret(ctx context.Context, id string) (storage.ClientSecret, string, error)
	RemoveClientSecret(ctx context.Context, id, secretID string) error
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
	if req.Body.Grants != nil {
		nc.Grants = grantNames(*req.Body.Grants)
	}
	c, secret, err := h.clients.RegisterClient(ctx, nc)
	if err != nil {
		return nil, err
	}
	h.audit.Record(ctx, audit.ClientCreated, audit.OK, actor(ctx), slog.String("client_id", c.ID), slog.Bool("confidential", c.Confidential()),
		slog.Any("service_scopes", c.ServiceScopes), slog.Any("grants", c.Grants))
	oc := toClient(c)
	body := RegisteredOAuthClient{ClientId: oc.ClientId, Confidential: oc.Confidential, Scopes: oc.Scopes, ServiceScopes: oc.ServiceScopes,
		Grants: oc.Grants, Secrets: oc.Secrets, CreatedAt: oc.CreatedAt}
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

func (h *Handlers) UpdateClient(ctx context.Context, req UpdateClientRequestObject) (UpdateClientResponseObject, error) {
	if _, err := claims(ctx); err != nil {
		return nil, err
	}
	up := auth.ClientUpdate{Scopes: req.Body.Scopes, ServiceScopes: req.Body.ServiceScopes}
	var changed []string
	if req.Body.Scopes != nil {
		changed = append(changed, "scopes")
	}
	if req.Body.ServiceScopes != nil {
		changed = append(changed, "service_scopes")
	}
	if req.Body.Grants != nil {
		g := grantNames(*req.Body.Grants)
		up.Grants = &g
		changed = append(changed, "grants")
	}
	c, err := h.clients.UpdateClient(ctx, req.ClientId, up)
	if err != nil {
		return nil, err
	}
	h.audit.Record(ctx, audit.ClientChanged, audit.OK, actor(ctx), slog.String("client_id", c.ID), slog.Any("changed", changed),
		slog.Any("scopes", c.Scopes), slog.Any("service_scopes", c.ServiceScopes), slog.Any("grants", c.Grants))
	return UpdateClient200JSONResponse(toClient(c)), nil
}

func (h *Handlers) AddClientSecret(ctx context.Context, req AddClientSecretRequestObject) (AddClientSecretResponseObject, error) {
	if _, err := claims(ctx); err != nil {
		return nil, err
	}
	sec, secret, err := h.clients.AddClientSecret(ctx, req.ClientId)
	if err != nil {
		return nil, err
	}
	h.audit.Record(ctx, audit.SecretAdded, audit.OK, actor(ctx), slog.String("client_id", req.ClientId), slog.String("secret_id", sec.ID))
	return AddClientSecret201JSONResponse{
		Body:    NewClientSecret{Id: sec.ID, CreatedAt: sec.CreatedAt, ClientSecret: secret},
		Headers: AddClientSecret201ResponseHeaders{CacheControl: &noStore},
	}, nil
}

func (h *Handlers) RemoveClientSecret(ctx context.Context, req RemoveClientSecretRequestObject) (RemoveClientSecretResponseObject, error) {
	if _, err := claims(ctx); err != nil {
		return nil, err
	}
	if err := h.clients.RemoveClientSecret(ctx, req.ClientId, req.SecretId); err != nil {
		return nil, err
	}
	h.audit.Record(ctx, audit.SecretRemoved, audit.OK, actor(ctx), slog.String("client_id", req.ClientId), slog.String("secret_id", req.SecretId))
	return RemoveClientSecret204Response{}, nil
}

func grantNames(gs []ClientGrant) []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = string(g)
	}
	return out
}

func toClient(c *storage.Client) OAuthClient {
	oc := OAuthClient{ClientId: c.ID, Confidential: c.Confidential(), Scopes: orEmpty(c.Scopes), ServiceScopes: orEmpty(c.ServiceScopes),
		Grants: make([]ClientGrant, len(c.Grants)), Secrets: make([]ClientSecretInfo, len(c.Secrets)), CreatedAt: c.CreatedAt}
	for i, g := range c.Grants {
		oc.Grants[i] = ClientGrant(g)
	}
	for i, s := range c.Secrets {
		oc.Secrets[i] = ClientSecretInfo{Id: s.ID, CreatedAt: s.CreatedAt}
	}
	return oc
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
