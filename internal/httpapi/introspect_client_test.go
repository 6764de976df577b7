package httpapi_test

import (
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/httpapi"
)

// basicAuth is client_secret_basic: each part form-urlencoded, then
// base64 (RFC 6749 §2.3.1).
func basicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

// TestIntrospectWithClientCredentials: a resource server introspects with
// its own registered credentials (RFC 7662 §2.1), as openid-client and
// Authlib do by default, when it holds tokens:introspect itself.
func TestIntrospectWithClientCredentials(t *testing.T) {
	ts := newTestServer(t)
	admin := ts.token(t, "admin", adminPassword, "")
	register := func(body string) (id, secret string) {
		t.Helper()
		r := ts.do(t, "POST", "/clients", body, jsonHeader(admin)...)
		if r.status != 201 {
			t.Fatalf("register %s: %d %s", body, r.status, r.body)
		}
		m := r.json(t)
		secret, _ = m["client_secret"].(string)
		return m["client_id"].(string), secret
	}
	rsID, rsSecret := register(`{"client_id":"resource-server","scopes":[],"service_scopes":["tokens:introspect"]}`)
	webID, webSecret := register(`{"client_id":"web","scopes":["me"]}`)
	register(`{"client_id":"cli","confidential":false}`)

	alice := ts.do(t, "POST", "/token", form("grant_type", "password", "username", "alice", "password", userPassword, "client_id", webID, "client_secret", webSecret), "Content-Type", formType).json(t)
	access := alice["access_token"].(string)
	introspect := func(token, authorization string) response {
		return ts.do(t, "POST", "/introspect", form("token", token), "Content-Type", formType, "Authorization", authorization)
	}

	t.Run("registration_shows_the_service_scopes_apart_from_the_scopes", func(t *testing.T) {
		var list []struct {
			ClientID      string   `json:"client_id"`
			Scopes        []string `json:"scopes"`
			ServiceScopes []string `json:"service_scopes"`
		}
		r := ts.do(t, "GET", "/clients", "", bearer(admin)...)
		if err := json.Unmarshal(r.body, &list); err != nil {
			t.Fatalf("GET /clients: %v in %s", err, r.body)
		}
		got := map[string]string{}
		for _, c := range list {
			if c.Scopes == nil || c.ServiceScopes == nil {
				t.Errorf("client %s: scopes or service_scopes missing in %s", c.ClientID, r.body)
			}
			got[c.ClientID] = strings.Join(c.Scopes, " ") + "|" + strings.Join(c.ServiceScopes, " ")
		}
		want := map[string]string{"cli": "|", "resource-server": "|tokens:introspect", "web": "me|"}
		if !maps.Equal(got, want) {
			t.Errorf("clients (scopes|service_scopes) = %v, want %v", got, want)
		}
	})

	t.Run("rfc7662_2.1_a_client_holding_tokens_introspect_introspects_with_basic", func(t *testing.T) {
		r := introspect(access, basicAuth(rsID, rsSecret))
		if r.status != 200 || r.header.Get("Cache-Control") != "no-store" {
			t.Fatalf("got %d %v %s, want 200 with no-store", r.status, r.header, r.body)
		}
		m := r.json(t)
		if m["active"] != true || m["client_id"] != webID || m["username"] != "alice" {
			t.Errorf("got %v, want alice's active token issued to %s", m, webID)
		}
		if in := introspect("garbage", basicAuth(rsID, rsSecret)).json(t); in["active"] != false || len(in) != 1 {
			t.Errorf("a garbage token: got %v, want only active false", in)
		}
	})

	t.Run("rfc7662_2.1_wrong_or_unknown_client_credentials_are_invalid_client_with_a_basic_challenge", func(t *testing.T) {
		for name, authorization := range map[string]string{
			"wrong secret":        basicAuth(rsID, "not the secret"),
			"unknown client":      basicAuth("nobody", rsSecret),
			"no secret":           basicAuth(rsID, ""),
			"public client":       basicAuth("cli", ""),
			"malformed base64":    "Basic !!!",
			"another's secret":    basicAuth(rsID, webSecret),
			"secret of rs for ws": basicAuth(webID, rsSecret),
		} {
			r := introspect(access, authorization)
			if r.status != 401 || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("%s: got %d %q %s, want 401 with a Basic challenge", name, r.status, r.header.Get("WWW-Authenticate"), r.body)
				continue
			}
			if got := r.json(t)["error"]; got != "invalid_client" {
				t.Errorf("%s: got error %v, want invalid_client", name, got)
			}
			if strings.Contains(string(r.body), "active") {
				t.Errorf("%s: the refusal says something of the token: %s", name, r.body)
			}
		}
	})

	t.Run("rfc7662_2.1_client_secret_post_works_without_an_authorization_header", func(t *testing.T) {
		post := func(kv ...string) response {
			return ts.do(t, "POST", "/introspect", form(append([]string{"token", access}, kv...)...), "Content-Type", formType)
		}
		r := post("client_id", rsID, "client_secret", rsSecret)
		if r.status != 200 || r.json(t)["active"] != true {
			t.Fatalf("client_secret_post: %d %s, want 200 active", r.status, r.body)
		}
		wantOAuth(t, post("client_id", rsID, "client_secret", "not the secret"), 401, "invalid_client")
		wantOAuth(t, post("client_id", webID, "client_secret", webSecret), 403, "unauthorized_client")
		wantOAuth(t, post("client_id", rsID, "client_secret", rsSecret, "client_secret", rsSecret), 400, "invalid_request")
		// §2.3: one method at a time; a Basic header and a secret in the body are refused.
		both := ts.do(t, "POST", "/introspect", form("token", access, "client_id", rsID, "client_secret", rsSecret), "Content-Type", formType, "Authorization", basicAuth(rsID, rsSecret))
		wantOAuth(t, both, 400, "invalid_request")
		// A client_id alone authenticates nothing: the bearer challenge.
		if r := post("client_id", rsID); r.status != 401 || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("client_id without a secret: %d %q, want 401 with a Bearer challenge", r.status, r.header.Get("WWW-Authenticate"))
		}
	})

	t.Run("a_client_that_does_not_hold_tokens_introspect_itself_is_unauthorized_client", func(t *testing.T) {
		// web may obtain users' scopes, but holds nothing itself.
		wantOAuth(t, introspect(access, basicAuth(webID, webSecret)), 403, "unauthorized_client")
	})

	t.Run("rfc6750_the_bearer_form_still_works_and_without_credentials_is_a_bearer_challenge", func(t *testing.T) {
		introspector := ts.token(t, "admin", adminPassword, "tokens:introspect")
		if in := introspect(access, "Bearer "+introspector).json(t); in["active"] != true {
			t.Errorf("bearer introspection: got %v, want active", in)
		}
		r := ts.do(t, "POST", "/introspect", form("token", access), "Content-Type", formType)
		if r.status != 401 || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("no credentials: got %d %q, want 401 with a Bearer challenge", r.status, r.header.Get("WWW-Authenticate"))
		}
	})

	t.Run("a_deleted_client_no_longer_introspects", func(t *testing.T) {
		if r := ts.do(t, "DELETE", "/clients/"+rsID, "", bearer(admin)...); r.status != 204 {
			t.Fatalf("delete: %d %s", r.status, r.body)
		}
		wantOAuth(t, introspect(access, basicAuth(rsID, rsSecret)), 401, "invalid_client")
	})
}

