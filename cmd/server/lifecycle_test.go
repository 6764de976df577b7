package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func getStatus(t *testing.T, url, token string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestOAuth2TokenSourceRefreshes drives the refresh grant through
// golang.org/x/oauth2 exactly as an application would.
func TestOAuth2TokenSourceRefreshes(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	env["GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD"] = adminPassword
	// No grace window: the replay below is reuse at once.
	env["GATEHOUSE_REFRESH_REUSE_WINDOW"] = "0"
	base, _, _ := startServer(t, env)
	ctx := context.Background()
	cfg := &oauth2.Config{ClientID: "cli", Endpoint: oauth2.Endpoint{TokenURL: base + "/token"}, Scopes: []string{"me"}}

	tok, err := cfg.PasswordCredentialsToken(ctx, "admin", adminPassword)
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken == "" {
		t.Fatal("the password grant returned no refresh token")
	}
	// Pretend the access token expired: the TokenSource must refresh it.
	expired := *tok
	expired.Expiry = time.Now().Add(-time.Minute)
	src := cfg.TokenSource(ctx, &expired)
	fresh, err := src.Token()
	if err != nil {
		t.Fatalf("TokenSource refresh: %v", err)
	}
	if fresh.AccessToken == tok.AccessToken || fresh.RefreshToken == tok.RefreshToken || fresh.RefreshToken == "" {
		t.Fatal("the refresh did not rotate both tokens")
	}
	resp, err := oauth2.NewClient(ctx, src).Get(base + "/users/me")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /users/me with the refreshed token: %d", resp.StatusCode)
	}

	// Replaying the rotated refresh token is reuse: the session ends.
	_, err = cfg.TokenSource(ctx, &expired).Token()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Fatalf("replayed refresh token: got %v, want invalid_grant", err)
	}
	if got := getStatus(t, base+"/users/me", fresh.AccessToken); got != 401 {
		t.Errorf("the session's access token after reuse: got %d, want 401", got)
	}
}

// TestJWKSVerifiesWithAnotherJOSELibrary is a resource server built from
// the discovery document and the JWKS alone, with go-jose.
func TestJWKSVerifiesWithAnotherJOSELibrary(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			env := testEnv(t)
			env["GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD"] = adminPassword
			env["GATEHOUSE_SIGNING_ALG"] = alg
			base, _, _ := startServer(t, env)

			var meta struct {
				Issuer  string `json:"issuer"`
				JWKSURI string `json:"jwks_uri"`
			}
			getJSON(t, base+"/.well-known/oauth-authorization-server", &meta)
			if meta.Issuer != base {
				t.Fatalf("issuer %q, want the server's URL %q", meta.Issuer, base)
			}
			var set jose.JSONWebKeySet
			getJSON(t, meta.JWKSURI, &set)

			cfg := &oauth2.Config{Endpoint: oauth2.Endpoint{TokenURL: base + "/token"}}
			tok, err := cfg.PasswordCredentialsToken(context.Background(), "admin", adminPassword)
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := josejwt.ParseSigned(tok.AccessToken, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
			if err != nil {
				t.Fatal(err)
			}
			h := parsed.Headers[0]
			if h.ExtraHeaders["typ"] != "at+jwt" {
				t.Errorf("typ %v, want at+jwt", h.ExtraHeaders["typ"])
			}
			keys := set.Key(h.KeyID)
			if len(keys) != 1 || !keys[0].Valid() || !keys[0].IsPublic() || keys[0].Use != "sig" || keys[0].Algorithm != alg {
				t.Fatalf("JWKS entry for kid %s: %+v", h.KeyID, keys)
			}
			var claims josejwt.Claims
			var extra struct {
				Scope    string `json:"scope"`
				ClientID string `json:"client_id"`
			}
			if err := parsed.Claims(keys[0].Key, &claims, &extra); err != nil {
				t.Fatalf("signature does not verify with the published key: %v", err)
			}
			if err := claims.Validate(josejwt.Expected{Issuer: base, AnyAudience: josejwt.Audience{"gatehouse"}, Time: time.Now()}); err != nil {
				t.Fatal(err)
			}
			if extra.ClientID == "" || !strings.Contains(extra.Scope, "me") {
				t.Errorf("claims %+v", extra)
			}
		})
	}
}

