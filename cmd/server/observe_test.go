package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func logRecords(t *testing.T, stderr string, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range jsonLogLines(t, stderr) {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

func TestAccessLog(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	env["GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD"] = adminPassword
	base, stderr, stop := startServer(t, env)
	c := newClient(t, base)
	token := accessToken(t, c, "admin", adminPassword, "")

	req, _ := http.NewRequest("GET", base+"/users/me?secret=do-not-log", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Request-Id", "trace-abc.123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); got != "trace-abc.123" {
		t.Errorf("X-Request-Id echoed as %q", got)
	}
	req, _ = http.NewRequest("GET", base+"/healthz", nil)
	req.Header.Set("X-Request-Id", "bad id\twith controls")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	generated := resp.Header.Get("X-Request-Id")
	if generated == "" || strings.ContainsAny(generated, " \t") {
		t.Errorf("a malformed X-Request-Id was not replaced: %q", generated)
	}
	stop()

	var me map[string]any
	for _, rec := range logRecords(t, stderr.String(), "request") {
		if rec["request_id"] == "trace-abc.123" {
			me = rec
		}
	}
	if me == nil {
		t.Fatalf("no access log record for the request:\n%s", stderr)
	}
	for k, want := range map[string]any{"method": "GET", "route": "/users/me", "status": float64(200), "client_ip": "127.0.0.1"} {
		if me[k] != want {
			t.Errorf("%s: got %v, want %v", k, me[k], want)
		}
	}
	if b, _ := me["bytes"].(float64); b <= 0 {
		t.Errorf("bytes: got %v", me["bytes"])
	}
	if _, ok := me["duration_ms"].(float64); !ok {
		t.Errorf("duration_ms: got %v", me["duration_ms"])
	}
	if strings.Contains(stderr.String(), "do-not-log") {
		t.Error("the raw query string reached the logs")
	}
}

func TestAuditEventsAndMetrics(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	env["GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD"] = adminPassword
	env["GATEHOUSE_REFRESH_REUSE_WINDOW"] = "0" // the replay below is reuse at once
	base, stderr, stop := startServer(t, env)
	c := newClient(t, base)
	admin := accessToken(t, c, "admin", adminPassword, "")
	createUser(t, c, admin, "alice", alicePassword, "me")

	form := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	call := func(method, path, contentType, body, token string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		m := map[string]any{}
		_ = json.Unmarshal(b, &m)
		return m
	}
	const formType = "application/x-www-form-urlencoded"
	login := call("POST", "/token", formType, form("grant_type", "password", "username", "alice", "password", alicePassword), "")
	rotated := call("POST", "/token", formType, form("grant_type", "refresh_token", "refresh_token", login["refresh_token"].(string)), "")
	call("POST", "/revoke", formType, form("token", rotated["access_token"].(string)), "")
	call("POST", "/token", formType, form("grant_type", "refresh_token", "refresh_token", login["refresh_token"].(string)), "") // reuse
	for range 7 {                                                                                                               // the sixth failure starts the delay, the seventh is throttled
		call("POST", "/token", formType, form("grant_type", "password", "username", "alice", "password", "wrong-password"), "")
	}
	call("PATCH", "/users/alice", "application/json", `{"scopes":["me","users:read"]}`, admin)
	call("PATCH", "/users/alice", "application/json", `{"disabled":true}`, admin)
	call("DELETE", "/users/alice", "", "", admin)
	call("POST", "/keys/rotate", "", "", admin)
	call("POST", "/clients", "application/json", `{"client_id":"backend"}`, admin)

	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metricsText, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	stop()

	seen := map[string]bool{}
	for _, rec := range logRecords(t, stderr.String(), "audit") {
		seen[rec["event"].(string)+"/"+rec["outcome"].(string)] = true
	}
	for _, want := range []string{
		"login/succeeded", "login/failed", "login/throttled", "refresh/rotated", "refresh/reuse_detected",
		"token.revoked/ok", "user.created/ok", "user.changed/ok", "user.disabled/ok", "user.deleted/ok",
		"key.rotated/ok", "client.created/ok",
	} {
		if !seen[want] {
			t.Errorf("no audit record %s (have %v)", want, seen)
		}
	}

	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	for _, name := range []string{
		`gatehouse_http_requests_total{method="POST",route="/token",status="200"}`,
		`gatehouse_http_request_duration_seconds_bucket{route="/users/{username}"`,
		`gatehouse_token_requests_total{grant_type="password",outcome="succeeded"}`,
		`gatehouse_token_requests_total{grant_type="refresh_token",outcome="rotated"}`,
		`gatehouse_login_throttled_total 1`,
		`gatehouse_refresh_reuse_detected_total 1`,
		`gatehouse_password_hash_duration_seconds_count`,
		`gatehouse_password_hash_queue_wait_seconds_count`,
		`gatehouse_store_duration_seconds_count{op="delete_user",result="ok"}`,
		`gatehouse_audit_events_total{event="key.rotated",outcome="ok"} 1`,
		`gatehouse_token_cache_hits_total`,
		`gatehouse_token_cache_misses_total`,
		`go_goroutines`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(string(metricsText), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

func TestMetricsOnTheirOwnListener(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	env["GATEHOUSE_METRICS_ADDR"] = "127.0.0.1:0"
	base, stderr, _ := startServer(t, env)
	if got := getStatus(t, base+"/metrics", ""); got != 404 {
		t.Errorf("/metrics on the API listener: got %d, want 404", got)
	}
	rec, ok := findLog(stderr.String(), "metrics listening")
	if !ok {
		t.Fatalf("no metrics listener:\n%s", stderr)
	}
	resp, err := http.Get("http://" + rec["addr"].(string) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "gatehouse_http_requests_total") {
		t.Fatalf("got %d", resp.StatusCode)
	}
}

func TestTextLogs(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	env["GATEHOUSE_LOG_FORMAT"] = "text"
	ctxEnv := getenvFrom(env)
	cfg, err := loadConfig(ctxEnv)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	newLogger(&b, cfg).Info("hello", "k", "v")
	if !strings.Contains(b.String(), "msg=hello k=v") {
		t.Fatalf("got %q, want a text record", b.String())
	}
}
