package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/metrics"
	"github.com/gatehouse/gatehouse/internal/users"
)

const (
	shutdownTimeout = 10 * time.Second
	maxHeaderBytes  = 16 << 10
)

// run is the whole program, with its environment passed in so tests can
// drive it.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "-h", "-help", "--help", "help":
			usage(stdout)
			return nil
		case "version", "--version":
			return runVersion(stdout)
		case "serve":
			args = args[1:]
		case "users":
			return runUsers(ctx, args[1:], getenv, stdin, stdout, stderr)
		case "keys":
			return runKeys(ctx, args[1:], getenv, stdout, stderr)
		case "clients":
			return runClients(ctx, args[1:], getenv, stdout, stderr)
		}
	}
	if len(args) > 0 {
		usage(stderr)
		return fmt.Errorf("unknown command %q", strings.Join(args, " "))
	}
	return serve(ctx, getenv, stderr)
}

func usage(w io.Writer) {
	fmt.Fprint(w, `gatehouse: OAuth 2.0 password-grant server

Usage:
  server [serve]                              serve the API
  server users create NAME [--scopes "me"]    create a user; the password is read from stdin
  server users list                           list users
  server keys rotate                          start a signing key rotation
  server version                              print the version
  server clients create [ID] [--public] [--scopes "me"]
                                              register a client; prints its secret once
  server clients list                         list registered clients

Environment:
`)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, e := range envDoc {
		def := e.def
		if def == "" {
			def = "(unset)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", e.name, def, e.doc)
	}
	tw.Flush()
}

// app is the assembled server: store, users, keys, token endpoint and
// validator.
type app struct {
	cfg       *config
	log       *slog.Logger
	metrics   *metrics.Metrics
	audit     *audit.Recorder
	store     users.Store
	users     *users.Service
	keys      *auth.Keys
	deny      *auth.DenyList
	issuer    *auth.Issuer
	validator *auth.Validator
	// throttle limits password guessing on every path that checks one.
	throttle *auth.Throttle
}

// open assembles everything from cfg. Scopes come from the OpenAPI
// document, so the spec is the only list of them.
func open(ctx context.Context, cfg *config, logger *slog.Logger) (*app, error) {
	doc, err := httpapi.Spec()
	if err != nil {
		return nil, err
	}
	scopes := httpapi.SpecScopes(doc)
	if len(scopes) == 0 {
		return nil, errors.New("the OpenAPI document declares no oauth2 scopes")
	}
	store, err := openStore(ctx, cfg, logger)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", cfg.Database, err)
	}
	m := metrics.New()
	a := &app{cfg: cfg, log: logger, metrics: m, audit: audit.New(logger, m.CountAudit)}
	a.store = users.Instrument(store, m.ObserveStore)
	a.deny = auth.NewDenyList(a.store, nil)
	a.users, err = users.NewService(a.store, users.Options{
		Hasher:          cfg.Hasher,
		Scopes:          scopes,
		Logger:          logger,
		HashConcurrency: cfg.HashConcurrency,
		HashQueue:       cfg.HashQueue,
		PasswordPolicy:  cfg.PasswordPolicy,
		ObserveHash:     m.ObserveHash,
		// Account events revoke tokens in the store; the deny-list learns
		// it before the request that caused them returns.
		AfterRevoke: func(ctx context.Context) {
			if err := a.deny.Sync(ctx); err != nil {
				logger.Error("deny-list sync after revocation failed", "err", err)
			}
		},
	})
	if err != nil {
		store.Close()
		return nil, err
	}
	return a, nil
}

// loadKeys prepares signing and verification: the key set, the deny-list,
// the validator and the token endpoint.
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
	if err := a.deny.Sync(ctx); err != nil {
		return fmt.Errorf("load revocations: %w", err)
	}
	a.keys = keys
	a.validator = auth.NewValidator(keys, auth.ValidatorConfig{
		Issuer:    a.cfg.Issuer,
		Audience:  a.cfg.Audience,
		Leeway:    auth.DefaultLeeway,
		DenyList:  a.deny,
		CacheSize: a.cfg.TokenCacheSize,
	})
	a.metrics.CacheStats(a.validator.CacheStats)
	a.throttle = auth.NewThrottle(a.store, a.cfg.Throttle)
	a.issuer = auth.NewIssuer(auth.IssuerDeps{
		Users:     a.users,
		Clients:   a.users,
		Tokens:    a.store,
		Keys:      keys,
		Validator: a.validator,
		DenyList:  a.deny,
		Throttle:  a.throttle,
		Log:       a.log,
		Audit:     a.audit,
	}, auth.IssuerConfig{
		Issuer:           a.cfg.Issuer,
		Audience:         a.cfg.Audience,
		TTL:              a.cfg.AccessTTL,
		RefreshTTL:       a.cfg.RefreshTTL,
		RefreshFamilyTTL: a.cfg.RefreshFamilyTTL,
		Scopes:           a.users.KnownScopes(),
	})
	return nil
}

