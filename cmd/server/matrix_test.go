package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

// The account- and client-state matrix: every change of a user's or a
// client's state × every path that mints or honours a token, with the
// answer each cell must give. A new grant, or a new state that should end
// tokens, is added here first.
//
// Each state gets fresh fixtures on replica A: a user (scopes me and
// users:read, a TOTP factor unless the state enrols one) and a confidential
// client allowed the client-credentials grant, with what was issued before
// the change: the user's session through the client (its access and
// refresh token), a first step's mfa_token, and the client's own token.
// The change is made on A; every path is then tried on replica B. Paths
// that read the store answer at once; the honouring paths (introspection,
// a bearer request) may take up to coherenceBound on B, and are retried
// until then.

// The paths, in the order each state tries them.
const (
	pathIntrospectUser    = "introspect user token"
	pathBearerUser        = "bearer user token"
	pathIntrospectService = "introspect service token"
	pathBearerService     = "bearer service token"
	pathPassword          = "password grant"
	pathPasswordCode      = "password + code"
	pathMFAStep           = "mfa_token step"
	pathRefresh           = "refresh"
	pathClientCredentials = "client credentials"
)

var matrixPaths = []string{
	pathIntrospectUser, pathBearerUser, pathIntrospectService, pathBearerService,
	pathPassword, pathPasswordCode, pathMFAStep, pathRefresh, pathClientCredentials,
}

// Outcomes: "200", an RFC 6749 §5.2 error code (status 400, or 401 for
// invalid_client, 403 for mfa_required), "active"/"inactive" for RFC 7662,
// "401" for an RFC 6750 invalid_token refusal.
type matrixRow struct {
	state string
	// noFactor: the user starts without a second factor.
	noFactor bool
	change   func(t *testing.T, m *matrix, f *fixture)
	// secret picks the client secret the paths authenticate with, after
	// the change (default: the one registered).
	secret func(f *fixture) string
	want   map[string]string
}

