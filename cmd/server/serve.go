package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/metrics"
	"github.com/gatehouse/gatehouse/internal/storage"
	"github.com/gatehouse/gatehouse/internal/users"
)

func serve(ctx context.Context, getenv func(string) string, stderr io.Writer) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	if err := cfg.checkServe(); err != nil {
		return err
	}
	// The server's log is buffered (logWriter); what is left is written
	// when serve returns.
	logOut := newLogWriter(stderr, logFlushInterval)
	defer logOut.Close()
	logger := newLogger(logOut, cfg)
	for _, w := range append(cfg.Warnings, unknownSettings(settingNames(getenv))...) {
		logger.Warn(w)
	}
	if cfg.Hasher.Memory < users.DefaultHasher().Memory || cfg.Hasher.Iterations < users.DefaultHasher().Iterations {
		logger.Warn("argon2id parameters are below the OWASP minimum (m=19456 KiB, t=2)", "memory_kib", cfg.Hasher.Memory, "iterations", cfg.Hasher.Iterations)
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	if !cfg.IssuerSet {
		cfg.Issuer = cfg.scheme() + "://" + ln.Addr().String()
	}
	var certs *certReloader
	if cfg.TLSCertFile != "" {
		if certs, err = newCertReloader(cfg.TLSCertFile, cfg.TLSKeyFile, logger); err != nil {
			return err
		}
	}

	// Serve at once: while the store is opened (a PostgreSQL replica may
	// wait for its database), /healthz answers and /readyz says why the
	// server is not ready.
	var phase switchHandler
	var why atomic.Value
	why.Store("opening the store " + cfg.Database.String())
	phase.set(startingHandler(version(), func() string { return why.Load().(string) }))
	srv := &http.Server{
		Handler:           &phase,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		// An HTTP/1.x connection's requests reuse one request state.
		ConnContext: httpapi.ConnContext,
	}
	if certs != nil {
		srv.TLSConfig = certs.tlsConfig()
	}
	errc := make(chan error, 1)
	go func() {
		if certs != nil {
			errc <- srv.ServeTLS(ln, "", "")
			return
		}
		errc <- srv.Serve(ln)
	}()
	defer srv.Close()
	logger.Info("gatehouse starting", "addr", ln.Addr().String(), "store", cfg.Database.String())

	a, err := open(ctx, cfg, logger, false)
	if err != nil {
		return err
	}
	defer a.Store.Close()
	why.Store("loading the signing keys")
	if err := a.LoadKeys(ctx); err != nil {
		return err
	}
	if err := bootstrapAdmin(ctx, a, stderr, logger); err != nil {
		return err
	}
	deps := a.HandlerDeps()
	deps.TrustedProxies = cfg.TrustedProxies
	deps.CORSOrigins = cfg.CORSOrigins
	deps.Version = version()
	deps.Metrics = metricsOnMain(cfg, a.Metrics)
	deps.AccessLog = accessLog(logOut, cfg)
	handler, err := httpapi.NewHandler(deps)
	if err != nil {
		return err
	}

	if certs != nil {
		handler = strictTransportSecurity(handler)
	}
	// The start-up hashes (dummy and bootstrap) left argon2id buffers in
	// the heap, and reading the spec into the router and its validators
	// left the parse's garbage: hand both back so the idle process stays
	// small, before the larger GOGC lets garbage accumulate.
	debug.FreeOSMemory()
	tuneGC(os.Getenv, cfg, logger)
	phase.set(handler)
	logger.Info("gatehouse listening", "addr", ln.Addr().String(), "scheme", cfg.scheme(), "issuer", cfg.Issuer,
		"store", cfg.Database.String(), "signing_alg", a.Keys.Algorithm(), "kid", a.Keys.SigningKeyID())

	// Background upkeep: key refresh, rotation and retirement; following
	// the change log (what other processes revoked or changed), woken at
	// once by PostgreSQL's NOTIFY and polled every SyncInterval; pruning
	// what ended.
	bg, stopBG := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wake := make(chan struct{}, 1)
	wg.Go(func() { a.Keys.Run(bg) })
	wg.Go(func() { a.Revocations.Run(bg, cfg.SyncInterval, wake, logger) })
	wg.Go(func() { a.prune(bg, pruneInterval) })
	if n, ok := a.Store.(storage.Notifier); ok {
		wg.Go(func() { a.listen(bg, n, wake) })
	}
	defer func() { stopBG(); wg.Wait() }()

	if cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("metrics listener: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", a.Metrics.Handler())
		msrv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = msrv.Serve(mln) }()
		defer msrv.Close()
		logger.Info("metrics listening", "addr", mln.Addr().String())
	}

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// gcPercent is the collector's GOGC unless the environment sets one. At
// Go's default of 100, collections took about a tenth of the CPU of a
// /users/me or /introspect request (each allocates a few kilobytes over
// a live heap of a few megabytes); at 400 they take a quarter of that.
const gcPercent = 400

