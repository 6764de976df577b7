// Package jwtdate holds JWT claims to RFC 7519 §2 NumericDate: the server
// (internal/auth) and the resource-server package (verify) decode `exp`,
// `nbf` and `iat` through it, so both refuse the same tokens. It imports
// nothing of gatehouse.
package jwtdate

import (
	"encoding/json"
	"errors"

	"github.com/golang-jwt/jwt/v5"
)

// ErrNotNumber: a date claim is present but not a JSON number.
var ErrNotNumber = errors.New("exp, nbf and iat must be JSON numbers (RFC 7519 §2 NumericDate)")

// Strict decodes the `exp`, `nbf` and `iat` claims of the JSON payload into
// rc, refusing any that is present but not a JSON number. jwt.NumericDate
// alone also takes the string "1999999999" and treats null as absent.
// Call it from a claims type's UnmarshalJSON after the ordinary decode.
func Strict(payload []byte, rc *jwt.RegisteredClaims) error {
	var raw struct {
		ExpiresAt json.RawMessage `json:"exp"`
		NotBefore json.RawMessage `json:"nbf"`
		IssuedAt  json.RawMessage `json:"iat"`
	}
	if err := json.Unmarshal(payload, &raw); err != nil {
		return err
	}
	for _, d := range [...]struct {
		raw json.RawMessage
		dst **jwt.NumericDate
	}{
		{raw.ExpiresAt, &rc.ExpiresAt},
		{raw.NotBefore, &rc.NotBefore},
		{raw.IssuedAt, &rc.IssuedAt},
	} {
		if d.raw == nil {
			continue // absent
		}
		// A valid JSON value starting with '-' or a digit is a number.
		if d.raw[0] != '-' && (d.raw[0] < '0' || d.raw[0] > '9') {
			return ErrNotNumber
		}
		date := new(jwt.NumericDate)
		if err := date.UnmarshalJSON(d.raw); err != nil {
			return err
		}
		*d.dst = date
	}
	return nil
}
