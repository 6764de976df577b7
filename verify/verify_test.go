package verify_test

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse/gatehouse/client"
	"github.com/gatehouse/gatehouse/internal/servertest"
	"github.com/gatehouse/gatehouse/verify"
)

// gatehouse is one real server started for a test, with helpers to get
// tokens from it.
type gatehouse struct {
	*servertest.Server
	admin *client.Session
}

func startGatehouse(t *testing.T, env map[string]string) *gatehouse {
	t.Helper()
	s := servertest.StartT(t, env)
	admin, err := client.Login(context.Background(), s.URL, "admin", servertest.AdminPassword)
	if err != nil {
		t.Fatal(err)
	}
	return &gatehouse{Server: s, admin: admin}
}

// user creates a user holding scopes; its password is "password-"+name.
func (g *gatehouse) user(t *testing.T, name string, scopes ...string) {
	t.Helper()
	resp, err := g.admin.Client.CreateUserWithResponse(context.Background(), client.NewUser{Username: name, Password: "password-" + name, Scopes: &scopes})
	if err != nil || resp.StatusCode() != http.StatusCreated {
		t.Fatalf("create user %s: %v %s", name, err, resp.Body)
	}
}

// token logs in and returns the access token.
func (g *gatehouse) token(t *testing.T, username, password string, scopes ...string) string {
	t.Helper()
	var opts []client.LoginOption
	if len(scopes) > 0 {
		opts = append(opts, client.WithScopes(scopes...))
	}
	s, err := client.Login(context.Background(), g.URL, username, password, opts...)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.TokenSource.Token()
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}

func (g *gatehouse) adminToken(t *testing.T, scopes ...string) string {
	t.Helper()
	return g.token(t, "admin", servertest.AdminPassword, scopes...)
}

// counter is an http.RoundTripper counting the requests per path.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[r.URL.Path]++
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

func (c *counter) jwks() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n["/.well-known/jwks.json"]
}

func newVerifier(t *testing.T, cfg verify.Config) *verify.Verifier {
	t.Helper()
	v, err := verify.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// response is what a protected handler answered.
type response struct {
	status    int
	challenge string
	body      string
	claims    *verify.Claims
}

// protectedCall sends a request with header values through h wrapped in
// the middleware; the handler reports the claims it found.
func protectedCall(t *testing.T, mw func(http.Handler) http.Handler, target string, header ...string) response {
	t.Helper()
	var got *verify.Claims
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := verify.ClaimsFrom(r.Context())
		if !ok {
			t.Error("the handler ran without claims in the context")
		}
		got = c
		io.WriteString(w, "ok")
	}))
	r := httptest.NewRequest("GET", target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return response{status: w.Code, challenge: w.Header().Get("WWW-Authenticate"), body: w.Body.String(), claims: got}
}

// gatehouseCall sends the same request to gatehouse itself.
func gatehouseCall(t *testing.T, base, target string, header ...string) response {
	t.Helper()
	req, err := http.NewRequest("GET", base+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, challenge: resp.Header.Get("WWW-Authenticate"), body: string(body)}
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

// jwtParts splits a compact JWS into its decoded header and payload and
// its signature.
func jwtParts(t *testing.T, tok string) (header, payload map[string]any, sig string) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", tok)
	}
	for i, dst := range []*map[string]any{&header, &payload} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, payload, parts[2]
}

func segment(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(raw)
}