func TestRegisterClientServiceScopes(t *testing.T) {
	ts := newTestServer(t)
	admin := ts.token(t, "admin", adminPassword, "")
	for name, body := range map[string]string{
		"a public client may hold nothing itself": `{"client_id":"pub","confidential":false,"service_scopes":["tokens:introspect"]}`,
		"an unknown scope":                        `{"client_id":"rs","service_scopes":["root"]}`,
	} {
		p := wantProblem(t, ts.do(t, "POST", "/clients", body, jsonHeader(admin)...), 400)
		if !strings.Contains(p["detail"].(string), "service_scopes") {
			t.Errorf("%s: got %v, want the problem to name service_scopes", name, p)
		}
	}
	if r := ts.do(t, "GET", "/clients", "", bearer(admin)...); strings.Contains(string(r.body), `"pub"`) || strings.Contains(string(r.body), `"rs"`) {
		t.Errorf("a refused registration was stored: %s", r.body)
	}
}

// TestOnlyIntrospectionAcceptsAClientsOwnCredentials: the Basic
// alternative opens an operation to registered clients, so adding it
// anywhere else must be a decision this test is changed for.
func TestOnlyIntrospectionAcceptsAClientsOwnCredentials(t *testing.T) {
	doc, err := httpapi.Spec()
	if err != nil {
		t.Fatal(err)
	}
	var with []string
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			reqs := doc.Security
			if op.Security != nil {
				reqs = *op.Security
			}
			for _, req := range reqs {
				for name := range req {
					if s := doc.Components.SecuritySchemes[name]; s != nil && s.Value.Type == "http" {
						with = append(with, method+" "+path)
					}
				}
			}
		}
	}
	if !slices.Equal(with, []string{"POST /introspect"}) {
		t.Errorf("operations with an http (Basic) alternative: %v, want only POST /introspect", with)
	}
}
