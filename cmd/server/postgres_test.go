package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// postgresURL is the server the PostgreSQL tests use. Without one they
// skip, except in CI, where a missing database is a failure.
func postgresURL(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("GATEHOUSE_TEST_POSTGRES_URL")
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("GATEHOUSE_TEST_POSTGRES_URL is not set: CI must run the PostgreSQL tests (.ci/run sets it)")
		}
		t.Skip("set GATEHOUSE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable to run the PostgreSQL tests")
	}
	return dsn
}

// postgresSchema creates a schema of its own for the test, dropped at
// cleanup, and returns a URL whose connections use it.
func postgresSchema(t *testing.T) string {
	t.Helper()
	base := postgresURL(t)
	b := make([]byte, 6)
	rand.Read(b)
	schema := "gatehouse_test_" + hex.EncodeToString(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to %s: %v", base, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), base)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// tcpProxy forwards connections to target while it is up, so a test can
// take "the database" away from a server and bring it back.
type tcpProxy struct {
	addr, target string

	mu    sync.Mutex
	ln    net.Listener
	conns []net.Conn
}

// newTCPProxy reserves a local address for a proxy that is not up yet.
func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := &tcpProxy{addr: addr, target: target}
	t.Cleanup(p.down)
	return p
}

func (p *tcpProxy) up() error {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
	return nil
}

// down stops accepting and cuts every open connection.
func (p *tcpProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// proxiedURL is dsn with its host replaced by the proxy's.
func proxiedURL(t *testing.T, dsn, proxyAddr string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = proxyAddr
	return u.String()
}

func readyStatus(base string) int {
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// eventually polls cond every 20ms until it holds or within passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPostgresReadiness: the server waits for a PostgreSQL that comes up
// after it, /readyz fails while the database is unreachable and recovers
// when it returns.
func TestPostgresReadiness(t *testing.T) {
	t.Parallel()
	dsn := postgresSchema(t)
	target, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newTCPProxy(t, target.Host)
	env := testEnv(t)
	env["GATEHOUSE_DATABASE_URL"] = proxiedURL(t, dsn, proxy.addr)
	env["GATEHOUSE_DATABASE_CONNECT_TIMEOUT"] = "1s"
	env["GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD"] = adminPassword

	// The database comes up a moment after the server starts.
	upErr := make(chan error, 1)
	go func() {
		time.Sleep(700 * time.Millisecond)
		upErr <- proxy.up()
	}()
	base, stderr, _ := startServer(t, env)
	if err := <-upErr; err != nil {
		t.Fatal(err)
	}
	if _, ok := findLog(stderr.String(), "store not reachable yet; retrying"); !ok {
		t.Errorf("the server did not report waiting for the database:\n%s", stderr)
	}
	c := newClient(t, base)
	token := accessToken(t, c, "admin", adminPassword, "")

	proxy.down()
	eventually(t, 10*time.Second, "/readyz fails while the database is unreachable", func() bool { return readyStatus(base) == 503 })
	// Liveness does not depend on the database.
	if resp, err := http.Get(base + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("/healthz while the database is down: %v %v", resp, err)
	}

	if err := proxy.up(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "/readyz recovers when the database returns", func() bool { return readyStatus(base) == 200 })
	if got := getStatus(t, base+"/users/me", token); got != 200 {
		t.Errorf("GET /users/me after the database returned: %d", got)
	}
}

// A database that does not exist ends start-up at once with PostgreSQL's
// message, instead of being retried for GATEHOUSE_DATABASE_STARTUP_TIMEOUT
// as a server still starting would be.
func TestPostgresPermanentErrorEndsStartup(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(postgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/gatehouse_no_such_database"
	env := testEnv(t)
	env["GATEHOUSE_DATABASE_URL"] = u.String()
	env["GATEHOUSE_ISSUER"] = "http://127.0.0.1"
	env["GATEHOUSE_DATABASE_STARTUP_TIMEOUT"] = "1h"
	// Were the error retried, run would still be waiting when this
	// context ends, and return its cancellation instead.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var stderr syncBuffer
	err = run(ctx, nil, getenvFrom(env), nil, io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), `database "gatehouse_no_such_database" does not exist`) {
		t.Fatalf("run = %v, want PostgreSQL's message that the database does not exist\n%s", err, stderr.String())
	}
	if strings.Contains(stderr.String(), "not reachable yet") {
		t.Errorf("the permanent error was retried:\n%s", stderr.String())
	}
}

// A CLI command on a PostgreSQL database without gatehouse's tables says
// so instead of creating an empty store there.
func TestPostgresCLIWithoutStore(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	env["GATEHOUSE_DATABASE_URL"] = postgresSchema(t)
	_, err := runCLI(t, env, "", "users", "list")
	if err == nil || !strings.Contains(err.Error(), "no store at postgres://") {
		t.Fatalf("users list on an empty database = %v, want \"no store at …\"", err)
	}
	// The server creates it; then the CLI works.
	env["GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD"] = adminPassword
	startServer(t, env)
	if _, ok := listUsers(t, env)["admin"]; !ok {
		t.Error("users list after the server created the store shows no admin")
	}
}
