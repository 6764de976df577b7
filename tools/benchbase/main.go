// Command benchbase is the baseline of `make bench` (scripts/bench.sh): a
// bare chi router with one JSON handler, GET / answering {"status":"ok"},
// and no middleware, served on 127.0.0.1 only; and GET /users/me, the
// shape of gatehouse's answer with no work behind it, and POST
// /introspect the same for an introspection. The script pins it to the
// server's core and measures it in the same run as gatehouse, so the
// ratios of /healthz, /users/me and /introspect are against what chi and
// net/http cost on this machine at that moment.
//
//	go run ./tools/benchbase -port 0   # prints "listening 127.0.0.1:PORT"
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"
)

// meShape is a user as gatehouse's /users/me returns it (235 bytes with
// the newline, as for the bootstrap admin).
var meShape = []byte(`{"created_at":"2026-12-02T01:05:32.714443753Z","disabled":false,"id":"d9d61b93-4d28-429d-83dd-aa95c8129ea1","scopes":["clients:read","clients:write","keys:write","me","tokens:introspect","users:read","users:write"],"username":"admin"}` + "\n")

// introspectShape is an active token's introspection as gatehouse
// answers it for the bootstrap admin (347 bytes with the newline).
var introspectShape = []byte(`{"active":true,"aud":"gatehouse","client_id":"public","exp":1796177578,"iat":1796176678,"iss":"http://127.0.0.1:18080","jti":"GefcktLHkwr5BLz_6Fe3oQ","nbf":1796176678,"scope":"clients:read clients:write keys:write me tokens:introspect users:read users:write","sub":"1292f2ea-695c-406d-9cab-5a8d14b6565f","token_type":"Bearer","username":"admin"}` + "\n")

// healthShape is gatehouse's /healthz answer as a development build gives
// it (57 bytes with the newline).
var healthShape = []byte(`{"status":"ok","version":"gatehouse (devel) (go1.26.8)"}` + "\n")

// shapeHeaders sets the headers of a gatehouse JSON answer.
func shapeHeaders(h http.Header) {
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", "application/json")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Request-Id", "0123456789abcdef01234567")
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchbase:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends, printing "listening ADDR" to stdout once the
// listener is open.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("benchbase", flag.ContinueOnError)
	port := fs.Int("port", 0, "TCP port on 127.0.0.1 (0: any free one)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
	if err != nil {
		return err
	}
	r := chi.NewRouter()
	r.Get("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(struct {
			Status string `json:"status"`
		}{"ok"})
	})
	// GET /healthz answers gatehouse's /healthz in shape: the headers every
	// gatehouse response carries (no-store, nosniff, no-referrer and
	// X-Request-Id) and a body of the same size, with no work behind it:
	// the ceiling of gatehouse's /healthz on this machine.
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		shapeHeaders(w.Header())
		_, _ = w.Write(healthShape)
	})
	// GET /users/me answers what gatehouse's /users/me answers, in shape:
	// its headers (the no-store, nosniff, no-referrer and X-Request-Id
	// every gatehouse response carries) and a body of the same size, with
	// no work behind it. Sent gatehouse's request (a bearer header of an
	// RS256 token), it is the ceiling of /users/me on this machine: what
	// net/http and the kernel cost for those bytes.
	r.Get("/users/me", func(w http.ResponseWriter, _ *http.Request) {
		shapeHeaders(w.Header())
		_, _ = w.Write(meShape)
	})
	// POST /introspect likewise: it reads the body (an RS256 token in a
	// form) and answers the headers and the size of an active token's
	// RFC 7662 answer: the ceiling of gatehouse's /introspect.
	r.Post("/introspect", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		shapeHeaders(w.Header())
		_, _ = w.Write(introspectShape)
	})
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintln(stdout, "listening", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return srv.Close()
	}
}
