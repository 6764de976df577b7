package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// While a replica waits for its database, /healthz answers (the process
// is alive: no restart) and /readyz is 503 saying why; the API itself
// answers 503 with Retry-After.
func TestServesWhileWaitingForTheStore(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	// Nothing listens on port 1: the store is retried until the context ends.
	env["GATEHOUSE_DATABASE_URL"] = "postgres://gatehouse@127.0.0.1:1/gatehouse"
	env["GATEHOUSE_ISSUER"] = "http://127.0.0.1"
	env["GATEHOUSE_DATABASE_STARTUP_TIMEOUT"] = "1h"
	ctx, cancel := context.WithCancel(t.Context())
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, getenvFrom(env), nil, io.Discard, &stderr) }()
	defer func() {
		cancel()
		<-done
	}()

	var base string
	deadline := time.Now().Add(30 * time.Second)
	for base == "" {
		if rec, ok := findLog(stderr.String(), "gatehouse starting"); ok {
			base = "http://" + rec["addr"].(string)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no \"gatehouse starting\" line:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	get := func(path string) (int, http.Header, map[string]any) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, resp.Header, body
	}
	if status, _, body := get("/healthz"); status != 200 || body["status"] != "starting" {
		t.Errorf("GET /healthz while starting = %d %v, want 200 starting", status, body)
	}
	status, _, body := get("/readyz")
	if detail, _ := body["detail"].(string); status != 503 || !strings.Contains(detail, "not ready: opening the store postgres://gatehouse@127.0.0.1:1/gatehouse") {
		t.Errorf("GET /readyz while starting = %d %v, want 503 saying the store is being opened", status, body)
	}
	if status, h, _ := get("/users/me"); status != 503 || h.Get("Retry-After") == "" {
		t.Errorf("GET /users/me while starting = %d (Retry-After %q), want 503 with Retry-After", status, h.Get("Retry-After"))
	}
	if _, ok := findLog(stderr.String(), "gatehouse listening"); ok {
		t.Error("the server said it was listening (ready) before its store was open")
	}
}
