package httpapi_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

// totpCode is the code of secret for the step of t.
func totpCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// enrolTOTP enrols alice's factor through the API and returns its secret
// and recovery codes.
func enrolTOTP(t *testing.T, ts *testServer, access string) (secret string, recovery []string) {
	t.Helper()
	r := ts.do(t, "POST", "/users/me/mfa/totp", "", bearer(access)...)
	if r.status != 201 || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("start enrolment: %d %s (Cache-Control %q)", r.status, r.body, r.header.Get("Cache-Control"))
	}
	var e struct {
		Secret string `json:"secret"`
		URI    string `json:"otpauth_uri"`
		QR     string `json:"qr_code"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatal(err)
	}
	png, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(e.QR, "data:image/png;base64,"))
	if !strings.HasPrefix(e.URI, "otpauth://totp/") || !strings.Contains(e.URI, "secret="+e.Secret) || err != nil || !strings.HasPrefix(string(png), "\x89PNG") {
		t.Fatalf("enrolment = %s, want an otpauth URI with the secret and a PNG data URI", r.body)
	}
	r = ts.do(t, "POST", "/users/me/mfa/totp/confirm", `{"code":"`+totpCode(t, e.Secret, time.Now())+`"}`, jsonHeader(access)...)
	if r.status != 200 {
		t.Fatalf("confirm: %d %s", r.status, r.body)
	}
	var rc struct {
		Codes []string `json:"recovery_codes"`
	}
	if err := json.Unmarshal(r.body, &rc); err != nil || len(rc.Codes) != 10 {
		t.Fatalf("confirm = %s, want ten recovery codes", r.body)
	}
	return e.Secret, rc.Codes
}

// TestTOTPLogin: a user enrols TOTP through the API, then logs in with the
// code in one request and in two steps; replays fail as RFC 6238 §5.2 and
// the single-use MFA token require.
func TestTOTPLogin(t *testing.T) {
	ts := newTestServer(t)
	access := ts.token(t, "alice", userPassword, "")
	login := func(kv ...string) response {
		return ts.do(t, "POST", "/token", form(append([]string{"grant_type", "password", "username", "alice", "password", userPassword}, kv...)...), "Content-Type", formType)
	}

	// Started, not confirmed: not enforced.
	r := ts.do(t, "POST", "/users/me/mfa/totp", "", bearer(access)...)
	if r.status != 201 {
		t.Fatalf("start: %d %s", r.status, r.body)
	}
	if r.json(t)["secret"] == "" {
		t.Fatalf("start = %s, want a secret", r.body)
	}
	if me := ts.do(t, "GET", "/users/me", "", bearer(access)...).json(t); me["totp"] != "pending" {
		t.Errorf("GET /users/me totp = %v, want pending", me["totp"])
	}
	if r := login(); r.status != 200 {
		t.Fatalf("login with a pending enrolment: %d %s, want 200 (not enforced yet)", r.status, r.body)
	}
	wantProblem(t, ts.do(t, "POST", "/users/me/mfa/totp/confirm", `{"code":"000000"}`, jsonHeader(access)...), 403)

	secret, recovery := enrolTOTP(t, ts, access)
	if me := ts.do(t, "GET", "/users/me", "", bearer(access)...).json(t); me["totp"] != "enabled" {
		t.Errorf("GET /users/me totp = %v, want enabled", me["totp"])
	}
	wantProblem(t, ts.do(t, "POST", "/users/me/mfa/totp", "", bearer(access)...), 409)

	t.Run("one_request_with_otp", func(t *testing.T) {
		code := totpCode(t, secret, time.Now().Add(30*time.Second)) // the next step: the current one was used to confirm
		r := login("otp", code)
		if r.status != 200 || r.json(t)["refresh_token"] == nil {
			t.Fatalf("login with the code: %d %s", r.status, r.body)
		}
		// RFC 6238 §5.2: the same code is refused the second time.
		replay := login("otp", code)
		wantOAuth(t, replay, 400, "invalid_grant")
		wrongPassword := ts.do(t, "POST", "/token", form("grant_type", "password", "username", "alice", "password", "not it", "otp", "123456"), "Content-Type", formType)
		wantOAuth(t, wrongPassword, 400, "invalid_grant")
		if a, b := replay.json(t)["error_description"], wrongPassword.json(t)["error_description"]; a != b {
			t.Errorf("a wrong code reads %q, a wrong password %q: they must not tell the factors apart", a, b)
		}
	})

	t.Run("two_steps_with_mfa_token", func(t *testing.T) {
		r := login()
		if r.status != 403 || r.header.Get("Cache-Control") != "no-store" {
			t.Fatalf("password alone: %d %s, want 403 mfa_required, no-store", r.status, r.body)
		}
		body := r.json(t)
		mfa, _ := body["mfa_token"].(string)
		if body["error"] != "mfa_required" || mfa == "" || body["access_token"] != nil {
			t.Fatalf("password alone = %s, want mfa_required with an mfa_token and no token", r.body)
		}
		step := func(token, otp string) response {
			return ts.do(t, "POST", "/token", form("grant_type", "http://auth0.com/oauth/grant-type/mfa-otp", "mfa_token", token, "otp", otp), "Content-Type", formType)
		}
		// A recovery code stands in for a code, once.
		ok := step(mfa, recovery[0])
		if ok.status != 200 || ok.json(t)["refresh_token"] == nil {
			t.Fatalf("second step: %d %s", ok.status, ok.body)
		}
		claims := tokenClaims(t, ok.json(t)["access_token"].(string))
		if claims["preferred_username"] != "alice" {
			t.Errorf("second step's token = %v, want alice's", claims)
		}
		// The MFA token works once.
		wantOAuth(t, step(mfa, recovery[1]), 400, "invalid_grant")
		// The recovery code works once.
		again := login().json(t)["mfa_token"].(string)
		wantOAuth(t, step(again, recovery[0]), 400, "invalid_grant")
		// The MFA token is typed: refused as a refresh token and as a
		// bearer, and no other artefact passes for it.
		third := login().json(t)["mfa_token"].(string)
		wantOAuth(t, ts.do(t, "POST", "/token", form("grant_type", "refresh_token", "refresh_token", third), "Content-Type", formType), 400, "invalid_grant")
		wantChallenge(t, ts.do(t, "GET", "/users/me", "", bearer(third)...), 401, `Bearer realm="gatehouse", error="invalid_token"`)
		refresh := ok.json(t)["refresh_token"].(string)
		wantOAuth(t, step(refresh, recovery[2]), 400, "invalid_grant")
		wantOAuth(t, step(ok.json(t)["access_token"].(string), recovery[2]), 400, "invalid_grant")
		// Bound to its client: another client cannot exchange it.
		other := ts.do(t, "POST", "/token", form("grant_type", "http://auth0.com/oauth/grant-type/mfa-otp", "mfa_token", third, "otp", recovery[2], "client_id", "another-app"), "Content-Type", formType)
		wantOAuth(t, other, 400, "invalid_grant")
		for _, missing := range [][]string{{"grant_type", "http://auth0.com/oauth/grant-type/mfa-otp", "otp", "123456"}, {"grant_type", "http://auth0.com/oauth/grant-type/mfa-otp", "mfa_token", third}} {
			wantOAuth(t, ts.do(t, "POST", "/token", form(missing...), "Content-Type", formType), 400, "invalid_request")
		}
	})

	t.Run("users_without_a_factor_log_in_as_before", func(t *testing.T) {
		r := ts.do(t, "POST", "/token", form("grant_type", "password", "username", "admin", "password", adminPassword, "otp", "123456"), "Content-Type", formType)
		if r.status != 200 {
			t.Errorf("admin (no factor) with an otp: %d %s, want 200", r.status, r.body)
		}
	})
}

// TestTOTPBruteForce: wrong codes count in the login throttle, on the
// one-request form and on the MFA-token step alike.
func TestTOTPBruteForce(t *testing.T) {
	ts := newTestServer(t)
	access := ts.token(t, "alice", userPassword, "")
	secret, _ := enrolTOTP(t, ts, access)
	var got429 bool
	for i := 0; i < 12 && !got429; i++ {
		var r response
		if i%2 == 0 {
			r = ts.do(t, "POST", "/token", form("grant_type", "password", "username", "alice", "password", userPassword, "otp", "000000"), "Content-Type", formType)
		} else {
			first := ts.do(t, "POST", "/token", form("grant_type", "password", "username", "alice", "password", userPassword), "Content-Type", formType)
			if first.status == 429 {
				got429 = true
				break
			}
			mfa := first.json(t)["mfa_token"].(string)
			r = ts.do(t, "POST", "/token", form("grant_type", "http://auth0.com/oauth/grant-type/mfa-otp", "mfa_token", mfa, "otp", "000000"), "Content-Type", formType)
		}
		switch r.status {
		case 429:
			got429 = true
			if r.header.Get("Retry-After") == "" {
				t.Errorf("429 without Retry-After")
			}
		case 400:
		default:
			t.Fatalf("wrong code %d: %d %s", i, r.status, r.body)
		}
	}
	if !got429 {
		t.Fatal("12 wrong codes were never throttled")
	}
	// While throttled, even the right code is refused: guessing cannot
	// outrun the limit.
	r := ts.do(t, "POST", "/token", form("grant_type", "password", "username", "alice", "password", userPassword, "otp", totpCode(t, secret, time.Now().Add(30*time.Second))), "Content-Type", formType)
	if r.status != 429 {
		t.Errorf("the right code while throttled: %d %s, want 429", r.status, r.body)
	}
}

// TestTOTPDisableAndReset: the user removes the factor with the password
// and a code; an administrator resets it for a lost device, which ends the
// user's sessions.
func TestTOTPDisableAndReset(t *testing.T) {
	ts := newTestServer(t)
	access := ts.token(t, "alice", userPassword, "")
	secret, recovery := enrolTOTP(t, ts, access)
	wantProblem(t, ts.do(t, "POST", "/users/me/mfa/totp/disable", `{"password":"not it","code":"`+totpCode(t, secret, time.Now().Add(30*time.Second))+`"}`, jsonHeader(access)...), 403)
	wantProblem(t, ts.do(t, "POST", "/users/me/mfa/totp/disable", `{"password":"`+userPassword+`","code":"000000"}`, jsonHeader(access)...), 403)
	if r := ts.do(t, "POST", "/users/me/mfa/totp/disable", `{"password":"`+userPassword+`","code":"`+recovery[0]+`"}`, jsonHeader(access)...); r.status != 204 {
		t.Fatalf("disable: %d %s", r.status, r.body)
	}
	if r := ts.do(t, "POST", "/token", form("grant_type", "password", "username", "alice", "password", userPassword), "Content-Type", formType); r.status != 200 {
		t.Fatalf("login after disabling: %d %s", r.status, r.body)
	}

	enrolTOTP(t, ts, access)
	admin := ts.token(t, "admin", adminPassword, "")
	if r := ts.do(t, "DELETE", "/users/alice/mfa", "", bearer(admin)...); r.status != 204 {
		t.Fatalf("reset: %d %s", r.status, r.body)
	}
	wantChallenge(t, ts.do(t, "GET", "/users/me", "", bearer(access)...), 401, `Bearer realm="gatehouse", error="invalid_token"`)
	if r := ts.do(t, "POST", "/token", form("grant_type", "password", "username", "alice", "password", userPassword), "Content-Type", formType); r.status != 200 {
		t.Errorf("login after the reset: %d %s, want 200 with the password alone", r.status, r.body)
	}
	wantProblem(t, ts.do(t, "DELETE", "/users/alice/mfa", "", bearer(admin)...), 409)
	wantProblem(t, ts.do(t, "DELETE", "/users/nobody/mfa", "", bearer(admin)...), 404)
}