func TestMiddleware(t *testing.T) {
	t.Parallel()
	g := startGatehouse(t, nil)
	g.user(t, "alice", "me")
	alice := g.token(t, "alice", "password-alice")
	v := newVerifier(t, verify.Config{Issuer: g.URL, Audience: "gatehouse"})

	t.Run("rfc9068_4_valid_token_puts_its_claims_in_the_context", func(t *testing.T) {
		t.Parallel()
		got := protectedCall(t, v.Middleware("me"), "/hello", bearer(alice)...)
		if got.status != http.StatusOK || got.claims == nil {
			t.Fatalf("got %d %s, want 200", got.status, got.body)
		}
		me := gatehouseCall(t, g.URL, "/users/me", bearer(alice)...)
		var user client.User
		if err := json.Unmarshal([]byte(me.body), &user); err != nil {
			t.Fatal(err)
		}
		c := got.claims
		if c.Subject != user.Id || c.Username != "alice" || c.Issuer != g.URL || !slices.Equal(c.Audience, []string{"gatehouse"}) {
			t.Errorf("got claims %+v, want sub %s, alice, iss %s, aud gatehouse", c, user.Id, g.URL)
		}
		if !slices.Equal(c.Scopes, []string{"me"}) || !c.HasScope("me") || c.HasScope("users:read") {
			t.Errorf("got scopes %v, want [me]", c.Scopes)
		}
		if c.ClientID == "" || c.ID == "" || c.IssuedAt.IsZero() || c.NotBefore.IsZero() {
			t.Errorf("got claims %+v, want client_id, jti, iat and nbf", c)
		}
		if ttl := c.ExpiresAt.Sub(c.IssuedAt); ttl != 15*time.Minute {
			t.Errorf("got lifetime %s, want gatehouse's default 15m", ttl)
		}
	})

	t.Run("rfc9068_4_wrong_audience_is_invalid_token", func(t *testing.T) {
		t.Parallel()
		other := newVerifier(t, verify.Config{Issuer: g.URL, Audience: "billing"})
		got := protectedCall(t, other.Middleware(), "/hello", bearer(alice)...)
		want := `Bearer realm="gatehouse", error="invalid_token", error_description="the access token is not for this audience"`
		if got.status != http.StatusUnauthorized || got.challenge != want {
			t.Errorf("got %d %q, want 401 %q", got.status, got.challenge, want)
		}
	})

	t.Run("rfc6750_3.1_missing_scope_is_insufficient_scope", func(t *testing.T) {
		t.Parallel()
		got := protectedCall(t, v.Middleware("me", "users:read"), "/hello", bearer(alice)...)
		want := `Bearer realm="gatehouse", error="insufficient_scope", error_description="the access token lacks a required scope", scope="me users:read"`
		if got.status != http.StatusForbidden || got.challenge != want {
			t.Errorf("got %d %q, want 403 %q", got.status, got.challenge, want)
		}
	})

	t.Run("rfc9068_4_expired_token_is_invalid_token", func(t *testing.T) {
		t.Parallel()
		// gatehouse tokens live 15 minutes; the leeway is 30 seconds.
		late := newVerifier(t, verify.Config{Issuer: g.URL, Audience: "gatehouse", Now: func() time.Time { return time.Now().Add(16 * time.Minute) }})
		got := protectedCall(t, late.Middleware(), "/hello", bearer(alice)...)
		want := `Bearer realm="gatehouse", error="invalid_token", error_description="the access token expired"`
		if got.status != http.StatusUnauthorized || got.challenge != want {
			t.Errorf("got %d %q, want 401 %q", got.status, got.challenge, want)
		}
		// Within the leeway it is still accepted.
		lenient := newVerifier(t, verify.Config{Issuer: g.URL, Audience: "gatehouse", Now: func() time.Time { return time.Now().Add(15*time.Minute + 10*time.Second) }})
		if got := protectedCall(t, lenient.Middleware(), "/hello", bearer(alice)...); got.status != http.StatusOK {
			t.Errorf("10s after exp with a 30s leeway: got %d, want 200", got.status)
		}
		strict := newVerifier(t, verify.Config{Issuer: g.URL, Audience: "gatehouse", Leeway: -1, Now: func() time.Time { return time.Now().Add(15*time.Minute + 10*time.Second) }})
		if got := protectedCall(t, strict.Middleware(), "/hello", bearer(alice)...); got.status != http.StatusUnauthorized {
			t.Errorf("10s after exp without leeway: got %d, want 401", got.status)
		}
	})

	t.Run("rfc7519_4.1.5_token_from_the_future_is_invalid_token", func(t *testing.T) {
		t.Parallel()
		early := newVerifier(t, verify.Config{Issuer: g.URL, Audience: "gatehouse", Now: func() time.Time { return time.Now().Add(-time.Hour) }})
		got := protectedCall(t, early.Middleware(), "/hello", bearer(alice)...)
		if got.status != http.StatusUnauthorized || !strings.Contains(got.challenge, `error_description="the access token is not valid yet"`) {
			t.Errorf("got %d %q, want 401 not valid yet", got.status, got.challenge)
		}
	})

	t.Run("rfc8725_3.1_forged_tokens_are_invalid_token", func(t *testing.T) {
		t.Parallel()
		header, payload, sig := jwtParts(t, alice)
		var set jose.JSONWebKeySet
		getJSON(t, g.URL+"/.well-known/jwks.json", &set)
		pub := set.Key(header["kid"].(string))[0].Key
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})

		withHeader := func(change map[string]any) string {
			h := map[string]any{}
			for k, v := range header {
				h[k] = v
			}
			for k, v := range change {
				h[k] = v
			}
			return segment(t, h)
		}
		hs256 := func(key []byte) string {
			signing := withHeader(map[string]any{"alg": "HS256"}) + "." + segment(t, payload)
			mac := hmac.New(sha256.New, key)
			mac.Write([]byte(signing))
			return signing + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
		}
		widened := map[string]any{}
		for k, v := range payload {
			widened[k] = v
		}
		widened["scope"] = "me users:write"

		for _, tc := range []struct {
			name, token string
		}{
			{"alg_none", withHeader(map[string]any{"alg": "none"}) + "." + segment(t, payload) + "."},
			{"alg_none_keeping_the_signature", withHeader(map[string]any{"alg": "none"}) + "." + segment(t, payload) + "." + sig},
			{"tampered_payload", withHeader(nil) + "." + segment(t, widened) + "." + sig},
			{"tampered_signature", withHeader(nil) + "." + segment(t, payload) + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 256))},
			{"hs256_signed_with_the_public_key_pem", hs256(pemKey)},
			{"hs256_signed_with_the_public_key_der", hs256(der)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got := protectedCall(t, v.Middleware(), "/hello", bearer(tc.token)...)
				want := `Bearer realm="gatehouse", error="invalid_token", error_description="the access token is invalid"`
				if got.status != http.StatusUnauthorized || got.challenge != want {
					t.Errorf("got %d %q, want 401 %q", got.status, got.challenge, want)
				}
				if _, err := v.Verify(context.Background(), tc.token); err == nil {
					t.Errorf("Verify accepted %s", tc.name)
				}
			})
		}
	})

	// The middleware answers as gatehouse answers the same request.
	t.Run("rfc6750_3_challenges_match_gatehouse", func(t *testing.T) {
		t.Parallel()
		_, payload, _ := jwtParts(t, alice)
		tampered := strings.Split(alice, ".")
		payload["scope"] = "me users:read"
		tampered[1] = segment(t, payload)
		for _, tc := range []struct {
			name, target, scope string
			header              []string
			status              int
		}{
			{"rfc6750_3.1_no_token_gets_a_plain_challenge", "/users/me", "me", nil, 401},
			{"rfc6750_3_other_scheme_gets_a_plain_challenge", "/users/me", "me", []string{"Authorization", "Basic YWRtaW46eA=="}, 401},
			{"rfc6750_2.1_scheme_is_case_insensitive", "/users/me", "me", []string{"Authorization", "bEaReR " + alice}, 200},
			{"rfc6750_2.3_token_only_in_the_query_gets_a_plain_challenge", "/users/me?access_token=" + alice, "me", nil, 401},
			{"rfc6750_3.1_token_in_the_query_and_the_header_is_invalid_request", "/users/me?access_token=" + alice, "me", bearer(alice), 400},
			{"rfc6750_3.1_two_authorization_headers_are_invalid_request", "/users/me", "me", append(bearer(alice), bearer(alice)...), 400},
			{"rfc6750_3.1_empty_token_gets_a_plain_challenge", "/users/me", "me", []string{"Authorization", "Bearer "}, 401},
			{"rfc6750_2.1_non_b64token_is_invalid_token", "/users/me", "me", []string{"Authorization", "Bearer a,b"}, 401},
			{"rfc6750_3.1_tampered_token_is_invalid_token", "/users/me", "me", bearer(strings.Join(tampered, ".")), 401},
			{"rfc6750_3.1_insufficient_scope_names_the_scope", "/users", "users:read", bearer(alice), 403},
		} {
			t.Run(tc.name, func(t *testing.T) {
				want := gatehouseCall(t, g.URL, tc.target, tc.header...)
				got := protectedCall(t, v.Middleware(tc.scope), tc.target, tc.header...)
				if want.status != tc.status {
					t.Fatalf("gatehouse answered %d %q, the test expects %d", want.status, want.challenge, tc.status)
				}
				if got.status != want.status || got.challenge != want.challenge {
					t.Errorf("got %d %q, want gatehouse's %d %q", got.status, got.challenge, want.status, want.challenge)
				}
				if tc.status != 200 && !sameJSON(got.body, want.body) {
					t.Errorf("got body %s, want gatehouse's %s", got.body, want.body)
				}
			})
		}
	})
}

