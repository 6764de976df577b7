package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "modernc.org/sqlite" // driver "sqlite", to inspect the store the crash left

	"github.com/gatehouse/gatehouse/internal/servertest"
)

const (
	// crashWorkers run the burst side by side.
	crashWorkers = 4
	// crashRotations is how many times each worker rotates a login's
	// refresh token before it creates the next user.
	crashRotations = 3
	// The server is killed, in the middle of the next writes, once the
	// burst has had crashKillAfter writes acknowledged, or has lasted
	// crashBurstFor with at least crashMinAcks (a loaded machine), or
	// crashBurstTimeout whatever it did.
	crashKillAfter    = 400
	crashMinAcks      = 20
	crashBurstFor     = 2 * time.Second
	crashBurstTimeout = 10 * time.Second
	// crashTestTimeout bounds the whole test once the binary is built: a
	// server that hangs fails it instead of stalling request after request.
	crashTestTimeout = 30 * time.Second
)

// crashFamily is one login as its client saw it: only what the server
// acknowledged with a complete 200 is recorded.
type crashFamily struct {
	user string
	// current is the last refresh token the server returned, access the
	// access token returned with it.
	current, access string
	// rotated holds the refresh tokens whose rotation the server
	// acknowledged, oldest first: each must be refused from then on.
	rotated []string
	// pending is set while a rotation of current is unanswered. If the
	// kill left it unanswered, the store may or may not have rotated
	// current, so nothing is asserted about current.
	pending bool
	// successor is what refreshing current returned after the restart.
	successor string
}

// crashBurst records what the server acknowledged before it was killed.
type crashBurst struct {
	ctx    context.Context
	client *http.Client
	base   string
	admin  string

	acks     atomic.Int64
	killed   atomic.Bool
	mu       sync.Mutex
	users    []string
	families []*crashFamily
	inFlight map[string]int // requests the kill left unanswered, by kind
	lasted   time.Duration  // from the first request to the kill
}