// tuneGC sets GOGC to gcPercent and a soft memory limit, each unless its
// environment variable is set (the runtime has read those already). The
// limit bounds what the larger GOGC lets the heap grow to when it is
// large, as under a login flood, where each hashing slot holds its
// argon2id buffer: 96 MiB plus three buffers a slot. Near it the
// collector runs as often as it must; it is not a hard cap.
func tuneGC(getenv func(string) string, cfg *config, log *slog.Logger) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		slots := cfg.HashConcurrency
		if slots <= 0 {
			slots = runtime.GOMAXPROCS(0)
		}
		limit := int64(96<<20) + 3*int64(slots)*int64(cfg.Hasher.Memory)<<10
		debug.SetMemoryLimit(limit)
		log.Debug("collector tuned", "gogc", gcPercent, "memory_limit_mib", limit>>20)
	}
}

// metricsOnMain is the /metrics handler of the API listener, or nil when
// GATEHOUSE_METRICS_ADDR moves metrics to a listener of their own.
func metricsOnMain(cfg *config, m *metrics.Metrics) http.Handler {
	if cfg.MetricsAddr != "" {
		return nil
	}
	return m.Handler()
}

// pruneInterval is how often ended sessions and expired log entries are
// deleted.
const pruneInterval = time.Hour

func (a *server) prune(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		// Kept for the leeway past their end that validators still accept.
		if err := a.Store.PruneSessions(ctx, now.Add(-auth.DefaultLeeway)); err != nil && ctx.Err() == nil {
			a.Log.Warn("pruning ended sessions failed", "err", err)
		}
		if err := a.Store.PruneChanges(ctx, now.Add(-auth.DefaultLeeway)); err != nil && ctx.Err() == nil {
			a.Log.Warn("pruning the change log failed", "err", err)
		}
		// Throttle state older than the "known address" memory is moot.
		if err := a.Store.PruneLoginAttempts(ctx, now.Add(-a.cfg.Throttle.KnownFor)); err != nil && ctx.Err() == nil {
			a.Log.Warn("pruning login attempts failed", "err", err)
		}
		if err := a.Store.PruneMFATokens(ctx, now); err != nil && ctx.Err() == nil {
			a.Log.Warn("pruning expired MFA tokens failed", "err", err)
		}
	}
}

// listen turns the store's announcements of new log entries into wakes
// of the revocation follower; after the listening connection fails it
// listens again, the follower's poll covering the gap.
func (a *server) listen(ctx context.Context, n storage.Notifier, wake chan<- struct{}) {
	for {
		err := n.Listen(ctx, func() {
			select {
			case wake <- struct{}{}:
			default: // a wake is pending already
			}
		})
		if ctx.Err() != nil {
			return
		}
		a.Log.Warn("listening for changes from other replicas failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// logFlushInterval is how long a request's log line may wait in the
// buffer of the server's log.
const logFlushInterval = 100 * time.Millisecond

// accessLog is the JSON access log's own fast writer when the log is JSON
// and at info or below, or nil (the access log then goes through the
// logger, as text or not at all).
func accessLog(w io.Writer, cfg *config) httpapi.AccessLogger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(cfg.LogLevel))
	if cfg.LogFormat == "text" || l > slog.LevelInfo {
		return nil
	}
	return httpapi.JSONAccessLog(w)
}

func newLogger(w io.Writer, cfg *config) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: l}
	var h slog.Handler
	if cfg.LogFormat == "text" {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	if lw, ok := w.(*logWriter); ok {
		h = promptHandler{h, lw}
	}
	return slog.New(h)
}
