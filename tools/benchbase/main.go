// Command benchbase is the baseline of `make bench` (scripts/bench.sh): a
// bare chi router with one JSON handler, GET / answering {"status":"ok"},
// and no middleware, served on 127.0.0.1 only. The script pins it to the
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
