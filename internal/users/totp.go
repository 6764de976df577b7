package users

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"image/png"
	"slices"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/gatehouse/gatehouse/internal/envelope"
)

// The TOTP parameters: RFC 6238's defaults (HMAC-SHA-1, 30 s steps, six
// digits), the ones every authenticator app reads from an otpauth URI.
const (
	totpPeriod = 30
	totpDigits = otp.DigitsSix
	// totpSkew is how many steps either side of the server's clock a code
	// may come from (RFC 6238 §5.2: at most one step of clock skew).
	totpSkew = 1
	// totpSecretBytes is the shared secret's length: 160 bits, RFC 4226
	// §4's recommendation for HMAC-SHA-1.
	totpSecretBytes = 20
	// RecoveryCodes is how many single-use recovery codes a confirmed
	// enrolment gives.
	RecoveryCodes = 10
)

// Errors of the second factor.
var (
	// ErrInvalidCode: the code (or recovery code) is wrong, from too far
	// off the clock, or was accepted before (RFC 6238 §5.2). It is an
	// ErrInvalidCredentials, so it counts where a wrong password does.
	ErrInvalidCode error = codeError{}
	// ErrFactorEnrolled: a confirmed factor exists; disable or reset it
	// before enrolling again.
	ErrFactorEnrolled = errors.New("users: a second factor is already enrolled: disable it first")
	// ErrNoPendingFactor: confirming without a started enrolment.
	ErrNoPendingFactor = errors.New("users: no TOTP enrolment is pending: start one first")
	// ErrNoFactor: disabling or resetting a factor the user does not have.
	ErrNoFactor = errors.New("users: the user has no second factor")
	// ErrFactorSealed: the stored secret is encrypted and no (or another)
	// GATEHOUSE_KEY_ENCRYPTION_KEY is configured.
	ErrFactorSealed = errors.New("users: the TOTP secret does not open with GATEHOUSE_KEY_ENCRYPTION_KEY (unset, or not the key it was encrypted with)")
)

// codeError is ErrInvalidCode: its own message, and errors.Is of
// ErrInvalidCredentials.
type codeError struct{}

func (codeError) Error() string        { return "users: the code is wrong, expired or already used" }
func (codeError) Is(target error) bool { return target == ErrInvalidCredentials }

// Enrolment is a started TOTP enrolment: what the user's authenticator
// app needs. The secret is shown here only.
type Enrolment struct {
	// Secret is the shared secret in base32, for manual entry.
	Secret string
	// URI is the otpauth:// URI of the key (the format authenticator apps
	// scan).
	URI string
	// QRCode is a PNG image of the URI as a QR code.
	QRCode []byte
}

