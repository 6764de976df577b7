package users

import (
	"bytes"
	"errors"
	"image/png"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

// totpService is a Service with a clock the test moves, and optionally a
// key that encrypts TOTP secrets at rest.
func totpService(t *testing.T, store Store, key []byte) (*Service, *atomic.Int64) {
	t.Helper()
	var now atomic.Int64
	now.Store(testNow.Unix())
	s, err := NewService(store, Options{Hasher: testHasher, Scopes: testScopes, EncryptionKey: key,
		Now: func() time.Time { return time.Unix(now.Load(), 0).UTC() }})
	if err != nil {
		t.Fatal(err)
	}
	return s, &now
}

func codeAt(t *testing.T, secret string, unix int64) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, time.Unix(unix, 0))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// enrol starts and confirms a factor for alice and returns its secret
// and recovery codes.
func enrol(t *testing.T, s *Service, u *User, now *atomic.Int64) (string, []string) {
	t.Helper()
	e, err := s.StartTOTP(t.Context(), u.ID)
	if err != nil {
		t.Fatalf("StartTOTP = %v", err)
	}
	codes, err := s.ConfirmTOTP(t.Context(), u.ID, codeAt(t, e.Secret, now.Load()))
	if err != nil {
		t.Fatalf("ConfirmTOTP = %v", err)
	}
	return e.Secret, codes
}

func TestStartTOTP_gives_a_key_for_authenticator_apps_not_enforced_until_confirmed(t *testing.T) {
	store := openTestStore(t)
	s, now := totpService(t, store, nil)
	alice := mustCreateUser(t, s, NewUser{Username: "alice", Password: "alice password", Scopes: []string{"me"}})
	e, err := s.StartTOTP(t.Context(), alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(e.URI)
	if err != nil || u.Scheme != "otpauth" || u.Host != "totp" || u.Query().Get("secret") != e.Secret || u.Query().Get("issuer") != "gatehouse" ||
		!strings.Contains(u.Path, "alice") {
		t.Errorf("URI = %q, want otpauth://totp/gatehouse:alice?secret=…&issuer=gatehouse", e.URI)
	}
	if _, err := png.Decode(bytes.NewReader(e.QRCode)); err != nil {
		t.Errorf("QR code is not a PNG: %v", err)
	}
	stored, _ := store.UserByID(t.Context(), alice.ID)
	if stored.TOTP.Enforced() {
		t.Error("a started enrolment is enforced before it was confirmed")
	}
	if _, err := s.ConfirmTOTP(t.Context(), alice.ID, "000000"); !errors.Is(err, ErrInvalidCode) || !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("ConfirmTOTP with a wrong code = %v, want ErrInvalidCode (an ErrInvalidCredentials)", err)
	}
	codes, err := s.ConfirmTOTP(t.Context(), alice.ID, codeAt(t, e.Secret, now.Load()))
	if err != nil || len(codes) != RecoveryCodes {
		t.Fatalf("ConfirmTOTP = %v, %v; want %d recovery codes", codes, err, RecoveryCodes)
	}
	stored, _ = store.UserByID(t.Context(), alice.ID)
	if !stored.TOTP.Enforced() || len(stored.TOTP.RecoveryCodes) != RecoveryCodes || strings.Contains(strings.Join(stored.TOTP.RecoveryCodes, " "), codes[0]) {
		t.Errorf("after confirming: %+v, want enforced with the recovery codes stored hashed", stored.TOTP)
	}
	if _, err := s.StartTOTP(t.Context(), alice.ID); !errors.Is(err, ErrFactorEnrolled) {
		t.Errorf("StartTOTP over a confirmed factor = %v, want ErrFactorEnrolled", err)
	}
}