// TestCrashSafety kills the server with SIGKILL in the middle of a burst of
// user creations, logins and refresh-token rotations, starts it again on the
// same SQLite file, and holds it to what it acknowledged: every 201 and 200
// the clients received is durable, and every acknowledged rotation still
// retires the old token (RFC 9700 §4.14.2). Requests the kill left
// unanswered are not acknowledged and nothing is asserted about them.
func TestCrashSafety(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "g.db")
	env := map[string]string{
		// No grace window: a replayed refresh token is reuse at once.
		"GATEHOUSE_REFRESH_REUSE_WINDOW": "0",
		"GATEHOUSE_DATABASE_URL":         "sqlite://" + filepath.ToSlash(dbPath), // absolute: sqlite:///tmp/…
		// The same iss on both runs, so access tokens of the first run
		// verify on the second.
		"GATEHOUSE_ISSUER": "http://gatehouse.crash.test",
	}
	if _, err := servertest.Binary(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), crashTestTimeout)
	defer cancel()

	first := servertest.StartT(t, env)
	hc := &http.Client{Timeout: 10 * time.Second}
	b := &crashBurst{ctx: ctx, client: hc, base: first.URL, inFlight: map[string]int{}}
	b.admin = crashAdminToken(t, ctx, hc, first.URL)
	b.run(t, first)
	if t.Failed() {
		t.Fatalf("the burst before the kill failed\nserver log:\n%s", first.Logs())
	}

	var rotations, settled int
	for _, f := range b.families {
		rotations += len(f.rotated)
		if !f.pending {
			settled++
		}
	}
	t.Logf("acknowledged in the %v before SIGKILL: %d users, %d logins (%d with no request pending), %d rotations; unanswered at the kill: %v",
		b.lasted.Round(time.Millisecond), len(b.users), len(b.families), settled, rotations, b.inFlight)
	if len(b.users) == 0 || rotations == 0 {
		t.Fatalf("the burst acknowledged %d users and %d rotations before the kill; the test needs some of each", len(b.users), rotations)
	}

	t.Run("store_left_by_sigkill_passes_integrity_check", func(t *testing.T) {
		crashCheckStore(t, dbPath)
	})

	second := servertest.StartT(t, env)
	admin := crashAdminToken(t, ctx, hc, second.URL)

	t.Run("acknowledged_users_survive_sigkill", func(t *testing.T) {
		for _, name := range b.users {
			status, body, err := crashDo(ctx, hc, "GET", second.URL+"/users/"+url.PathEscape(name), admin, "", "")
			if err != nil {
				t.Fatalf("GET /users/%s: %v", name, err)
			}
			if status != http.StatusOK || body["username"] != name {
				t.Errorf("GET /users/%s after the restart = %s, want 200 (its POST /users was answered 201)", name, crashAnswer(status, body))
			}
		}
	})

	// Before any refresh below: a reuse revokes its family's access tokens.
	t.Run("acknowledged_access_tokens_verify_after_restart", func(t *testing.T) {
		for _, f := range b.families {
			status, body, err := crashDo(ctx, hc, "GET", second.URL+"/users/me", f.access, "", "")
			if err != nil {
				t.Fatalf("GET /users/me as %s: %v", f.user, err)
			}
			if status != http.StatusOK || body["username"] != f.user {
				t.Errorf("GET /users/me with %s's last acknowledged access token = %s, want 200", f.user, crashAnswer(status, body))
			}
		}
	})

	// A family is checked for reuse one way only: the first reuse revokes
	// the family, after which every token of it is refused whatever the
	// store says about it, so a second check would prove nothing. Half
	// the families replay the token just rotated after the restart, the
	// other half (and those whose current token is in doubt) replay the
	// token whose rotation was acknowledged last before the kill.
	replaysRotated := func(i int, f *crashFamily) bool {
		return len(f.rotated) > 0 && (f.pending || i%2 == 1)
	}

	t.Run("acknowledged_refresh_token_works_after_restart", func(t *testing.T) {
		for _, f := range b.families {
			if f.pending {
				continue
			}
			status, body, err := crashRefresh(ctx, hc, second.URL, f.current)
			if err != nil {
				t.Fatalf("refresh as %s: %v", f.user, err)
			}
			if status != http.StatusOK {
				t.Errorf("refresh with %s's last acknowledged refresh token (%d rotations before it) = %s, want 200",
					f.user, len(f.rotated), crashAnswer(status, body))
				continue
			}
			f.successor, _ = body["refresh_token"].(string)
		}
	})

	t.Run("refresh_token_works_exactly_once", func(t *testing.T) {
		for i, f := range b.families {
			if f.pending || f.successor == "" || replaysRotated(i, f) {
				continue
			}
			status, body, err := crashRefresh(ctx, hc, second.URL, f.current)
			if err != nil {
				t.Fatalf("refresh as %s: %v", f.user, err)
			}
			if status != http.StatusBadRequest || body["error"] != "invalid_grant" {
				t.Errorf("second refresh with %s's token = %s, want 400 invalid_grant", f.user, crashAnswer(status, body))
			}
		}
	})

	t.Run("rotated_refresh_token_is_refused_after_restart", func(t *testing.T) {
		for i, f := range b.families {
			if !replaysRotated(i, f) {
				continue
			}
			// The last acknowledged rotation first: it is the write
			// closest to the kill, and the only one this family can
			// tell apart (see above). Then the older ones, refused
			// anyway.
			for j := len(f.rotated) - 1; j >= 0; j-- {
				status, body, err := crashRefresh(ctx, hc, second.URL, f.rotated[j])
				if err != nil {
					t.Fatalf("refresh as %s: %v", f.user, err)
				}
				if status != http.StatusBadRequest || body["error"] != "invalid_grant" {
					t.Errorf("refresh with %s's refresh token #%d of %d, rotated before the kill = %s, want 400 invalid_grant",
						f.user, j+1, len(f.rotated), crashAnswer(status, body))
				}
			}
		}
	})

	t.Run("reuse_after_restart_revokes_the_family", func(t *testing.T) {
		for _, f := range b.families {
			if f.successor == "" {
				continue
			}
			status, body, err := crashRefresh(ctx, hc, second.URL, f.successor)
			if err != nil {
				t.Fatalf("refresh as %s: %v", f.user, err)
			}
			if status != http.StatusBadRequest || body["error"] != "invalid_grant" {
				t.Errorf("refresh with %s's newest token after its family was replayed = %s, want 400 invalid_grant", f.user, crashAnswer(status, body))
			}
		}
	})

	if t.Failed() {
		t.Logf("server log after the restart:\n%s", second.Logs())
	}
	second.Stop()

	t.Run("store_passes_integrity_check_after_restart", func(t *testing.T) {
		crashCheckStore(t, dbPath)
	})
}

