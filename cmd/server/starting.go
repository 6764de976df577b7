package main

import (
	"encoding/json"
	"net/http"
	"sync/atomic"
)

// switchHandler serves with the handler last set: the starting handler
// while the store is opened, then the API. The listener opens first, so
// an orchestrator's liveness probe is answered while a replica waits for
// its database, and readiness says why it is not ready yet.
type switchHandler struct{ h atomic.Pointer[http.Handler] }

func (s *switchHandler) set(h http.Handler) { s.h.Store(&h) }

func (s *switchHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*s.h.Load()).ServeHTTP(w, r)
}

// startingHandler answers while the server starts: GET /healthz 200 (the
// process is alive), GET /readyz 503 with why, anything else 503 with
// Retry-After, each as problem details or the health JSON the API uses.
func startingHandler(version string, why func() string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		if r.URL.Path == "/healthz" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			h.Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]string{"status": "starting", "version": version})
			return
		}
		h.Set("Content-Type", "application/problem+json")
		h.Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"type": "about:blank", "title": http.StatusText(http.StatusServiceUnavailable), "status": http.StatusServiceUnavailable,
			"detail": "not ready: " + why(),
		})
	})
}
