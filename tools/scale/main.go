package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage/sqlstore"
	"github.com/gatehouse/gatehouse/internal/users"
	"github.com/jackc/pgx/v5"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

// password is every seeded user's password.
const password = "scale-run-password"

// config is the command line.
type config struct {
	Users, RevokedSessions, RevokedTokens int
	Logins, Refreshes, Me                 int
	Idle, Settle                          time.Duration
	Postgres                              string
	SQLite                                bool
	Replicas                              int
	Server, Go                            string
	Workers, PGWorkers                    int
	SeedTimeout, Timeout, StartTimeout    time.Duration
	SeedDir                               string
	Keep                                  bool
	MaxIdleCPU                            float64
	// Quiet: wait (up to QuietWait) before each measurement until the
	// one-minute load average is at most this; 0 does not wait.
	Quiet     float64
	QuietWait time.Duration
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("scale", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.Users, "users", 100_000, "seeded users, each with one live session")
	fs.IntVar(&c.RevokedSessions, "revoked-sessions", 200_000, "more sessions of those users, revoked")
	fs.IntVar(&c.RevokedTokens, "revoked-tokens", 200_000, "revoked access tokens (RFC 7009), live for an hour")
	fs.IntVar(&c.Logins, "logins", 300, "password logins measured, one per seeded user")
	fs.IntVar(&c.Refreshes, "refreshes", 1000, "chained refreshes of one login (measured, then its rows counted)")
	fs.IntVar(&c.Me, "me", 2000, "GET /users/me requests with one access token")
	fs.DurationVar(&c.Idle, "idle", 10*time.Second, "idle CPU window")
	fs.DurationVar(&c.Settle, "settle", 3*time.Second, "quiet time before each idle window")
	fs.StringVar(&c.Postgres, "postgres", "", "also run on PostgreSQL at this DSN (127.0.0.1 only), in fresh schemas dropped afterwards")
	fs.BoolVar(&c.SQLite, "sqlite", true, "run on SQLite (-sqlite=false with -postgres: PostgreSQL only)")
	fs.IntVar(&c.Replicas, "replicas", 2, "server replicas on PostgreSQL (SQLite: 1)")
	fs.StringVar(&c.Server, "server", "", "server binary to run (default: go build ./cmd/server)")
	fs.StringVar(&c.Go, "go", "go", "the go command")
	fs.IntVar(&c.Workers, "workers", 4, "seeding goroutines on SQLite")
	fs.IntVar(&c.PGWorkers, "pg-workers", 16, "seeding goroutines on PostgreSQL")
	fs.DurationVar(&c.SeedTimeout, "seed-timeout", 10*time.Minute, "fail when seeding one store takes longer")
	fs.DurationVar(&c.StartTimeout, "start-timeout", 2*time.Minute, "fail when a server is not ready within this")
	fs.DurationVar(&c.Timeout, "timeout", 40*time.Minute, "fail when the whole run takes longer")
	fs.StringVar(&c.SeedDir, "seed-dir", "", "where SQLite stores are seeded before being copied next to the server (default: /dev/shm when writable)")
	fs.BoolVar(&c.Keep, "keep", false, "keep the working directory (stores, server logs)")
	fs.Float64Var(&c.MaxIdleCPU, "max-idle-cpu", 1, "target: idle CPU per replica, in % of a core")
	fs.Float64Var(&c.Quiet, "quiet", 0, "before each measurement, wait until the one-minute load average is at most this (0: do not wait)")
	fs.DurationVar(&c.QuietWait, "quiet-wait", 5*time.Minute, "the longest such wait; then measure anyway")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case c.Users < c.Logins || c.Logins < 1:
		return nil, fmt.Errorf("-logins must be between 1 and -users (%d)", c.Users)
	case c.Refreshes < 1 || c.Me < 1 || c.Idle < time.Second || c.Replicas < 1:
		return nil, errors.New("-refreshes, -me and -replicas must be at least 1, -idle at least 1s")
	case c.RevokedSessions < 0 || c.RevokedTokens < 0:
		return nil, errors.New("revocation counts must not be negative")
	}
	if !c.SQLite && c.Postgres == "" {
		return nil, errors.New("-sqlite=false needs -postgres")
	}
	if c.Postgres != "" {
		if err := loopbackDSN(c.Postgres); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// loopbackDSN refuses a PostgreSQL DSN that names any host but 127.0.0.1.
func loopbackDSN(dsn string) error {
	pc, err := pgx.ParseConfig(dsn)
	if err != nil {
		return errors.New("-postgres: not a PostgreSQL DSN")
	}
	if h := pc.Host; h != "127.0.0.1" && h != "localhost" {
		return fmt.Errorf("-postgres: host %q: the scale run talks only to 127.0.0.1", h)
	}
	for _, fb := range pc.Fallbacks {
		if fb.Host != "127.0.0.1" && fb.Host != "localhost" {
			return fmt.Errorf("-postgres: host %q: the scale run talks only to 127.0.0.1", fb.Host)
		}
	}
	return nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "scale: "+format+"\n", a...) }

	work, err := os.MkdirTemp("", "gatehouse-scale-")
	if err != nil {
		return err
	}
	if cfg.Keep {
		logf("keeping %s", work)
	} else {
		defer os.RemoveAll(work)
	}
	bin := cfg.Server
	if bin == "" {
		logf("building ./cmd/server")
		if bin, err = buildServer(ctx, cfg.Go, work); err != nil {
			return err
		}
	}
	// Two cores or more: the server on CPU 1, this process (the load) on
	// CPU 0, so neither measures the other (after the build, which
	// may use every core).
	ncpu := runtime.NumCPU()
	serverCPU := -1
	if _, err := exec.LookPath("taskset"); err == nil && ncpu >= 2 {
		if err := exec.Command("taskset", "-a", "-p", "-c", "0", fmt.Sprint(os.Getpid())).Run(); err != nil {
			return fmt.Errorf("pinning the load to CPU 0: %w", err)
		}
		serverCPU = 1
	}

	clk := clockTicks()

	// One argon2id hash at the server's default parameters, which is what
	// the server checks logins with (no rehash on login).
	hash, err := users.DefaultHasher().Hash(password)
	if err != nil {
		return err
	}

	step := cfg.Users / cfg.Logins
	loginIdx := make([]int, cfg.Logins)
	loginNames := make([]string, cfg.Logins)
	for i := range loginIdx {
		loginIdx[i] = i * step
		loginNames[i] = userName(i * step)
	}
	all := make([]int, cfg.Users)
	for i := range all {
		all[i] = i
	}
	specs := []struct {
		label string
		spec  seedSpec
	}{
		{"empty store", seedSpec{Slug: "empty", Users: loginIdx}},
		{fmt.Sprintf("%s revocations", thousands(cfg.RevokedSessions+cfg.RevokedTokens)), seedSpec{
			Slug: "seeded", Users: all, Sessions: true, RevokedSessions: cfg.RevokedSessions, RevokedTokens: cfg.RevokedTokens,
		}},
	}

	type engine struct {
		name    string
		prepare func(ctx context.Context, label string, spec seedSpec) (*prepared, error)
	}
	var engines []engine
	if cfg.SQLite {
		engines = append(engines, engine{"SQLite", func(ctx context.Context, label string, spec seedSpec) (*prepared, error) {
			spec.Workers = cfg.Workers
			return prepareSQLite(ctx, cfg.SeedDir, work, label, spec, stderr)
		}})
	}
	if cfg.Postgres != "" {
		engines = append(engines, engine{"PostgreSQL", func(ctx context.Context, label string, spec seedSpec) (*prepared, error) {
			spec.Workers = cfg.PGWorkers
			return preparePostgres(ctx, cfg.Postgres, label, spec, stderr)
		}})
	}

	failed := false
	for _, e := range engines {
		// Seed every store first, so the measurements run back to back.
		var stores []*prepared
		defer func() {
			for _, p := range stores {
				if err := p.cleanup(); err != nil {
					logf("cleaning up %s: %v", p.label, err)
				}
			}
		}()
		for _, s := range specs {
			s.spec.Hash, s.spec.Timeout = hash, cfg.SeedTimeout
			logf("seeding %s on %s", s.label, e.name)
			p, err := e.prepare(ctx, s.label, s.spec)
			if err != nil {
				return err
			}
			stores = append(stores, p)
			logf("seeded %s in %s: %d users, %d live sessions, %d revoked sessions, %d revoked tokens",
				s.label, p.seed.Took.Round(100*time.Millisecond), p.seed.Users, p.seed.LiveSessions, p.seed.RevokedSessions, p.seed.RevokedTokens)
		}
		replicas := 1
		if e.name == "PostgreSQL" {
			replicas = cfg.Replicas
		}
		var ms []*measurement
		for _, p := range stores {
			if err := waitQuiet(ctx, cfg.Quiet, cfg.QuietWait, logf); err != nil {
				return err
			}
			logf("measuring %s on %s (load average %s)", p.label, e.name, loadAverage())
			if la := loadAverage1(); la > float64(ncpu)/2 {
				logf("warning: the one-minute load average %.2f is above half the %d CPUs: another job is busy, and the numbers will show it", la, ncpu)
			}
			m, err := measure(ctx, cfg, p, bin, replicas, serverCPU, clk, work, loginNames, logf)
			if err != nil {
				return fmt.Errorf("%s on %s: %w", p.label, e.name, err)
			}
			ms = append(ms, m)
		}
		header := fmt.Sprintf("%d CPUs (%s), %s, %s; %s", ncpu, cpuModel(), runtime.Version(), revision(bin), pinning(serverCPU))
		if !report(stdout, e.name, header, cfg, ms) {
			failed = true
		}
	}
	if failed {
		return errors.New("a target was missed (see the table)")
	}
	return nil
}

