package httpapi

import (
	"bytes"
	"net/http/httptest"
	"testing"
)

// The appended answer is byte for byte, header for header, what the
// generated response writes, for inactive and active tokens and for
// strings encoding/json escapes.
func TestIntrospectionMatchesGenerated(t *testing.T) {
	s := func(v string) *string { return &v }
	n := func(v int64) *int64 { return &v }
	cases := []Introspection{
		{Active: false},
		{Active: true, Scope: s("me tokens:introspect"), ClientId: s("public"), Username: s("alice"), TokenType: s("Bearer"),
			Sub: s("1292f2ea-695c-406d-9cab-5a8d14b6565f"), Iss: s("http://127.0.0.1:18080"), Exp: n(1796177578), Iat: n(1796176678)},
		{Active: true, Aud: s("gatehouse"), Jti: s("GefcktLHkwr5BLz_6Fe3oQ"), Nbf: n(-1), Exp: n(0), Scope: s(""),
			Username: s(`a"b\c<d>&e` + "\x00\x1f\x7f\u2028\u2029é\xff"), Iss: s("https://auth.example/?a=1&b=2")},
	}
	for _, in := range cases {
		want := httptest.NewRecorder()
		if err := (IntrospectToken200JSONResponse{Body: in, Headers: IntrospectToken200ResponseHeaders{CacheControl: &noStore}}).VisitIntrospectTokenResponse(want); err != nil {
			t.Fatal(err)
		}
		got := httptest.NewRecorder()
		if err := (encodedIntrospection{in}).VisitIntrospectTokenResponse(got); err != nil {
			t.Fatal(err)
		}
		if got.Code != want.Code || !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
			t.Fatalf("got %d %s, want %d %s", got.Code, got.Body, want.Code, want.Body)
		}
		for _, h := range []string{"Content-Type", "Cache-Control"} {
			if got.Header().Get(h) != want.Header().Get(h) {
				t.Fatalf("%s: got %q, want %q", h, got.Header().Get(h), want.Header().Get(h))
			}
		}
	}
}

// FuzzIntrospectionMatchesGenerated: any strings encode as encoding/json
// encodes them.
func FuzzIntrospectionMatchesGenerated(f *testing.F) {
	f.Add("alice", "me", "http://127.0.0.1", int64(1))
	f.Add("<&>", "\u2028", "\xff", int64(-5))
	f.Fuzz(func(t *testing.T, user, scope, iss string, exp int64) {
		in := Introspection{Active: true, Username: &user, Scope: &scope, Iss: &iss, Exp: &exp}
		want := httptest.NewRecorder()
		if err := (IntrospectToken200JSONResponse{Body: in}).VisitIntrospectTokenResponse(want); err != nil {
			t.Fatalf("the generated response failed: %v", err)
		}
		b, err := appendIntrospection(nil, &in)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, want.Body.Bytes()) {
			t.Fatalf("got %s, want %s", b, want.Body)
		}
	})
}
