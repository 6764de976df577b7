package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// runEnv is what every scenario shares.
type runEnv struct {
	o    options
	bin  string
	logf func(string, ...any)
}

// writeTimeout is the HTTP server's WriteTimeout (cmd/server/serve.go):
// no answer may take longer.
const writeTimeout = 15 * time.Second

// feedBound is how soon a revocation on one replica holds on the others
// (README, "Several replicas on PostgreSQL").
const feedBound = time.Second

// scenarios by name, in the order of the brief.
var scenarios = map[string]func(context.Context, *runEnv) *result{
	"restart": func(ctx context.Context, e *runEnv) *result {
		return e.postgres(ctx, "restart", fmt.Sprintf("PostgreSQL restart: every connection cut, new ones refused for %s", e.o.restart), func(p *proxy) {
			p.Refuse()
			sleep(ctx, e.o.restart)
			if err := p.Accept(); err != nil {
				e.logf("proxy accept: %v", err)
			}
		})
	},
	"stop": func(ctx context.Context, e *runEnv) *result {
		return e.postgres(ctx, "stop", fmt.Sprintf("PostgreSQL stopped: every connection cut, new ones refused for %s", e.o.stop), func(p *proxy) {
			p.Refuse()
			sleep(ctx, e.o.stop)
			if err := p.Accept(); err != nil {
				e.logf("proxy accept: %v", err)
			}
		})
	},
	"freeze": func(ctx context.Context, e *runEnv) *result {
		return e.postgres(ctx, "freeze", fmt.Sprintf("PostgreSQL frozen: connections open, no byte forwarded for %s", e.o.freeze), func(p *proxy) {
			p.Freeze()
			sleep(ctx, e.o.freeze)
			p.Thaw()
		})
	},
	"disk": func(ctx context.Context, e *runEnv) *result { return e.disk(ctx) },
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// result is what one scenario found.
type result struct {
	name, engine, fault string
	skipped             string
	t0                  time.Time // load start
	faultStart          time.Time
	faultEnd            time.Time
	// SQLite: when the disk was full and when the first write failed.
	writesFailedAt time.Time

	samples []sample // the load's and the pollers'
	checks  []sample // the requests of the checks after the load

	ackedUsers    int
	missingUsers  []string // acknowledged, not found afterwards
	missingReboot []string // SQLite: not found after a restart on the same file
	unackedUsers  int
	landedAnyway  int // unacknowledged POST /users whose user exists
	chains        int
	chainsOK      int
	lostChains    []string // alive at the end, last acknowledged token refused
	endedChains   []string // ended while the load ran, with why
	retriedOK     int      // refreshes retried with the same parent that then succeeded
	// logins ended by reuse detection because an attempt answered with a
	// failure had rotated the session and the retry came past the window
	reuseAfterLost int

	ackedNames            []string
	chainData             []chain
	retries               []string // each refresh that succeeded on a retry, explained
	logPaths              []string
	feedBefore, feedAfter []feed
	logs                  []logSummary
	problems              []string // evidence of a requirement broken, by request
	broken                []string // what else went wrong: a replica that died, a check that could not run
	rebootChecked         bool     // SQLite: the users were looked up again after a restart
	checked               bool     // the acknowledged users and chains were checked
	notes                 []string // what else a reader should know
	loadAvg               string
}

// feed is one cross-replica revocation check.
type feed struct {
	via, on string
	took    time.Duration // from the revocation's answer to the first 401 on the other replica; -1: not within 5 s
	err     string
}

func (f feed) ok() bool { return f.err == "" && f.took >= 0 && f.took <= feedBound }

func (f feed) String() string {
	switch {
	case f.err != "":
		return fmt.Sprintf("%s→%s: %s", f.via, f.on, f.err)
	case f.took < 0:
		return fmt.Sprintf("%s→%s: still accepted after 5 s", f.via, f.on)
	}
	return fmt.Sprintf("%s→%s %d ms", f.via, f.on, f.took.Milliseconds())
}

// failures lists the requirements the scenario broke.
func (r *result) failures() []string {
	f := append([]string(nil), r.broken...)
	all := append(append([]sample(nil), r.samples...), r.checks...)
	var n500, slow, none int
	for _, s := range all {
		switch {
		case s.status >= 500 && s.status != 503:
			n500++
		case s.status == 0:
			none++
		}
		if s.took > writeTimeout {
			slow++
		}
	}
	if n500 > 0 {
		f = append(f, fmt.Sprintf("%d answers 5xx other than 503", n500))
	}
	if slow > 0 {
		f = append(f, fmt.Sprintf("%d answers slower than %s", slow, writeTimeout))
	}
	if none > 0 {
		f = append(f, fmt.Sprintf("%d requests without an answer", none))
	}
	if len(r.missingUsers)+len(r.missingReboot) > 0 {
		f = append(f, fmt.Sprintf("%d acknowledged users missing", len(r.missingUsers)+len(r.missingReboot)))
	}
	if len(r.lostChains) > 0 {
		f = append(f, fmt.Sprintf("%d acknowledged refresh tokens refused", len(r.lostChains)))
	}
	for _, fd := range r.feedAfter {
		if !fd.ok() {
			f = append(f, "change feed after the fault: "+fd.String())
		}
	}
	down, back := readyTimeline(r.samples, "a", r.faultStart, r.faultEnd)
	if !down {
		f = append(f, "/readyz never answered 503 during the fault")
	}
	if back < 0 {
		f = append(f, "/readyz not back to 200 after the fault")
	}
	return f
}

func (r *result) verdict() string {
	if f := r.failures(); len(f) > 0 {
		return "FAILED: " + strings.Join(f, "; ")
	}
	return "every requirement held"
}

// postgres runs one PostgreSQL scenario: replicas a (the load's target,
// default settings) and b (a watcher whose periodic resync is an hour, so
// only NOTIFY can bring it a revocation within 1 s) on one schema, both
// through the proxy, and fault acting on the proxy.
func (e *runEnv) postgres(ctx context.Context, name, what string, fault func(*proxy)) *result {
	r := &result{name: name, engine: "PostgreSQL", fault: what, loadAvg: uptime()}
	target, err := pgTarget(e.o.postgres)
	if err != nil {
		r.skipped = err.Error()
		return r
	}
	p, err := newProxy(target, 60)
	if err != nil {
		r.skipped = err.Error()
		return r
	}
	defer p.Close()
	dsn, schema, drop, err := pgSchema(ctx, e.o.postgres, p.Addr())
	if err != nil {
		r.skipped = fmt.Sprintf("no PostgreSQL to run in: %v (start one, or pass -postgres URL)", err)
		return r
	}
	defer func() {
		if err := drop(); err != nil {
			e.logf("%v", err)
			r.notes = append(r.notes, "cleanup: "+err.Error())
		}
	}()
	e.logf("%s: schema %s through proxy %s → %s", name, schema, p.Addr(), target)
	common := map[string]string{
		"GATEHOUSE_DATABASE_URL": dsn,
		// One issuer, so that each replica accepts the other's tokens.
		"GATEHOUSE_ISSUER": "http://faultrun.invalid",
	}
	r.logPaths = []string{filepath.Join(e.o.out, name+"-a.log"), filepath.Join(e.o.out, name+"-b.log")}
	a, err := startServer(e.bin, "a", r.logPaths[0], common)
	if err != nil {
		r.broken = append(r.broken, "replica a did not start: "+err.Error())
		return r
	}
	defer a.stop()
	envB := map[string]string{"GATEHOUSE_SYNC_INTERVAL": "1h"}
	for k, v := range common {
		envB[k] = v
	}
	b, err := startServer(e.bin, "b", r.logPaths[1], envB)
	if err != nil {
		r.broken = append(r.broken, "replica b did not start: "+err.Error())
		return r
	}
	defer b.stop()
	e.exercise(ctx, r, []*server{a, b}, func() {
		fault(p)
	})
	if n := p.capped.Load(); n > 0 {
		r.notes = append(r.notes, fmt.Sprintf("the proxy cut %d connections beyond its cap of 60 upstream connections", n))
	}
	return r
}

// disk runs the SQLite scenario: the store on a small tmpfs that a junk
// file fills until writes fail, for e.o.full, then frees.
func (e *runEnv) disk(ctx context.Context) *result {
	r := &result{name: "disk", engine: "SQLite", loadAvg: uptime(),
		fault: fmt.Sprintf("SQLite disk full: a junk file fills a %s tmpfs until writes fail, for %s, then is deleted", e.o.tmpfsSize, e.o.full)}
	if os.Geteuid() != 0 {
		r.skipped = "mounting a tmpfs needs root; run `sudo make faultrun` (or as root) for the full-disk scenario"
		return r
	}
	fs, err := mountTmpfs(e.o.tmpfsSize)
	if err != nil {
		r.skipped = err.Error()
		return r
	}
	defer func() {
		if err := fs.unmount(); err != nil {
			e.logf("%v", err)
			r.broken = append(r.broken, "cleanup: "+err.Error())
		}
	}()
	env := map[string]string{"GATEHOUSE_DATABASE_URL": sqliteURL(fs.dir)}
	logPath := filepath.Join(e.o.out, "disk-a.log")
	r.logPaths = []string{logPath}
	a, err := startServer(e.bin, "a", logPath, env)
	if err != nil {
		r.broken = append(r.broken, "server did not start: "+err.Error())
		return r
	}
	stopped := false
	defer func() {
		if !stopped {
			a.stop()
		}
	}()
	j := &junk{path: filepath.Join(fs.dir, "junk")}
	defer j.remove()
	var recPtr atomic.Pointer[recorder]
	e.exerciseWith(ctx, r, []*server{a}, &recPtr, func() {
		n, err := j.fill(1 << 30)
		r.faultStart = time.Now()
		e.logf("disk: junk file %d bytes, %d bytes free (%v)", n, free(fs.dir), err)
		if n < 64<<10 {
			r.notes = append(r.notes, fmt.Sprintf("the junk file got only %d bytes: the store had filled the %s file system by itself before the fault", n, e.o.tmpfsSize))
		}
		// Writes fail once SQLite needs a page it does not have yet; the
		// WAL reuses what it has, so wait for the first failure, topping
		// the junk up meanwhile.
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			if at, ok := firstFailedWrite(recPtr.Load().all(), r.faultStart); ok {
				r.writesFailedAt = at
				break
			}
			j.fill(1 << 30)
			sleep(ctx, 100*time.Millisecond)
		}
		if r.writesFailedAt.IsZero() {
			r.notes = append(r.notes, "no write failed within 30 s of the disk filling")
		} else {
			e.logf("disk: first write failed %.2f s after the disk filled", r.writesFailedAt.Sub(r.faultStart).Seconds())
		}
		hold := time.Now().Add(e.o.full)
		for time.Now().Before(hold) && ctx.Err() == nil {
			j.fill(1 << 30)
			sleep(ctx, 250*time.Millisecond)
		}
		if err := j.remove(); err != nil {
			r.broken = append(r.broken, "removing the junk file: "+err.Error())
		}
	})
	// The acknowledged users must be in the file, not only in a process:
	// a new process on the same file must find them too.
	acked := r.ackedNames
	a.stop()
	stopped = true
	if ctx.Err() != nil {
		return r
	}
	a2, err := startServer(e.bin, "a", logPath, env)
	if err != nil {
		r.broken = append(r.broken, "the server did not start again on the same file after the fault: "+err.Error())
		return r
	}
	defer a2.stop()
	rec := &recorder{prefix: "fr-disk-reboot"}
	c := &client{name: "a", base: a2.url, http: newHTTPClient(), rec: rec}
	admin, err := adminToken(ctx, c)
	if err != nil {
		r.broken = append(r.broken, "after the restart: "+err.Error())
		return r
	}
	r.missingReboot = missingList(checkUsers(ctx, c, admin, acked))
	r.rebootChecked = true
	r.checks = append(r.checks, rec.all()...)
	return r
}

