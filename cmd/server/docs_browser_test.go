package main

import (
	"context"
	"fmt"
	"iter"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// TestBrowserDocsAuthorizePasswordFlow drives Swagger UI at /docs in a real
// headless Chromium, as a developer would: Authorize with the password flow
// (RFC 6749 §4.3), call GET /users/me and GET /users/me/sessions with the
// token, log out and see GET /users/me refused (RFC 6750 §3.1). The page
// must run under its Content-Security-Policy without a single violation.
func TestBrowserDocsAuthorizePasswordFlow(t *testing.T) {
	chromium := chromiumPath(t)
	artifacts := artifactsDir(t)

	env := testEnv(t)
	env["GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD"] = adminPassword
	base, _, _ := startServer(t, env)
	c := newClient(t, base)
	createUser(t, c, accessToken(t, c, "admin", adminPassword, "me users:write"), "alice", alicePassword, "me")

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		// Chromium's own temporary files (.org.chromium.* directories)
		// go below the test's directory too, removed with it.
		chromedp.Env("TMPDIR="+t.TempDir()),
		chromedp.WindowSize(1280, 1024),
	)
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	defer cancelTab()

	// Start the browser on about:blank, then listen before the page loads.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", chromium, err)
	}
	console := newConsoleLog(t, ctx)
	// Report every CSP violation to the console, where console sees it,
	// should Chromium's own report be missed. Injected scripts are exempt
	// from the page's CSP.
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `document.addEventListener("securitypolicyviolation", e =>
			console.error("Content Security Policy violation: " + e.violatedDirective + " blocked " + (e.blockedURI || "inline") + " at " + e.sourceFile + ":" + e.lineNumber));`,
	}); err != nil {
		t.Fatal(err)
	}

	// Swagger UI 5 labels the dialog's one button by what it does.
	const (
		loginButton  = `.auth-btn-wrapper .authorize[aria-label="Apply given OAuth2 credentials"]`
		logoutButton = `.auth-btn-wrapper .authorize[aria-label="Remove authorization"]`
	)
	// The Authorize dialog: alice's password, the me scope, empty client
	// credentials (a public client, sent as HTTP Basic with an empty id).
	requestsCtx, cancelRequests := context.WithTimeout(ctx, 30*time.Second)
	defer cancelRequests()
	tokenRequests := chromedp.Events(requestsCtx, network.RequestWillBeSent)
	step(t, ctx, console, "log in through the Authorize dialog",
		chromedp.Navigate(base+"/docs"),
		chromedp.WaitVisible(chromedp.CSS(".auth-wrapper .authorize")),
		chromedp.Click(chromedp.CSS(".auth-wrapper .authorize")),
		chromedp.WaitVisible(chromedp.CSS("#oauth_username")),
		chromedp.SendKeys(chromedp.CSS("#oauth_username"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#oauth_password"), alicePassword),
		chromedp.Click(chromedp.CSS(`.scopes input[data-value="me"] + label`)),
		waitChecked(`.scopes input[data-value="me"]`),
		chromedp.Click(chromedp.CSS(loginButton)),
		// Logged in, the dialog offers Logout instead of Authorize.
		chromedp.WaitVisible(chromedp.CSS(logoutButton)),
	)
	checkTokenRequest(t, tokenRequests, base+"/token")

	const op = "#operations-users-getCurrentUser"
	step(t, ctx, console, "call GET /users/me with the token",
		chromedp.Click(chromedp.CSS(".auth-btn-wrapper .btn-done")),
		chromedp.WaitNotPresent(chromedp.CSS(".dialog-ux")),
		chromedp.Click(chromedp.CSS(op+" .opblock-summary-control")),
		chromedp.Click(chromedp.CSS(op+" .try-out__btn")),
		chromedp.Click(chromedp.CSS(op+" .execute")),
		waitText(op+" .live-responses-table .response .response-col_status", "200"),
	)
	body, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(op+" .live-responses-table .response .response-col_description .microlight")))
	if err != nil {
		t.Fatalf("read the response body: %v", err)
	}
	if !strings.Contains(body, `"username": "alice"`) {
		t.Errorf("GET /users/me in Swagger UI shows %q, want alice's account", body)
	}
	screenshot(t, ctx, filepath.Join(artifacts, "docs-users-me-200.png"))

	// The session inventory with the same token: the login just made is
	// alice's one session, marked current (the sid of the token).
	const sessionsOp = "#operations-sessions-listMySessions"
	step(t, ctx, console, "call GET /users/me/sessions with the token",
		chromedp.Click(chromedp.CSS(sessionsOp+" .opblock-summary-control")),
		chromedp.Click(chromedp.CSS(sessionsOp+" .try-out__btn")),
		chromedp.Click(chromedp.CSS(sessionsOp+" .execute")),
		waitText(sessionsOp+" .live-responses-table .response .response-col_status", "200"),
	)
	sessions, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sessionsOp+" .live-responses-table .response .response-col_description .microlight")))
	if err != nil {
		t.Fatalf("read the sessions response body: %v", err)
	}
	if !strings.Contains(sessions, `"current": true`) {
		t.Errorf("GET /users/me/sessions in Swagger UI shows %q, want the caller's session marked \"current\": true", sessions)
	}
	screenshot(t, ctx, filepath.Join(artifacts, "docs-users-me-sessions-200.png"))

	step(t, ctx, console, "log out and call GET /users/me again",
		chromedp.Click(chromedp.CSS(".auth-wrapper .authorize")),
		chromedp.Click(chromedp.CSS(logoutButton)),
		chromedp.WaitVisible(chromedp.CSS(loginButton)),
		chromedp.Click(chromedp.CSS(".auth-btn-wrapper .btn-done")),
		chromedp.WaitNotPresent(chromedp.CSS(".dialog-ux")),
		chromedp.Click(chromedp.CSS(op+" .execute")),
		waitText(op+" .live-responses-table .response .response-col_status", "401"),
	)
	// Swagger UI shows the RFC 6750 §3 challenge among the response headers.
	details, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(op+" .live-responses-table .response .response-col_description")))
	if err != nil {
		t.Fatalf("read the 401 response: %v", err)
	}
	if !strings.Contains(details, `www-authenticate: Bearer realm="gatehouse"`) {
		t.Errorf("GET /users/me after Logout shows %q, want a Bearer challenge", details)
	}
	screenshot(t, ctx, filepath.Join(artifacts, "docs-users-me-401.png"))

	console.check(t)
}

