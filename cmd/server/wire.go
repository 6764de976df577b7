package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/gatehouse/gatehouse/internal/app"
	"github.com/gatehouse/gatehouse/internal/metrics"
	"github.com/gatehouse/gatehouse/internal/storage"
	"github.com/gatehouse/gatehouse/internal/storage/sqlstore"
)

// storeTimeout bounds every store call, well inside the HTTP server's
// write timeout, so a frozen database answers 503 instead of hanging a
// request until its connection is cut.
const storeTimeout = 5 * time.Second

// server is gatehouse assembled (package app) with the configuration it
// was built from.
type server struct {
	*app.App
	cfg *config
}

// appConfig is the assembly's share of the configuration.
func appConfig(cfg *config, logger *slog.Logger, m *metrics.Metrics) app.Config {
	return app.Config{
		Issuer:              cfg.Issuer,
		Audience:            cfg.Audience,
		Hasher:              cfg.Hasher,
		PasswordPolicy:      cfg.PasswordPolicy,
		HashConcurrency:     cfg.HashConcurrency,
		HashQueue:           cfg.HashQueue,
		HashWait:            cfg.HashWait,
		SigningAlg:          cfg.SigningAlg,
		HS256Secret:         cfg.HS256Secret,
		KeyEncryptionKey:    cfg.KeyEncryptionKey,
		KeyPrePublish:       cfg.KeyPrePublish,
		KeyRotationInterval: cfg.KeyRotationInterval,
		SyncInterval:        cfg.SyncInterval,
		AccessTTL:           cfg.AccessTTL,
		RefreshTTL:          cfg.RefreshTTL,
		RefreshFamilyTTL:    cfg.RefreshFamilyTTL,
		RefreshReuseWindow:  cfg.RefreshReuseWindow,
		TokenCacheSize:      cfg.TokenCacheSize,
		Throttle:            cfg.Throttle,
		Logger:              logger,
		Metrics:             m,
	}
}

// open opens the configured store, with deadlines and metrics on every
// call, and assembles the accounts and clients over it (app.New); the
// server then loads the keys (App.LoadKeys). With mustExist (the CLI) a
// store that does not exist yet is sqlstore.ErrNoStore, not created.
func open(ctx context.Context, cfg *config, logger *slog.Logger, mustExist bool) (*server, error) {
	raw, err := openStore(ctx, cfg, logger, mustExist)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", cfg.Database, err)
	}
	m := metrics.New()
	store := storage.Instrument(storage.WithTimeout(raw, storeTimeout), func(_ context.Context, op string, took time.Duration, err error) {
		m.ObserveStore(op, took, storeResult(err))
	})
	a, err := app.New(store, appConfig(cfg, logger, m))
	if err != nil {
		raw.Close()
		return nil, err
	}
	return &server{App: a, cfg: cfg}, nil
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
func openStore(ctx context.Context, cfg *config, logger *slog.Logger, mustExist bool) (storage.Store, error) {
	opts := sqlstore.Options{ChangeRetention: app.ChangeRetention(cfg.AccessTTL), MaxConns: cfg.DBMaxConns, ConnectTimeout: cfg.DBConnectTimeout, MustExist: mustExist}
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
