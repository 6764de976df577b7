package client_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/gatehouse/gatehouse/client"
)

// userAgent is an http.RoundTripper sending every request, token requests
// included, with its User-Agent, so that each login is recognisable in
// the session inventory.
type userAgent string

func (ua userAgent) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("User-Agent", string(ua))
	return http.DefaultTransport.RoundTrip(r)
}

// loginAs logs username in (password "password-" + username) with the
// User-Agent ua.
func loginAs(t *testing.T, username, ua string, opts ...client.LoginOption) *client.Session {
	t.Helper()
	opts = append([]client.LoginOption{client.WithBaseHTTPClient(&http.Client{Transport: userAgent(ua)})}, opts...)
	s, err := client.Login(context.Background(), serverURL, username, "password-"+username, opts...)
	if err != nil {
		t.Fatalf("log in as %s (%s): %v", username, ua, err)
	}
	return s
}

// sid is the session id the access token of s carries (its `sid` claim).
func sid(t *testing.T, s *client.Session) string {
	t.Helper()
	tok, err := s.TokenSource.Token()
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok.AccessToken, ".")
	if len(parts) != 3 {
		t.Fatalf("access token %.16s… is not a JWS compact serialization", tok.AccessToken)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("access token payload: %v", err)
	}
	var claims struct {
		SID string `json:"sid"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || claims.SID == "" {
		t.Fatalf("access token claims %s: want a sid (%v)", payload, err)
	}
	return claims.SID
}

func listMine(t *testing.T, s *client.Session) []client.UserSession {
	t.Helper()
	resp, err := s.Client.ListMySessionsWithResponse(context.Background())
	if err != nil {
		t.Fatalf("GET /users/me/sessions: %v", err)
	}
	if resp.StatusCode() != http.StatusOK || resp.JSON200 == nil {
		t.Fatalf("GET /users/me/sessions: got %d %s, want 200", resp.StatusCode(), resp.Body)
	}
	return resp.JSON200.Sessions
}

// byID indexes a session list, failing on a repeated id.
func byID(t *testing.T, list []client.UserSession) map[string]client.UserSession {
	t.Helper()
	out := make(map[string]client.UserSession, len(list))
	for _, s := range list {
		if _, dup := out[s.Id]; dup {
			t.Fatalf("session %s listed twice in %+v", s.Id, list)
		}
		out[s.Id] = s
	}
	return out
}

// wantRefused checks that the access token of s is refused as RFC 6750
// §3.1 invalid_token, without refreshing it.
func wantRefused(t *testing.T, s *client.Session) {
	t.Helper()
	resp := getMe(t, s)
	if resp.StatusCode() != http.StatusUnauthorized {
		t.Fatalf("GET /users/me: got %d %s, want 401", resp.StatusCode(), resp.Body)
	}
	if got := resp.HTTPResponse.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer ") || !strings.Contains(got, `error="invalid_token"`) {
		t.Errorf("WWW-Authenticate: got %q, want a Bearer challenge with error=\"invalid_token\"", got)
	}
}

// wantRefreshRefused checks that the refresh token of s is invalid_grant
// (RFC 6749 §5.2): a session resumed from an expired copy of its token
// must refresh before its first request.
func wantRefreshRefused(t *testing.T, s *client.Session) {
	t.Helper()
	tok, err := s.TokenSource.Token()
	if err != nil {
		t.Fatal(err)
	}
	expired := *tok
	expired.Expiry = time.Now().Add(-time.Minute)
	resumed, err := client.Resume(context.Background(), serverURL, &expired)
	if err != nil {
		t.Fatal(err)
	}
	_, err = resumed.Client.GetCurrentUserWithResponse(context.Background())
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Errorf("refresh of an ended session: got %v, want invalid_grant", err)
	}
}

// wantProblem404 checks a 404 application/problem+json (RFC 9457) response.
func wantProblem404(t *testing.T, what string, status int, header http.Header, problem *client.Problem, body []byte) {
	t.Helper()
	if status != http.StatusNotFound || problem == nil {
		t.Fatalf("%s: got %d %s, want a 404 problem", what, status, body)
	}
	if got := header.Get("Content-Type"); got != "application/problem+json" {
		t.Errorf("%s: got Content-Type %q, want application/problem+json", what, got)
	}
	if problem.Status == nil || *problem.Status != http.StatusNotFound {
		t.Errorf("%s: got problem %s, want status 404", what, body)
	}
}

func TestMySessions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	name := newUser(t, "me")
	laptop := loginAs(t, name, "gatehouse-test laptop")
	phone := loginAs(t, name, "gatehouse-test phone")
	laptopID, phoneID := sid(t, laptop), sid(t, phone)
	if laptopID == phoneID {
		t.Fatalf("two logins share the session id %s", laptopID)
	}

	t.Run("each_login_is_a_session_and_current_marks_the_callers", func(t *testing.T) {
		list := listMine(t, laptop)
		if len(list) != 2 {
			t.Fatalf("got %d sessions %+v, want the two logins", len(list), list)
		}
		got := byID(t, list)
		for id, ua := range map[string]string{laptopID: "gatehouse-test laptop", phoneID: "gatehouse-test phone"} {
			s, ok := got[id]
			if !ok {
				t.Fatalf("session %s missing from %+v", id, list)
			}
			if s.UserAgent == nil || *s.UserAgent != ua {
				t.Errorf("session %s: got user_agent %v, want %q", id, s.UserAgent, ua)
			}
			if s.ClientId != "public" || s.CreatedAt.IsZero() || s.LastUsedAt.Before(s.CreatedAt) {
				t.Errorf("session %s: got %+v, want client public, created_at <= last_used_at", id, s)
			}
		}
		if !got[laptopID].Current || got[phoneID].Current {
			t.Errorf("got current laptop=%v phone=%v, want only the laptop's", got[laptopID].Current, got[phoneID].Current)
		}
		// The same inventory seen from the phone marks the phone.
		if got := byID(t, listMine(t, phone)); !got[phoneID].Current || got[laptopID].Current {
			t.Errorf("listed by the phone: got current laptop=%v phone=%v, want only the phone's", got[laptopID].Current, got[phoneID].Current)
		}
	})

	t.Run("keep_current_logs_out_every_other_session", func(t *testing.T) {
		keep := true
		resp, err := laptop.Client.RevokeMySessionsWithResponse(ctx, &client.RevokeMySessionsParams{KeepCurrent: &keep})
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode() != http.StatusOK || resp.JSON200 == nil || resp.JSON200.Revoked != 1 {
			t.Fatalf("DELETE /users/me/sessions?keep_current=true: got %d %s, want 200 {\"revoked\":1}", resp.StatusCode(), resp.Body)
		}
		wantRefused(t, phone)
		wantRefreshRefused(t, phone)
		wantMe(t, laptop, name)
		if list := listMine(t, laptop); len(list) != 1 || list[0].Id != laptopID || !list[0].Current {
			t.Errorf("after keep_current: got %+v, want the laptop's session alone, current", list)
		}
	})

	t.Run("without_keep_current_logs_out_everywhere", func(t *testing.T) {
		resp, err := laptop.Client.RevokeMySessionsWithResponse(ctx, &client.RevokeMySessionsParams{})
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode() != http.StatusOK || resp.JSON200 == nil || resp.JSON200.Revoked != 1 {
			t.Fatalf("DELETE /users/me/sessions: got %d %s, want 200 {\"revoked\":1}", resp.StatusCode(), resp.Body)
		}
		wantRefused(t, laptop)
		wantRefreshRefused(t, laptop)
	})
}

func TestMySessionEndsOne(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	name := newUser(t, "me")
	laptop := loginAs(t, name, "gatehouse-test laptop")
	phone := loginAs(t, name, "gatehouse-test phone")
	phoneID := sid(t, phone)

	resp, err := laptop.Client.RevokeMySessionWithResponse(ctx, phoneID)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != http.StatusNoContent {
		t.Fatalf("DELETE /users/me/sessions/%s: got %d %s, want 204", phoneID, resp.StatusCode(), resp.Body)
	}
	wantRefused(t, phone)
	wantRefreshRefused(t, phone)
	wantMe(t, laptop, name)

	// Ended, the session is no longer there to end.
	again, err := laptop.Client.RevokeMySessionWithResponse(ctx, phoneID)
	if err != nil {
		t.Fatal(err)
	}
	wantProblem404(t, "ending it again", again.StatusCode(), again.HTTPResponse.Header, again.ApplicationproblemJSON404, again.Body)
}

func TestUserSessionsByAccountManager(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin, err := client.Login(ctx, serverURL, "admin", adminPassword)
	if err != nil {
		t.Fatal(err)
	}
	name := newUser(t, "me")
	laptop := loginAs(t, name, "gatehouse-test laptop")
	phone := loginAs(t, name, "gatehouse-test phone")
	laptopID, phoneID := sid(t, laptop), sid(t, phone)

	list, err := admin.Client.ListUserSessionsWithResponse(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if list.StatusCode() != http.StatusOK || list.JSON200 == nil {
		t.Fatalf("GET /users/%s/sessions: got %d %s, want 200", name, list.StatusCode(), list.Body)
	}
	got := byID(t, list.JSON200.Sessions)
	if len(got) != 2 || got[laptopID].Id == "" || got[phoneID].Id == "" {
		t.Fatalf("GET /users/%s/sessions: got %+v, want the laptop's and the phone's", name, list.JSON200.Sessions)
	}
	for id, s := range got {
		if s.Current {
			t.Errorf("session %s is current, want none: the admin's token belongs to none of them", id)
		}
	}

	end, err := admin.Client.RevokeUserSessionWithResponse(ctx, name, phoneID)
	if err != nil {
		t.Fatal(err)
	}
	if end.StatusCode() != http.StatusNoContent {
		t.Fatalf("DELETE /users/%s/sessions/%s: got %d %s, want 204", name, phoneID, end.StatusCode(), end.Body)
	}
	wantRefused(t, phone)
	wantRefreshRefused(t, phone)
	wantMe(t, laptop, name)

	after, err := admin.Client.ListUserSessionsWithResponse(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if after.JSON200 == nil || len(after.JSON200.Sessions) != 1 || after.JSON200.Sessions[0].Id != laptopID {
		t.Errorf("after ending the phone's: got %d %s, want the laptop's session alone", after.StatusCode(), after.Body)
	}

	for _, id := range []string{"no-such-session", phoneID} {
		unknown, err := admin.Client.RevokeUserSessionWithResponse(ctx, name, id)
		if err != nil {
			t.Fatal(err)
		}
		wantProblem404(t, "DELETE /users/"+name+"/sessions/"+id, unknown.StatusCode(), unknown.HTTPResponse.Header, unknown.ApplicationproblemJSON404, unknown.Body)
	}
	// Another user's session id names no session of this user.
	otherName := newUser(t, "me")
	other := loginAs(t, otherName, "gatehouse-test other")
	cross, err := admin.Client.RevokeUserSessionWithResponse(ctx, name, sid(t, other))
	if err != nil {
		t.Fatal(err)
	}
	wantProblem404(t, "another user's session id", cross.StatusCode(), cross.HTTPResponse.Header, cross.ApplicationproblemJSON404, cross.Body)
	wantMe(t, other, otherName)
}
