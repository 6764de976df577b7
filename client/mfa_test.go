package client_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	"golang.org/x/oauth2"

	"github.com/gatehouse/gatehouse/client"
)

// TestLoginWithSecondFactor: a user enrols TOTP through the generated
// client, then logs in with the code in one request (WithOTP) and in two
// steps (WithOTPPrompt), against a real server.
func TestLoginWithSecondFactor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	name := newUser(t, "me")
	password := "password-" + name
	s, err := client.Login(ctx, serverURL, name, password)
	if err != nil {
		t.Fatal(err)
	}
	started, err := s.Client.StartTotpEnrolmentWithResponse(ctx)
	if err != nil || started.JSON201 == nil {
		t.Fatalf("start enrolment: %v %s", err, started.Body)
	}
	secret := started.JSON201.Secret
	code := func(at time.Time) string {
		c, err := totp.GenerateCode(secret, at)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	confirmed, err := s.Client.ConfirmTotpEnrolmentWithResponse(ctx, client.TOTPCode{Code: code(time.Now())})
	if err != nil || confirmed.JSON200 == nil || len(confirmed.JSON200.RecoveryCodes) != 10 {
		t.Fatalf("confirm: %v %s", err, confirmed.Body)
	}
	recovery := confirmed.JSON200.RecoveryCodes

	// The password alone: mfa_required, as an *oauth2.RetrieveError.
	_, err = client.Login(ctx, serverURL, name, password)
	if re, ok := errors.AsType[*oauth2.RetrieveError](err); !ok || re.ErrorCode != "mfa_required" || re.Response.StatusCode != http.StatusForbidden {
		t.Fatalf("password alone: %v, want 403 mfa_required", err)
	}

	// One request: the next step's code (the current one confirmed).
	next := code(time.Now().Add(30 * time.Second))
	one, err := client.Login(ctx, serverURL, name, password, client.WithOTP(next))
	if err != nil {
		t.Fatalf("WithOTP: %v", err)
	}
	wantMe(t, one, name)
	if _, err := client.Login(ctx, serverURL, name, password, client.WithOTP(next)); err == nil {
		t.Error("the same code worked twice (RFC 6238 §5.2)")
	}

	// Two steps: the prompt is asked once, when the server asks.
	asked := 0
	two, err := client.Login(ctx, serverURL, name, password, client.WithOTPPrompt(func(context.Context) (string, error) {
		asked++
		return recovery[0], nil
	}))
	if err != nil || asked != 1 {
		t.Fatalf("WithOTPPrompt: %v, asked %d times", err, asked)
	}
	wantMe(t, two, name)
	// The session refreshes as any other.
	tok, err := two.TokenSource.Token()
	if err != nil || tok.RefreshToken == "" {
		t.Fatalf("token of the two-step session: %+v %v", tok, err)
	}
	// A prompt that fails ends the login with its error.
	boom := errors.New("no code typed")
	if _, err := client.Login(ctx, serverURL, name, password, client.WithOTPPrompt(func(context.Context) (string, error) { return "", boom })); !errors.Is(err, boom) {
		t.Errorf("a failing prompt: %v, want its error", err)
	}
}