// sameJSON reports whether a and b hold equal JSON values.
func sameJSON(a, b string) bool {
	var va, vb any
	return json.Unmarshal([]byte(a), &va) == nil && json.Unmarshal([]byte(b), &vb) == nil && reflect.DeepEqual(va, vb)
}

func getJSON(t *testing.T, where string, v any) {
	t.Helper()
	resp, err := http.Get(where)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func TestAlgorithms(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		t.Run("rfc9068_4_"+alg, func(t *testing.T) {
			t.Parallel()
			g := startGatehouse(t, map[string]string{"GATEHOUSE_SIGNING_ALG": alg})
			tok := g.adminToken(t)
			if h, _, _ := jwtParts(t, tok); h["alg"] != alg {
				t.Fatalf("gatehouse signed with %v, want %s", h["alg"], alg)
			}
			v := newVerifier(t, verify.Config{Issuer: g.URL, Audience: "gatehouse"})
			c, err := v.Verify(context.Background(), tok)
			if err != nil || c.Username != "admin" {
				t.Fatalf("got %+v, %v, want admin's claims", c, err)
			}

			// rfc8725_3.1: an algorithm outside the allow-list is refused.
			others := slices.DeleteFunc(slices.Clone(verify.DefaultAlgorithms), func(a string) bool { return a == alg })
			narrow := newVerifier(t, verify.Config{Issuer: g.URL, Audience: "gatehouse", Algorithms: others})
			if _, err := narrow.Verify(context.Background(), tok); err == nil {
				t.Errorf("a verifier allowing only %v accepted an %s token", others, alg)
			}
		})
	}
}

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := startGatehouse(t, map[string]string{"GATEHOUSE_KEY_PREPUBLISH": "1s"})
	old := g.adminToken(t)
	oldHeader, _, _ := jwtParts(t, old)

	count := &counter{}
	// The rotation below happens within seconds; gatehouse's default
	// pre-publication delay of 15 minutes leaves the default interval room.
	v := newVerifier(t, verify.Config{Issuer: g.URL, Audience: "gatehouse", HTTPClient: &http.Client{Transport: count}, MinRefreshInterval: 200 * time.Millisecond})
	if _, err := v.Verify(ctx, old); err != nil {
		t.Fatal(err)
	}
	if n := count.jwks(); n != 1 {
		t.Fatalf("got %d JWKS fetches after New and one token, want 1", n)
	}

	rotated, err := g.admin.Client.RotateSigningKeyWithResponse(ctx)
	if err != nil || rotated.JSON201 == nil {
		t.Fatalf("rotate: %v %s", err, rotated.Body)
	}
	newKID := rotated.JSON201.Kid
	if newKID == oldHeader["kid"] {
		t.Fatal("the rotation kept the kid")
	}

	var fresh string
	for deadline := time.Now().Add(15 * time.Second); ; {
		fresh = g.adminToken(t)
		if h, _, _ := jwtParts(t, fresh); h["kid"] == newKID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tokens are still signed by %v, want %s", oldHeader["kid"], newKID)
		}
		time.Sleep(100 * time.Millisecond)
	}

	t.Run("rfc7517_unknown_kid_is_fetched_once_for_concurrent_requests", func(t *testing.T) {
		var wg sync.WaitGroup
		var failed atomic.Int32
		for range 20 {
			wg.Go(func() {
				if _, err := v.Verify(ctx, fresh); err != nil {
					t.Error(err)
					failed.Add(1)
				}
			})
		}
		wg.Wait()
		if n := count.jwks(); n != 2 {
			t.Errorf("got %d JWKS fetches, want exactly one more than before the rotation (2)", n)
		}
	})
	t.Run("rfc7517_tokens_of_the_previous_key_still_verify", func(t *testing.T) {
		if _, err := v.Verify(ctx, old); err != nil {
			t.Errorf("old token after rotation: %v", err)
		}
		if _, err := v.Verify(ctx, fresh); err != nil {
			t.Errorf("new token: %v", err)
		}
		if n := count.jwks(); n != 2 {
			t.Errorf("got %d JWKS fetches, want still 2", n)
		}
	})
}

