package jwtdate

import (
	"errors"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

func TestStrict_rfc7519_2_numericdate_is_a_json_number(t *testing.T) {
	for _, tc := range []struct {
		payload string
		wantErr bool
		wantExp int64
	}{
		{`{"exp":1999999999}`, false, 1999999999},
		{`{"exp":1.9e9,"nbf":-1}`, false, 1900000000},
		{`{}`, false, 0},
		{`{"exp":"1999999999"}`, true, 0},
		{`{"nbf":null}`, true, 0},
		{`{"iat":true}`, true, 0},
		{`{"iat":[1]}`, true, 0},
		{`{"exp":{"n":1}}`, true, 0},
	} {
		var rc jwt.RegisteredClaims
		err := Strict([]byte(tc.payload), &rc)
		if got := err != nil; got != tc.wantErr {
			t.Errorf("Strict(%s) = %v, want error %t", tc.payload, err, tc.wantErr)
			continue
		}
		if tc.wantErr && !errors.Is(err, ErrNotNumber) {
			t.Errorf("Strict(%s) = %v, want ErrNotNumber", tc.payload, err)
		}
		if !tc.wantErr && tc.wantExp != 0 && (rc.ExpiresAt == nil || rc.ExpiresAt.Unix() != tc.wantExp) {
			t.Errorf("Strict(%s) exp = %v, want %d", tc.payload, rc.ExpiresAt, tc.wantExp)
		}
	}
}
