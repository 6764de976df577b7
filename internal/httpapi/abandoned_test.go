package httpapi_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/users"
)

// lockedBuffer is a log sink the handler and the test share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *lockedBuffer) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Reset()
}

// A login whose caller leaves while it waits for a hashing slot is no
// server failure: no ERROR record, no 500, and the slot queue is left as
// it was.
func TestLoginAbandonedWhileQueuedIsNoServerError(t *testing.T) {
	ctx := t.Context()
	st := newStack(t, 0)
	if _, err := st.users.Create(ctx, users.CLIActor(), users.NewUser{Username: "alice", Password: userPassword, Scopes: []string{"me"}}); err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	deps := st.handlerDeps(auth.NewIssuer(st.deps, st.cfg))
	deps.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	h, err := httpapi.NewHandler(deps)
	if err != nil {
		t.Fatal(err)
	}
	// Every slot taken, so the login queues.
	for range st.users.HashStats().Slots {
		sl, err := st.users.Admit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer sl.Release()
	}
	reqCtx, cancel := context.WithCancel(ctx)
	req := httptest.NewRequestWithContext(reqCtx, http.MethodPost, "/token",
		strings.NewReader("grant_type=password&username=alice&password="+strings.ReplaceAll(userPassword, " ", "+")))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() { defer close(done); h.ServeHTTP(rec, req) }()
	for deadline := time.Now().Add(10 * time.Second); st.users.HashStats().Waiting == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the login did not queue for a hashing slot within 10s")
		}
	}
	cancel()
	<-done
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Errorf("abandoned login answered %d (Retry-After %q), want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	if strings.Contains(logs.String(), `"level":"ERROR"`) || !strings.Contains(logs.String(), "request abandoned by the caller") {
		t.Errorf("log of the abandoned login:\n%s\nwant an info record and no ERROR", logs.String())
	}
	if s := st.users.HashStats(); s.Waiting != 0 {
		t.Errorf("after the abandoned login %d calls wait for a slot, want 0", s.Waiting)
	}
}