func TestUnknownKeyFlood(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := startGatehouse(t, nil)
	tok := g.adminToken(t)
	header, payload, sig := jwtParts(t, tok)
	count := &counter{}
	const interval = 500 * time.Millisecond
	v := newVerifier(t, verify.Config{Issuer: g.URL, Audience: "gatehouse", HTTPClient: &http.Client{Transport: count}, MinRefreshInterval: interval})

	flood := func() {
		t.Helper()
		var wg sync.WaitGroup
		for range 200 {
			wg.Go(func() {
				h := map[string]any{}
				for k, v := range header {
					h[k] = v
				}
				h["kid"] = rand.Text()
				forged := segment(t, h) + "." + segment(t, payload) + "." + sig
				_, err := v.Verify(ctx, forged)
				if !errors.Is(err, verify.ErrUnknownKey) {
					t.Errorf("token naming an unknown kid: got %v, want ErrUnknownKey", err)
				}
			})
		}
		wg.Wait()
	}

	time.Sleep(interval + 100*time.Millisecond)
	flood()
	if n := count.jwks(); n != 2 {
		t.Errorf("after the first flood: got %d JWKS fetches, want New's and one refetch (2)", n)
	}
	flood()
	if n := count.jwks(); n != 2 {
		t.Errorf("after a second flood within MinRefreshInterval: got %d JWKS fetches, want still 2", n)
	}
	time.Sleep(interval + 100*time.Millisecond)
	flood()
	if n := count.jwks(); n != 3 {
		t.Errorf("after a flood one interval later: got %d JWKS fetches, want 3", n)
	}
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Errorf("the genuine token after the floods: %v", err)
	}
}

