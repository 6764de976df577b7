package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Endpoints as the report names them.
const (
	epLogin   = "POST /token (password)"
	epRefresh = "POST /token (refresh)"
	epMe      = "GET /users/me"
	epCreate  = "POST /users"
	epReady   = "GET /readyz"
	epRevoke  = "POST /revoke"
	epGetUser = "GET /users/{username}"
)

// isWrite reports whether a success of ep means the store took a write
// (what recovery time waits for).
func isWrite(ep string) bool { return ep == epLogin || ep == epRefresh || ep == epCreate }

// sample is one answered (or failed) request.
type sample struct {
	server string
	ep     string
	start  time.Time
	took   time.Duration
	status int    // 0: no HTTP answer (err says why)
	err    string // transport error
	rid    string // X-Request-Id sent, to find the server's log lines
	// What a failure answered, kept for the report's evidence.
	retryAfter  string
	contentType string
	body        string
}

func (s sample) end() time.Time { return s.start.Add(s.took) }

// recorder keeps every sample of a scenario.
type recorder struct {
	mu      sync.Mutex
	samples []sample
	seq     atomic.Int64
	prefix  string
}

func (r *recorder) add(s sample) {
	r.mu.Lock()
	r.samples = append(r.samples, s)
	r.mu.Unlock()
}

func (r *recorder) all() []sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sample(nil), r.samples...)
}

// client sends the load's requests to one server and records each.
type client struct {
	name string
	base string
	http *http.Client
	rec  *recorder
}

// clientTimeout is far past the server's 15 s write timeout, so a hang
// shows as a latency rather than as the client giving up first.
const clientTimeout = 40 * time.Second

func newHTTPClient() *http.Client {
	return &http.Client{
		Timeout: clientTimeout,
		Transport: &http.Transport{
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     30 * time.Second,
		},
	}
}

type answer struct {
	status int
	body   []byte
	err    error
	rid    string
}

// do sends one request and records it under ep. Samples of a request cut
// by ctx (the tool interrupted) are not recorded.
func (c *client) do(ctx context.Context, ep, method, path, bearer, contentType string, body []byte) answer {
	rid := fmt.Sprintf("%s-%d", c.rec.prefix, c.rec.seq.Add(1))
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("X-Request-Id", rid)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	var b []byte
	if err == nil {
		b, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
	}
	took := time.Since(start)
	if ctx.Err() != nil {
		return answer{err: ctx.Err()}
	}
	s := sample{server: c.name, ep: ep, start: start, took: took, rid: rid}
	if err != nil {
		s.err = err.Error()
		c.rec.add(s)
		return answer{err: err, rid: rid}
	}
	s.status = resp.StatusCode
	if s.status >= 300 || s.status < 200 {
		s.retryAfter = resp.Header.Get("Retry-After")
		s.contentType = resp.Header.Get("Content-Type")
		s.body = string(b[:min(len(b), 400)])
	}
	c.rec.add(s)
	return answer{status: resp.StatusCode, body: b, rid: rid}
}

func (c *client) form(ctx context.Context, ep, path string, v url.Values) answer {
	return c.do(ctx, ep, http.MethodPost, path, "", "application/x-www-form-urlencoded", []byte(v.Encode()))
}

// tokens is the success body of /token.
type tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

func (c *client) login(ctx context.Context, username, password string) (tokens, answer) {
	a := c.form(ctx, epLogin, "/token", url.Values{"grant_type": {"password"}, "username": {username}, "password": {password}})
	var t tokens
	if a.status == http.StatusOK {
		_ = json.Unmarshal(a.body, &t)
	}
	return t, a
}

func (c *client) refresh(ctx context.Context, refreshToken string) (tokens, answer) {
	a := c.form(ctx, epRefresh, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}})
	var t tokens
	if a.status == http.StatusOK {
		_ = json.Unmarshal(a.body, &t)
	}
	return t, a
}

func (c *client) createUser(ctx context.Context, admin, username, password string) answer {
	b, _ := json.Marshal(map[string]any{"username": username, "password": password, "scopes": []string{"me"}})
	return c.do(ctx, epCreate, http.MethodPost, "/users", admin, "application/json", b)
}

func (c *client) me(ctx context.Context, access string) answer {
	return c.do(ctx, epMe, http.MethodGet, "/users/me", access, "", nil)
}