// prepared is a seeded store a server can open.
type prepared struct {
	label, slug string
	seed        *seeded
	databaseURL string
	storeBytes  int64 // -1: not known
	openRows    func() (*rowCounter, error)
	cleanup     func() error
	engine      string
}

// prepareSQLite seeds an SQLite store in seedDir (tmpfs by default: a
// commit there costs no fsync, so 700,000 transactions take seconds per
// 100,000 instead of minutes) and copies the closed file into work, on
// the disk the server then runs on.
func prepareSQLite(ctx context.Context, seedDir, work, label string, spec seedSpec, logw io.Writer) (*prepared, error) {
	if seedDir == "" {
		seedDir = work
		if d, err := os.MkdirTemp("/dev/shm", "gatehouse-scale-"); err == nil {
			os.RemoveAll(d)
			seedDir = "/dev/shm"
		}
	}
	dir, err := os.MkdirTemp(seedDir, "gatehouse-scale-seed-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	name := spec.Slug + ".db"
	seedPath := filepath.Join(dir, name)
	st, err := sqlstore.OpenSQLite(ctx, seedPath, sqlstore.Options{ChangeRetention: 2 * time.Hour})
	if err != nil {
		return nil, err
	}
	sd, err := seed(ctx, st, spec, logw, label)
	if cerr := st.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	path := filepath.Join(work, name)
	// Closing the last connection checkpointed the WAL into the file;
	// copy a leftover -wal too.
	for _, suffix := range []string{"", "-wal"} {
		if err := copyFile(seedPath+suffix, path+suffix); err != nil && !(suffix != "" && errors.Is(err, os.ErrNotExist)) {
			return nil, err
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	return &prepared{
		label: label, slug: spec.Slug, seed: sd, engine: "SQLite",
		databaseURL: "sqlite://" + path, storeBytes: fi.Size(),
		openRows: func() (*rowCounter, error) { return openSQLiteRows(path) },
		cleanup:  func() error { return nil }, // work is removed as a whole
	}, nil
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// preparePostgres seeds a fresh schema of the database base names.
func preparePostgres(ctx context.Context, base, label string, spec seedSpec, logw io.Writer) (*prepared, error) {
	b := make([]byte, 6)
	rand.Read(b)
	schema := "gatehouse_scale_" + hex.EncodeToString(b)
	ident := pgx.Identifier{schema}.Sanitize()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return nil, fmt.Errorf("connecting to -postgres: %w", err)
	}
	_, err = conn.Exec(ctx, "CREATE SCHEMA "+ident)
	conn.Close(ctx)
	if err != nil {
		return nil, fmt.Errorf("CREATE SCHEMA %s: %w", ident, err)
	}
	drop := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "DROP SCHEMA "+ident+" CASCADE")
		return err
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		drop()
		return nil, errors.New("-postgres: use a postgres:// URL")
	}
	q := u.Query()
	q.Set("search_path", schema)
	q.Set("application_name", schema)
	u.RawQuery = q.Encode()
	dsn := u.String()

	st, err := sqlstore.OpenPostgres(ctx, dsn, sqlstore.Options{ChangeRetention: 2 * time.Hour, MaxConns: int32(spec.Workers)})
	if err != nil {
		drop()
		return nil, err
	}
	sd, err := seed(ctx, st, spec, logw, label)
	if cerr := st.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		drop()
		return nil, err
	}
	size := int64(-1)
	if conn, err := pgx.Connect(ctx, dsn); err == nil {
		_ = conn.QueryRow(ctx, `SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c
			JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'`, schema).Scan(&size)
		conn.Close(ctx)
	}
	return &prepared{
		label: label, slug: spec.Slug, seed: sd, engine: "PostgreSQL",
		databaseURL: dsn, storeBytes: size,
		openRows: func() (*rowCounter, error) { return openPostgresRows(dsn) },
		cleanup:  drop,
	}, nil
}

