// Package app is the one place that assembles gatehouse: over an open
// store, the accounts and the client registry (New), then the signing
// keys, the user view and revocation state, the bearer validator, the
// login throttle and the token endpoint (LoadKeys), and the Deps of the
// HTTP layer (HandlerDeps). cmd/server builds the server with it; tests
// build the same stack over a store of their own instead of rewriting it.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/metrics"
	"github.com/gatehouse/gatehouse/internal/storage"
	"github.com/gatehouse/gatehouse/internal/users"
)

// Config is what the assembly reads: the server's settings (cmd/server
// fills it from GATEHOUSE_* variables). Zero values are the packages'
// defaults.
type Config struct {
	// Issuer and Audience are the iss and aud of access tokens.
	Issuer, Audience string

	Hasher          users.Hasher
	PasswordPolicy  users.PasswordPolicy
	HashConcurrency int
	HashQueue       int
	HashWait        time.Duration

	SigningAlg          string
	HS256Secret         []byte
	KeyEncryptionKey    []byte
	KeyPrePublish       time.Duration
	KeyRotationInterval time.Duration
	// SyncInterval is how often the key set is reloaded from the store.
	SyncInterval time.Duration

	AccessTTL          time.Duration
	RefreshTTL         time.Duration
	RefreshFamilyTTL   time.Duration
	RefreshReuseWindow time.Duration
	TokenCacheSize     int
	Throttle           auth.ThrottleConfig

	Logger *slog.Logger
	// Metrics records requests, store calls, hashes and audit events;
	// nil makes a registry of its own.
	Metrics *metrics.Metrics
}

// App is the assembled server. The fields LoadKeys sets are nil before.
type App struct {
	Config  Config
	Log     *slog.Logger
	Metrics *metrics.Metrics
	Audit   *audit.Recorder
	Store   storage.Store
	Users   *users.Service
	Clients *auth.Clients
	Keys    *auth.Keys
	// View, ClientView and Revocations are what the bearer path reads
	// instead of the store; the change log keeps them current.
	View        *auth.UserView
	ClientView  *auth.ClientView
	Revocations *auth.Revocations
	Validator   *auth.Validator
	// Throttle limits password guessing on every path that checks one.
	Throttle *auth.Throttle
	Issuer   *auth.Issuer
	// Load follows the requests other than POST /token; while there are
	// any, password hashing leaves them CPU (users.Options.Contended).
	// The HTTP layer keeps it.
	Load httpapi.Load

	refresh auth.RefreshKey
}

// ChangeRetention is how long the change log keeps session and user
// entries: past the last instant an access token they concern could be
// accepted, and long enough that a replica briefly cut off catches up
// without a full reload.
func ChangeRetention(accessTTL time.Duration) time.Duration {
	return max(time.Hour, accessTTL+2*auth.DefaultLeeway)
}

