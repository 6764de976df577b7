package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/gatehouse/gatehouse/bearer"
	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/storage"
	"github.com/gatehouse/gatehouse/internal/users"
)

// realm names gatehouse in RFC 6750 and RFC 7617 challenges.
const realm = "gatehouse"

// codes maps domain sentinels to statuses (one table, as in wtf's codes).
var codes = []struct {
	err    error
	status int
	// field, when set, is the request field at fault (a FieldError).
	field string
}{
	{errWrongCurrentPassword, http.StatusForbidden, ""},
	{errBadCursor, http.StatusBadRequest, "cursor"},
	{errNoSuchSession, http.StatusNotFound, ""},
	{errHMACRotation, http.StatusConflict, ""},
	{users.ErrNotFound, http.StatusNotFound, ""},
	{users.ErrUsernameTaken, http.StatusConflict, ""},
	{users.ErrInvalidCode, http.StatusForbidden, ""},
	{users.ErrInvalidCredentials, http.StatusForbidden, ""},
	{users.ErrFactorEnrolled, http.StatusConflict, ""},
	{users.ErrNoPendingFactor, http.StatusConflict, ""},
	{users.ErrNoFactor, http.StatusConflict, ""},
	{users.ErrDisabled, http.StatusForbidden, ""},
	{storage.ErrClientExists, http.StatusConflict, ""},
	{users.ErrLastAdmin, http.StatusConflict, ""},
	{auth.ErrTooManySecrets, http.StatusConflict, ""},
	{auth.ErrLastSecret, http.StatusConflict, ""},
	{auth.ErrPublicClient, http.StatusConflict, ""},
}

// The handlers' own refusals; codes gives each its status. Their text is
// the answer's detail.
var (
	errWrongCurrentPassword = errors.New("current_password is incorrect")
	errBadCursor            = errors.New("is not a cursor this server issued")
	errNoSuchSession        = errors.New("no such live session")
	errHMACRotation         = errors.New("HS256 secrets rotate by configuration, not by this operation")
	// errNotReady is GET /readyz's refusal: 503 with why (notReadyDetail).
	errNotReady = errors.New("not ready")
)

// storeFaults name, in a readiness answer, what the store could not do.
var storeFaults = []error{storage.ErrReadOnly, storage.ErrFull, storage.ErrUnavailable, storage.ErrTimeout, storage.ErrBusy}

// notReadyDetail says why the server is not ready, without the cause's
// own text (a driver message may name files or hosts).
func notReadyDetail(err error) string {
	for _, f := range storeFaults {
		if errors.Is(err, f) {
			return "not ready: the store cannot take writes (" + sentence(f) + ")"
		}
	}
	return "not ready: the store does not answer"
}

// errorWriter is the one place that turns errors into responses.
type errorWriter struct {
	log *slog.Logger
}

