package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/gatehouse/gatehouse/client"
)

var userSeq atomic.Int64

// newUser creates a user with scopes through an admin session and returns
// its username; the password is "password-" + username.
func newUser(t *testing.T, scopes ...string) string {
	t.Helper()
	ctx := context.Background()
	admin, err := client.Login(ctx, serverURL, "admin", adminPassword)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("user%d-%d", time.Now().UnixNano()%1e6, userSeq.Add(1))
	resp, err := admin.Client.CreateUserWithResponse(ctx, client.NewUser{Username: name, Password: "password-" + name, Scopes: &scopes})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != http.StatusCreated {
		t.Fatalf("create user %s: got %d %s", name, resp.StatusCode(), resp.Body)
	}
	return name
}

// grant is one token endpoint exchange seen by recorder.
type grant struct {
	form          url.Values
	authorization string
	status        int
	// refreshToken is the refresh token of the response.
	refreshToken string
}

// recorder is an http.RoundTripper that records the token requests
// (form and Authorization header) and the refresh tokens they return.
type recorder struct {
	mu     sync.Mutex
	grants []grant
}

func (rec *recorder) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path != "/token" {
		return http.DefaultTransport.RoundTrip(r)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	form, _ := url.ParseQuery(string(body))
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	respBody, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	var tok struct {
		RefreshToken string `json:"refresh_token"`
	}
	_ = json.Unmarshal(respBody, &tok)
	rec.mu.Lock()
	rec.grants = append(rec.grants, grant{form: form, authorization: r.Header.Get("Authorization"), status: resp.StatusCode, refreshToken: tok.RefreshToken})
	rec.mu.Unlock()
	return resp, nil
}

func (rec *recorder) all() []grant {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]grant(nil), rec.grants...)
}

func (rec *recorder) refreshes() []grant {
	var out []grant
	for _, g := range rec.all() {
		if g.form.Get("grant_type") == "refresh_token" {
			out = append(out, g)
		}
	}
	return out
}

func getMe(t *testing.T, s *client.Session) *client.GetCurrentUserResponse {
	t.Helper()
	resp, err := s.Client.GetCurrentUserWithResponse(context.Background())
	if err != nil {
		t.Fatalf("GET /users/me: %v", err)
	}
	return resp
}

func wantMe(t *testing.T, s *client.Session, username string) {
	t.Helper()
	resp := getMe(t, s)
	if resp.StatusCode() != http.StatusOK || resp.JSON200 == nil || resp.JSON200.Username != username {
		t.Fatalf("GET /users/me: got %d %s, want 200 for %s", resp.StatusCode(), resp.Body, username)
	}
}

