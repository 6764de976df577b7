package httpapi_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/metrics"
	"github.com/gatehouse/gatehouse/internal/users"
)

// Benchmarks of the whole HTTP handler in process: chi routing, the spec
// validation middleware with the bearer validator, the handler and the
// JSON response, over a real SQLite store; no network. They assert
// nothing about time; see BENCHMARKS.md.
//
//	go test -run '^$' -bench Router -benchtime 1s ./internal/httpapi/

// benchHandler is NewHandler over a fresh SQLite store holding alice
// (scope "me"), with a token cache of cacheSize entries, and an access
// token of alice's; mint makes another user with the scope and returns
// an access token of theirs.
func benchHandler(b *testing.B, cacheSize int) (h http.Handler, token string, mint func(name, scope string) string) {
	b.Helper()
	ctx := context.Background()
	st := newStack(b, cacheSize)
	svc := st.users
	issuer := auth.NewIssuer(st.deps, st.cfg)
	deps := st.handlerDeps(issuer)
	// The access log is on in production: its formatting counts.
	deps.AccessLog = httpapi.JSONAccessLog(io.Discard)
	deps.Requests = metrics.New()
	h, err := httpapi.NewHandler(deps)
	if err != nil {
		b.Fatal(err)
	}
	mint = func(name, scope string) string {
		if _, err := svc.Create(ctx, users.CLIActor(), users.NewUser{Username: name, Password: userPassword, Scopes: []string{scope}}); err != nil {
			b.Fatal(err)
		}
		resp, err := issuer.Token(ctx, auth.TokenRequest{GrantType: auth.GrantPassword, Username: name, Password: userPassword, Scope: scope, ClientAddr: "127.0.0.1"})
		if err != nil {
			b.Fatal(err)
		}
		return resp.AccessToken
	}
	return h, mint("alice", "me"), mint
}

// discardWriter is a ResponseWriter that keeps only the status, so the
// benchmark counts the server's allocations, not a recorder's.
type discardWriter struct {
	header http.Header
	status int
}

func (w *discardWriter) Header() http.Header { return w.header }
func (w *discardWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}
func (w *discardWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return len(p), nil
}

// serve runs req through h b.N times and fails unless each answer is 200.
func serve(b *testing.B, h http.Handler, req *http.Request) {
	b.Helper()
	// One connection's requests, as the server serves them: its
	// ConnContext gives them the connection's request state.
	req = req.WithContext(httpapi.ConnContext(req.Context(), nil))
	w := &discardWriter{header: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.header)
		w.status = 0
		h.ServeHTTP(w, req)
		if w.status != http.StatusOK {
			b.Fatalf("got status %d, want 200", w.status)
		}
	}
}

// BenchmarkRouter measures one request through the whole handler:
//
//   - healthz: GET /healthz, an operation without security: routing,
//     validation and a JSON body; the ceiling of the server;
//   - users_me_cached: GET /users/me with an RS256 bearer token, the
//     verified-token cache on (every request after the first is a hit);
//   - users_me_uncached: the same with the cache off: a signature check
//     per request;
//   - introspect: POST /introspect (RFC 7662) of a valid access token,
//     by a caller with tokens:introspect, the cache on.
//
// Every request writes its access-log line (to io.Discard) and its
// metrics, as the server does. /users/me checks the user against the
// in-memory user view (a deleted or disabled account's token stops
// working at once), with no store call.
func BenchmarkRouter(b *testing.B) {
	b.Run("healthz", func(b *testing.B) {
		h, _, _ := benchHandler(b, 0)
		serve(b, h, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	})
	for _, tc := range []struct {
		name      string
		cacheSize int
	}{
		{"users_me_cached", auth.DefaultCacheSize},
		{"users_me_uncached", 0},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h, token, _ := benchHandler(b, tc.cacheSize)
			req := httptest.NewRequest(http.MethodGet, "/users/me", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			serve(b, h, req)
		})
	}
	b.Run("introspect", func(b *testing.B) {
		h, token, mint := benchHandler(b, auth.DefaultCacheSize)
		caller := mint("introspector", "tokens:introspect")
		body := "token=" + token
		w := &discardWriter{header: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			req := httptest.NewRequest(http.MethodPost, "/introspect", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", "Bearer "+caller)
			clear(w.header)
			w.status = 0
			h.ServeHTTP(w, req)
			if w.status != http.StatusOK {
				b.Fatalf("got status %d, want 200", w.status)
			}
		}
	})
}