// TestKeysRotateCLI rotates the key with the CLI while the server runs: the
// server publishes the new key, signs with it after the pre-publication
// delay, and still accepts tokens of the old key.
func TestKeysRotateCLI(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	env["GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD"] = adminPassword
	env["GATEHOUSE_KEY_PREPUBLISH"] = "1s"
	env["GATEHOUSE_SYNC_INTERVAL"] = "100ms"
	base, _, _ := startServer(t, env)
	c := newClient(t, base)
	oldToken := accessToken(t, c, "admin", adminPassword, "")
	oldKID, _ := jwtParts(t, oldToken)

	out, err := runCLI(t, env, "", "keys", "rotate")
	if err != nil {
		t.Fatalf("keys rotate: %v", err)
	}
	var newKID string
	for _, f := range strings.Fields(out) {
		f = strings.TrimSuffix(f, ":")
		if len(f) == 43 && f != oldKID["kid"] {
			newKID = f
		}
	}
	if newKID == "" {
		t.Fatalf("keys rotate printed no kid: %q", out)
	}

	deadline := time.Now().Add(10 * time.Second)
	for {
		h, _ := jwtParts(t, accessToken(t, c, "admin", adminPassword, ""))
		if h["kid"] == newKID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tokens are still signed by %v, want %s", h["kid"], newKID)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var set jose.JSONWebKeySet
	getJSON(t, base+"/.well-known/jwks.json", &set)
	if len(set.Key(newKID)) != 1 || len(set.Key(oldKID["kid"].(string))) != 1 {
		t.Errorf("JWKS holds %d keys, want the old and the new", len(set.Keys))
	}
	if got := getStatus(t, base+"/users/me", oldToken); got != 200 {
		t.Errorf("a token of the old key after rotation: got %d, want 200", got)
	}
}

// clientSecretIn returns the secret `clients create` printed, or "".
func clientSecretIn(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "client_secret:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func TestClientsCLI(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	env["GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD"] = adminPassword
	base, _, _ := startServer(t, env)

	out, err := runCLI(t, env, "", "clients", "create", "backend", "--scopes", "me")
	if err != nil {
		t.Fatal(err)
	}
	secret := clientSecretIn(out)
	if secret == "" {
		t.Fatalf("no secret in %q", out)
	}
	list, err := runCLI(t, env, "", "clients", "list")
	if err != nil || !strings.Contains(list, "backend") || strings.Contains(list, secret) {
		t.Fatalf("clients list: %v %q", err, list)
	}
	if _, err := runCLI(t, env, "", "clients", "create", "backend"); err == nil {
		t.Error("a duplicate client_id was accepted")
	}

	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
		cfg := &oauth2.Config{ClientID: "backend", ClientSecret: secret, Endpoint: oauth2.Endpoint{TokenURL: base + "/token", AuthStyle: style}}
		tok, err := cfg.PasswordCredentialsToken(context.Background(), "admin", adminPassword)
		if err != nil {
			t.Fatalf("auth style %d: %v", style, err)
		}
		if scope, _ := tok.Extra("scope").(string); scope != "me" {
			t.Errorf("auth style %d: scope %q, want only the client's me", style, scope)
		}
	}
	bad := &oauth2.Config{ClientID: "backend", ClientSecret: "wrong", Endpoint: oauth2.Endpoint{TokenURL: base + "/token", AuthStyle: oauth2.AuthStyleInHeader}}
	_, err = bad.PasswordCredentialsToken(context.Background(), "admin", adminPassword)
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_client" || re.Response.StatusCode != 401 {
		t.Fatalf("wrong secret: got %v, want 401 invalid_client", err)
	}

	// A resource server registered to hold tokens:introspect itself
	// introspects with its own credentials (RFC 7662 §2.1).
	out, err = runCLI(t, env, "", "clients", "create", "resource-server", "--scopes", "", "--service-scopes", "tokens:introspect")
	if err != nil {
		t.Fatal(err)
	}
	rsSecret := clientSecretIn(out)
	if list, _ := runCLI(t, env, "", "clients", "list"); !strings.Contains(list, "tokens:introspect") {
		t.Errorf("clients list does not show the service scopes: %q", list)
	}
	tok, err := (&oauth2.Config{Endpoint: oauth2.Endpoint{TokenURL: base + "/token"}}).PasswordCredentialsToken(context.Background(), "admin", adminPassword)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", base+"/introspect", strings.NewReader(url.Values{"token": {tok.AccessToken}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape("resource-server"), url.QueryEscape(rsSecret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var in struct {
		Active   bool   `json:"active"`
		Username string `json:"username"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&in); err != nil || resp.StatusCode != 200 || !in.Active || in.Username != "admin" {
		t.Errorf("introspection with client_secret_basic: %d %+v %v, want admin's token active", resp.StatusCode, in, err)
	}

	// A service account: allowed the client-credentials grant from the
	// CLI, it rotates its secret there without a failed grant.
	if _, err := runCLI(t, env, "", "clients", "update", "resource-server", "--grants", "client_credentials"); err != nil {
		t.Fatal(err)
	}
	grant := func(secret string) error {
		_, err := (&clientcredentials.Config{ClientID: "resource-server", ClientSecret: secret, TokenURL: base + "/token"}).Token(context.Background())
		return err
	}
	if err := grant(rsSecret); err != nil {
		t.Fatalf("client_credentials after clients update --grants: %v", err)
	}
	out, err = runCLI(t, env, "", "clients", "secret", "add", "resource-server")
	if err != nil {
		t.Fatal(err)
	}
	newSecret := clientSecretIn(out)
	if err := grant(newSecret); err != nil {
		t.Fatalf("client_credentials with the added secret: %v", err)
	}
	if err := grant(rsSecret); err != nil {
		t.Fatalf("client_credentials with the old secret while both are valid: %v", err)
	}
	newID := ""
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "secret_id:"); ok {
			newID = strings.TrimSpace(v)
		}
	}
	list, _ = runCLI(t, env, "", "clients", "list")
	var oldID string
	for _, line := range strings.Split(list, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "resource-server" {
			continue
		}
		// …  GRANTS  SECRETS (two ids)  CREATED
		if !slices.Contains(f, "client_credentials") || !slices.Contains(f, newID) {
			t.Errorf("clients list does not show the grant and both secrets: %q", line)
		}
		for _, w := range f {
			if len(w) == len(newID) && w != newID && w != "client_credentials" {
				oldID = w
			}
		}
	}
	if oldID == "" {
		t.Fatalf("no old secret id in %q", list)
	}
	if _, err := runCLI(t, env, "", "clients", "secret", "remove", "resource-server", oldID); err != nil {
		t.Fatal(err)
	}
	var re2 *oauth2.RetrieveError
	if err := grant(rsSecret); !errors.As(err, &re2) || re2.ErrorCode != "invalid_client" {
		t.Errorf("the removed secret: %v, want invalid_client", err)
	}
	if err := grant(newSecret); err != nil {
		t.Errorf("the remaining secret: %v", err)
	}
}
