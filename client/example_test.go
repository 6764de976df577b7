package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"testing"

	"golang.org/x/oauth2"

	"github.com/gatehouse/gatehouse/client"
	"github.com/gatehouse/gatehouse/internal/servertest"
)

// serverURL is the gatehouse server TestMain starts for the examples and
// the tests of this package; adminPassword is its admin's password.
var (
	serverURL     string
	adminPassword = servertest.AdminPassword
)

func TestMain(m *testing.M) {
	s, err := servertest.Start(nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	serverURL = s.URL
	code := m.Run()
	s.Stop()
	servertest.Cleanup()
	os.Exit(code)
}

// A session is an API client whose requests carry an access token that
// refreshes itself.
func Example() {
	ctx := context.Background()

	// Log in as the admin (RFC 6749 §4.3).
	admin, err := client.Login(ctx, serverURL, "admin", adminPassword)
	if err != nil {
		log.Fatal(err)
	}
	defer admin.Logout(ctx)

	// Create a user who may read their own account.
	scopes := []string{"me"}
	created, err := admin.Client.CreateUserWithResponse(ctx, client.NewUser{Username: "alice", Password: "wonderland", Scopes: &scopes})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(created.StatusCode())

	// Log in as that user, asking for the scope "me" only.
	alice, err := client.Login(ctx, serverURL, "alice", "wonderland", client.WithScopes("me"))
	if err != nil {
		log.Fatal(err)
	}
	me, err := alice.Client.GetCurrentUserWithResponse(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(me.StatusCode(), me.JSON200.Username, me.JSON200.Scopes)

	// End alice's login (RFC 7009) and delete her.
	if err := alice.Logout(ctx); err != nil {
		log.Fatal(err)
	}
	deleted, err := admin.Client.DeleteUserWithResponse(ctx, "alice")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(deleted.StatusCode())
	// Output:
	// 201
	// 200 alice [me]
	// 204
}

// A refused login wraps the token endpoint's RFC 6749 §5.2 error.
func ExampleLogin_wrongPassword() {
	_, err := client.Login(context.Background(), serverURL, "admin", "not the password")
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		fmt.Println(re.ErrorCode)
	}
	// Output: invalid_grant
}

// A command-line tool can keep the token between runs and resume the
// session from it.
func ExampleResume() {
	ctx := context.Background()
	sess, err := client.Login(ctx, serverURL, "admin", adminPassword)
	if err != nil {
		log.Fatal(err)
	}
	// The current token; save it (it holds the refresh token) and stop
	// using sess.
	tok, err := sess.TokenSource.Token()
	if err != nil {
		log.Fatal(err)
	}

	resumed, err := client.Resume(ctx, serverURL, tok)
	if err != nil {
		log.Fatal(err)
	}
	me, err := resumed.Client.GetCurrentUserWithResponse(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(me.JSON200.Username)
	// Output: admin
}