// New assembles the accounts and the client registry over store: what a
// CLI command needs. Scopes come from the OpenAPI document, so the spec
// is the only list of them.
func New(store storage.Store, cfg Config) (*App, error) {
	doc, err := httpapi.Spec()
	if err != nil {
		return nil, err
	}
	scopes := httpapi.SpecScopes(doc)
	if len(scopes) == 0 {
		return nil, errors.New("the OpenAPI document declares no oauth2 scopes")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := cfg.Metrics
	if m == nil {
		m = metrics.New()
	}
	a := &App{Config: cfg, Log: cfg.Logger, Metrics: m, Audit: audit.New(cfg.Logger, m.CountAudit), Store: store}
	a.Users, err = users.NewService(store, users.Options{
		Hasher:          cfg.Hasher,
		Scopes:          scopes,
		Logger:          cfg.Logger,
		HashConcurrency: cfg.HashConcurrency,
		HashQueue:       cfg.HashQueue,
		HashWait:        cfg.HashWait,
		Contended:       a.Load.Busy,
		PasswordPolicy:  cfg.PasswordPolicy,
		ObserveHash:     m.ObserveHash,
		AfterRevoke:     a.afterRevoke,
		EncryptionKey:   cfg.KeyEncryptionKey,
	})
	if err != nil {
		return nil, err
	}
	a.Clients = auth.NewClients(store, scopes, nil, a.afterRevoke)
	return a, nil
}

// afterRevoke runs after an account or client change (which may revoke
// sessions) in the store: this process's views learn it before the
// request that caused it returns.
func (a *App) afterRevoke(ctx context.Context) {
	if a.Revocations == nil {
		return // a CLI command: no view to keep
	}
	if err := a.Revocations.Sync(ctx); err != nil {
		a.Log.Error("reading the change log after a revocation failed", "err", err)
	}
}

// LoadKeys prepares signing and verification: the key set, the refresh
// token key, the user view and revocation state (loaded once from the
// change log), the validator, the throttle and the token endpoint.
func (a *App) LoadKeys(ctx context.Context) error {
	cfg := a.Config
	keys, err := auth.LoadKeys(ctx, a.Store, auth.KeyConfig{
		Algorithm:        cfg.SigningAlg,
		HMACSecret:       cfg.HS256Secret,
		EncryptionKey:    cfg.KeyEncryptionKey,
		PrePublish:       cfg.KeyPrePublish,
		TokenTTL:         cfg.AccessTTL,
		Leeway:           auth.DefaultLeeway,
		RotationInterval: cfg.KeyRotationInterval,
		RefreshInterval:  cfg.SyncInterval,
		Logger:           a.Log,
		Audit:            a.Audit,
	})
	if err != nil {
		return err
	}
	refresh, err := auth.LoadRefreshKey(ctx, a.Store, cfg.KeyEncryptionKey)
	if err != nil {
		return err
	}
	a.Keys, a.refresh = keys, refresh
	a.View = auth.NewUserView(a.Store, auth.DefaultUserViewSize)
	a.ClientView = auth.NewClientView(a.Store, auth.DefaultClientViewSize)
	a.Revocations = auth.NewRevocations(a.Store, auth.RevocationsConfig{
		Users:   a.View,
		Clients: a.ClientView,
		KeysChanged: func(ctx context.Context) {
			if err := keys.Refresh(ctx); err != nil && ctx.Err() == nil {
				a.Log.Warn("reloading signing keys after a change failed", "err", err)
			}
		},
		Retention: ChangeRetention(cfg.AccessTTL),
	})
	if err := a.Revocations.Load(ctx); err != nil {
		return fmt.Errorf("load revocations: %w", err)
	}
	a.Validator = auth.NewValidator(keys, auth.ValidatorConfig{
		Issuer:      cfg.Issuer,
		Audience:    cfg.Audience,
		Leeway:      auth.DefaultLeeway,
		Revocations: a.Revocations,
		Users:       a.View,
		Clients:     a.Clients,
		ClientView:  a.ClientView,
		CacheSize:   cfg.TokenCacheSize,
	})
	a.Metrics.CacheStats(a.Validator.CacheStats)
	a.Throttle = auth.NewThrottle(a.Store, cfg.Throttle)
	a.Issuer = auth.NewIssuer(a.IssuerDeps())
	return nil
}

// IssuerDeps are what the token endpoint is made of (after LoadKeys), for
// a test that makes a variant of it.
func (a *App) IssuerDeps() (auth.IssuerDeps, auth.IssuerConfig) {
	return auth.IssuerDeps{
			Users:       a.Users,
			Clients:     a.Clients,
			Sessions:    a.Store,
			MFATokens:   a.Store,
			Keys:        a.Keys,
			Refresh:     a.refresh,
			Validator:   a.Validator,
			Revocations: a.Revocations,
			Throttle:    a.Throttle,
			Log:         a.Log,
			Audit:       a.Audit,
		}, auth.IssuerConfig{
			Issuer:           a.Config.Issuer,
			Audience:         a.Config.Audience,
			TTL:              a.Config.AccessTTL,
			RefreshTTL:       a.Config.RefreshTTL,
			RefreshFamilyTTL: a.Config.RefreshFamilyTTL,
			ReuseWindow:      a.Config.RefreshReuseWindow,
			Scopes:           a.Users.KnownScopes(),
		}
}

// HandlerDeps are the HTTP layer's Deps over the assembled services (after
// LoadKeys): readiness pings the store. What depends on how the server is
// deployed (trusted proxies, CORS, the version, the metrics handler, the
// access log) is the caller's to add.
func (a *App) HandlerDeps() httpapi.Deps {
	return httpapi.Deps{
		Users:        a.Users,
		Tokens:       a.Issuer,
		Keys:         a.Keys,
		Clients:      a.Clients,
		Sessions:     a.Issuer,
		Issuer:       a.Config.Issuer,
		Audit:        a.Audit,
		Requests:     a.Metrics,
		Authenticate: a.Validator.Authenticate,
		Throttle:     a.Throttle,
		Load:         &a.Load,
		Ready: func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			return a.Store.Ping(ctx)
		},
		Logger: a.Log,
	}
}