// step runs actions within 20 seconds; should one fail it fails the test
// with the console so far and the page's DOM, from the still open tab.
func step(t *testing.T, ctx context.Context, console *consoleLog, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	stepCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(stepCtx, actions...); err != nil {
		dumpCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		html, _ := chromedp.Run(dumpCtx, chromedp.OuterHTML(chromedp.CSS("#swagger-ui")))
		t.Fatalf("%s: %v\n%s\nDOM of #swagger-ui:\n%s", what, err, console, html)
	}
}

// waitText waits until the first element sel matches has the text want.
func waitText(sel, want string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tab *chromedp.Target) (chromedp.Void, error) {
		for {
			got, err := chromedp.Text(chromedp.CSS(sel))(ctx, tab)
			if err != nil {
				return chromedp.Void{}, err
			}
			if strings.TrimSpace(got) == want {
				return chromedp.Void{}, nil
			}
			select {
			case <-ctx.Done():
				return chromedp.Void{}, fmt.Errorf("%s has text %q, want %q: %w", sel, got, want, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// waitChecked waits until the checkbox sel matches is ticked.
func waitChecked(sel string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tab *chromedp.Target) (chromedp.Void, error) {
		for {
			checked, err := chromedp.JavascriptAttribute[bool](chromedp.CSS(sel), "checked")(ctx, tab)
			if err != nil {
				return chromedp.Void{}, err
			}
			if checked {
				return chromedp.Void{}, nil
			}
			select {
			case <-ctx.Done():
				return chromedp.Void{}, fmt.Errorf("%s is not checked: %w", sel, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// checkTokenRequest finds the request Swagger UI sent to tokenURL and checks
// it is the password grant of RFC 6749 §4.3.2 for the ticked scope, from a
// public client: HTTP Basic with an empty client id and secret (§2.3.1).
func checkTokenRequest(t *testing.T, requests iter.Seq2[network.EventRequestWillBeSent, error], tokenURL string) {
	t.Helper()
	for ev, err := range requests {
		if err != nil {
			t.Fatalf("no request to %s seen: %v", tokenURL, err)
		}
		req := ev.Request
		if req.URL != tokenURL || req.Method != "POST" {
			continue
		}
		var body []byte
		for _, e := range req.PostDataEntries {
			body = append(body, e.Bytes...)
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			t.Fatalf("POST /token body %q is not a form: %v", body, err)
		}
		want := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePassword}, "scope": {"me"}}
		if !maps.EqualFunc(form, want, slices.Equal) {
			t.Errorf("POST /token form = %v, want %v", form, want)
		}
		var authz any
		for k, v := range req.Headers {
			if strings.EqualFold(k, "Authorization") {
				authz = v
			}
		}
		if authz != "Basic Og==" {
			t.Errorf("POST /token Authorization = %v, want Basic Og== (empty client id and secret)", authz)
		}
		return
	}
	t.Fatalf("no POST %s seen", tokenURL)
}

// screenshot saves a PNG of the whole page to path.
func screenshot(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("save screenshot: %v", err)
	}
	t.Logf("screenshot: %s", path)
}

// consoleLog collects what the page writes to its console: console API
// calls, uncaught exceptions and browser log entries (CSP reports among
// them).
type consoleLog struct {
	mu   sync.Mutex
	msgs []chromedp.ConsoleMessage
}

func newConsoleLog(t *testing.T, ctx context.Context) *consoleLog {
	t.Helper()
	l := &consoleLog{}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			l.mu.Lock()
			l.msgs = append(l.msgs, m)
			l.mu.Unlock()
		}
	}()
	return l
}

// check logs the errors the page reported and fails the test on any
// Content-Security-Policy violation.
func (l *consoleLog) check(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.msgs {
		if m.Type != chromedp.ConsoleError && !m.IsException() && !strings.Contains(m.Text, "Content Security Policy") {
			continue
		}
		t.Logf("browser console %s (%s) %s:%d: %s", m.Type, m.Source, m.URL, m.Line+1, m.Text)
		if strings.Contains(m.Text, "Content Security Policy") {
			t.Errorf("the page of /docs broke its Content-Security-Policy: %s", m.Text)
		}
	}
}

func (l *consoleLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, m := range l.msgs {
		b.WriteString("console " + string(m.Type) + ": " + m.Text + "\n")
	}
	return b.String()
}

// chromiumPath finds the browser: $GATEHOUSE_CHROMIUM, chromium on PATH, or
// Debian's /usr/bin/chromium. Without one the test skips locally and fails
// in CI, where `make e2e` must have installed it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	missing := func(why string) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("chromium is required in CI: apt-get install -y chromium (%s)", why)
		}
		t.Skipf("skipping the browser test: %s; `make e2e` installs chromium and runs it", why)
	}
	if p := os.Getenv("GATEHOUSE_CHROMIUM"); p != "" {
		path, err := exec.LookPath(p)
		if err != nil {
			missing("GATEHOUSE_CHROMIUM=" + p + " is not an executable: " + err.Error())
		}
		return path
	}
	if path, err := exec.LookPath("chromium"); err == nil {
		return path
	}
	if path, err := exec.LookPath("/usr/bin/chromium"); err == nil {
		return path
	}
	missing("chromium is neither on PATH nor at /usr/bin/chromium")
	return ""
}

// artifactsDir is where screenshots go: $GATEHOUSE_E2E_ARTIFACTS, or
// e2e-artifacts/ at the root of the repository.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("GATEHOUSE_E2E_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", "e2e-artifacts") // tests run in cmd/server
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("create the artifacts directory: %v", err)
	}
	return dir
}
