package main

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
	"github.com/gatehouse/gatehouse/internal/storage/sqlstore"
	"github.com/gatehouse/gatehouse/internal/users"
)

// storeTimeout bounds every store call, well inside the HTTP server's
// write timeout, so a frozen database answers 503 instead of hanging a
// request until its connection is cut.
const storeTimeout = 5 * time.Second

// app is the assembled server: store, accounts, clients, keys, the
// revocation view, the validator and the token endpoint. open and
// loadKeys are the one place that builds it.
type app struct {
	cfg     *config
	log     *slog.Logger
	metrics *metrics.Metrics
	audit   *audit.Recorder
	store   storage.Store
	users   *users.Service
	clients *auth.Clients
	keys    *auth.Keys
	// view and revocations are what the bearer path reads instead of the
	// store; the change log keeps them current.
	view        *auth.UserView
	revocations *auth.Revocations
	issuer      *auth.Issuer
	validator   *auth.Validator
	// throttle limits password guessing on every path that checks one.
	throttle *auth.Throttle
	// load follows the requests other than POST /token; while there are
	// any, password hashing leaves them CPU (users.Options.Contended).
	// The HTTP layer keeps it.
	load httpapi.Load
}

// changeRetention is how long the change log keeps session and user
// entries: past the last instant an access token they concern could be
// accepted, and long enough that a replica briefly cut off catches up
// without a full reload.
func changeRetention(cfg *config) time.Duration {
	return max(time.Hour, cfg.AccessTTL+2*auth.DefaultLeeway)
}

// open assembles the store and the services over it from cfg. Scopes come
// from the OpenAPI document, so the spec is the only list of them.
func open(ctx context.Context, cfg *config, logger *slog.Logger) (*app, error) {
	doc, err := httpapi.Spec()
	if err != nil {
		return nil, err
	}
	scopes := httpapi.SpecScopes(doc)
	if len(scopes) == 0 {
		return nil, errors.New("the OpenAPI document declares no oauth2 scopes")
	}
	raw, err := openStore(ctx, cfg, logger)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", cfg.Database, err)
	}
	m := metrics.New()
	a := &app{cfg: cfg, log: logger, metrics: m, audit: audit.New(logger, m.CountAudit)}
	a.store = storage.Instrument(storage.WithTimeout(raw, storeTimeout), func(_ context.Context, op string, took time.Duration, err error) {
		m.ObserveStore(op, took, storeResult(err))
	})
	// Account and client changes revoke sessions in the store; this
	// process's view learns it before the request that caused them returns.
	afterRevoke := func(ctx context.Context) {
		if a.revocations == nil {
			return // a CLI command: no view to keep
		}
		if err := a.revocations.Sync(ctx); err != nil {
			logger.Error("reading the change log after a revocation failed", "err", err)
		}
	}
	a.users, err = users.NewService(a.store, users.Options{
		Hasher:          cfg.Hasher,
		Scopes:          scopes,
		Logger:          logger,
		HashConcurrency: cfg.HashConcurrency,
		HashQueue:       cfg.HashQueue,
		HashWait:        cfg.HashWait,
		Contended:       a.load.Busy,
		PasswordPolicy:  cfg.PasswordPolicy,
		ObserveHash:     m.ObserveHash,
		AfterRevoke:     afterRevoke,
	})
	if err != nil {
		raw.Close()
		return nil, err
	}
	a.clients = auth.NewClients(a.store, scopes, nil, afterRevoke)
	return a, nil
}

// storeResult is the metrics label of a store call's outcome.
func storeResult(err error) string {
	switch {
	case err == nil, errors.Is(err, storage.ErrNotFound):
		return "ok"
	case storage.IsFault(err):
		return "fault"
	default:
		return "error"
	}
}