func matrixRows() []matrixRow {
	all := func(over map[string]string) map[string]string {
		w := map[string]string{
			pathIntrospectUser: "active", pathBearerUser: "200", pathIntrospectService: "active", pathBearerService: "200",
			pathPassword: "mfa_required", pathPasswordCode: "200", pathMFAStep: "200", pathRefresh: "200", pathClientCredentials: "200",
		}
		for k, v := range over {
			w[k] = v
		}
		return w
	}
	userGone := map[string]string{pathIntrospectUser: "inactive", pathBearerUser: "401", pathMFAStep: "invalid_grant", pathRefresh: "invalid_grant"}
	merge := func(a, b map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range a {
			out[k] = v
		}
		for k, v := range b {
			out[k] = v
		}
		return out
	}
	serviceGone := map[string]string{pathIntrospectService: "inactive", pathBearerService: "401"}
	badClient := map[string]string{pathPassword: "invalid_client", pathPasswordCode: "invalid_client", pathMFAStep: "invalid_client", pathRefresh: "invalid_client", pathClientCredentials: "invalid_client"}
	return []matrixRow{
		{state: "no change", want: all(nil)},
		{state: "user disabled",
			change: func(t *testing.T, m *matrix, f *fixture) {
				m.admin(t, "PATCH", "/users/"+f.user, `{"disabled":true}`, 200)
			},
			want: all(merge(userGone, map[string]string{pathPassword: "invalid_grant", pathPasswordCode: "invalid_grant"}))},
		{state: "user deleted and re-created with the same name",
			change: func(t *testing.T, m *matrix, f *fixture) {
				m.admin(t, "DELETE", "/users/"+f.user, "", 204)
				m.admin(t, "POST", "/users", fmt.Sprintf(`{"username":%q,"password":%q,"scopes":["me","users:read"]}`, f.user, f.password), 201)
			},
			// The new account has no factor: its password alone logs in
			// (the otp is ignored); nothing of the old one works.
			want: all(merge(userGone, map[string]string{pathPassword: "200"}))},
		{state: "password changed",
			change: func(t *testing.T, m *matrix, f *fixture) {
				m.admin(t, "PATCH", "/users/"+f.user, `{"password":"a completely new password"}`, 200)
			},
			// The paths send the old password.
			want: all(merge(userGone, map[string]string{pathPassword: "invalid_grant", pathPasswordCode: "invalid_grant"}))},
		{state: "a scope removed from the user",
			change: func(t *testing.T, m *matrix, f *fixture) {
				m.admin(t, "PATCH", "/users/"+f.user, `{"scopes":["me"]}`, 200)
			},
			// The password paths ask for users:read, which the user no
			// longer holds.
			want: all(merge(userGone, map[string]string{pathPassword: "invalid_scope", pathPasswordCode: "invalid_scope"}))},
		{state: "factor enrolled", noFactor: true,
			change: func(t *testing.T, m *matrix, f *fixture) { f.enrol(t, m, f.access) },
			// Sessions from before the enrolment go on; new logins need
			// the code.
			want: all(nil)},
		{state: "factor reset",
			change: func(t *testing.T, m *matrix, f *fixture) { m.admin(t, "DELETE", "/users/"+f.user+"/mfa", "", 204) },
			// The reset ends the user's sessions; the password alone logs
			// in again.
			want: all(merge(userGone, map[string]string{pathPassword: "200"}))},
		{state: "client deleted",
			change: func(t *testing.T, m *matrix, f *fixture) { m.admin(t, "DELETE", "/clients/"+f.client, "", 204) },
			want:   all(merge(merge(userGone, serviceGone), badClient))},
		{state: "client secret rotated, old secret",
			change: rotate,
			want:   all(merge(serviceGone, badClient))},
		{state: "client secret rotated, new secret",
			change: rotate, secret: func(f *fixture) string { return f.newSecret },
			want: all(serviceGone)},
		{state: "client scopes narrowed",
			change: func(t *testing.T, m *matrix, f *fixture) {
				m.admin(t, "PATCH", "/clients/"+f.client, `{"scopes":["me"],"service_scopes":["tokens:introspect"]}`, 200)
			},
			// Users' tokens already issued run out at their expiry; new
			// grants get only what the client may still have.
			want: all(merge(serviceGone, map[string]string{pathPassword: "invalid_scope", pathPasswordCode: "invalid_scope", pathClientCredentials: "invalid_scope"}))},
		{state: "client's grant removed",
			change: func(t *testing.T, m *matrix, f *fixture) {
				m.admin(t, "PATCH", "/clients/"+f.client, `{"grants":[]}`, 200)
			},
			want: all(merge(serviceGone, map[string]string{pathClientCredentials: "unauthorized_client"}))},
	}
}

func rotate(t *testing.T, m *matrix, f *fixture) {
	t.Helper()
	added := m.adminJSON(t, "POST", "/clients/"+f.client+"/secrets", "", 201)
	f.newSecret = added["client_secret"].(string)
	m.admin(t, "DELETE", "/clients/"+f.client+"/secrets/"+f.secretID, "", 204)
}

// matrix is one deployment: a and b are its replicas (one server on
// SQLite, where they are the same).
type matrix struct {
	a, b       string
	adminToken string
	seq        atomic.Int64
}

// fixture is one state's user and client, and what was issued before
// the change.
type fixture struct {
	user, password            string
	client, secret, secretID  string
	newSecret                 string
	totpSecret                string
	recovery                  []string
	access, refresh, mfaToken string
	serviceToken              string
}

func runMatrix(t *testing.T, a, b string) {
	m := &matrix{a: a, b: b}
	tok, status := m.token(t, a, "", url.Values{"grant_type": {"password"}, "username": {"admin"}, "password": {adminPassword}})
	if status != "200" {
		t.Fatalf("admin login: %s %v", status, tok)
	}
	m.adminToken = tok["access_token"].(string)
	for _, row := range matrixRows() {
		t.Run(strings.ReplaceAll(row.state, " ", "_"), func(t *testing.T) {
			f := m.setUp(t, !row.noFactor)
			if row.change != nil {
				row.change(t, m, f)
			}
			secret := f.secret
			if row.secret != nil {
				secret = row.secret(f)
			}
			for _, path := range matrixPaths {
				want := row.want[path]
				if got := m.try(t, f, path, secret, want); got != want {
					t.Errorf("%s after %q: got %s, want %s", path, row.state, got, want)
				}
			}
		})
	}
}