// run drives the burst against srv and kills srv with SIGKILL while the
// workers keep sending (see crashKillAfter for when). It returns when
// every worker has seen the server gone.
func (b *crashBurst) run(t *testing.T, srv *servertest.Server) {
	t.Helper()
	var wg sync.WaitGroup
	for w := range crashWorkers {
		wg.Go(func() { b.worker(t, w) })
	}
	began := time.Now()
	for {
		acks, lasted := b.acks.Load(), time.Since(began)
		if acks >= crashKillAfter || acks >= crashMinAcks && lasted >= crashBurstFor || lasted >= crashBurstTimeout {
			break
		}
		time.Sleep(time.Millisecond)
	}
	b.lasted = time.Since(began)
	b.killed.Store(true)
	srv.Kill()
	wg.Wait()
}

// worker creates users one after another, logs each in and rotates the
// login's refresh token crashRotations times, until a request fails.
func (b *crashBurst) worker(t *testing.T, w int) {
	for n := 0; ; n++ {
		name := fmt.Sprintf("crash-%d-%d", w, n)
		password := "password-of-" + name
		newUser := fmt.Sprintf(`{"username":%q,"password":%q,"scopes":["me"]}`, name, password)
		status, body, err := crashDo(b.ctx, b.client, "POST", b.base+"/users", b.admin, "application/json", newUser)
		if !b.acknowledged(t, "create_user", "POST /users "+name, http.StatusCreated, status, body, err) {
			return
		}
		b.mu.Lock()
		b.users = append(b.users, name)
		b.mu.Unlock()

		status, body, err = crashToken(b.ctx, b.client, b.base, url.Values{
			"grant_type": {"password"}, "username": {name}, "password": {password},
		})
		if !b.acknowledged(t, "login", "password grant as "+name, http.StatusOK, status, body, err) {
			return
		}
		f := &crashFamily{user: name, current: body["refresh_token"].(string), access: body["access_token"].(string)}
		b.mu.Lock()
		b.families = append(b.families, f)
		b.mu.Unlock()

		for range crashRotations {
			// Only this worker touches f until run returns.
			f.pending = true
			status, body, err = crashRefresh(b.ctx, b.client, b.base, f.current)
			if !b.acknowledged(t, "rotate", "refresh as "+name, http.StatusOK, status, body, err) {
				return
			}
			f.rotated = append(f.rotated, f.current)
			f.current, f.access = body["refresh_token"].(string), body["access_token"].(string)
			f.pending = false
		}
	}
}

// acknowledged reports whether a request got the complete answer want. A
// request the kill cut off is counted under kind and ends the worker; any
// other outcome is a failure of the server before the crash.
func (b *crashBurst) acknowledged(t *testing.T, kind, what string, want, status int, body map[string]any, err error) bool {
	if err != nil {
		if !b.killed.Load() {
			t.Errorf("%s before the kill: %v", what, err)
		}
		b.mu.Lock()
		b.inFlight[kind]++
		b.mu.Unlock()
		return false
	}
	if status != want {
		t.Errorf("%s = %s, want %d", what, crashAnswer(status, body), want)
		return false
	}
	if want == http.StatusOK {
		if a, _ := body["access_token"].(string); a == "" {
			t.Errorf("%s = 200 without access_token: %v", what, body)
			return false
		}
		if r, _ := body["refresh_token"].(string); r == "" {
			t.Errorf("%s = 200 without refresh_token: %v", what, body)
			return false
		}
	}
	b.acks.Add(1)
	return true
}

