package httpapi

import (
	"context"
	"encoding/base64"
	"log/slog"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/users"
)

// TOTPService enrols and removes users' second factors (users.Service).
type TOTPService interface {
	StartTOTP(ctx context.Context, id string) (*users.Enrolment, error)
	ConfirmTOTP(ctx context.Context, id, code string) ([]string, error)
	DisableTOTP(ctx context.Context, id, password, code string) error
	ResetTOTP(ctx context.Context, actor users.Actor, username string) (*users.User, error)
}

func (h *Handlers) StartTotpEnrolment(ctx context.Context, _ StartTotpEnrolmentRequestObject) (StartTotpEnrolmentResponseObject, error) {
	u, err := h.currentUser(ctx)
	if err != nil {
		return nil, err
	}
	e, err := h.users.StartTOTP(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	h.audit.Record(ctx, audit.UserChanged, audit.OK, actor(ctx), slog.String("username", u.Username), slog.String("changed", "totp_started"))
	return StartTotpEnrolment201JSONResponse{
		Body: TOTPEnrolment{Secret: e.Secret, OtpauthUri: e.URI,
			QrCode: "data:image/png;base64," + base64.StdEncoding.EncodeToString(e.QRCode)},
		Headers: StartTotpEnrolment201ResponseHeaders{CacheControl: &noStore},
	}, nil
}

func (h *Handlers) ConfirmTotpEnrolment(ctx context.Context, req ConfirmTotpEnrolmentRequestObject) (ConfirmTotpEnrolmentResponseObject, error) {
	u, err := h.currentUser(ctx)
	if err != nil {
		return nil, err
	}
	var codes []string
	if err := h.guarded(ctx, u, func() (err error) {
		codes, err = h.users.ConfirmTOTP(ctx, u.ID, req.Body.Code)
		return err
	}); err != nil {
		return nil, err
	}
	h.audit.Record(ctx, audit.UserChanged, audit.OK, actor(ctx), slog.String("username", u.Username), slog.String("changed", "totp_enabled"))
	return ConfirmTotpEnrolment200JSONResponse{Body: RecoveryCodes{RecoveryCodes: codes}, Headers: ConfirmTotpEnrolment200ResponseHeaders{CacheControl: &noStore}}, nil
}

func (h *Handlers) DisableTotp(ctx context.Context, req DisableTotpRequestObject) (DisableTotpResponseObject, error) {
	u, err := h.currentUser(ctx)
	if err != nil {
		return nil, err
	}
	if err := h.guarded(ctx, u, func() error { return h.users.DisableTOTP(ctx, u.ID, req.Body.Password, req.Body.Code) }); err != nil {
		return nil, err
	}
	h.audit.Record(ctx, audit.UserChanged, audit.OK, actor(ctx), slog.String("username", u.Username), slog.String("changed", "totp_disabled"))
	return DisableTotp204Response{}, nil
}

func (h *Handlers) ResetUserMfa(ctx context.Context, req ResetUserMfaRequestObject) (ResetUserMfaResponseObject, error) {
	c, err := claims(ctx)
	if err != nil {
		return nil, err
	}
	u, err := h.users.ResetTOTP(ctx, tokenActor(c), req.Username)
	if err != nil {
		return nil, err
	}
	h.audit.Record(ctx, audit.UserChanged, audit.OK, actor(ctx), slog.String("username", u.Username), slog.String("changed", "totp_reset"))
	return ResetUserMfa204Response{}, nil
}

// guarded runs check, which verifies a password or a code of u, under the
// login throttle for u and the request's address, when there is one: a
// stolen me token is no oracle for either.
func (h *Handlers) guarded(ctx context.Context, u *users.User, check func() error) error {
	if h.throttle == nil {
		return check()
	}
	r, err := requestFrom(ctx)
	if err != nil {
		return err
	}
	return h.throttle.Guard(ctx, u.Username, requestAddr(r, h.proxies), check)
}

// totpState is the User schema's totp.
func totpState(u *users.User) *UserTotp {
	s := UserTotp(u.TOTP.State())
	return &s
}
