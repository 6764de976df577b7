package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// newClient is one keep-alive connection's worth of HTTP client that
// dials only 127.0.0.1.
func newClient() *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				host, _, err := net.SplitHostPort(addr)
				if err != nil || host != "127.0.0.1" {
					return nil, fmt.Errorf("scale: refusing to dial %s: only 127.0.0.1", addr)
				}
				return d.DialContext(ctx, network, addr)
			},
			MaxIdleConnsPerHost: 1,
			IdleConnTimeout:     time.Minute,
		},
	}
}

// tokens is a successful /token answer.
type tokens struct {
	Access  string `json:"access_token"`
	Refresh string `json:"refresh_token"`
}

// postToken posts form to /token and wants 200 (RFC 6749 §5.1).
func postToken(ctx context.Context, c *http.Client, base string, form url.Values) (*tokens, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return nil, 0, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	took := time.Since(start)
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("POST /token grant_type=%s: %s: %s", form.Get("grant_type"), resp.Status, body)
	}
	var t tokens
	if err := json.Unmarshal(body, &t); err != nil || t.Access == "" || t.Refresh == "" {
		return nil, 0, fmt.Errorf("POST /token grant_type=%s: no tokens in %s", form.Get("grant_type"), body)
	}
	return &t, took, nil
}

func login(ctx context.Context, c *http.Client, base, username, password string) (*tokens, time.Duration, error) {
	return postToken(ctx, c, base, url.Values{"grant_type": {"password"}, "username": {username}, "password": {password}})
}

func refresh(ctx context.Context, c *http.Client, base, rt string) (*tokens, time.Duration, error) {
	return postToken(ctx, c, base, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
}

// usersMe calls GET /users/me with the bearer token and wants 200.
func usersMe(ctx context.Context, c *http.Client, base, access string) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/users/me", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+access)
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	took := time.Since(start)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /users/me: %s: %s", resp.Status, body)
	}
	return took, nil
}

// latencies is one kind of request's samples.
type latencies struct {
	N        int
	P50, P99 time.Duration
	// CPU is the server's CPU time per request over the run.
	CPU time.Duration
}

func summarize(d []time.Duration) latencies {
	return latencies{N: len(d), P50: percentile(d, 50), P99: percentile(d, 99)}
}

// sessionRows counts what one login keeps in the store.
type sessionRows struct {
	AfterLogin, AfterOne, AfterAll int64 // the probe user's session rows
	SessionsDelta                  int64 // whole sessions table, across the refreshes
	ChangesDelta                   int64 // whole change log, across the refreshes
}

// refreshRun logs the probe user in, counts its session rows, refreshes
// the chain n times (each answer's refresh token is used next) and counts
// again. It returns the last tokens.
func refreshRun(ctx context.Context, c *http.Client, base, password string, n int, db *rowCounter, probeID string) (last *tokens, samples []time.Duration, rows sessionRows, err error) {
	t, _, err := login(ctx, c, base, probeUsername, password)
	if err != nil {
		return nil, nil, rows, err
	}
	if rows.AfterLogin, err = db.sessionsOf(ctx, probeID); err != nil {
		return nil, nil, rows, err
	}
	sessions0, changes0, err := db.totals(ctx)
	if err != nil {
		return nil, nil, rows, err
	}
	for i := range n {
		var took time.Duration
		if t, took, err = refresh(ctx, c, base, t.Refresh); err != nil {
			return nil, nil, rows, fmt.Errorf("refresh %d of %d: %w", i+1, n, err)
		}
		samples = append(samples, took)
		if i == 0 {
			if rows.AfterOne, err = db.sessionsOf(ctx, probeID); err != nil {
				return nil, nil, rows, err
			}
		}
	}
	if rows.AfterAll, err = db.sessionsOf(ctx, probeID); err != nil {
		return nil, nil, rows, err
	}
	sessions1, changes1, err := db.totals(ctx)
	if err != nil {
		return nil, nil, rows, err
	}
	rows.SessionsDelta, rows.ChangesDelta = sessions1-sessions0, changes1-changes0
	return t, samples, rows, nil
}

// meRun calls GET /users/me n times with the access token.
func meRun(ctx context.Context, c *http.Client, base, access string, n int) ([]time.Duration, error) {
	var out []time.Duration
	for i := range n {
		took, err := usersMe(ctx, c, base, access)
		if err != nil {
			return nil, fmt.Errorf("GET /users/me %d of %d: %w", i+1, n, err)
		}
		out = append(out, took)
	}
	return out, nil
}

// loginRun logs in once as each of the users.
func loginRun(ctx context.Context, c *http.Client, base, password string, users []string) ([]time.Duration, error) {
	var out []time.Duration
	for _, u := range users {
		_, took, err := login(ctx, c, base, u, password)
		if err != nil {
			return nil, fmt.Errorf("login as %s: %w", u, err)
		}
		out = append(out, took)
	}
	if len(out) == 0 {
		return nil, errors.New("no logins")
	}
	return out, nil
}