// firstFailedWrite is when the first write that started after t failed.
func firstFailedWrite(samples []sample, t time.Time) (time.Time, bool) {
	var first time.Time
	for _, s := range samples {
		if (isWrite(s.ep) || s.ep == epReady) && s.start.After(t) && (s.status == 0 || s.status >= 500) {
			if first.IsZero() || s.end().Before(first) {
				first = s.end()
			}
		}
	}
	return first, !first.IsZero()
}

func (e *runEnv) exercise(ctx context.Context, r *result, servers []*server, fault func()) {
	var recPtr atomic.Pointer[recorder]
	e.exerciseWith(ctx, r, servers, &recPtr, fault)
}

// exerciseWith is the body every scenario shares: load users, feed check,
// load, fault, recovery, checks, logs. servers[0] takes the load; with a
// second one, the change feed is checked both ways before and after.
func (e *runEnv) exerciseWith(ctx context.Context, r *result, servers []*server, recPtr *atomic.Pointer[recorder], fault func()) {
	rec := &recorder{prefix: "fr-" + r.name}
	recPtr.Store(rec)
	chk := &recorder{prefix: "fr-" + r.name + "-check"}
	hc := newHTTPClient()
	clients := make([]*client, len(servers))
	checkers := make([]*client, len(servers))
	for i, s := range servers {
		clients[i] = &client{name: s.name, base: s.url, http: hc, rec: rec}
		checkers[i] = &client{name: s.name, base: s.url, http: hc, rec: chk}
	}
	a := clients[0]
	defer func() { r.checks = append(r.checks, chk.all()...) }()

	admin, err := adminToken(ctx, checkers[0])
	if err != nil {
		r.broken = append(r.broken, "before the fault: "+err.Error())
		return
	}
	users := []string{"load-0", "load-1", "load-2", "load-3"}
	for _, u := range users {
		if ans := checkers[0].createUser(ctx, admin, u, loadUserPassword); ans.status != http.StatusCreated {
			r.broken = append(r.broken, fmt.Sprintf("creating load user %s before the fault: %d %s", u, ans.status, ans.body))
			return
		}
	}
	if len(servers) > 1 {
		r.feedBefore = feedChecks(ctx, checkers)
	}

	l := &load{c: a, admin: admin, users: users, pace: e.o.pace, unacked: map[string]string{},
		retryWait: 200 * time.Millisecond, drainFor: 30 * time.Second, prefix: "fr-" + r.name + "-u"}
	var pollStop atomic.Bool
	var polls sync.WaitGroup
	r.t0 = time.Now()
	l.start(ctx)
	for _, c := range clients {
		readiness(ctx, c, 250*time.Millisecond, &pollStop, &polls)
	}
	sleep(ctx, e.o.baseline)

	e.logf("%s: fault", r.name)
	start := time.Now()
	fault() // the disk scenario sets r.faultStart itself, once the disk is full
	if r.faultStart.IsZero() {
		r.faultStart = start
	}
	r.faultEnd = time.Now()
	e.logf("%s: fault over after %s; recovering", r.name, r.faultEnd.Sub(r.faultStart).Round(time.Millisecond))

	sleep(ctx, e.o.after)
	// Give a slow recovery up to a minute more, so it is measured rather
	// than cut off.
	for extra := time.Now().Add(time.Minute); time.Now().Before(extra) && ctx.Err() == nil; sleep(ctx, 500*time.Millisecond) {
		_, back := readyTimeline(rec.all(), "a", r.faultStart, r.faultEnd)
		_, wrote := firstWriteAfter(rec.all(), r.faultEnd)
		if back >= 0 && wrote {
			break
		}
	}
	if !l.stop(45 * time.Second) {
		r.broken = append(r.broken, "the load's workers did not stop within 45 s of being told to")
	}
	pollStop.Store(true)
	polls.Wait()
	r.samples = rec.all()
	for i, s := range servers {
		if ok, err := s.alive(); !ok {
			r.broken = append(r.broken, fmt.Sprintf("replica %s exited during the run: %v", servers[i].name, err))
		}
	}
	if ctx.Err() != nil {
		return
	}

	if len(servers) > 1 {
		r.feedAfter = feedChecks(ctx, checkers)
	}
	e.logf("%s: checking what was acknowledged", r.name)
	acked, unacked, chains := l.snapshot()
	acked = append(acked, users...)
	r.ackedNames = acked
	r.ackedUsers = len(acked)
	r.unackedUsers = len(unacked)
	r.chains = len(chains)
	admin, err = adminToken(ctx, checkers[0])
	if err != nil {
		r.broken = append(r.broken, "the checks after the fault could not run: "+err.Error())
		return
	}
	r.missingUsers = missingList(checkUsers(ctx, checkers[0], admin, acked))
	var unackedNames []string
	for n := range unacked {
		unackedNames = append(unackedNames, n)
	}
	sort.Strings(unackedNames)
	missing := checkUsers(ctx, checkers[0], admin, unackedNames)
	r.landedAnyway = len(unackedNames) - len(missing)
	if r.landedAnyway > 0 {
		what := counts{}
		for _, n := range unackedNames {
			if _, miss := missing[n]; !miss {
				what[unacked[n]]++
			}
		}
		r.notes = append(r.notes, fmt.Sprintf("%d of %d POST /users that were not answered 201 created their user anyway (their answers: %s): the write committed, its answer was lost", r.landedAnyway, len(unackedNames), what))
	}
	e.checkChains(ctx, r, checkers[0], chains)
	r.checked = true

}