func TestCheckCode_rfc6238_5_2_once_per_step_one_step_of_skew(t *testing.T) {
	store := openTestStore(t)
	s, now := totpService(t, store, nil)
	alice := mustCreateUser(t, s, NewUser{Username: "alice", Password: "alice password", Scopes: []string{"me"}})
	secret, _ := enrol(t, s, alice, now)
	check := func(code string) error {
		u, err := store.UserByID(t.Context(), alice.ID)
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.CheckCode(t.Context(), u, code)
		return err
	}
	// The enrolment used the current step's code: it is not accepted again.
	if err := check(codeAt(t, secret, now.Load())); !errors.Is(err, ErrInvalidCode) {
		t.Errorf("the confirming code again = %v, want ErrInvalidCode", err)
	}
	now.Add(60) // two steps later
	if err := check(codeAt(t, secret, now.Load()-30)); err != nil {
		t.Errorf("the previous step's code (one step of skew) = %v, want accepted", err)
	}
	if err := check(codeAt(t, secret, now.Load()-30)); !errors.Is(err, ErrInvalidCode) {
		t.Errorf("the same code replayed = %v, want ErrInvalidCode", err)
	}
	if err := check(codeAt(t, secret, now.Load()+30)); err != nil {
		t.Errorf("the next step's code = %v, want accepted", err)
	}
	if err := check(codeAt(t, secret, now.Load())); !errors.Is(err, ErrInvalidCode) {
		t.Errorf("a code of a step before the last accepted = %v, want ErrInvalidCode", err)
	}
	now.Add(300)
	if err := check(codeAt(t, secret, now.Load()-90)); !errors.Is(err, ErrInvalidCode) {
		t.Errorf("a code three steps old = %v, want ErrInvalidCode", err)
	}
	for _, bad := range []string{"", "12345", "1234567", "abcdef"} {
		if err := check(bad); !errors.Is(err, ErrInvalidCode) {
			t.Errorf("CheckCode(%q) = %v, want ErrInvalidCode", bad, err)
		}
	}
}

func TestCheckCode_a_recovery_code_works_once(t *testing.T) {
	store := openTestStore(t)
	s, now := totpService(t, store, nil)
	alice := mustCreateUser(t, s, NewUser{Username: "alice", Password: "alice password", Scopes: []string{"me"}})
	_, codes := enrol(t, s, alice, now)
	u, _ := store.UserByID(t.Context(), alice.ID)
	if _, err := s.CheckCode(t.Context(), u, strings.ToLower(codes[3])); err != nil {
		t.Fatalf("a recovery code (lower case) = %v", err)
	}
	u, _ = store.UserByID(t.Context(), alice.ID)
	if _, err := s.CheckCode(t.Context(), u, codes[3]); !errors.Is(err, ErrInvalidCode) {
		t.Errorf("the recovery code again = %v, want ErrInvalidCode", err)
	}
	if len(u.TOTP.RecoveryCodes) != RecoveryCodes-1 {
		t.Errorf("%d recovery codes left, want %d", len(u.TOTP.RecoveryCodes), RecoveryCodes-1)
	}
}

func TestTOTPSecret_is_encrypted_at_rest_with_the_key(t *testing.T) {
	store := openTestStore(t)
	key := bytes.Repeat([]byte{7}, 32)
	s, now := totpService(t, store, key)
	alice := mustCreateUser(t, s, NewUser{Username: "alice", Password: "alice password", Scopes: []string{"me"}})
	secret, _ := enrol(t, s, alice, now)
	u, _ := store.UserByID(t.Context(), alice.ID)
	if strings.Contains(u.TOTP.Secret, secret) || !strings.HasPrefix(u.TOTP.Secret, totpSealed) {
		t.Errorf("stored secret %q holds the secret in the clear", u.TOTP.Secret)
	}
	now.Add(30)
	if _, err := s.CheckCode(t.Context(), u, codeAt(t, secret, now.Load())); err != nil {
		t.Errorf("a code with the key = %v", err)
	}
	other, _ := totpService(t, store, bytes.Repeat([]byte{8}, 32))
	none, _ := totpService(t, store, nil)
	now.Add(30)
	u, _ = store.UserByID(t.Context(), alice.ID)
	for name, svc := range map[string]*Service{"another key": other, "no key": none} {
		svc.now = s.now
		if _, err := svc.CheckCode(t.Context(), u, codeAt(t, secret, now.Load())); !errors.Is(err, ErrFactorSealed) {
			t.Errorf("%s: %v, want ErrFactorSealed", name, err)
		}
	}

	// A secret stored in plain before the key was set is sealed at its
	// next use.
	bob := mustCreateUser(t, none, NewUser{Username: "bob", Password: "bob password", Scopes: []string{"me"}})
	none.now = s.now
	bobSecret, _ := enrol(t, none, bob, now)
	b, _ := store.UserByID(t.Context(), bob.ID)
	if !strings.HasPrefix(b.TOTP.Secret, totpPlain) {
		t.Fatalf("without a key the secret is stored %q, want plain", b.TOTP.Secret)
	}
	now.Add(30)
	if _, err := s.CheckCode(t.Context(), b, codeAt(t, bobSecret, now.Load())); err != nil {
		t.Fatal(err)
	}
	if b, _ = store.UserByID(t.Context(), bob.ID); !strings.HasPrefix(b.TOTP.Secret, totpSealed) {
		t.Errorf("after a use with the key set, the secret is stored %q, want sealed", b.TOTP.Secret)
	}
}