func TestRequireActive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := startGatehouse(t, nil)
	g.user(t, "carol", "me")
	carol := g.token(t, "carol", "password-carol")
	inspector := g.adminToken(t, "tokens:introspect")
	v := newVerifier(t, verify.Config{Issuer: g.URL, Audience: "gatehouse", Introspection: &verify.IntrospectionConfig{Token: inspector}})
	local := v.Middleware("me")
	active := func(next http.Handler) http.Handler { return v.Middleware("me")(v.RequireActive()(next)) }
	alone := v.RequireActive()

	for name, mw := range map[string]func(http.Handler) http.Handler{"local": local, "active": active, "alone": alone} {
		if got := protectedCall(t, mw, "/", bearer(carol)...); got.status != http.StatusOK {
			t.Fatalf("%s before revocation: got %d %q", name, got.status, got.challenge)
		}
	}

	resp, err := http.PostForm(g.URL+"/revoke", url.Values{"token": {carol}, "token_type_hint": {"access_token"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: got %d", resp.StatusCode)
	}

	t.Run("rfc7009_local_verification_cannot_see_a_revocation", func(t *testing.T) {
		if got := protectedCall(t, local, "/", bearer(carol)...); got.status != http.StatusOK {
			t.Errorf("got %d, want 200", got.status)
		}
	})
	t.Run("rfc7662_2.2_inactive_token_is_invalid_token", func(t *testing.T) {
		want := `Bearer realm="gatehouse", error="invalid_token", error_description="the access token is no longer active"`
		for name, mw := range map[string]func(http.Handler) http.Handler{"after_middleware": active, "alone": alone} {
			if got := protectedCall(t, mw, "/", bearer(carol)...); got.status != http.StatusUnauthorized || got.challenge != want {
				t.Errorf("%s: got %d %q, want 401 %q", name, got.status, got.challenge, want)
			}
		}
		ok, err := v.Active(ctx, carol)
		if err != nil || ok {
			t.Errorf("Active: got %v, %v, want false", ok, err)
		}
	})
	t.Run("rfc6750_3.1_alone_it_still_refuses_a_missing_token", func(t *testing.T) {
		if got := protectedCall(t, alone, "/"); got.status != http.StatusUnauthorized || got.challenge != `Bearer realm="gatehouse"` {
			t.Errorf("got %d %q, want a plain 401 challenge", got.status, got.challenge)
		}
	})
	t.Run("no_answer_from_gatehouse_fails_closed_with_503", func(t *testing.T) {
		// A credential without tokens:introspect is refused by gatehouse.
		weak := newVerifier(t, verify.Config{Issuer: g.URL, Audience: "gatehouse", Introspection: &verify.IntrospectionConfig{Token: g.adminToken(t, "me")}})
		fresh := g.token(t, "carol", "password-carol")
		got := protectedCall(t, weak.Middleware("me"), "/", bearer(fresh)...)
		got2 := protectedCall(t, func(h http.Handler) http.Handler { return weak.Middleware("me")(weak.RequireActive()(h)) }, "/", bearer(fresh)...)
		if got.status != http.StatusOK || got2.status != http.StatusServiceUnavailable || got2.challenge != "" {
			t.Errorf("got %d and %d %q, want 200 locally and 503 without a challenge", got.status, got2.status, got2.challenge)
		}
		if _, err := weak.Active(ctx, fresh); err == nil || !strings.Contains(err.Error(), "insufficient_scope") {
			t.Errorf("Active: got %v, want gatehouse's insufficient_scope", err)
		}
	})
	t.Run("rfc7662_a_token_source_authenticates_the_verifier", func(t *testing.T) {
		sess, err := client.Login(ctx, g.URL, "admin", servertest.AdminPassword, client.WithScopes("tokens:introspect"))
		if err != nil {
			t.Fatal(err)
		}
		v2 := newVerifier(t, verify.Config{Issuer: g.URL, Audience: "gatehouse", Introspection: &verify.IntrospectionConfig{TokenSource: sess.TokenSource}})
		fresh := g.token(t, "carol", "password-carol")
		if ok, err := v2.Active(ctx, fresh); err != nil || !ok {
			t.Errorf("fresh token: got %v, %v, want active", ok, err)
		}
		if ok, err := v2.Active(ctx, carol); err != nil || ok {
			t.Errorf("revoked token: got %v, %v, want inactive", ok, err)
		}
	})
	t.Run("without_introspection_config", func(t *testing.T) {
		plain := newVerifier(t, verify.Config{Issuer: g.URL, Audience: "gatehouse"})
		if _, err := plain.Active(ctx, carol); !errors.Is(err, verify.ErrNoIntrospection) {
			t.Errorf("Active: got %v, want ErrNoIntrospection", err)
		}
		defer func() {
			if recover() == nil {
				t.Error("RequireActive without Config.Introspection did not panic")
			}
		}()
		plain.RequireActive()
	})
}

func TestNew(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("rfc8414_3.3_metadata_naming_another_issuer_is_refused", func(t *testing.T) {
		t.Parallel()
		g := servertest.StartT(t, map[string]string{"GATEHOUSE_ISSUER": "https://gatehouse.example"})
		_, err := verify.New(ctx, verify.Config{Issuer: g.URL, Audience: "gatehouse"})
		if err == nil || !strings.Contains(err.Error(), `names the issuer "https://gatehouse.example"`) {
			t.Errorf("got %v, want the issuer mismatch", err)
		}
	})

	t.Run("rfc8414_3.3_issuer_must_match_exactly", func(t *testing.T) {
		t.Parallel()
		_, err := verify.New(ctx, verify.Config{Issuer: issuer + "/", Audience: "gatehouse"})
		if err == nil || !strings.Contains(err.Error(), "RFC 8414 §3.3") {
			t.Errorf("issuer with a trailing slash: got %v, want the issuer mismatch", err)
		}
	})

	t.Run("unreachable_issuer", func(t *testing.T) {
		t.Parallel()
		dead := httptest.NewServer(http.NotFoundHandler())
		dead.Close()
		if _, err := verify.New(ctx, verify.Config{Issuer: dead.URL, Audience: "gatehouse"}); err == nil {
			t.Error("New succeeded without a server")
		}
	})

	t.Run("every_config_problem_is_reported_at_once", func(t *testing.T) {
		t.Parallel()
		_, err := verify.New(ctx, verify.Config{
			Issuer:        "gatehouse.example?x=1",
			Algorithms:    []string{"RS256", "none", "HS256"},
			CacheTTL:      -time.Second,
			Introspection: &verify.IntrospectionConfig{},
		})
		if err == nil {
			t.Fatal("New accepted the config")
		}
		for _, want := range []string{"Issuer", "Audience is required", `"none" is not allowed`, `"HS256" is not allowed`, "CacheTTL", "exactly one of Token and TokenSource"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("got %v, want it to mention %q", err, want)
			}
		}
	})
}