// measurement is one store's numbers; per-replica slices have one entry
// per replica.
type measurement struct {
	label, engine string
	seed          *seeded
	storeBytes    int64
	startToReady  []time.Duration
	startCPU      []float64 // seconds
	idleStart     []float64 // % of a core
	idleLoad      []float64
	// snapStart and snapLoad are replica 1's /metrics after each idle
	// window, with the store calls made during it.
	snapStart, snapLoad *metricsSnap
	rssIdle, rssLoad    []int64 // KiB
	hwm                 []int64
	login, refresh      latencies
	me                  latencies
	rows                sessionRows
	loadBefore          string
	loadAfter           string
}

// measure starts the replicas on p's store and takes every number.
func measure(ctx context.Context, cfg *config, p *prepared, bin string, replicas, cpu int, clk float64, work string, loginNames []string, logf func(string, ...any)) (m *measurement, err error) {
	m = &measurement{label: p.label, engine: p.engine, seed: p.seed, storeBytes: p.storeBytes, loadBefore: loadAverage()}
	env := []string{"GATEHOUSE_DATABASE_URL=" + p.databaseURL}
	var servers []*server
	defer func() {
		for _, s := range servers {
			if serr := s.stop(); serr != nil && err == nil {
				err = serr
			}
		}
	}()
	for i := range replicas {
		logPath := filepath.Join(work, fmt.Sprintf("%s-%s-%d.log", strings.ToLower(p.engine), p.slug, i+1))
		s, err := startServer(ctx, bin, env, cpu, logPath, cfg.StartTimeout)
		if err != nil {
			return nil, err
		}
		servers = append(servers, s)
		m.startToReady = append(m.startToReady, s.Ready.Sub(s.Started))
		m.startCPU = append(m.startCPU, float64(s.ReadyTicks)/clk)
		logf("replica %d ready in %s at %s, pid %d", i+1, s.Ready.Sub(s.Started).Round(time.Millisecond), s.base, s.pid)
	}
	c := newClient()
	defer c.CloseIdleConnections()

	// idle samples every replica's CPU over cfg.Idle with nothing sent,
	// and replica 1's store calls and heap around the window.
	idle := func() ([]float64, *metricsSnap, error) {
		if err := sleep(ctx, cfg.Settle); err != nil {
			return nil, nil, err
		}
		before, err := scrape(ctx, c, servers[0].base)
		if err != nil {
			return nil, nil, err
		}
		// Let the scrape's own work finish before the window opens.
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return nil, nil, err
		}
		t0s := make([]uint64, len(servers))
		for i, s := range servers {
			if t0s[i], err = cpuTicks(s.pid); err != nil {
				return nil, nil, err
			}
		}
		w0 := time.Now()
		if err := sleep(ctx, cfg.Idle); err != nil {
			return nil, nil, err
		}
		out := make([]float64, len(servers))
		for i, s := range servers {
			t1, err := cpuTicks(s.pid)
			if err != nil {
				return nil, nil, err
			}
			out[i] = float64(t1-t0s[i]) / clk / time.Since(w0).Seconds() * 100
		}
		after, err := scrape(ctx, c, servers[0].base)
		if err != nil {
			return nil, nil, err
		}
		calls := map[string]callStat{}
		for op, a := range after.calls {
			if d := (callStat{N: a.N - before.calls[op].N, Sum: a.Sum - before.calls[op].Sum}); d.N > 0 {
				calls[op] = d
			}
		}
		after.calls = calls
		return out, after, nil
	}
	mem := func() (rss []int64, hwm []int64, err error) {
		for _, s := range servers {
			r, h, err := memKiB(s.pid)
			if err != nil {
				return nil, nil, err
			}
			rss, hwm = append(rss, r), append(hwm, h)
		}
		return rss, hwm, nil
	}

	logf("idle window after start: %s", cfg.Idle)
	if m.idleStart, m.snapStart, err = idle(); err != nil {
		return nil, err
	}
	if m.rssIdle, _, err = mem(); err != nil {
		return nil, err
	}

	rows, err := p.openRows()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	base := servers[0].base
	// phase runs fn and returns the server's CPU time per request in it.
	phase := func(n int, fn func() error) (time.Duration, error) {
		t0, err := cpuTicks(servers[0].pid)
		if err != nil {
			return 0, err
		}
		if err := fn(); err != nil {
			return 0, err
		}
		t1, err := cpuTicks(servers[0].pid)
		if err != nil {
			return 0, err
		}
		return time.Duration(float64(t1-t0) / clk * float64(time.Second) / float64(n)), nil
	}
	logf("%d logins", len(loginNames))
	var lt, rt, mt []time.Duration
	var last *tokens
	cpuLogin, err := phase(len(loginNames), func() (err error) {
		lt, err = loginRun(ctx, c, base, password, loginNames)
		return err
	})
	if err != nil {
		return nil, err
	}
	logf("%d chained refreshes, then %d GET /users/me", cfg.Refreshes, cfg.Me)
	// The probe's login and the row counts are in the refreshes' CPU: one
	// login in a thousand refreshes, and queries the server does not run.
	cpuRefresh, err := phase(cfg.Refreshes, func() (err error) {
		last, rt, m.rows, err = refreshRun(ctx, c, base, password, cfg.Refreshes, rows, p.seed.ProbeID)
		return err
	})
	if err != nil {
		return nil, err
	}
	cpuMe, err := phase(cfg.Me, func() (err error) {
		mt, err = meRun(ctx, c, base, last.Access, cfg.Me)
		return err
	})
	if err != nil {
		return nil, err
	}
	m.login, m.refresh, m.me = summarize(lt), summarize(rt), summarize(mt)
	m.login.CPU, m.refresh.CPU, m.me.CPU = cpuLogin, cpuRefresh, cpuMe
	logf("rows per session after %d refreshes: %d", cfg.Refreshes, m.rows.AfterAll)

	logf("idle window after the load: %s", cfg.Idle)
	if m.idleLoad, m.snapLoad, err = idle(); err != nil {
		return nil, err
	}
	if m.rssLoad, m.hwm, err = mem(); err != nil {
		return nil, err
	}
	m.loadAfter = loadAverage()
	return m, nil
}

// waitQuiet waits, up to wait, until the one-minute load average is at
// most limit (0: no wait).
func waitQuiet(ctx context.Context, limit float64, wait time.Duration, logf func(string, ...any)) error {
	if limit <= 0 {
		return nil
	}
	deadline := time.Now().Add(wait)
	for la := loadAverage1(); la > limit; la = loadAverage1() {
		if time.Now().After(deadline) {
			logf("the load average is still %.2f after %s; measuring anyway", la, wait)
			return nil
		}
		logf("load average %.2f is above %.2f; waiting", la, limit)
		if err := sleep(ctx, 15*time.Second); err != nil {
			return err
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func pinning(cpu int) string {
	if cpu < 0 {
		return "not pinned (one CPU or no taskset)"
	}
	return fmt.Sprintf("each server pinned to CPU %d with taskset (so GOMAXPROCS 1), the load generator to CPU 0", cpu)
}