// write answers r with err. Every error handler of the router, the
// generated strict server and the request validator ends here.
func (ew errorWriter) write(w http.ResponseWriter, r *http.Request, err error) {
	var (
		oauthErr  *auth.Error
		bearerErr *auth.BearerError
		valErr    *users.ValidationError
		reqErr    *openapi3filter.RequestError
		maxErr    *http.MaxBytesError
		forbidErr *users.ForbiddenError
	)
	switch {
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The caller went away (or the server began shutting down) while
		// the request waited, for a hashing slot for example: no failure
		// of the server, and nobody to read a 500. Logged at info; the
		// answer, if anyone reads it, says to retry.
		ew.log.InfoContext(r.Context(), "request abandoned by the caller", "request_id", requestID(r.Context()), "method", r.Method, "route", routeOf(r))
		if isOAuthEndpoint(r) {
			ew.oauth(w, r, auth.Overloaded(nil))
			return
		}
		w.Header().Set("Retry-After", "1")
		writeProblem(w, http.StatusServiceUnavailable, "the request ended before its answer; retry", nil)
	case errors.Is(err, errNotReady):
		// Expected while a dependency is down: a warning; probes retry.
		ew.log.WarnContext(r.Context(), "not ready", "request_id", requestID(r.Context()), "err", err)
		w.Header().Set("Retry-After", "1")
		writeProblem(w, http.StatusServiceUnavailable, notReadyDetail(err), nil)
	case errors.As(err, &oauthErr) && errors.As(err, &bearerErr):
		// Both alternatives of /introspect failed: a bearer's and a
		// client's own credentials (Basic). Only the client alternative
		// answers OAuth errors, and only when Basic credentials were sent,
		// so the caller meant that one: invalid_client with a Basic
		// challenge (RFC 7662 §2.1, RFC 6749 §5.2).
		ew.oauth(w, r, oauthErr)
	case errors.As(err, &bearerErr):
		// Checked first: kin-openapi wraps it in SecurityRequirementsError.
		ew.bearer(w, bearerErr)
	case errors.As(err, &oauthErr) && !isOAuthEndpoint(r) && oauthErr.RetryAfter > 0:
		// A limit met outside the OAuth endpoints (the password-change
		// throttle): problem details with the same status and Retry-After.
		w.Header().Set("Retry-After", strconv.Itoa(oauthErr.RetryAfter))
		writeProblem(w, oauthErr.Status, oauthErr.Description, nil)
	case errors.As(err, &oauthErr):
		ew.oauth(w, r, oauthErr)
	case errors.As(err, &maxErr):
		ew.badInput(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body exceeds %d bytes", maxErr.Limit), nil)
	case errors.As(err, &reqErr) && isUnsupportedGrantType(r, reqErr):
		// The spec's enum of grant types refused it: RFC 6749 §5.2 has a
		// code of its own for that.
		ew.oauth(w, r, auth.UnsupportedGrantType())
	case errors.As(err, &reqErr):
		field, msg := describeRequestError(reqErr)
		ew.badInput(w, r, http.StatusBadRequest, fieldDetail(field, msg), []FieldError{{Field: field, Message: msg}})
	case errors.As(err, &forbidErr):
		// The privilege model refused the change (RFC 9110 §15.5.4).
		writeProblem(w, http.StatusForbidden, forbidErr.Message, nil)
	case errors.As(err, &valErr):
		ew.badInput(w, r, http.StatusBadRequest, valErr.Error(), []FieldError{{Field: valErr.Field, Message: valErr.Message}})
	case bindingParam(err) != "":
		// The generated binding refuses what kin-openapi let through,
		// e.g. a repeated query parameter.
		p := bindingParam(err)
		ew.badInput(w, r, http.StatusBadRequest, fieldDetail(p, "is invalid"), []FieldError{{Field: p, Message: "is invalid"}})
	case errors.Is(err, users.ErrBusy):
		w.Header().Set("Retry-After", "1")
		writeProblem(w, http.StatusServiceUnavailable, "the server is busy; retry shortly", nil)
	case storage.IsFault(err):
		// The store could not do it now (unreachable, timed out, full,
		// busy, read-only): a retry may succeed, so 503, never 500.
		ew.log.WarnContext(r.Context(), "store fault", "request_id", requestID(r.Context()), "method", r.Method, "route", routeOf(r), "err", err)
		if isOAuthEndpoint(r) {
			ew.oauth(w, r, auth.Unavailable(err))
			return
		}
		w.Header().Set("Retry-After", "1")
		writeProblem(w, http.StatusServiceUnavailable, "the store cannot serve this now; retry shortly", nil)
	case isJSONDecodeError(err):
		ew.badInput(w, r, http.StatusBadRequest, "the request body is not valid JSON for this operation", nil)
	default:
		for _, c := range codes {
			if !errors.Is(err, c.err) {
				continue
			}
			if c.field != "" {
				ew.badInput(w, r, c.status, fieldDetail(c.field, c.err.Error()), []FieldError{{Field: c.field, Message: c.err.Error()}})
				return
			}
			writeProblem(w, c.status, sentence(c.err), nil)
			return
		}
		ew.log.ErrorContext(r.Context(), "request failed", "request_id", requestID(r.Context()), "method", r.Method, "route", routeOf(r), "err", err)
		if isOAuthEndpoint(r) {
			ew.oauth(w, r, auth.ServerError(err))
			return
		}
		writeProblem(w, http.StatusInternalServerError, "the server could not handle the request", nil)
	}
}

// badInput answers a client mistake: an OAuth2 invalid_request on the token
// endpoint (RFC 6749 §5.2), problem details elsewhere.
func (ew errorWriter) badInput(w http.ResponseWriter, r *http.Request, status int, detail string, fields []FieldError) {
	if isOAuthEndpoint(r) {
		e := auth.InvalidRequest(detail)
		e.Status = status
		ew.oauth(w, r, e)
		return
	}
	writeProblem(w, status, detail, fields)
}

// oauth writes an RFC 6749 §5.2 error. Causes are logged, never sent.
func (ew errorWriter) oauth(w http.ResponseWriter, r *http.Request, e *auth.Error) {
	switch {
	case e.Status == http.StatusInternalServerError:
		ew.log.ErrorContext(r.Context(), "token request failed", "request_id", requestID(r.Context()), "err", e)
	case e.Status == http.StatusServiceUnavailable && e.Cause != nil:
		// Shed logins (the hashing queue) and store faults: the cause
		// tells an operator which.
		ew.log.WarnContext(r.Context(), "token request unavailable", "request_id", requestID(r.Context()), "err", e.Cause)
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	if e.Code == auth.CodeInvalidClient {
		h.Set("WWW-Authenticate", `Basic realm="`+realm+`"`)
	}
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	body := OAuth2Error{Error: OAuth2ErrorError(e.Code)}
	if desc := bearer.Sanitize(e.Description); desc != "" {
		body.ErrorDescription = &desc
	}
	if e.MFAToken != "" {
		body.MfaToken = &e.MFAToken
	}
	writeJSON(w, e.Status, "application/json", body)
}

// bearer writes an RFC 6750 §3 challenge with a problem body.
func (ew errorWriter) bearer(w http.ResponseWriter, e *auth.BearerError) {
	w.Header().Set("WWW-Authenticate", bearer.Challenge(realm, e))
	writeProblem(w, e.Status, e.Description, nil)
}

// writeProblem writes RFC 9457 problem details with type about:blank, whose
// title is the status phrase (§4.2.1).
func writeProblem(w http.ResponseWriter, status int, detail string, fields []FieldError) {
	typ, title := "about:blank", http.StatusText(status)
	p := Problem{Type: &typ, Title: &title, Status: &status}
	if detail != "" {
		p.Detail = &detail
	}
	if len(fields) > 0 {
		p.Errors = &fields
	}
	writeJSON(w, status, "application/problem+json", p)
}

func writeJSON(w http.ResponseWriter, status int, contentType string, v any) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// describeRequestError names the parameter or body field kin-openapi
// rejected, and why, without echoing the rejected value.
func describeRequestError(e *openapi3filter.RequestError) (field, msg string) {
	var se *openapi3.SchemaError
	switch {
	case e.Parameter != nil:
		field = e.Parameter.Name
	case errors.As(e.Err, &se):
		field = strings.Join(se.JSONPointer(), ".")
	}
	if errors.As(e.Err, &se) {
		msg = se.Reason
	} else if e.Reason != "" {
		msg = e.Reason
	} else if e.Err != nil {
		msg = e.Err.Error()
	}
	if field == "" {
		field = "body"
	}
	if msg == "" {
		msg = "is invalid"
	}
	return field, msg
}

// isUnsupportedGrantType reports whether e refuses a token request's
// grant_type for not being one of the spec's enum.
func isUnsupportedGrantType(r *http.Request, e *openapi3filter.RequestError) bool {
	s := stateOf(r.Context())
	if s == nil || s.route == nil || s.route.Operation.OperationID != "issueToken" {
		return false
	}
	var se *openapi3.SchemaError
	return errors.As(e.Err, &se) && se.SchemaField == "enum" && strings.Join(se.JSONPointer(), ".") == "grant_type"
}

func fieldDetail(field, msg string) string {
	return field + ": " + msg
}

func isJSONDecodeError(err error) bool {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	return errors.As(err, &syn) || errors.As(err, &typ) || strings.Contains(err.Error(), "can't decode JSON body")
}

// sentence turns a sentinel like "users: not found" into "not found".
func sentence(err error) string {
	_, msg, ok := strings.Cut(err.Error(), ": ")
	if !ok {
		return err.Error()
	}
	return msg
}

// bindingParam names the parameter a generated binding error is about, ""
// for any other error.
func bindingParam(err error) string {
	var (
		format   *InvalidParamFormatError
		required *RequiredParamError
		many     *TooManyValuesForParamError
		unmarsh  *UnmarshalingParamError
		header   *RequiredHeaderError
	)
	switch {
	case errors.As(err, &format):
		return format.ParamName
	case errors.As(err, &required):
		return required.ParamName
	case errors.As(err, &many):
		return many.ParamName
	case errors.As(err, &unmarsh):
		return unmarsh.ParamName
	case errors.As(err, &header):
		return header.ParamName
	}
	return ""
}
