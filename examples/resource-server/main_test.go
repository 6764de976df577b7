package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/gatehouse/gatehouse/client"
	"github.com/gatehouse/gatehouse/internal/servertest"
)

// TestMain removes the server binary servertest built.
func TestMain(m *testing.M) {
	code := m.Run()
	servertest.Cleanup()
	os.Exit(code)
}

func TestHello(t *testing.T) {
	ctx := context.Background()
	g := servertest.StartT(t, nil)
	admin, err := client.Login(ctx, g.URL, "admin", servertest.AdminPassword)
	if err != nil {
		t.Fatal(err)
	}
	for name, scopes := range map[string][]string{"alice": {"me"}, "bob": {"users:read"}} {
		resp, err := admin.Client.CreateUserWithResponse(ctx, client.NewUser{Username: name, Password: "password-" + name, Scopes: &scopes})
		if err != nil || resp.StatusCode() != http.StatusCreated {
			t.Fatalf("create %s: %v %s", name, err, resp.Body)
		}
	}
	handler, err := newHandler(ctx, g.URL, "gatehouse")
	if err != nil {
		t.Fatal(err)
	}
	service := httptest.NewServer(handler)
	t.Cleanup(service.Close)

	call := func(t *testing.T, method string, hc *http.Client) (int, string, string) {
		t.Helper()
		req, err := http.NewRequest(method, service.URL+"/hello", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), string(body)
	}
	session := func(t *testing.T, name string) *http.Client {
		t.Helper()
		s, err := client.Login(ctx, g.URL, name, "password-"+name)
		if err != nil {
			t.Fatal(err)
		}
		return s.HTTPClient
	}

	t.Run("rfc6750_2.1_a_token_with_scope_me_is_greeted", func(t *testing.T) {
		status, _, body := call(t, "GET", session(t, "alice"))
		if status != http.StatusOK || body != "hello, alice\n" {
			t.Errorf("got %d %q, want 200 %q", status, body, "hello, alice\n")
		}
	})
	t.Run("rfc6750_3.1_a_token_without_scope_me_is_insufficient_scope", func(t *testing.T) {
		status, challenge, _ := call(t, "GET", session(t, "bob"))
		want := `Bearer realm="gatehouse", error="insufficient_scope", error_description="the access token lacks a required scope", scope="me"`
		if status != http.StatusForbidden || challenge != want {
			t.Errorf("got %d %q, want 403 %q", status, challenge, want)
		}
	})
	t.Run("rfc6750_3.1_no_token_gets_a_plain_challenge", func(t *testing.T) {
		status, challenge, _ := call(t, "GET", http.DefaultClient)
		if status != http.StatusUnauthorized || challenge != `Bearer realm="gatehouse"` {
			t.Errorf("got %d %q, want 401 %q", status, challenge, `Bearer realm="gatehouse"`)
		}
	})
	t.Run("only_GET_is_routed", func(t *testing.T) {
		if status, _, _ := call(t, "POST", session(t, "alice")); status != http.StatusMethodNotAllowed {
			t.Errorf("got %d, want 405", status)
		}
	})
	t.Run("a_wrong_issuer_fails_at_start", func(t *testing.T) {
		if _, err := newHandler(ctx, g.URL+"/elsewhere", "gatehouse"); err == nil {
			t.Error("newHandler succeeded with an issuer gatehouse does not name")
		}
	})
}