// openStore opens the configured store. PostgreSQL may come up after the
// server (a deployment starting both at once): connecting is retried with
// backoff for up to DBStartupTimeout.
func openStore(ctx context.Context, cfg *config, logger *slog.Logger) (storage.Store, error) {
	opts := sqlstore.Options{ChangeRetention: changeRetention(cfg), MaxConns: cfg.DBMaxConns, ConnectTimeout: cfg.DBConnectTimeout}
	if cfg.Database.Engine == engineSQLite {
		return sqlstore.OpenSQLite(ctx, cfg.Database.Path, opts)
	}
	deadline := time.Now().Add(cfg.DBStartupTimeout)
	wait := 100 * time.Millisecond
	for {
		store, err := sqlstore.OpenPostgres(ctx, cfg.Database.DSN, opts)
		if err == nil {
			return store, nil
		}
		if sqlstore.IsPermanentOpenError(err) || time.Now().Add(wait).After(deadline) {
			// A refused login or a missing database ends start-up at
			// once, with PostgreSQL's own message.
			return nil, err
		}
		logger.Warn("store not reachable yet; retrying", "store", cfg.Database.String(), "in", wait.String(), "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Second)
	}
}

// loadKeys prepares signing and verification: the key set, the refresh
// token key, the user view and revocation state (loaded once from the
// change log), the validator and the token endpoint.
func (a *app) loadKeys(ctx context.Context) error {
	keys, err := auth.LoadKeys(ctx, a.store, auth.KeyConfig{
		Algorithm:        a.cfg.SigningAlg,
		HMACSecret:       a.cfg.HS256Secret,
		EncryptionKey:    a.cfg.KeyEncryptionKey,
		PrePublish:       a.cfg.KeyPrePublish,
		TokenTTL:         a.cfg.AccessTTL,
		Leeway:           auth.DefaultLeeway,
		RotationInterval: a.cfg.KeyRotationInterval,
		RefreshInterval:  a.cfg.SyncInterval,
		Logger:           a.log,
		Audit:            a.audit,
	})
	if err != nil {
		return err
	}
	refresh, err := auth.LoadRefreshKey(ctx, a.store, a.cfg.KeyEncryptionKey)
	if err != nil {
		return err
	}
	a.keys = keys
	a.view = auth.NewUserView(a.store, auth.DefaultUserViewSize)
	a.revocations = auth.NewRevocations(a.store, auth.RevocationsConfig{
		Users: a.view,
		KeysChanged: func(ctx context.Context) {
			if err := keys.Refresh(ctx); err != nil && ctx.Err() == nil {
				a.log.Warn("reloading signing keys after a change failed", "err", err)
			}
		},
		Retention: changeRetention(a.cfg),
	})
	if err := a.revocations.Load(ctx); err != nil {
		return fmt.Errorf("load revocations: %w", err)
	}
	a.validator = auth.NewValidator(keys, auth.ValidatorConfig{
		Issuer:      a.cfg.Issuer,
		Audience:    a.cfg.Audience,
		Leeway:      auth.DefaultLeeway,
		Revocations: a.revocations,
		Users:       a.view,
		CacheSize:   a.cfg.TokenCacheSize,
	})
	a.metrics.CacheStats(a.validator.CacheStats)
	a.throttle = auth.NewThrottle(a.store, a.cfg.Throttle)
	a.issuer = auth.NewIssuer(auth.IssuerDeps{
		Users:       a.users,
		Clients:     a.clients,
		Sessions:    a.store,
		Keys:        keys,
		Refresh:     refresh,
		Validator:   a.validator,
		Revocations: a.revocations,
		Throttle:    a.throttle,
		Log:         a.log,
		Audit:       a.audit,
	}, auth.IssuerConfig{
		Issuer:           a.cfg.Issuer,
		Audience:         a.cfg.Audience,
		TTL:              a.cfg.AccessTTL,
		RefreshTTL:       a.cfg.RefreshTTL,
		RefreshFamilyTTL: a.cfg.RefreshFamilyTTL,
		ReuseWindow:      a.cfg.RefreshReuseWindow,
		Scopes:           a.users.KnownScopes(),
	})
	return nil
}