func TestLogin(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("rfc6749_4.3_password_grant_gives_a_session_calling_the_api", func(t *testing.T) {
		t.Parallel()
		name := newUser(t, "me")
		rec := &recorder{}
		s, err := client.Login(ctx, serverURL, name, "password-"+name, client.WithBaseHTTPClient(&http.Client{Transport: rec}))
		if err != nil {
			t.Fatal(err)
		}
		wantMe(t, s, name)
		grants := rec.all()
		if len(grants) != 1 || grants[0].form.Get("grant_type") != "password" || grants[0].form.Get("username") != name {
			t.Fatalf("token requests: got %+v, want one password grant", grants)
		}
		// A public client without client_id sends no client authentication.
		if grants[0].authorization != "" || grants[0].form.Has("client_id") {
			t.Errorf("got Authorization %q and client_id %q, want neither", grants[0].authorization, grants[0].form.Get("client_id"))
		}
		tok, err := s.TokenSource.Token()
		if err != nil {
			t.Fatal(err)
		}
		if tok.AccessToken == "" || tok.RefreshToken == "" || tok.Type() != "Bearer" {
			t.Errorf("got token %+v, want an access and a refresh token", tok)
		}
	})

	t.Run("rfc6749_3.3_scopes_are_requested", func(t *testing.T) {
		t.Parallel()
		name := newUser(t, "me", "users:read")
		s, err := client.Login(ctx, serverURL, name, "password-"+name, client.WithScopes("users:read"))
		if err != nil {
			t.Fatal(err)
		}
		tok, err := s.TokenSource.Token()
		if err != nil {
			t.Fatal(err)
		}
		if got := tok.Extra("scope"); got != "users:read" {
			t.Errorf("got scope %v, want users:read", got)
		}
		if got := getMe(t, s).StatusCode(); got != http.StatusForbidden {
			t.Errorf("GET /users/me without the scope me: got %d, want 403", got)
		}
	})

	t.Run("rfc6749_5.2_wrong_password_is_invalid_grant", func(t *testing.T) {
		t.Parallel()
		rec := &recorder{}
		_, err := client.Login(ctx, serverURL, "admin", "not the password", client.WithBaseHTTPClient(&http.Client{Transport: rec}))
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
			t.Fatalf("got %v, want an *oauth2.RetrieveError with invalid_grant", err)
		}
		if re.Response.StatusCode != http.StatusBadRequest {
			t.Errorf("got status %d, want 400", re.Response.StatusCode)
		}
		// No second attempt with another client authentication style.
		if n := len(rec.all()); n != 1 {
			t.Errorf("got %d token requests, want 1", n)
		}
	})

	t.Run("rfc6749_2.3.1_confidential_client_authenticates_with_basic", func(t *testing.T) {
		t.Parallel()
		admin, err := client.Login(ctx, serverURL, "admin", adminPassword)
		if err != nil {
			t.Fatal(err)
		}
		id, confidential := fmt.Sprintf("backend-%d", userSeq.Add(1)), true
		reg, err := admin.Client.CreateClientWithResponse(ctx, client.NewOAuthClient{ClientId: &id, Confidential: &confidential})
		if err != nil || reg.JSON201 == nil || reg.JSON201.ClientSecret == nil {
			t.Fatalf("register client: %v %s", err, reg.Body)
		}
		secret := *reg.JSON201.ClientSecret
		name := newUser(t, "me")

		rec := &recorder{}
		s, err := client.Login(ctx, serverURL, name, "password-"+name,
			client.WithOAuthClient(id, secret), client.WithBaseHTTPClient(&http.Client{Transport: rec}), client.WithExpiryDelta(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		wantMe(t, s, name) // refreshes: the refresh token is bound to the client
		for _, g := range rec.all() {
			user, pass, ok := (&http.Request{Header: http.Header{"Authorization": {g.authorization}}}).BasicAuth()
			if !ok || user != id || pass != secret || g.form.Has("client_secret") {
				t.Errorf("%s grant: got Authorization %q, want HTTP Basic for %s", g.form.Get("grant_type"), g.authorization, id)
			}
		}
		if n := len(rec.refreshes()); n != 1 {
			t.Errorf("got %d refreshes, want 1", n)
		}

		_, err = client.Login(ctx, serverURL, name, "password-"+name, client.WithOAuthClient(id, "wrong secret"))
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_client" {
			t.Errorf("wrong client secret: got %v, want invalid_client", err)
		}
		if err := s.Logout(ctx); err != nil {
			t.Errorf("logout of a confidential client's session: %v", err)
		}
	})

	t.Run("rfc6749_2.2_public_client_sends_client_id_in_the_form", func(t *testing.T) {
		t.Parallel()
		name := newUser(t, "me")
		rec := &recorder{}
		s, err := client.Login(ctx, serverURL, name, "password-"+name,
			client.WithOAuthClient("cli", ""), client.WithBaseHTTPClient(&http.Client{Transport: rec}))
		if err != nil {
			t.Fatal(err)
		}
		wantMe(t, s, name)
		if g := rec.all()[0]; g.form.Get("client_id") != "cli" || g.authorization != "" {
			t.Errorf("got client_id %q and Authorization %q, want client_id=cli alone", g.form.Get("client_id"), g.authorization)
		}
	})
}