// sessionID is the sid claim of a JWT access token ("" if unreadable).
func sessionID(jwt string) string {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Sid string `json:"sid"`
	}
	_ = json.Unmarshal(b, &c)
	return c.Sid
}

// oauthError is the "error" and "error_description" of an RFC 6749 §5.2
// body.
func oauthError(body []byte) (code, desc string) {
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal(body, &e)
	return e.Error, e.Description
}

// loadUserPassword is the password of the users the load logs in as and
// creates.
const loadUserPassword = "faultrun-load-password"

// chainStep is one refresh attempt of a chain.
type chainStep struct {
	sent   time.Time
	at     time.Time
	status int
	err    string
	desc   string
	rid    string
}

// retry is a refresh that failed and then succeeded with the same parent.
type retry struct {
	failed []chainStep
	ok     chainStep
}

// chain is one login's refresh-token chain as the load drove it: every
// token answered 200 was presented again (rotated) except the last.
type chain struct {
	id       int
	user     string
	sid      string // the session, as access tokens name it
	acked    int    // refresh tokens answered 200 (the login's included)
	last     string // the last one, which must still refresh at the end
	lastAt   time.Time
	retried  []retry
	ended    string
	endedAt  time.Time
	failedAt time.Time   // first failed attempt of the refresh that ended it
	steps    []chainStep // attempts of the refresh in progress (or that ended it)
}

// load is the bounded load generator of one scenario.
type load struct {
	c        *client
	admin    string
	users    []string
	pace     time.Duration
	stopping atomic.Bool
	wg       sync.WaitGroup

	latestAccess atomic.Value // string: a recent user access token for GET /users/me

	mu        sync.Mutex
	acked     []string          // users whose POST /users answered 201
	unacked   map[string]string // users whose POST /users failed → what it answered
	chains    []*chain          // every chain, alive or ended
	retryWait time.Duration     // between attempts of a failed refresh
	drainFor  time.Duration     // how long a pending refresh keeps retrying after stop
	createSeq atomic.Int64      // numbers the created usernames
	prefix    string            // of the created usernames
}

// start runs the workers until stop: two logging in, four driving
// refresh chains, one reading /users/me, one creating users. Each waits pace
// between its requests, so the load is bounded whatever the server does.
func (l *load) start(ctx context.Context) {
	for i := range 2 {
		l.wg.Go(func() { l.logins(ctx, i) })
	}
	for i := range 4 {
		l.wg.Go(func() { l.refreshes(ctx, i) })
	}
	l.wg.Go(func() { l.reads(ctx) })
	l.wg.Go(func() { l.creates(ctx) })
}

