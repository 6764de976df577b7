package httpapi

import (
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
)

// The validator's shortcut for paths without parameters finds the
// operation chi routes the request to, on the server's own router; and
// a path that only looks like a pattern goes through chi.
func TestStaticLookupMatchesChi(t *testing.T) {
	h, err := NewHandler(Deps{})
	if err != nil {
		t.Fatal(err)
	}
	mux := h.(*server).mux
	doc, _ := Spec()
	v := newSpecValidator(doc, mux, nil, errorWriter{}, MaxBodyBytes)
	n := 0
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if strings.Contains(path, "{") {
				continue
			}
			n++
			op, params := v.find(method, path)
			if op == nil || op.route.Path != path || params != nil {
				t.Errorf("%s %s: found %v %v", method, path, op, params)
			}
			if got := mux.Find(chi.NewRouteContext(), method, path); got != path {
				t.Errorf("%s %s: chi routes it to %q", method, path, got)
			}
		}
	}
	if n < 5 {
		t.Fatalf("only %d operations without parameters in the spec", n)
	}
	op, params := v.find("GET", "/users/{username}")
	if op == nil || op.route.Path != "/users/{username}" || params["username"] != "{username}" {
		t.Fatalf("GET /users/{username} spelled out: %v %v", op, params)
	}
}