// try runs one path on replica B. The honouring paths are retried for
// up to coherenceBound while they do not give want.
func (m *matrix) try(t *testing.T, f *fixture, path, secret, want string) string {
	t.Helper()
	basic := url.QueryEscape(f.client) + ":" + url.QueryEscape(secret)
	switch path {
	case pathIntrospectUser, pathIntrospectService, pathBearerUser, pathBearerService:
		var got string
		deadline := time.Now().Add(coherenceBound)
		for {
			switch path {
			case pathIntrospectUser:
				got = m.introspect(t, f.access)
			case pathIntrospectService:
				got = m.introspect(t, f.serviceToken)
			case pathBearerUser:
				got = m.bearer(t, "/users/me", f.access)
			case pathBearerService:
				got = m.bearer(t, "/users?limit=1", f.serviceToken)
			}
			if got == want || time.Now().After(deadline) {
				return got
			}
			time.Sleep(20 * time.Millisecond)
		}
	case pathPassword:
		_, got := m.token(t, m.b, basic, url.Values{"grant_type": {"password"}, "username": {f.user}, "password": {f.password}, "scope": {"me users:read"}})
		return got
	case pathPasswordCode:
		code := f.code(t, time.Now().Add(30*time.Second)) // the step after the one that confirmed
		_, got := m.token(t, m.b, basic, url.Values{"grant_type": {"password"}, "username": {f.user}, "password": {f.password}, "scope": {"me users:read"}, "otp": {code}})
		return got
	case pathMFAStep:
		mfa := f.mfaToken
		if mfa == "" {
			// Enrolled by the change: the first step comes after it.
			body, status := m.token(t, m.b, basic, url.Values{"grant_type": {"password"}, "username": {f.user}, "password": {f.password}})
			if status != "mfa_required" {
				return "first step: " + status
			}
			mfa = body["mfa_token"].(string)
		}
		_, got := m.token(t, m.b, basic, url.Values{"grant_type": {"http://auth0.com/oauth/grant-type/mfa-otp"}, "mfa_token": {mfa}, "otp": {f.recovery[1]}})
		return got
	case pathRefresh:
		_, got := m.token(t, m.b, basic, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {f.refresh}})
		return got
	case pathClientCredentials:
		_, got := m.token(t, m.b, basic, url.Values{"grant_type": {"client_credentials"}, "scope": {"users:read"}})
		return got
	}
	t.Fatalf("unknown path %q", path)
	return ""
}

// setUp makes a state's fixtures on replica A.
func (m *matrix) setUp(t *testing.T, factor bool) *fixture {
	t.Helper()
	n := m.seq.Add(1)
	f := &fixture{user: fmt.Sprintf("matrix-%d-%d", time.Now().UnixNano()%1e6, n), password: "matrix password", client: fmt.Sprintf("svc-%d", n)}
	m.admin(t, "POST", "/users", fmt.Sprintf(`{"username":%q,"password":%q,"scopes":["me","users:read"]}`, f.user, f.password), 201)
	c := m.adminJSON(t, "POST", "/clients", fmt.Sprintf(`{"client_id":%q,"service_scopes":["users:read","tokens:introspect"],"grants":["client_credentials"]}`, f.client), 201)
	f.secret = c["client_secret"].(string)
	f.secretID = c["secrets"].([]any)[0].(map[string]any)["id"].(string)
	basic := url.QueryEscape(f.client) + ":" + url.QueryEscape(f.secret)
	login := func(kv url.Values) map[string]any {
		t.Helper()
		body, status := m.token(t, m.a, basic, kv)
		if status != "200" {
			t.Fatalf("fixture login %v: %s %v", kv.Get("grant_type"), status, body)
		}
		return body
	}
	password := url.Values{"grant_type": {"password"}, "username": {f.user}, "password": {f.password}}
	if factor {
		first := login(password)["access_token"].(string)
		f.enrol(t, m, first)
		withCode := url.Values{"grant_type": {"password"}, "username": {f.user}, "password": {f.password}, "otp": {f.recovery[0]}}
		s := login(withCode)
		f.access, f.refresh = s["access_token"].(string), s["refresh_token"].(string)
		body, status := m.token(t, m.a, basic, password)
		if status != "mfa_required" {
			t.Fatalf("fixture first step: %s %v", status, body)
		}
		f.mfaToken = body["mfa_token"].(string)
	} else {
		s := login(password)
		f.access, f.refresh = s["access_token"].(string), s["refresh_token"].(string)
	}
	f.serviceToken = login(url.Values{"grant_type": {"client_credentials"}, "scope": {"users:read"}})["access_token"].(string)
	return f
}