// stop ends the workers; a refresh still failing keeps retrying the same
// parent for up to drainFor, so every chain ends in a known state.
func (l *load) stop(timeout time.Duration) bool {
	l.stopping.Store(true)
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

func (l *load) sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

func (l *load) logins(ctx context.Context, worker int) {
	for n := worker; !l.stopping.Load() && ctx.Err() == nil; n += 2 {
		t, a := l.c.login(ctx, l.users[n%len(l.users)], loadUserPassword)
		if a.status == http.StatusOK {
			l.latestAccess.Store(t.AccessToken)
		}
		if !l.sleep(ctx, l.pace) {
			return
		}
	}
}

func (l *load) reads(ctx context.Context) {
	for !l.stopping.Load() && ctx.Err() == nil {
		tok, _ := l.latestAccess.Load().(string)
		if tok == "" {
			tok = l.admin
		}
		l.c.me(ctx, tok)
		if !l.sleep(ctx, l.pace) {
			return
		}
	}
}

func (l *load) creates(ctx context.Context) {
	for !l.stopping.Load() && ctx.Err() == nil {
		name := fmt.Sprintf("%s-%d", l.prefix, l.createSeq.Add(1))
		a := l.c.createUser(ctx, l.admin, name, loadUserPassword)
		if ctx.Err() != nil {
			return
		}
		l.mu.Lock()
		if a.status == http.StatusCreated {
			l.acked = append(l.acked, name)
		} else {
			what := fmt.Sprint(a.status)
			if a.err != nil {
				what = "transport error: " + a.err.Error()
			}
			l.unacked[name] = what
		}
		l.mu.Unlock()
		if !l.sleep(ctx, l.pace*2) {
			return
		}
	}
}

// refreshes drives one chain at a time: login, then refresh the newest
// token over and over. A refresh whose answer failed (no answer, 5xx,
// 429) is retried with the SAME parent, as a client that lost the answer
// must (README, "The grace window"). A 4xx ends the chain and a new
// login starts the next one.
func (l *load) refreshes(ctx context.Context, worker int) {
	user := l.users[worker%len(l.users)]
	for !l.stopping.Load() && ctx.Err() == nil {
		t, a := l.c.login(ctx, user, loadUserPassword)
		if a.status != http.StatusOK {
			if !l.sleep(ctx, l.pace) {
				return
			}
			continue
		}
		ch := &chain{user: user, sid: sessionID(t.AccessToken), acked: 1, last: t.RefreshToken, lastAt: time.Now()}
		l.mu.Lock()
		ch.id = len(l.chains)
		l.chains = append(l.chains, ch)
		l.mu.Unlock()
		l.drive(ctx, ch)
	}
}

// drive refreshes ch until the load stops or the chain ends.
func (l *load) drive(ctx context.Context, ch *chain) {
	var stoppedAt time.Time
	for ctx.Err() == nil {
		if !l.sleep(ctx, l.pace) {
			return
		}
		pending := len(ch.steps) > 0
		if l.stopping.Load() {
			if !pending {
				return
			}
			if stoppedAt.IsZero() {
				stoppedAt = time.Now()
			} else if time.Since(stoppedAt) > l.drainFor {
				l.mu.Lock()
				ch.ended = "still failing when the load stopped"
				ch.endedAt = time.Now()
				l.mu.Unlock()
				return
			}
		}
		sent := time.Now()
		t, a := l.c.refresh(ctx, ch.last)
		if ctx.Err() != nil {
			return
		}
		step := chainStep{sent: sent, at: time.Now(), status: a.status, rid: a.rid}
		if a.err != nil {
			step.err = a.err.Error()
		}
		_, step.desc = oauthError(a.body)
		l.mu.Lock()
		switch {
		case a.status == http.StatusOK && t.RefreshToken != "":
			if pending {
				ch.retried = append(ch.retried, retry{failed: ch.steps, ok: step})
			}
			ch.acked++
			ch.last, ch.lastAt, ch.steps, ch.failedAt = t.RefreshToken, time.Now(), nil, time.Time{}
			l.mu.Unlock()
			continue
		case a.status >= 400 && a.status < 500 && a.status != http.StatusTooManyRequests:
			ch.steps = append(ch.steps, step)
			if ch.failedAt.IsZero() {
				ch.failedAt = step.at
			}
			ch.ended = fmt.Sprintf("%d %s", a.status, step.desc)
			ch.endedAt = step.at
			l.mu.Unlock()
			return
		default:
			if len(ch.steps) < 200 {
				ch.steps = append(ch.steps, step)
			}
			if ch.failedAt.IsZero() {
				ch.failedAt = step.at
			}
			l.mu.Unlock()
			if !l.sleep(ctx, l.retryWait) {
				return
			}
		}
	}
}

// snapshot copies what the checks need, once the workers have stopped.
func (l *load) snapshot() (acked []string, unacked map[string]string, chains []chain) {
	l.mu.Lock()
	defer l.mu.Unlock()
	acked = append(acked, l.acked...)
	unacked = map[string]string{}
	for k, v := range l.unacked {
		unacked[k] = v
	}
	for _, c := range l.chains {
		chains = append(chains, *c)
	}
	return acked, unacked, chains
}

// readiness polls /readyz, one request at a time, every interval.
func readiness(ctx context.Context, c *client, every time.Duration, stop *atomic.Bool, wg *sync.WaitGroup) {
	wg.Go(func() {
		for !stop.Load() && ctx.Err() == nil {
			c.do(ctx, epReady, http.MethodGet, "/readyz", "", "", nil)
			select {
			case <-ctx.Done():
				return
			case <-time.After(every):
			}
		}
	})
}

// describe is a one-line account of a sample for the report.
func describe(s sample, t0 time.Time) string {
	what := fmt.Sprint(s.status)
	if s.status == 0 {
		what = "no answer: " + s.err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s on replica %s sent at fault%+.2f s took %s → %s (X-Request-Id %s)", s.ep, s.server, s.start.Sub(t0).Seconds(), s.took.Round(time.Millisecond), what, s.rid)
	if s.body != "" {
		fmt.Fprintf(&b, " body %s", strings.TrimSpace(s.body))
	}
	return b.String()
}
