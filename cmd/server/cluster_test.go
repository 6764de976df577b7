package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// coherenceBound is how fast a change made on one replica takes effect on
// the others (README: "Several replicas"). PostgreSQL LISTEN/NOTIFY
// carries it; the periodic resync is set far longer in this test so that
// only the notifications can meet the bound.
const coherenceBound = time.Second

// replica is one real server process.
type replica struct {
	base string
	cmd  *exec.Cmd
	logs *syncBuffer
}

func buildServer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gatehouse")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func startReplica(t *testing.T, bin string, env map[string]string) *replica {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	logs := &syncBuffer{}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			logs.Write([]byte(line + "\n"))
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "gatehouse listening" {
				addr <- rec["addr"].(string)
			}
		}
	}()
	select {
	case a := <-addr:
		r := &replica{base: "http://" + a, cmd: cmd, logs: logs}
		eventually(t, 30*time.Second, "replica ready", func() bool { return readyStatus(r.base) == 200 })
		return r
	case <-time.After(60 * time.Second):
		t.Fatalf("replica did not start:\n%s", logs)
	}
	return nil
}

func (r *replica) token(t *testing.T, form url.Values) (map[string]any, int) {
	t.Helper()
	resp, err := http.PostForm(r.base+"/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	return body, resp.StatusCode
}

func (r *replica) call(t *testing.T, method, path, token, body string) int {
	t.Helper()
	req, _ := http.NewRequest(method, r.base+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
		if strings.HasPrefix(body, "token=") {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func jwtKID(t *testing.T, token string) string {
	t.Helper()
	h, _ := jwtParts(t, token)
	kid, _ := h["kid"].(string)
	return kid
}

// TestReplicas runs three server processes on one PostgreSQL database.
func TestReplicas(t *testing.T) {
	dsn := postgresSchema(t)
	bin := buildServer(t)
	env := map[string]string{
		// No grace window: a replayed refresh token is reuse at once.
		"GATEHOUSE_REFRESH_REUSE_WINDOW":     "0",
		"GATEHOUSE_ADDR":                     "127.0.0.1:0",
		"GATEHOUSE_DATABASE_URL":             dsn,
		"GATEHOUSE_ISSUER":                   "http://gatehouse.cluster.test",
		"GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD": adminPassword,
		"GATEHOUSE_ARGON2_MEMORY_KIB":        "64",
		"GATEHOUSE_ARGON2_ITERATIONS":        "1",
		"GATEHOUSE_KEY_PREPUBLISH":           "1s",
		"GATEHOUSE_SYNC_INTERVAL":            "1h",
	}
	// Started together: migrations and the bootstrap admin must not race.
	reps := make([]*replica, 3)
	done := make(chan int, 3)
	for i := range reps {
		go func() {
			defer func() { done <- i }()
			reps[i] = startReplica(t, bin, env)
		}()
	}
	for range reps {
		<-done
	}
	for i, r := range reps {
		if r == nil {
			t.Fatalf("replica %d did not start", i)
		}
	}
	a, b, c := reps[0], reps[1], reps[2]

	admin, status := a.token(t, url.Values{"grant_type": {"password"}, "username": {"admin"}, "password": {adminPassword}})
	if status != 200 {
		t.Fatalf("admin login on A: %d %v", status, admin)
	}
	adminToken := admin["access_token"].(string)

	t.Run("token_issued_by_A_is_accepted_by_B_and_C", func(t *testing.T) {
		for _, r := range []*replica{b, c} {
			if got := r.call(t, "GET", "/users/me", adminToken, ""); got != 200 {
				t.Errorf("%s: got %d", r.base, got)
			}
		}
	})

	if got := a.call(t, "POST", "/users", adminToken, `{"username":"alice","password":"`+alicePassword+`","scopes":["me"]}`); got != 201 {
		t.Fatalf("create alice on A: %d", got)
	}
	login := func(t *testing.T, r *replica) map[string]any {
		t.Helper()
		body, status := r.token(t, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePassword}})
		if status != 200 {
			t.Fatalf("alice login on %s: %d %v", r.base, status, body)
		}
		return body
	}
	refresh := func(t *testing.T, r *replica, token string) (map[string]any, int) {
		t.Helper()
		return r.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}})
	}

	t.Run("refresh_rotated_on_A_cannot_be_replayed_on_B", func(t *testing.T) {
		first := login(t, a)
		second, status := refresh(t, a, first["refresh_token"].(string))
		if status != 200 {
			t.Fatalf("refresh on A: %d %v", status, second)
		}
		if _, status := refresh(t, b, first["refresh_token"].(string)); status != 400 {
			t.Fatalf("replay on B: got %d, want 400", status)
		}
		// The family is revoked everywhere.
		if _, status := refresh(t, c, second["refresh_token"].(string)); status != 400 {
			t.Errorf("the family's current token on C: got %d, want 400", status)
		}
		eventually(t, coherenceBound, "the family's access token is refused on A", func() bool {
			return a.call(t, "GET", "/users/me", second["access_token"].(string), "") == 401
		})
	})

	t.Run("revocation_on_C_rejects_the_token_on_A_within_the_bound", func(t *testing.T) {
		tok := login(t, a)["access_token"].(string)
		if got := a.call(t, "GET", "/users/me", tok, ""); got != 200 {
			t.Fatalf("before: %d", got)
		}
		if got := c.call(t, "POST", "/revoke", "", "token="+url.QueryEscape(tok)); got != 200 {
			t.Fatalf("revoke on C: %d", got)
		}
		eventually(t, coherenceBound, "the revoked token is refused on A", func() bool {
			return a.call(t, "GET", "/users/me", tok, "") == 401
		})
	})

	t.Run("disabling_on_B_cuts_the_user_off_on_C_within_the_bound", func(t *testing.T) {
		if got := a.call(t, "POST", "/users", adminToken, `{"username":"bob","password":"`+bobPassword+`"}`); got != 201 {
			t.Fatalf("create bob: %d", got)
		}
		body, _ := c.token(t, url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {bobPassword}})
		tok := body["access_token"].(string)
		if got := b.call(t, "PATCH", "/users/bob", adminToken, `{"disabled":true}`); got != 200 {
			t.Fatalf("disable on B: %d", got)
		}
		eventually(t, coherenceBound, "the disabled user's token is refused on C", func() bool {
			return c.call(t, "GET", "/users/me", tok, "") == 401
		})
	})

	t.Run("client_changes_on_one_replica_end_client_tokens_on_the_others_within_the_bound", func(t *testing.T) {
		body := `{"client_id":"billing","service_scopes":["users:read","tokens:introspect"],"grants":["client_credentials"]}`
		req, _ := http.NewRequest("POST", a.base+"/clients", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var reg struct {
			Secret  string                `json:"client_secret"`
			Secrets []struct{ ID string } `json:"secrets"`
		}
		json.NewDecoder(resp.Body).Decode(&reg)
		resp.Body.Close()
		if resp.StatusCode != 201 || reg.Secret == "" {
			t.Fatalf("register billing on A: %d", resp.StatusCode)
		}
		cc := func(r *replica, secret, scope string) string {
			t.Helper()
			cfg := clientcredentials.Config{ClientID: "billing", ClientSecret: secret, TokenURL: r.base + "/token", Scopes: strings.Fields(scope)}
			tok, err := cfg.Token(context.Background())
			if err != nil {
				t.Fatalf("client_credentials on %s: %v", r.base, err)
			}
			return tok.AccessToken
		}
		// Registered on A, the client gets tokens on B that C accepts.
		oldTok := cc(b, reg.Secret, "users:read")
		if got := c.call(t, "GET", "/users/alice", oldTok, ""); got != 200 {
			t.Fatalf("billing's token on C: %d", got)
		}
		// Rotation: a second secret added on C works on A at once, and
		// removing the first on B ends its tokens on C within the bound.
		req, _ = http.NewRequest("POST", c.base+"/clients/billing/secrets", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var added struct {
			Secret string `json:"client_secret"`
		}
		json.NewDecoder(resp.Body).Decode(&added)
		resp.Body.Close()
		if resp.StatusCode != 201 {
			t.Fatalf("add a secret on C: %d", resp.StatusCode)
		}
		newTok := cc(a, added.Secret, "users:read")
		if got := b.call(t, "DELETE", "/clients/billing/secrets/"+reg.Secrets[0].ID, adminToken, ""); got != 204 {
			t.Fatalf("remove the first secret on B: %d", got)
		}
		eventually(t, coherenceBound, "the removed secret's token is refused on C", func() bool {
			return c.call(t, "GET", "/users/alice", oldTok, "") == 401
		})
		if got := c.call(t, "GET", "/users/alice", newTok, ""); got != 200 {
			t.Errorf("the new secret's token on C after the rotation: %d", got)
		}
		// Narrowed on A: the token's scope is gone on B within the bound.
		if got := a.call(t, "PATCH", "/clients/billing", adminToken, `{"service_scopes":["tokens:introspect"]}`); got != 200 {
			t.Fatalf("narrow billing on A: %d", got)
		}
		eventually(t, coherenceBound, "the narrowed client's token is refused on B", func() bool {
			return b.call(t, "GET", "/users/alice", newTok, "") == 401
		})
		// Deleted on C: its tokens end on A within the bound.
		introspector := cc(b, added.Secret, "tokens:introspect")
		if got := a.call(t, "POST", "/introspect", introspector, "token="+url.QueryEscape(adminToken)); got != 200 {
			t.Fatalf("introspect with billing's token on A: %d", got)
		}
		if got := c.call(t, "DELETE", "/clients/billing", adminToken, ""); got != 204 {
			t.Fatalf("delete billing on C: %d", got)
		}
		eventually(t, coherenceBound, "the deleted client's token is refused on A", func() bool {
			return a.call(t, "POST", "/introspect", introspector, "token="+url.QueryEscape(adminToken)) == 401
		})
	})

	t.Run("key_rotated_on_B_signs_tokens_that_A_validates", func(t *testing.T) {
		oldKID := jwtKID(t, adminToken)
		if got := b.call(t, "POST", "/keys/rotate", adminToken, ""); got != 201 {
			t.Fatalf("rotate on B: %d", got)
		}
		var fresh string
		eventually(t, 10*time.Second, "B signs with the new key after the pre-publication delay", func() bool {
			body, _ := b.token(t, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePassword}})
			fresh, _ = body["access_token"].(string)
			return fresh != "" && jwtKID(t, fresh) != oldKID
		})
		for _, r := range []*replica{a, c} {
			if got := r.call(t, "GET", "/users/me", fresh, ""); got != 200 {
				t.Errorf("%s refuses a token of the rotated key: %d", r.base, got)
			}
		}
		// A signs with the new key too, and old tokens stay valid.
		eventually(t, 10*time.Second, "A signs with the new key", func() bool {
			body, _ := a.token(t, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePassword}})
			tok, _ := body["access_token"].(string)
			return tok != "" && jwtKID(t, tok) == jwtKID(t, fresh)
		})
		if got := c.call(t, "GET", "/users/me", adminToken, ""); got != 200 {
			t.Errorf("a token of the old key after rotation: %d", got)
		}
	})

	t.Run("killing_a_replica_loses_nothing", func(t *testing.T) {
		if got := a.call(t, "POST", "/users", adminToken, `{"username":"carol","password":"carol-password-1"}`); got != 201 {
			t.Fatalf("create carol on A: %d", got)
		}
		carol, status := a.token(t, url.Values{"grant_type": {"password"}, "username": {"carol"}, "password": {"carol-password-1"}})
		if status != 200 {
			t.Fatalf("carol login on A: %d", status)
		}
		if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		a.cmd.Wait()
		if got := b.call(t, "GET", "/users/carol", adminToken, ""); got != 200 {
			t.Errorf("carol on B after A died: %d", got)
		}
		if got := c.call(t, "GET", "/users/me", carol["access_token"].(string), ""); got != 200 {
			t.Errorf("carol's access token on C: %d", got)
		}
		// A standard client keeps refreshing against the survivors.
		cfg := &oauth2.Config{Endpoint: oauth2.Endpoint{TokenURL: c.base + "/token"}}
		expired := &oauth2.Token{AccessToken: carol["access_token"].(string), RefreshToken: carol["refresh_token"].(string), Expiry: time.Now().Add(-time.Minute)}
		if _, err := cfg.TokenSource(context.Background(), expired).Token(); err != nil {
			t.Errorf("refresh on C of a token issued by A: %v", err)
		}
	})
}
