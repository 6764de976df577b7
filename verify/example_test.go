package verify_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/gatehouse/gatehouse/client"
	"github.com/gatehouse/gatehouse/internal/servertest"
	"github.com/gatehouse/gatehouse/verify"
)

// issuer is the URL of the gatehouse server TestMain starts for the
// examples: without GATEHOUSE_ISSUER, gatehouse's issuer is its own URL.
var (
	issuer        string
	adminPassword = servertest.AdminPassword
)

func TestMain(m *testing.M) {
	s, err := servertest.Start(nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	issuer = s.URL
	code := m.Run()
	s.Stop()
	servertest.Cleanup()
	os.Exit(code)
}

// A service protects its routes with Middleware and reads the caller from
// the request context.
func ExampleVerifier_Middleware() {
	ctx := context.Background()
	v, err := verify.New(ctx, verify.Config{Issuer: issuer, Audience: "gatehouse"})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /hello", v.Middleware("me")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := verify.ClaimsFrom(r.Context())
		fmt.Fprintf(w, "hello, %s\n", claims.Username)
	})))
	service := httptest.NewServer(mux)
	defer service.Close()

	// A gatehouse session's HTTPClient sends its token to the service.
	sess, err := client.Login(ctx, issuer, "admin", adminPassword)
	if err != nil {
		log.Fatal(err)
	}
	resp, err := sess.HTTPClient.Get(service.URL + "/hello")
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Print(resp.StatusCode, " ", string(body))

	// Without a token: an RFC 6750 §3 challenge without error.
	resp, err = http.Get(service.URL + "/hello")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	// Output:
	// 200 hello, admin
	// 401 Bearer realm="gatehouse"
}

// Verify checks a token outside of HTTP, for example one received over
// another protocol.
func ExampleVerifier_Verify() {
	ctx := context.Background()
	v, err := verify.New(ctx, verify.Config{Issuer: issuer, Audience: "gatehouse"})
	if err != nil {
		log.Fatal(err)
	}
	sess, err := client.Login(ctx, issuer, "admin", adminPassword, client.WithScopes("me"))
	if err != nil {
		log.Fatal(err)
	}
	tok, err := sess.TokenSource.Token()
	if err != nil {
		log.Fatal(err)
	}
	claims, err := v.Verify(ctx, tok.AccessToken)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(claims.Username, claims.Scopes, claims.HasScope("me"))

	_, err = v.Verify(ctx, "not a token")
	fmt.Println(err)
	// Output:
	// admin [me] true
	// bearer: invalid_token: the access token is malformed
}

// Routes that must see a revocation at once ask gatehouse on every request
// with RequireActive; the Verifier authenticates there with a token holding
// tokens:introspect.
func ExampleVerifier_RequireActive() {
	ctx := context.Background()
	service, err := client.Login(ctx, issuer, "admin", adminPassword, client.WithScopes("tokens:introspect"))
	if err != nil {
		log.Fatal(err)
	}
	v, err := verify.New(ctx, verify.Config{
		Issuer:        issuer,
		Audience:      "gatehouse",
		Introspection: &verify.IntrospectionConfig{TokenSource: service.TokenSource},
	})
	if err != nil {
		log.Fatal(err)
	}
	transfer := v.Middleware("me")(v.RequireActive()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "transferred")
	})))

	user, err := client.Login(ctx, issuer, "admin", adminPassword, client.WithScopes("me"))
	if err != nil {
		log.Fatal(err)
	}
	tok, err := user.TokenSource.Token()
	if err != nil {
		log.Fatal(err)
	}
	call := func() {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "/transfer", nil)
		r.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		transfer.ServeHTTP(w, r)
		if w.Code == http.StatusOK {
			fmt.Print(w.Code, " ", w.Body.String())
			return
		}
		fmt.Println(w.Code, w.Header().Get("WWW-Authenticate"))
	}
	call()
	if err := user.Logout(ctx); err != nil { // revokes the login's tokens
		log.Fatal(err)
	}
	call()
	// Output:
	// 200 transferred
	// 401 Bearer realm="gatehouse", error="invalid_token", error_description="the access token is no longer active"
}