func serve(ctx context.Context, getenv func(string) string, stderr io.Writer) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	logger := newLogger(stderr, cfg)
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

	a, err := open(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer a.store.Close()
	if err := a.loadKeys(ctx); err != nil {
		return err
	}
	if err := bootstrapAdmin(ctx, a, stderr, logger); err != nil {
		return err
	}
	// The start-up hashes (dummy and bootstrap) left argon2id buffers in
	// the heap: hand them back so the idle process stays small.
	debug.FreeOSMemory()

	handler, err := httpapi.NewHandler(httpapi.Deps{
		Users:          a.users,
		Tokens:         a.issuer,
		Keys:           a.keys,
		Clients:        a.users,
		Issuer:         cfg.Issuer,
		TrustedProxies: cfg.TrustedProxies,
		CORSOrigins:    cfg.CORSOrigins,
		Audit:          a.audit,
		Requests:       a.metrics,
		Version:        version(),
		Metrics:        metricsOnMain(cfg, a.metrics),
		Authenticate:   a.validator.Authenticate,
		Throttle:       a.throttle,
		Ready: func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			return a.store.Ping(ctx)
		},
		Logger: logger,
	})
	if err != nil {
		return err
	}

	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	if certs != nil {
		srv.TLSConfig = certs.tlsConfig()
		srv.Handler = strictTransportSecurity(handler)
	}
	logger.Info("gatehouse listening", "addr", ln.Addr().String(), "scheme", cfg.scheme(), "issuer", cfg.Issuer,
		"store", cfg.Database.String(), "signing_alg", a.keys.Algorithm(), "kid", a.keys.SigningKeyID())

	// Background upkeep: key refresh, rotation and retirement; deny-list
	// resync (revocations by other processes); pruning expired tokens.
	bg, stopBG := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { a.keys.Run(bg) })
	wg.Go(func() { a.deny.Run(bg, cfg.SyncInterval, logger) })
	wg.Go(func() { a.pruneTokens(bg, pruneInterval) })
	if l, ok := a.store.(users.ChangeListener); ok {
		wg.Go(func() { a.followChanges(bg, l) })
	}
	defer func() { stopBG(); wg.Wait() }()

	if cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("metrics listener: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", a.metrics.Handler())
		msrv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = msrv.Serve(mln) }()
		defer msrv.Close()
		logger.Info("metrics listening", "addr", mln.Addr().String())
	}

	errc := make(chan error, 1)
	go func() {
		if certs != nil {
			errc <- srv.ServeTLS(ln, "", "")
			return
		}
		errc <- srv.Serve(ln)
	}()
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