// StartTOTP begins enrolling a TOTP factor for the user with that id: a
// new secret replaces any pending one, and is not enforced until
// ConfirmTOTP. Returns ErrFactorEnrolled when a confirmed factor exists,
// or ErrNotFound.
func (s *Service) StartTOTP(ctx context.Context, id string) (*Enrolment, error) {
	u, err := s.store.UserByID(ctx, id)
	if err != nil {
		return nil, err
	}
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer: s.totpIssuer, AccountName: u.Username,
		Period: totpPeriod, Digits: totpDigits, Algorithm: otp.AlgorithmSHA1, SecretSize: totpSecretBytes,
	})
	if err != nil {
		return nil, fmt.Errorf("users: generate a TOTP key: %w", err)
	}
	sealed, err := s.sealTOTP(u.ID, key.Secret())
	if err != nil {
		return nil, err
	}
	_, err = s.store.UpdateUser(ctx, u.Username, func(cur *User) error {
		if cur.ID != u.ID {
			return ErrNotFound
		}
		if cur.TOTP.Enforced() {
			return ErrFactorEnrolled
		}
		cur.TOTP = TOTP{Secret: sealed}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.revoked(ctx) // this process's user view learns the change now
	img, err := key.Image(256, 256)
	if err != nil {
		return nil, fmt.Errorf("users: draw the TOTP QR code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("users: encode the TOTP QR code: %w", err)
	}
	return &Enrolment{Secret: key.Secret(), URI: key.URL(), QRCode: buf.Bytes()}, nil
}

// ConfirmTOTP completes the enrolment with a first valid code: from then
// on logins need a code. It returns the recovery codes, shown only here
// and stored hashed. Returns ErrNoPendingFactor, ErrFactorEnrolled,
// ErrInvalidCode or ErrNotFound.
func (s *Service) ConfirmTOTP(ctx context.Context, id, code string) ([]string, error) {
	u, err := s.store.UserByID(ctx, id)
	if err != nil {
		return nil, err
	}
	codes, hashes := newRecoveryCodes()
	_, err = s.store.UpdateUser(ctx, u.Username, func(cur *User) error {
		switch {
		case cur.ID != u.ID:
			return ErrNotFound
		case cur.TOTP.Enforced():
			return ErrFactorEnrolled
		case cur.TOTP.Secret == "":
			return ErrNoPendingFactor
		}
		step, err := s.matchStep(cur, code)
		if err != nil {
			return err
		}
		cur.TOTP.Confirmed, cur.TOTP.LastStep, cur.TOTP.RecoveryCodes = true, step, hashes
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.revoked(ctx)
	return codes, nil
}

// DisableTOTP removes the user's factor; the user proves both the password
// and a current code (or a recovery code). Returns ErrInvalidCredentials
// (a wrong password), ErrInvalidCode, ErrNoFactor or ErrNotFound.
func (s *Service) DisableTOTP(ctx context.Context, id, password, code string) error {
	u, err := s.store.UserByID(ctx, id)
	if err != nil {
		return err
	}
	if !u.TOTP.Enforced() {
		return ErrNoFactor
	}
	if len(password) > MaxPasswordBytes {
		return ErrInvalidCredentials
	}
	if _, err := s.Verify(ctx, u, password); err != nil {
		return err
	}
	_, err = s.store.UpdateUser(ctx, u.Username, func(cur *User) error {
		switch {
		case cur.ID != u.ID:
			return ErrNotFound
		case cur.PasswordHash != u.PasswordHash:
			return ErrInvalidCredentials // the password changed meanwhile
		case !cur.TOTP.Enforced():
			return ErrNoFactor
		}
		if err := s.useCode(cur, code); err != nil {
			return err
		}
		cur.TOTP = TOTP{}
		return nil
	})
	if err != nil {
		return err
	}
	s.revoked(ctx)
	return nil
}

// ResetTOTP removes the factor of the user with that username for a user
// who lost the device, on behalf of actor (users:write, within the
// privilege model, as Update). It ends the user's sessions: whoever holds
// the lost device may hold them too. Returns ErrNoFactor (nothing enrolled
// or pending), a *ForbiddenError or ErrNotFound.
func (s *Service) ResetTOTP(ctx context.Context, actor Actor, username string) (*User, error) {
	name, err := NormalizeUsername(username)
	if err != nil {
		return nil, ErrNotFound
	}
	auth, err := s.authority(ctx, actor)
	if err != nil {
		return nil, err
	}
	u, err := s.store.UpdateUser(ctx, name, func(u *User) error {
		if err := auth.mayChange(u); err != nil {
			return err
		}
		if u.TOTP.Secret == "" {
			return ErrNoFactor
		}
		u.TOTP = TOTP{}
		u.TokenEpoch++
		u.UpdatedAt = s.now().UTC()
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.revoked(ctx)
	return u, nil
}

// CheckCode checks the second factor of a login of u (whose password was
// right): a TOTP code of the current step or one either side, never one
// of a step already used, or an unused recovery code, which is used up.
// The check and its use are one store update, so of two logins with the
// same code one succeeds on every replica. It returns the user as
// updated, or ErrInvalidCode (nothing written), ErrNoFactor, ErrNotFound.
func (s *Service) CheckCode(ctx context.Context, u *User, code string) (*User, error) {
	if !u.TOTP.Enforced() {
		return nil, ErrNoFactor
	}
	// Checked first against u as read, in memory: a wrong code costs no
	// store call, so it takes as long as a wrong password's answer and
	// tells an attacker nothing by its timing. A right one is checked
	// again, and used, in the store's transaction.
	probe := *u
	probe.TOTP.RecoveryCodes = slices.Clone(u.TOTP.RecoveryCodes)
	if err := s.useCode(&probe, code); err != nil {
		return nil, err
	}
	if s.testHookBeforeUse != nil {
		s.testHookBeforeUse()
	}
	return s.store.UpdateUser(ctx, u.Username, func(cur *User) error {
		switch {
		case cur.ID != u.ID:
			return ErrNotFound
		case !cur.TOTP.Enforced():
			return ErrNoFactor
		}
		return s.useCode(cur, code)
	})
}

// useCode checks code against cur's factor and records its use in cur: the
// step of a TOTP code, or the removal of a recovery code. A secret stored
// in plain is sealed on the way when an encryption key is set.
func (s *Service) useCode(cur *User, code string) error {
	if isRecoveryCode(code) {
		h := hashRecoveryCode(code)
		i := slices.IndexFunc(cur.TOTP.RecoveryCodes, func(stored string) bool {
			return subtle.ConstantTimeCompare([]byte(stored), []byte(h)) == 1
		})
		if i < 0 {
			return ErrInvalidCode
		}
		cur.TOTP.RecoveryCodes = slices.Delete(slices.Clone(cur.TOTP.RecoveryCodes), i, i+1)
		return nil
	}
	step, err := s.matchStep(cur, code)
	if err != nil {
		return err
	}
	cur.TOTP.LastStep = step
	if len(s.encKey) > 0 && strings.HasPrefix(cur.TOTP.Secret, totpPlain) {
		secret, err := s.openTOTP(cur.ID, cur.TOTP.Secret)
		if err != nil {
			return err
		}
		if cur.TOTP.Secret, err = s.sealTOTP(cur.ID, secret); err != nil {
			return err
		}
	}
	return nil
}

// matchStep returns the time step whose code code is: the current one or
// one either side, and later than the last step accepted (RFC 6238 §5.2).
// Every candidate is generated and compared in constant time.
func (s *Service) matchStep(cur *User, code string) (int64, error) {
	if len(code) != int(totpDigits) {
		return 0, ErrInvalidCode
	}
	secret, err := s.openTOTP(cur.ID, cur.TOTP.Secret)
	if err != nil {
		return 0, err
	}
	now := s.now().Unix() / totpPeriod
	var matched int64
	for step := now - totpSkew; step <= now+totpSkew; step++ {
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*totpPeriod, 0), totp.ValidateOpts{
			Period: totpPeriod, Digits: totpDigits, Algorithm: otp.AlgorithmSHA1,
		})
		if err != nil {
			return 0, fmt.Errorf("users: compute a TOTP code: %w", err)
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && step > cur.TOTP.LastStep {
			matched = step
		}
	}
	if matched == 0 {
		return 0, ErrInvalidCode
	}
	return matched, nil
}

// Recovery codes: 10 random bytes as base32 in two dashed halves
// ("ABCDEFGH-IJKLMNOP"), never six digits, so a code is told from a TOTP
// code by its form.
var recoveryEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

func newRecoveryCodes() (codes, hashes []string) {
	for range RecoveryCodes {
		b := make([]byte, 10)
		rand.Read(b) // never returns an error; it crashes the program instead
		c := recoveryEncoding.EncodeToString(b)
		c = c[:8] + "-" + c[8:]
		codes = append(codes, c)
		hashes = append(hashes, hashRecoveryCode(c))
	}
	return codes, hashes
}

func isRecoveryCode(code string) bool { return len(code) == 17 && code[8] == '-' }

// hashRecoveryCode is the stored form: hex SHA-256 of the code, upper
// case, dash kept (80 random bits need no slow hash).
func hashRecoveryCode(code string) string {
	sum := sha256.Sum256([]byte(strings.ToUpper(code)))
	return hex.EncodeToString(sum[:])
}

// The stored forms of a TOTP secret: in plain (base32, when no encryption
// key is configured), or sealed under GATEHOUSE_KEY_ENCRYPTION_KEY
// (package envelope, as the signing keys are) in base64, with the user id
// as the envelope's context, so a secret copied onto another user's row
// does not open there.
const (
	totpPlain  = "plain:"
	totpSealed = "sealed:"
)

func totpContext(userID string) string { return "totp:" + userID }

func (s *Service) sealTOTP(userID, secret string) (string, error) {
	if len(s.encKey) == 0 {
		return totpPlain + secret, nil
	}
	sealed, err := envelope.Seal(s.encKey, totpContext(userID), []byte(secret))
	if err != nil {
		return "", err
	}
	return totpSealed + base64.RawStdEncoding.EncodeToString(sealed), nil
}

func (s *Service) openTOTP(userID, stored string) (string, error) {
	if secret, ok := strings.CutPrefix(stored, totpPlain); ok {
		return secret, nil
	}
	b64, ok := strings.CutPrefix(stored, totpSealed)
	if !ok || len(s.encKey) == 0 {
		return "", ErrFactorSealed
	}
	raw, err := base64.RawStdEncoding.DecodeString(b64)
	if err != nil {
		return "", ErrFactorSealed
	}
	secret, err := envelope.Open(s.encKey, totpContext(userID), raw)
	if err != nil {
		return "", ErrFactorSealed
	}
	return string(secret), nil
}