func TestDisableAndResetTOTP(t *testing.T) {
	store := openTestStore(t)
	s, now := totpService(t, store, nil)
	alice := mustCreateUser(t, s, NewUser{Username: "alice", Password: "alice password", Scopes: []string{"me"}})
	secret, _ := enrol(t, s, alice, now)
	now.Add(30)
	if err := s.DisableTOTP(t.Context(), alice.ID, "wrong password", codeAt(t, secret, now.Load())); !errors.Is(err, ErrInvalidCredentials) || errors.Is(err, ErrInvalidCode) {
		t.Errorf("DisableTOTP with a wrong password = %v, want ErrInvalidCredentials", err)
	}
	if err := s.DisableTOTP(t.Context(), alice.ID, "alice password", "000000"); !errors.Is(err, ErrInvalidCode) {
		t.Errorf("DisableTOTP with a wrong code = %v, want ErrInvalidCode", err)
	}
	if err := s.DisableTOTP(t.Context(), alice.ID, "alice password", codeAt(t, secret, now.Load())); err != nil {
		t.Fatalf("DisableTOTP = %v", err)
	}
	if u, _ := store.UserByID(t.Context(), alice.ID); u.TOTP.Secret != "" || u.TOTP.Enforced() {
		t.Errorf("after DisableTOTP: %+v, want no factor", u.TOTP)
	}
	if err := s.DisableTOTP(t.Context(), alice.ID, "alice password", "123456"); !errors.Is(err, ErrNoFactor) {
		t.Errorf("DisableTOTP without a factor = %v, want ErrNoFactor", err)
	}

	enrol(t, s, alice, now)
	before, _ := store.UserByID(t.Context(), alice.ID)
	// The privilege model of Update: an actor may act only on users whose
	// scopes are all in its authority; alice holds me, this caller not.
	other := mustCreateUser(t, s, NewUser{Username: "other", Password: "other password", Scopes: []string{"users:write"}})
	var fe *ForbiddenError
	if _, err := s.ResetTOTP(t.Context(), TokenActor(other.ID, "users:write"), "alice"); !errors.As(err, &fe) {
		t.Errorf("ResetTOTP by a caller without alice's scopes = %v, want *ForbiddenError", err)
	}
	u, err := s.ResetTOTP(t.Context(), CLIActor(), "alice")
	if err != nil {
		t.Fatalf("ResetTOTP = %v", err)
	}
	if u.TOTP.Secret != "" || u.TokenEpoch != before.TokenEpoch+1 {
		t.Errorf("after ResetTOTP: factor %+v, epoch %d; want none, epoch raised from %d (sessions end)", u.TOTP, u.TokenEpoch, before.TokenEpoch)
	}
	if _, err := s.ResetTOTP(t.Context(), CLIActor(), "alice"); !errors.Is(err, ErrNoFactor) {
		t.Errorf("ResetTOTP again = %v, want ErrNoFactor", err)
	}
}

// TestCheckCode_two_logins_with_one_code_one_wins: the second use of a code
// is refused even when both checked it against the same read of the user;
// a hook between the check and the store write makes the interleaving
// certain.
func TestCheckCode_two_logins_with_one_code_one_wins(t *testing.T) {
	store := openTestStore(t)
	s, now := totpService(t, store, nil)
	alice := mustCreateUser(t, s, NewUser{Username: "alice", Password: "alice password", Scopes: []string{"me"}})
	secret, _ := enrol(t, s, alice, now)
	now.Add(30)
	code := codeAt(t, secret, now.Load())
	u, _ := store.UserByID(t.Context(), alice.ID)
	var inner error
	s.testHookBeforeUse = func() {
		s.testHookBeforeUse = nil
		_, inner = s.CheckCode(t.Context(), u, code) // the other login, with the same read
	}
	_, outer := s.CheckCode(t.Context(), u, code)
	if inner != nil || !errors.Is(outer, ErrInvalidCode) {
		t.Errorf("two uses of one code: first %v, second %v; want the first accepted and the second ErrInvalidCode", inner, outer)
	}
}