// openStore opens the configured store. PostgreSQL may come up after the
// server (a deployment starting both at once): connecting is retried with
// backoff for up to DBStartupTimeout.
func openStore(ctx context.Context, cfg *config, logger *slog.Logger) (users.Store, error) {
	if cfg.Database.Engine == engineSQLite {
		return users.OpenSQLite(ctx, cfg.Database.Path)
	}
	opts := users.PostgresOptions{MaxConns: cfg.DBMaxConns, ConnectTimeout: cfg.DBConnectTimeout}
	deadline := time.Now().Add(cfg.DBStartupTimeout)
	wait := 100 * time.Millisecond
	for {
		store, err := users.OpenPostgres(ctx, cfg.Database.DSN, opts)
		if err == nil {
			return store, nil
		}
		if time.Now().Add(wait).After(deadline) {
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

// followChanges applies the changes other replicas announce through a
// shared store at once: revocations reload the deny-list, key changes the
// key set. After the listening connection fails, everything is reloaded in
// full before listening again, since announcements may have been missed;
// the periodic resync covers the gap meanwhile.
func (a *app) followChanges(ctx context.Context, l users.ChangeListener) {
	apply := func(kind string) {
		var err error
		switch kind {
		case users.ChangeRevocations:
			err = a.deny.Sync(ctx)
		case users.ChangeKeys:
			err = a.keys.Refresh(ctx)
		}
		if err != nil && ctx.Err() == nil {
			a.log.Warn("applying a change from another replica failed", "kind", kind, "err", err)
		}
	}
	for {
		err := l.Listen(ctx, apply)
		if ctx.Err() != nil {
			return
		}
		a.log.Warn("listening for changes from other replicas failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		apply(users.ChangeRevocations)
		apply(users.ChangeKeys)
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

// pruneInterval is how often expired token records are deleted.
const pruneInterval = time.Hour

func (a *app) pruneTokens(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// Kept for the leeway past exp that validators still accept.
			if err := a.store.PruneTokens(ctx, time.Now().Add(-auth.DefaultLeeway)); err != nil && ctx.Err() == nil {
				a.log.Warn("pruning expired tokens failed", "err", err)
			}
			// Throttle state older than the "known address" memory is moot.
			if err := a.store.PruneLoginAttempts(ctx, time.Now().Add(-a.cfg.Throttle.KnownFor)); err != nil && ctx.Err() == nil {
				a.log.Warn("pruning login attempts failed", "err", err)
			}
		}
	}
}

func newLogger(w io.Writer, cfg *config) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: l}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// bootstrapAdmin creates the first admin, holding every scope, when the
// store has no user. A generated password is shown once, on stderr, and
// never logged.
func bootstrapAdmin(ctx context.Context, a *app, stderr io.Writer, logger *slog.Logger) error {
	n, err := a.store.CountUsers(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	password, generated := a.cfg.AdminPassword, false
	if password == "" {
		b := make([]byte, 18)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		password, generated = base64.RawURLEncoding.EncodeToString(b), true
	}
	u, err := a.users.Create(ctx, users.CLIActor(), users.NewUser{Username: a.cfg.AdminUsername, Password: password, Scopes: a.users.KnownScopes()})
	if errors.Is(err, users.ErrUsernameTaken) {
		return nil // another replica bootstrapped first
	}
	if err != nil {
		return fmt.Errorf("create bootstrap admin: %w", err)
	}
	logger.Info("bootstrap admin created", "username", u.Username, "scopes", strings.Join(u.Scopes, " "))
	if generated {
		fmt.Fprintf(stderr, "\n  gatehouse created the admin user %q with the password:\n\n      %s\n\n  It is shown only this once. Change it with POST /users/me/password.\n\n", u.Username, password)
	}
	return nil
}

func runUsers(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(`usage: server users create NAME [--scopes "me"] | server users list`)
	}
	// Arguments are checked before the store is opened, which would create it.
	var create func(a *app) error
	switch args[0] {
	case "create":
		name, scopes, err := parseCreateArgs(args[1:])
		if err != nil {
			return err
		}
		create = func(a *app) error {
			password, err := readPassword(stdin)
			if err != nil {
				return err
			}
			u, err := a.users.Create(ctx, users.CLIActor(), users.NewUser{Username: name, Password: password, Scopes: scopes})
			if err != nil {
				return fmt.Errorf("users create: %w", err)
			}
			// The CLI is unrestricted: whoever runs it holds the store.
			a.audit.Record(ctx, audit.UserCreated, audit.OK, slog.String("actor", "cli"), slog.String("username", u.Username), slog.String("scopes", strings.Join(u.Scopes, " ")))
			fmt.Fprintf(stdout, "created user %s (id %s, scopes %q)\n", u.Username, u.ID, strings.Join(u.Scopes, " "))
			return nil
		}
	case "list":
		if len(args) > 1 {
			return fmt.Errorf("users list: unexpected arguments %q", args[1:])
		}
	default:
		return fmt.Errorf("unknown users command %q", args[0])
	}

	a, err := openForCLI(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer a.store.Close()
	if create != nil {
		return create(a)
	}
	return printUsers(ctx, a, stdout)
}

// parseCreateArgs reads `NAME [--scopes "a b"]`, the name first or last.
func parseCreateArgs(args []string) (name string, scopes []string, err error) {
	fs := flag.NewFlagSet("users create", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	scopeList := fs.String("scopes", "me", "space-separated scopes")
	rest := args
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		name, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return "", nil, fmt.Errorf("users create: %w", err)
	}
	if name == "" && fs.NArg() == 1 {
		name = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return "", nil, fmt.Errorf("users create: unexpected arguments %q", fs.Args())
	}
	if name == "" {
		return "", nil, errors.New(`usage: server users create NAME [--scopes "me"] (password on stdin)`)
	}
	return name, strings.Fields(*scopeList), nil
}

func printUsers(ctx context.Context, a *app, stdout io.Writer) error {
	const pageSize = 100
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "USERNAME\tSCOPES\tDISABLED\tCREATED")
	after := ""
	for {
		page, err := a.users.List(ctx, after, pageSize)
		if err != nil {
			return err
		}
		for _, u := range page {
			fmt.Fprintf(tw, "%s\t%s\t%t\t%s\n", u.Username, strings.Join(u.Scopes, " "), u.Disabled, u.CreatedAt.Format(time.RFC3339))
		}
		if len(page) < pageSize {
			break
		}
		after = page[len(page)-1].Username
	}
	return tw.Flush()
}

// readPassword takes the first line of stdin, so `echo pw | server users
// create` and an interactive paste both work.
func readPassword(stdin io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(stdin, users.MaxPasswordBytes+2)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("users create: no password on stdin")
	}
	return line, nil
}

// openForCLI opens the store and the services over it, for CLI commands.
func openForCLI(ctx context.Context, getenv func(string) string, stderr io.Writer) (*app, error) {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return nil, err
	}
	return open(ctx, cfg, newLogger(stderr, cfg))
}

// openWithKeys also loads the key set.
func openWithKeys(ctx context.Context, getenv func(string) string, stderr io.Writer) (*app, error) {
	a, err := openForCLI(ctx, getenv, stderr)
	if err != nil {
		return nil, err
	}
	if err := a.loadKeys(ctx); err != nil {
		a.store.Close()
		return nil, err
	}
	return a, nil
}

func runKeys(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) != 1 || args[0] != "rotate" {
		return errors.New("usage: server keys rotate")
	}
	a, err := openWithKeys(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer a.store.Close()
	k, err := a.keys.Rotate(ctx)
	if err != nil {
		return fmt.Errorf("keys rotate: %w", err)
	}
	fmt.Fprintf(stdout, "new %s key %s: published now, signs from %s\n", k.Algorithm, k.ID, k.ActivatesAt.Format(time.RFC3339))
	return nil
}

func runClients(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	usage := errors.New(`usage: server clients create [ID] [--public] [--scopes "me"] | server clients list`)
	if len(args) == 0 {
		return usage
	}
	var nc users.NewClient
	switch args[0] {
	case "create":
		fs := flag.NewFlagSet("clients create", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		public := fs.Bool("public", false, "a public client, without a secret")
		scopes := fs.String("scopes", "", "space-separated scopes the client may request (default: any)")
		rest := args[1:]
		if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
			nc.ID, rest = rest[0], rest[1:]
		}
		if err := fs.Parse(rest); err != nil || fs.NArg() > 0 {
			return usage
		}
		nc.Confidential, nc.Scopes = !*public, strings.Fields(*scopes)
	case "list":
		if len(args) > 1 {
			return usage
		}
	default:
		return usage
	}

	a, err := openForCLI(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer a.store.Close()
	if args[0] == "list" {
		list, err := a.users.ListClients(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "CLIENT_ID\tCONFIDENTIAL\tSCOPES\tCREATED")
		for _, c := range list {
			fmt.Fprintf(tw, "%s\t%t\t%s\t%s\n", c.ID, c.Confidential(), strings.Join(c.Scopes, " "), c.CreatedAt.Format(time.RFC3339))
		}
		return tw.Flush()
	}
	c, secret, err := a.users.RegisterClient(ctx, nc)
	if err != nil {
		return fmt.Errorf("clients create: %w", err)
	}
	fmt.Fprintf(stdout, "client_id:     %s\n", c.ID)
	if secret != "" {
		fmt.Fprintf(stdout, "client_secret: %s\n(shown only this once)\n", secret)
	}
	return nil
}
