package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// encodedIntrospection is POST /introspect's 200 answer: the bytes
// IntrospectToken200JSONResponse writes (encoding/json through an Encoder,
// HTML escaping and the trailing newline included), appended field by
// field instead of through reflection, which with its buffer and header
// formatting was a sixth of an introspection's own work.
type encodedIntrospection struct{ body Introspection }

var noStoreHeader = []string{noStore}

func (e encodedIntrospection) VisitIntrospectTokenResponse(w http.ResponseWriter) error {
	b, err := appendIntrospection(make([]byte, 0, 512), &e.body)
	if err != nil {
		return err
	}
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Cache-Control"] = noStoreHeader
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(b)
	return err
}

// appendIntrospection appends in as encoding/json encodes it: the fields
// in the struct's order, those that are nil left out (omitempty).
func appendIntrospection(b []byte, in *Introspection) ([]byte, error) {
	b = append(b, `{"active":`...)
	b = strconv.AppendBool(b, in.Active)
	var err error
	field := func(name string, v *string) {
		if v == nil || err != nil {
			return
		}
		b = append(b, ',', '"')
		b = append(b, name...)
		b = append(b, '"', ':')
		b, err = appendEncodedString(b, *v)
	}
	number := func(name string, v *int64) {
		if v == nil {
			return
		}
		b = append(b, ',', '"')
		b = append(b, name...)
		b = append(b, '"', ':')
		b = strconv.AppendInt(b, *v, 10)
	}
	field("aud", in.Aud)
	field("client_id", in.ClientId)
	number("exp", in.Exp)
	number("iat", in.Iat)
	field("iss", in.Iss)
	field("jti", in.Jti)
	number("nbf", in.Nbf)
	field("scope", in.Scope)
	field("sub", in.Sub)
	field("token_type", in.TokenType)
	field("username", in.Username)
	if err != nil {
		return nil, err
	}
	return append(b, '}', '\n'), nil
}

// appendEncodedString appends s as encoding/json encodes a string by
// default: a string of printable ASCII other than the characters it
// escapes (quote, backslash, and <, > and & for HTML) is copied between
// quotes; any other goes through json.Marshal itself.
func appendEncodedString(b []byte, s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			enc, err := json.Marshal(s)
			if err != nil {
				return nil, err
			}
			return append(b, enc...), nil
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), nil
}

// formOperations is the strict server with POST /introspect served
// without binding its form into IntrospectTokenFormdataRequestBody: the
// handler reads the form the validator already parsed and checked against
// the spec (r.PostForm, through the request's state), and the generated
// binding's reflection (runtime.BindForm) was a twentieth of an
// introspection's CPU under load (BENCHMARKS.md). Everything else, the
// route, the validation and the answer, is the spec's as before.
type formOperations struct {
	ServerInterface
	h  *Handlers
	ew errorWriter
}

func (f formOperations) IntrospectToken(w http.ResponseWriter, r *http.Request) {
	resp, err := f.h.IntrospectToken(r.Context(), IntrospectTokenRequestObject{})
	if err == nil {
		err = resp.VisitIntrospectTokenResponse(w)
	}
	if err != nil {
		f.ew.write(w, r, err)
	}
}