// TestFakeIssuer covers what a real gatehouse never sends, with an issuer
// that signs tokens itself.
func TestFakeIssuer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("rfc9068_4_typ", func(t *testing.T) {
		t.Parallel()
		f := newFakeIssuer(t)
		v := newVerifier(t, verify.Config{Issuer: f.URL, Audience: "gatehouse"})
		for typ, ok := range map[any]bool{"at+jwt": true, "AT+JWT": true, "application/at+jwt": true, "Application/AT+jwt": true, "JWT": false, "": false, nil: false, 1: false} {
			_, err := v.Verify(ctx, f.sign(t, map[string]any{"typ": typ}, nil))
			if ok != (err == nil) {
				t.Errorf("typ %v: got %v, want accepted %v", typ, err, ok)
			}
			if !ok && !errors.Is(err, verify.ErrWrongType) {
				t.Errorf("typ %v: got %v, want ErrWrongType", typ, err)
			}
		}
	})

	t.Run("rfc7515_4.1.4_missing_kid_is_refused", func(t *testing.T) {
		t.Parallel()
		f := newFakeIssuer(t)
		v := newVerifier(t, verify.Config{Issuer: f.URL, Audience: "gatehouse"})
		if _, err := v.Verify(ctx, f.sign(t, map[string]any{"kid": nil}, nil)); !errors.Is(err, verify.ErrNoKeyID) {
			t.Errorf("got %v, want ErrNoKeyID", err)
		}
	})

	t.Run("rfc7515_4.1.11_crit_is_refused", func(t *testing.T) {
		t.Parallel()
		f := newFakeIssuer(t)
		v := newVerifier(t, verify.Config{Issuer: f.URL, Audience: "gatehouse"})
		if _, err := v.Verify(ctx, f.sign(t, map[string]any{"crit": []string{"exp"}}, nil)); !errors.Is(err, verify.ErrCritical) {
			t.Errorf("got %v, want ErrCritical", err)
		}
	})

	t.Run("rfc8725_3.1_alg_must_match_the_key's_alg", func(t *testing.T) {
		t.Parallel()
		f := newFakeIssuer(t)
		// The RSA key is published for RS256; a PS256 signature with it is
		// valid cryptographically but not allowed for that key.
		v := newVerifier(t, verify.Config{Issuer: f.URL, Audience: "gatehouse", Algorithms: []string{"RS256", "PS256"}})
		if _, err := v.Verify(ctx, f.sign(t, map[string]any{"alg": "PS256"}, nil)); !errors.Is(err, verify.ErrKeyMismatch) {
			t.Errorf("got %v, want ErrKeyMismatch", err)
		}
		if n := f.jwksFetches.Load(); n != 1 {
			t.Errorf("a known kid with the wrong alg fetched the JWKS again: %d fetches", n)
		}
	})

	t.Run("rfc9068_2.2_required_claims", func(t *testing.T) {
		t.Parallel()
		f := newFakeIssuer(t)
		v := newVerifier(t, verify.Config{Issuer: f.URL, Audience: "gatehouse"})
		for _, claim := range []string{"sub", "client_id", "jti", "iat", "exp", "iss", "aud"} {
			_, err := v.Verify(ctx, f.sign(t, nil, map[string]any{claim: nil}))
			var e *verify.Error
			if !errors.As(err, &e) || e.Code != verify.CodeInvalidToken || e.Status != http.StatusUnauthorized {
				t.Errorf("without %s: got %v, want invalid_token", claim, err)
			}
		}
		if _, err := v.Verify(ctx, f.sign(t, nil, map[string]any{"aud": []string{"other", "gatehouse"}})); err != nil {
			t.Errorf("aud array containing the audience: %v", err)
		}
	})

	t.Run("rfc7517_5_retired_key_disappears_after_the_cache_ttl", func(t *testing.T) {
		t.Parallel()
		f := newFakeIssuer(t)
		v := newVerifier(t, verify.Config{Issuer: f.URL, Audience: "gatehouse", CacheTTL: 100 * time.Millisecond, MinRefreshInterval: 50 * time.Millisecond})
		tok := f.sign(t, nil, nil)
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
		f.retire()
		time.Sleep(150 * time.Millisecond)
		// The stale set is refreshed in the background; the key is gone
		// once it lands, and a refetch on the unknown kid finds nothing.
		deadline := time.Now().Add(5 * time.Second)
		for {
			_, err := v.Verify(ctx, tok)
			if errors.Is(err, verify.ErrUnknownKey) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the retired key still verifies: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("rfc7517_5_unusable_keys_are_skipped", func(t *testing.T) {
		t.Parallel()
		f := newFakeIssuer(t)
		f.publishPrivate()
		v := newVerifier(t, verify.Config{Issuer: f.URL, Audience: "gatehouse"})
		if _, err := v.Verify(ctx, f.sign(t, nil, nil)); !errors.Is(err, verify.ErrUnknownKey) {
			t.Errorf("a key published with its private part: got %v, want ErrUnknownKey", err)
		}
	})
}

func TestContextWithClaims(t *testing.T) {
	t.Parallel()
	want := &verify.Claims{Subject: "u1", Username: "alice", Scopes: []string{"me"}}
	got, ok := verify.ClaimsFrom(verify.ContextWithClaims(context.Background(), want))
	if !ok || got != want {
		t.Errorf("got %v, %v, want the claims put in", got, ok)
	}
	if _, ok := verify.ClaimsFrom(context.Background()); ok {
		t.Error("claims found in an empty context")
	}
}

func TestErrorString(t *testing.T) {
	t.Parallel()
	e := &verify.Error{Status: 401, Code: verify.CodeInvalidToken, Description: "the access token expired", Err: io.EOF}
	if got, want := e.Error(), "bearer: invalid_token: the access token expired"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if !errors.Is(e, io.EOF) {
		t.Error("the cause is not unwrapped")
	}
	if got, want := fmt.Sprint(&verify.Error{Status: 401, Description: "an access token is required"}), "bearer: an access token is required"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
