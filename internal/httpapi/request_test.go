package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/users"
)

// The requests of one HTTP/1.1 connection share its request state
// (httpapi.ConnContext); none may see what the one before it left: its
// bearer's identity, its request id, its client address (a proxy sends
// many clients' requests down one connection).
func TestConnection_requests_sharing_one_state_see_nothing_of_the_one_before(t *testing.T) {
	var log lockedBuffer
	ts := newTestServer(t, func(d *httpapi.Deps) {
		d.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		d.AccessLog = httpapi.JSONAccessLog(&log)
	})
	if _, err := ts.users.Create(context.Background(), users.CLIActor(), users.NewUser{Username: "bob", Password: userPassword, Scopes: []string{"me"}}); err != nil {
		t.Fatal(err)
	}
	alice := ts.token(t, "alice", userPassword, "me")
	bob := ts.token(t, "bob", userPassword, "me")

	// One client connection for all: a new one would be counted.
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	var conns atomic.Int32
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		if !i.Reused {
			conns.Add(1)
		}
	}}
	do := func(target string, header ...string) response {
		t.Helper()
		req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, ts.URL+target, nil)
		if err != nil {
			t.Fatal(err)
		}
		return send(t, client, req, header...)
	}
	me := func(header ...string) response {
		t.Helper()
		return do("/users/me", header...)
	}
	log.Reset()
	if r := me("Authorization", "Bearer "+alice, "X-Request-Id", "caller-1", "X-Forwarded-For", "203.0.113.7"); r.status != http.StatusOK || r.json(t)["username"] != "alice" || r.header.Get("X-Request-Id") != "caller-1" {
		t.Fatalf("alice's /users/me = %d %s (request id %q)", r.status, r.body, r.header.Get("X-Request-Id"))
	}
	r := me("X-Forwarded-For", "198.51.100.9")
	if r.status != http.StatusUnauthorized || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("/users/me without a bearer after alice's = %d %s, want 401 with a Bearer challenge", r.status, r.body)
	}
	if id := r.header.Get("X-Request-Id"); id == "" || id == "caller-1" {
		t.Errorf("the next request's id = %q, want one of its own", id)
	}
	if r := me("Authorization", "Bearer "+bob, "X-Forwarded-For", "192.0.2.1"); r.status != http.StatusOK || r.json(t)["username"] != "bob" {
		t.Errorf("bob's /users/me after alice's = %d %s", r.status, r.body)
	}
	if r := do("/healthz"); r.status != http.StatusOK {
		t.Errorf("/healthz after them = %d %s", r.status, r.body)
	}
	var got []string
	for line := range strings.Lines(log.String()) {
		var rec struct {
			RequestID string `json:"request_id"`
			ClientIP  string `json:"client_ip"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("access log line %q: %v", line, err)
		}
		got = append(got, rec.ClientIP)
	}
	if want := []string{"203.0.113.7", "198.51.100.9", "192.0.2.1", "127.0.0.1"}; !slices.Equal(got, want) {
		t.Errorf("the access log's client addresses = %v, want %v", got, want)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("the requests used %d connections, want 1 (the test is about one connection's requests)", n)
	}
}
