package httpapi_test

import (
	"slices"
	"testing"
)

// The statement budget, counted by the store instrumentation (counts,
// never time): a password login is at most two store calls (the throttle
// reservation, which reads the account; then the session with the
// throttle's settlement), a refresh one, and a bearer-authenticated
// request none once the user view holds its user.
func TestStatementBudget(t *testing.T) {
	ts := newTestServer(t)
	login := func() map[string]any {
		t.Helper()
		r := ts.do(t, "POST", "/token", form("grant_type", "password", "username", "alice", "password", userPassword), "Content-Type", formType)
		if r.status != 200 {
			t.Fatalf("login: %d %s", r.status, r.body)
		}
		return r.json(t)
	}
	ts.calls.take()

	t.Run("password_login_is_at_most_two_store_calls", func(t *testing.T) {
		login()
		got := ts.calls.take()
		if want := []string{"reserve_login", "create_session"}; !slices.Equal(got, want) {
			t.Errorf("store calls of a login = %v, want %v", got, want)
		}
	})
	t.Run("refresh_is_one_store_call", func(t *testing.T) {
		tok := login()
		ts.calls.take()
		r := ts.do(t, "POST", "/token", form("grant_type", "refresh_token", "refresh_token", tok["refresh_token"].(string)), "Content-Type", formType)
		if r.status != 200 {
			t.Fatalf("refresh: %d %s", r.status, r.body)
		}
		if got, want := ts.calls.take(), []string{"update_session"}; !slices.Equal(got, want) {
			t.Errorf("store calls of a refresh = %v, want %v", got, want)
		}
	})
	t.Run("bearer_requests_read_no_store_in_steady_state", func(t *testing.T) {
		access := login()["access_token"].(string)
		// The first request may load alice into the user view.
		if r := ts.do(t, "GET", "/users/me", "", bearer(access)...); r.status != 200 {
			t.Fatalf("GET /users/me: %d %s", r.status, r.body)
		}
		ts.calls.take()
		for range 10 {
			if r := ts.do(t, "GET", "/users/me", "", bearer(access)...); r.status != 200 {
				t.Fatalf("GET /users/me: %d %s", r.status, r.body)
			}
		}
		if got := ts.calls.take(); len(got) != 0 {
			t.Errorf("store calls of 10 GET /users/me = %v, want none", got)
		}
	})
}