// enrol gives the fixture's user a confirmed TOTP factor, with the user's
// token access.
func (f *fixture) enrol(t *testing.T, m *matrix, access string) {
	t.Helper()
	e := m.call(t, m.a, "POST", "/users/me/mfa/totp", access, "", 201)
	f.totpSecret = e["secret"].(string)
	rc := m.call(t, m.a, "POST", "/users/me/mfa/totp/confirm", access, `{"code":"`+f.code(t, time.Now())+`"}`, 200)
	for _, c := range rc["recovery_codes"].([]any) {
		f.recovery = append(f.recovery, c.(string))
	}
}

func (f *fixture) code(t *testing.T, at time.Time) string {
	t.Helper()
	if f.totpSecret == "" {
		return "123456" // a user without a factor: the otp is ignored
	}
	c, err := totp.GenerateCode(f.totpSecret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// token posts a token request to base with basic ("id:secret", "" for
// none) and returns the body and the outcome: "200" or the error code.
func (m *matrix) token(t *testing.T, base, basic string, form url.Values) (map[string]any, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic != "" {
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(basic)))
	}
	body, status := m.do(t, req)
	if status == 200 {
		return body, "200"
	}
	code, _ := body["error"].(string)
	wantStatus := map[string]int{"invalid_client": 401, "mfa_required": 403}[code]
	if wantStatus == 0 {
		wantStatus = 400
	}
	if status != wantStatus {
		return body, fmt.Sprintf("%s with status %d", code, status)
	}
	return body, code
}

func (m *matrix) introspect(t *testing.T, token string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", m.b+"/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+m.adminToken)
	body, status := m.do(t, req)
	if status != 200 {
		return fmt.Sprintf("introspection answered %d", status)
	}
	if body["active"] == true {
		return "active"
	}
	return "inactive"
}

func (m *matrix) bearer(t *testing.T, path, token string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", m.b+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	_, status := m.do(t, req)
	return fmt.Sprint(status)
}

func (m *matrix) admin(t *testing.T, method, path, body string, want int) {
	t.Helper()
	m.call(t, m.a, method, path, m.adminToken, body, want)
}

func (m *matrix) adminJSON(t *testing.T, method, path, body string, want int) map[string]any {
	t.Helper()
	return m.call(t, m.a, method, path, m.adminToken, body, want)
}

func (m *matrix) call(t *testing.T, base, method, path, token, body string, want int) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	out, status := m.do(t, req)
	if status != want {
		t.Fatalf("%s %s: %d %v, want %d", method, path, status, out, want)
	}
	return out
}

func (m *matrix) do(t *testing.T, req *http.Request) (map[string]any, int) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	_ = json.Unmarshal(raw, &out)
	return out, resp.StatusCode
}

// TestStateMatrix runs the matrix on the embedded SQLite store (one
// server).
func TestStateMatrix(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	env["GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD"] = adminPassword
	base, _, _ := startServer(t, env)
	runMatrix(t, base, base)
}

// TestStateMatrixReplicas runs it across two replicas on PostgreSQL: each
// change is made on one and every path tried on the other.
func TestStateMatrixReplicas(t *testing.T) {
	dsn := postgresSchema(t)
	bin := buildServer(t)
	env := map[string]string{
		"GATEHOUSE_ADDR":                     "127.0.0.1:0",
		"GATEHOUSE_DATABASE_URL":             dsn,
		"GATEHOUSE_ISSUER":                   "http://gatehouse.matrix.test",
		"GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD": adminPassword,
		"GATEHOUSE_ARGON2_MEMORY_KIB":        "64",
		"GATEHOUSE_ARGON2_ITERATIONS":        "1",
		// Only the notifications can meet the bound.
		"GATEHOUSE_SYNC_INTERVAL": "1h",
	}
	a := startReplica(t, bin, env)
	b := startReplica(t, bin, env)
	runMatrix(t, a.base, b.base)
}