// crashDo sends one request and decodes a JSON answer. A response whose
// body was cut short is an error: the client never saw it complete, so it
// acknowledged nothing.
func crashDo(ctx context.Context, hc *http.Client, method, target, token, contentType, body string) (int, map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("reading the %d answer: %w", resp.StatusCode, err)
	}
	var decoded map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &decoded); err != nil {
			return 0, nil, fmt.Errorf("the %d answer is not JSON: %w: %s", resp.StatusCode, err, raw)
		}
	}
	return resp.StatusCode, decoded, nil
}

// crashAnswer shortens an answer for a failure message: the OAuth 2.0
// error, or that tokens were issued, never the tokens themselves.
func crashAnswer(status int, body map[string]any) string {
	switch {
	case body["error"] != nil:
		return fmt.Sprintf("%d %v (%v)", status, body["error"], body["error_description"])
	case body["access_token"] != nil:
		return fmt.Sprintf("%d with new tokens", status)
	default:
		return fmt.Sprintf("%d %v", status, body)
	}
}

// crashToken posts a form to /token (RFC 6749 §3.2).
func crashToken(ctx context.Context, hc *http.Client, base string, form url.Values) (int, map[string]any, error) {
	return crashDo(ctx, hc, "POST", base+"/token", "", "application/x-www-form-urlencoded", form.Encode())
}

// crashRefresh presents a refresh token (RFC 6749 §6).
func crashRefresh(ctx context.Context, hc *http.Client, base, refresh string) (int, map[string]any, error) {
	return crashToken(ctx, hc, base, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}})
}

// crashAdminToken logs the bootstrap admin in, failing unless 200.
func crashAdminToken(t *testing.T, ctx context.Context, hc *http.Client, base string) string {
	t.Helper()
	status, body, err := crashToken(ctx, hc, base, url.Values{
		"grant_type": {"password"}, "username": {"admin"}, "password": {servertest.AdminPassword},
	})
	if err != nil {
		t.Fatalf("admin login: %v", err)
	}
	tok, _ := body["access_token"].(string)
	if status != http.StatusOK || tok == "" {
		t.Fatalf("admin login = %s, want 200", crashAnswer(status, body))
	}
	return tok
}

// crashCheckStore opens the database file read-only, with no server
// running, and requires SQLite's own integrity and foreign key checks to
// pass and the file to be in WAL mode. A WAL file a crash left behind is
// read as SQLite would on the next open (immutable=1 would ignore it).
func crashCheckStore(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.ToSlash(path)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	rows := func(query string) []string {
		t.Helper()
		rs, err := db.Query(query)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		defer rs.Close()
		cols, err := rs.Columns()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for rs.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rs.Scan(ptrs...); err != nil {
				t.Fatalf("%s: %v", query, err)
			}
			out = append(out, strings.TrimSpace(fmt.Sprintln(vals...)))
		}
		if err := rs.Err(); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return out
	}

	if got := rows("PRAGMA integrity_check"); len(got) != 1 || got[0] != "ok" {
		t.Errorf("PRAGMA integrity_check = %q, want [ok]", got)
	}
	if got := rows("PRAGMA foreign_key_check"); len(got) != 0 {
		t.Errorf("PRAGMA foreign_key_check = %q, want no rows", got)
	}
	if got := rows("PRAGMA journal_mode"); len(got) != 1 || got[0] != "wal" {
		t.Errorf("PRAGMA journal_mode = %q, want [wal]", got)
	}
}
