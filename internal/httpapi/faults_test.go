package httpapi_test

import (
	"testing"

	"github.com/gatehouse/gatehouse/internal/storage"
	"github.com/gatehouse/gatehouse/internal/storage/storetest"
)

// A store that cannot do the work now (unreachable, timed out, full,
// busy, read-only) is answered 503 with Retry-After, never 500: RFC 6749
// temporarily_unavailable on the token endpoint, problem details
// elsewhere; and a write that failed so changed nothing, so the retry
// succeeds.
func TestStoreFaults_are_503_with_retry_after_and_lose_nothing(t *testing.T) {
	ts := newTestServer(t)
	admin := ts.token(t, "admin", adminPassword, "")
	faults := []error{storage.ErrUnavailable, storage.ErrTimeout, storage.ErrFull, storage.ErrBusy, storage.ErrReadOnly}

	for _, fault := range faults {
		t.Run("login_reservation_"+fault.Error(), func(t *testing.T) {
			ts.faulty.FailNext(storetest.OpReserveLogin, fault)
			r := ts.do(t, "POST", "/token", form("grant_type", "password", "username", "alice", "password", userPassword), "Content-Type", formType)
			wantOAuth(t, r, 503, "temporarily_unavailable")
			ts.token(t, "alice", userPassword, "")
		})
		t.Run("login_"+fault.Error(), func(t *testing.T) {
			ts.faulty.FailNext(storetest.OpCreateSession, fault)
			r := ts.do(t, "POST", "/token", form("grant_type", "password", "username", "alice", "password", userPassword), "Content-Type", formType)
			wantOAuth(t, r, 503, "temporarily_unavailable")
			if r.header.Get("Retry-After") == "" || r.header.Get("Cache-Control") != "no-store" {
				t.Errorf("headers %v, want Retry-After and Cache-Control: no-store", r.header)
			}
			ts.token(t, "alice", userPassword, "") // the retry logs in
		})
		t.Run("refresh_"+fault.Error(), func(t *testing.T) {
			r := ts.do(t, "POST", "/token", form("grant_type", "password", "username", "alice", "password", userPassword), "Content-Type", formType)
			refresh := r.json(t)["refresh_token"].(string)
			ts.faulty.FailNext(storetest.OpUpdateSession, fault)
			r = ts.do(t, "POST", "/token", form("grant_type", "refresh_token", "refresh_token", refresh), "Content-Type", formType)
			wantOAuth(t, r, 503, "temporarily_unavailable")
			// The failed refresh rotated nothing: the same token refreshes,
			// and is not taken for reuse.
			r = ts.do(t, "POST", "/token", form("grant_type", "refresh_token", "refresh_token", refresh), "Content-Type", formType)
			if r.status != 200 {
				t.Fatalf("retry of the refresh: %d %s", r.status, r.body)
			}
		})
		t.Run("revoke_"+fault.Error(), func(t *testing.T) {
			// RFC 7009 §2.2: 200 means revoked. A revocation the store could
			// not take is 503, and the token keeps working until a retry
			// revokes it.
			r := ts.do(t, "POST", "/token", form("grant_type", "password", "username", "alice", "password", userPassword), "Content-Type", formType)
			tok := r.json(t)
			refresh, access := tok["refresh_token"].(string), tok["access_token"].(string)
			// A refresh token's revocation ends its session; an access
			// token's is a deny-list entry.
			ts.faulty.FailNext(storetest.OpUpdateSession, fault)
			r = ts.do(t, "POST", "/revoke", form("token", refresh), "Content-Type", formType)
			wantOAuth(t, r, 503, "temporarily_unavailable")
			if r.header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			ts.faulty.FailNext(storetest.OpRevokeToken, fault)
			r = ts.do(t, "POST", "/revoke", form("token", access, "token_type_hint", "access_token"), "Content-Type", formType)
			wantOAuth(t, r, 503, "temporarily_unavailable")
			if r := ts.do(t, "GET", "/users/me", "", bearer(access)...); r.status != 200 {
				t.Fatalf("the access token after its failed revocation: %d, want it still valid", r.status)
			}
			if r := ts.do(t, "POST", "/token", form("grant_type", "refresh_token", "refresh_token", refresh), "Content-Type", formType); r.status != 200 {
				t.Fatalf("the refresh token after the failed revocation: %d %s, want it still valid", r.status, r.body)
			} else {
				refresh = r.json(t)["refresh_token"].(string)
			}
			if r := ts.do(t, "POST", "/revoke", form("token", refresh), "Content-Type", formType); r.status != 200 {
				t.Fatalf("retry of the revocation: %d %s", r.status, r.body)
			}
			r = ts.do(t, "POST", "/token", form("grant_type", "refresh_token", "refresh_token", refresh), "Content-Type", formType)
			wantOAuth(t, r, 400, "invalid_grant")
			if r := ts.do(t, "GET", "/users/me", "", bearer(access)...); r.status != 401 {
				t.Errorf("the revoked session's access token: %d, want 401", r.status)
			}
		})
		t.Run("create_user_"+fault.Error(), func(t *testing.T) {
			ts.faulty.FailNext(storetest.OpCreateUser, fault)
			body := `{"username":"bob","password":"bob long password","scopes":["me"]}`
			r := ts.do(t, "POST", "/users", body, jsonHeader(admin)...)
			wantProblem(t, r, 503)
			if r.header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			if r := ts.do(t, "POST", "/users", body, jsonHeader(admin)...); r.status != 201 {
				t.Fatalf("retry of the create: %d %s", r.status, r.body)
			}
			if r := ts.do(t, "DELETE", "/users/bob", "", bearer(admin)...); r.status != 204 {
				t.Fatalf("cleanup: %d %s", r.status, r.body)
			}
		})
	}

	t.Run("bearer_requests_need_no_store", func(t *testing.T) {
		alice := ts.token(t, "alice", userPassword, "")
		if r := ts.do(t, "GET", "/users/me", "", bearer(alice)...); r.status != 200 {
			t.Fatalf("warm-up: %d", r.status)
		}
		ts.faulty.FailAll(storage.ErrUnavailable)
		defer ts.faulty.Heal()
		if r := ts.do(t, "GET", "/users/me", "", bearer(alice)...); r.status != 200 {
			t.Errorf("GET /users/me with the store down: %d %s, want 200 from memory", r.status, r.body)
		}
		r := ts.do(t, "GET", "/users", "", bearer(admin)...)
		wantProblem(t, r, 503)
	})
}