func TestRefresh(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("rfc6749_6_an_expired_access_token_is_refreshed_transparently", func(t *testing.T) {
		t.Parallel()
		name := newUser(t, "me")
		first, err := client.Login(ctx, serverURL, name, "password-"+name)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := first.TokenSource.Token()
		if err != nil {
			t.Fatal(err)
		}
		expired := *tok
		expired.Expiry = time.Now().Add(-time.Minute)

		rec := &recorder{}
		s, err := client.Resume(ctx, serverURL, &expired, client.WithBaseHTTPClient(&http.Client{Transport: rec}))
		if err != nil {
			t.Fatal(err)
		}
		wantMe(t, s, name)
		refreshes := rec.refreshes()
		if len(refreshes) != 1 || refreshes[0].form.Get("refresh_token") != tok.RefreshToken || refreshes[0].status != http.StatusOK {
			t.Fatalf("got refreshes %+v, want one with the login's refresh token", refreshes)
		}
		fresh, err := s.TokenSource.Token()
		if err != nil {
			t.Fatal(err)
		}
		if fresh.AccessToken == tok.AccessToken || fresh.RefreshToken != refreshes[0].refreshToken || !fresh.Valid() {
			t.Errorf("after the refresh: got %+v, want a new valid token with the rotated refresh token", fresh)
		}
		// Valid now: no further refresh.
		wantMe(t, s, name)
		if n := len(rec.refreshes()); n != 1 {
			t.Errorf("got %d refreshes, want still 1", n)
		}
	})

	t.Run("rfc9700_4.14.2_each_rotated_refresh_token_is_presented_next", func(t *testing.T) {
		t.Parallel()
		name := newUser(t, "me")
		rec := &recorder{}
		// An expiry delta beyond the token lifetime: every request refreshes.
		s, err := client.Login(ctx, serverURL, name, "password-"+name,
			client.WithBaseHTTPClient(&http.Client{Transport: rec}), client.WithExpiryDelta(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		const n = 5
		for range n {
			wantMe(t, s, name)
		}
		grants := rec.all()
		if len(grants) != n+1 {
			t.Fatalf("got %d token requests, want the login and %d refreshes", len(grants), n)
		}
		seen := map[string]bool{}
		for i := 1; i < len(grants); i++ {
			presented := grants[i].form.Get("refresh_token")
			if grants[i].status != http.StatusOK || presented != grants[i-1].refreshToken {
				t.Errorf("refresh %d: got status %d presenting %.8s…, want 200 presenting the previous response's %.8s…", i, grants[i].status, presented, grants[i-1].refreshToken)
			}
			if seen[presented] {
				t.Errorf("refresh %d presented a refresh token twice", i)
			}
			seen[presented] = true
		}
	})

	t.Run("rfc9700_4.14.2_concurrent_requests_refresh_one_at_a_time", func(t *testing.T) {
		t.Parallel()
		name := newUser(t, "me")
		rec := &recorder{}
		s, err := client.Login(ctx, serverURL, name, "password-"+name,
			client.WithBaseHTTPClient(&http.Client{Transport: rec}), client.WithExpiryDelta(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 30)
		for range 10 {
			wg.Go(func() {
				for range 3 {
					resp, err := s.Client.GetCurrentUserWithResponse(ctx)
					if err != nil {
						errs <- err
						return
					}
					if resp.StatusCode() != http.StatusOK {
						errs <- fmt.Errorf("got %d %s", resp.StatusCode(), resp.Body)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		refreshes := rec.refreshes()
		if len(refreshes) != 30 {
			t.Errorf("got %d refreshes, want one per request (30)", len(refreshes))
		}
		for _, g := range refreshes {
			if g.status != http.StatusOK {
				t.Errorf("a refresh got %d: a rotated refresh token was presented again", g.status)
			}
		}
	})
}

func TestLogout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	name := newUser(t, "me")
	s, err := client.Login(ctx, serverURL, name, "password-"+name)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.TokenSource.Token()
	if err != nil {
		t.Fatal(err)
	}
	wantMe(t, s, name)
	if err := s.Logout(ctx); err != nil {
		t.Fatal(err)
	}

	t.Run("rfc7009_2.1_the_login_access_token_is_refused", func(t *testing.T) {
		if got := getMe(t, s); got.StatusCode() != http.StatusUnauthorized {
			t.Errorf("GET /users/me after logout: got %d, want 401", got.StatusCode())
		}
	})
	t.Run("the_session_stops_refreshing", func(t *testing.T) {
		expired := *tok
		expired.Expiry = time.Now().Add(-time.Minute)
		resumed, err := client.Resume(ctx, serverURL, &expired)
		if err != nil {
			t.Fatal(err)
		}
		_, err = resumed.Client.GetCurrentUserWithResponse(ctx)
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
			t.Errorf("refreshing with the revoked refresh token: got %v, want invalid_grant", err)
		}
	})
	t.Run("a_logged_out_session_does_not_refresh", func(t *testing.T) {
		s2, err := client.Login(ctx, serverURL, name, "password-"+name, client.WithExpiryDelta(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if err := s2.Logout(ctx); err != nil {
			t.Fatal(err)
		}
		_, err = s2.Client.GetCurrentUserWithResponse(ctx)
		if !errors.Is(err, client.ErrLoggedOut) {
			t.Errorf("got %v, want ErrLoggedOut", err)
		}
	})
}

func TestResumeNeedsARefreshToken(t *testing.T) {
	t.Parallel()
	_, err := client.Resume(context.Background(), serverURL, &oauth2.Token{AccessToken: "x"})
	if err == nil || !strings.Contains(err.Error(), "refresh token") {
		t.Errorf("got %v, want an error about the missing refresh token", err)
	}
}
