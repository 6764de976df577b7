package httpapi

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/go-chi/chi/v5"
)

// BenchmarkValidate is the spec validation step alone: the operation's
// lookup and kin-openapi's checks, with an AuthenticationFunc that
// accepts every request (the bearer check itself is BenchmarkVerify in
// internal/auth), for an operation with security only (GET /users/me)
// and one with a form body (POST /introspect).
func BenchmarkValidate(b *testing.B) {
	doc, err := Spec()
	if err != nil {
		b.Fatal(err)
	}
	mux := chi.NewRouter()
	accept := func(context.Context, *openapi3filter.AuthenticationInput) error { return nil }
	v := newSpecValidator(doc, mux, accept, errorWriter{}, MaxBodyBytes)
	var reached bool
	h := v.middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true }))
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			mux.Method(method, path, h)
		}
	}
	for _, tc := range []struct {
		name, method, path, body string
	}{
		{"users_me", http.MethodGet, "/users/me", ""},
		{"introspect_form", http.MethodPost, "/introspect", "token=" + strings.Repeat("a", 800) + "&token_type_hint=access_token"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			w := httptest.NewRecorder()
			req := httptest.NewRequest(tc.method, tc.path, nil)
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			req = req.WithContext(&reqState{Context: context.Background()})
			body := strings.NewReader(tc.body)
			b.ReportAllocs()
			for b.Loop() {
				if tc.body != "" {
					body.Reset(tc.body)
					req.Body = io.NopCloser(body)
					req.ContentLength = int64(len(tc.body))
				}
				reached = false
				h.ServeHTTP(w, req)
				if !reached {
					b.Fatalf("refused: %d %s", w.Code, w.Body)
				}
			}
		})
	}
}
