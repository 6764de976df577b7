// Command resource-server is a service that accepts gatehouse access
// tokens: GET /hello answers "hello, <username>" to a request bearing a
// token with the scope "me" (RFC 6750 §2.1), and refuses the others as
// gatehouse would.
//
//	GATEHOUSE_ISSUER=http://127.0.0.1:8080 go run ./examples/resource-server
//	curl -H "Authorization: Bearer $ALICE" http://127.0.0.1:8090/hello
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"

	"github.com/gatehouse/gatehouse/verify"
)

func main() {
	issuer := flag.String("issuer", os.Getenv("GATEHOUSE_ISSUER"), "gatehouse's issuer URL (default $GATEHOUSE_ISSUER)")
	audience := flag.String("audience", "gatehouse", "the aud gatehouse puts in its tokens (its GATEHOUSE_AUDIENCE)")
	addr := flag.String("addr", "127.0.0.1:8090", "listen address")
	flag.Parse()

	handler, err := newHandler(context.Background(), *issuer, *audience)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("listening on http://%s", *addr)
	log.Fatal(http.ListenAndServe(*addr, handler))
}

// newHandler fetches gatehouse's metadata and keys and routes GET /hello
// behind a token check.
func newHandler(ctx context.Context, issuer, audience string) (http.Handler, error) {
	v, err := verify.New(ctx, verify.Config{Issuer: issuer, Audience: audience})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /hello", v.Middleware("me")(http.HandlerFunc(hello)))
	return mux, nil
}

func hello(w http.ResponseWriter, r *http.Request) {
	claims, ok := verify.ClaimsFrom(r.Context())
	if !ok {
		http.Error(w, "unauthenticated", http.StatusUnauthorized)
		return
	}
	fmt.Fprintf(w, "hello, %s\n", claims.Username)
}
