package auth

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// Fuzz targets of the request parsers and the bearer validator. Run one
// with `go test -run '^$' -fuzz '^FuzzVerify$' ./internal/auth/`, or all
// with scripts/fuzz.sh. Without -fuzz, `go test` runs their seeds (f.Add
// and testdata/fuzz/<Name>/) as ordinary tests.

// tokenErrorCodes are the error codes of RFC 6749 §5.2 a client mistake
// can produce; server_error and temporarily_unavailable are not mistakes.
var tokenErrorCodes = map[string]bool{
	CodeInvalidRequest:       true,
	CodeInvalidClient:        true,
	CodeInvalidGrant:         true,
	CodeUnauthorizedClient:   true,
	CodeUnsupportedGrantType: true,
	CodeInvalidScope:         true,
}

// isNQSChars reports whether s fits the error_description syntax of
// RFC 6749 §5.2 and RFC 6750 §3: %x20-21 / %x23-5B / %x5D-7E.
func isNQSChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// formRequest is a POST of body to /token?query, as net/http's server
// would hand it over: authorization holds the Authorization header values,
// one per line ("" sends none).
func formRequest(target, query, body, authorization string) *http.Request {
	r := &http.Request{
		Method:        http.MethodPost,
		URL:           &url.URL{Path: target, RawQuery: query},
		Header:        http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
	}
	if authorization != "" {
		r.Header["Authorization"] = strings.Split(authorization, "\n")
	}
	return r
}

// wantParseError checks the RFC 6749 §5.2 shape of a parser's error.
func wantParseError(t *testing.T, fn string, err error) *Error {
	t.Helper()
	e, ok := err.(*Error)
	if !ok {
		t.Fatalf("%s: got error %v (%T), want *auth.Error", fn, err, err)
	}
	if !tokenErrorCodes[e.Code] {
		t.Errorf("%s: got code %q, not a client error code of RFC 6749 §5.2", fn, e.Code)
	}
	want := http.StatusBadRequest
	if e.Code == CodeInvalidClient {
		want = http.StatusUnauthorized
	}
	if e.Status != want {
		t.Errorf("%s: got status %d for %s, want %d (RFC 6749 §5.2)", fn, e.Status, e.Code, want)
	}
	if e.Description == "" || !isNQSChars(e.Description) {
		t.Errorf("%s: got error_description %q, want non-empty %%x20-21 / %%x23-5B / %%x5D-7E (RFC 6749 §5.2)", fn, e.Description)
	}
	return e
}

// basicPayload is an independent reading of `Basic <payload>` (RFC 7617,
// RFC 6749 §2.3.1): ok is false unless the scheme is Basic and the payload
// is base64 of form-urlencoded "id:secret".
func basicPayload(header string) (id, secret string, ok bool) {
	if len(header) < len("Basic ") || !strings.EqualFold(header[:len("Basic ")], "Basic ") {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(header[len("Basic "):]))
	if err != nil {
		return "", "", false
	}
	rawID, rawSecret, found := strings.Cut(string(raw), ":")
	if !found {
		return "", "", false
	}
	id, err1 := url.QueryUnescape(rawID)
	secret, err2 := url.QueryUnescape(rawSecret)
	return id, secret, err1 == nil && err2 == nil
}

// wantClient checks the client credentials a parser returned against the
// body and the Authorization header (RFC 6749 §2.3).
func wantClient(t *testing.T, fn string, r *http.Request, body url.Values, id, secret string, basic bool) {
	t.Helper()
	headers := r.Header.Values("Authorization")
	if !basic {
		if id != body.Get("client_id") || secret != body.Get("client_secret") {
			t.Errorf("%s: got client %q/%q, want the body's %q/%q", fn, id, secret, body.Get("client_id"), body.Get("client_secret"))
		}
		if len(headers) > 0 {
			// Only empty Basic credentials (Swagger UI's `Basic Og==`) may
			// sit beside a public client.
			hid, hsecret, ok := basicPayload(headers[0])
			if len(headers) != 1 || !ok || hid != "" || hsecret != "" {
				t.Errorf("%s: accepted Authorization %q as a public client", fn, headers)
			}
		}
		return
	}
	if len(headers) != 1 {
		t.Fatalf("%s: Basic client from %d Authorization headers", fn, len(headers))
	}
	hid, hsecret, ok := basicPayload(headers[0])
	if !ok || hid != id || hsecret != secret {
		t.Errorf("%s: got Basic client %q/%q from %q, want %q/%q (ok %v)", fn, id, secret, headers[0], hid, hsecret, ok)
	}
	if id == "" && secret == "" {
		t.Errorf("%s: empty Basic credentials reported as client authentication", fn)
	}
	// §2.3: one authentication method; a body client_id may only repeat it.
	if body.Get("client_secret") != "" || (body.Get("client_id") != "" && body.Get("client_id") != id) {
		t.Errorf("%s: accepted Basic %q/%q together with body client %q/%q", fn, id, secret, body.Get("client_id"), body.Get("client_secret"))
	}
}

// wantBodyOnly checks RFC 6749 §3.2 on a successful parse: none of params
// came from the query string and no parameter was repeated.
func wantBodyOnly(t *testing.T, fn string, query, body url.Values, params []string) {
	t.Helper()
	for _, name := range params {
		if query.Has(name) {
			t.Errorf("%s: accepted %s in the query string", fn, name)
		}
	}
	for name, values := range body {
		if len(values) > 1 {
			t.Errorf("%s: accepted repeated parameter %q", fn, name)
		}
	}
}

func FuzzParseTokenRequest(f *testing.F) {
	for _, seed := range []struct{ body, query, authorization string }{
		{"grant_type=password&username=alice&password=wonderland", "", ""},
		{"grant_type=password&username=alice&password=wonderland&scope=me+users%3Aread", "", ""},
		{"grant_type=refresh_token&refresh_token=abc&client_id=app", "", ""},
		{"grant_type=password&username=alice", "password=wonderland", ""},
		{"grant_type=password&username=alice&username=admin", "", ""},
		{"grant_type=password&grant_type=password", "", ""},
		{"grant_type=password", "unrelated=1", ""},
		{"grant_type=password", "client_secret=s", ""},
		{"grant_type=password&username=alice&password=wonderland", "", "Basic YXBwOnNlY3JldA=="},
		{"grant_type=password", "", "Basic Og=="},
		{"grant_type=password&client_id=app", "", "basic YXBwOnNlY3JldA=="},
		{"grant_type=password&client_id=other", "", "Basic YXBwOnNlY3JldA=="},
		{"grant_type=password&client_secret=s", "", "Basic YXBwOnNlY3JldA=="},
		{"grant_type=password", "", "Basic bm9jb2xvbg=="},
		{"grant_type=password", "", "Basic !!!"},
		{"grant_type=password", "", "Basic " + base64.StdEncoding.EncodeToString([]byte("a%zz:b"))},
		{"grant_type=password", "", "Basic " + base64.StdEncoding.EncodeToString([]byte("my+app%3A1:s%20e"))},
		{"grant_type=password", "", "Bearer abc"},
		{"grant_type=password", "", "Basic Og==\nBasic Og=="},
		{"grant_type=password&%zz=1", "", ""},
		{"token=abc&token_type_hint=refresh_token", "", ""},
		{"token=abc&token=def", "", ""},
		{"token=abc", "token_type_hint=access_token", ""},
		{"a=1;b=2", "", ""},
		{"", "", ""},
	} {
		f.Add(seed.body, seed.query, seed.authorization)
	}
	f.Fuzz(func(t *testing.T, body, query, authorization string) {
		// The server refuses a request line it cannot parse before any
		// handler runs.
		if _, err := url.ParseRequestURI("/token?" + query); err != nil {
			return
		}
		r := formRequest("/token", query, body, authorization)
		if err := r.ParseForm(); err != nil {
			return // the generated handler answers 400 itself
		}
		// Independent readings of both parts; ParseForm accepted them.
		q, err := url.ParseQuery(query)
		if err != nil {
			t.Fatalf("ParseForm accepted query %q that url.ParseQuery refuses: %v", query, err)
		}
		b, err := url.ParseQuery(body)
		if err != nil {
			t.Fatalf("ParseForm accepted body %q that url.ParseQuery refuses: %v", body, err)
		}

		tr, err := ParseTokenRequest(r)
		if err != nil {
			e := wantParseError(t, "ParseTokenRequest", err)
			if e.Code == CodeInvalidClient && len(r.Header.Values("Authorization")) != 1 {
				t.Errorf("invalid_client without exactly one Authorization header")
			}
		} else {
			wantBodyOnly(t, "ParseTokenRequest", q, b, tokenParams)
			for _, p := range []struct{ name, got string }{
				{"grant_type", tr.GrantType}, {"username", tr.Username}, {"password", tr.Password},
				{"scope", tr.Scope}, {"refresh_token", tr.RefreshToken},
			} {
				if p.got != b.Get(p.name) {
					t.Errorf("ParseTokenRequest: got %s %q, want the body's %q", p.name, p.got, b.Get(p.name))
				}
			}
			wantClient(t, "ParseTokenRequest", r, b, tr.ClientID, tr.ClientSecret, tr.BasicAuth)
		}

		// The revocation endpoint reads the same way (RFC 7009 §2.1).
		rr, err := ParseRevocationRequest(r)
		if err != nil {
			wantParseError(t, "ParseRevocationRequest", err)
		} else {
			wantBodyOnly(t, "ParseRevocationRequest", q, b, revocationParams)
			if rr.Token != b.Get("token") || rr.TokenTypeHint != b.Get("token_type_hint") {
				t.Errorf("ParseRevocationRequest: got token %q hint %q, want the body's", rr.Token, rr.TokenTypeHint)
			}
			// RevocationRequest does not say whether Basic was used: the
			// header says, when it carries credentials.
			basic := false
			if h := r.Header.Values("Authorization"); len(h) == 1 {
				id, secret, ok := basicPayload(h[0])
				basic = ok && (id != "" || secret != "")
			}
			wantClient(t, "ParseRevocationRequest", r, b, rr.ClientID, rr.ClientSecret, basic)
		}

		// Introspection (RFC 7662 §2.1) authenticates by bearer token, so
		// its parser never answers invalid_client.
		tok, err := ParseIntrospectionRequest(r)
		if err != nil {
			if e := wantParseError(t, "ParseIntrospectionRequest", err); e.Code != CodeInvalidRequest {
				t.Errorf("ParseIntrospectionRequest: got %s, want invalid_request", e.Code)
			}
		} else {
			wantBodyOnly(t, "ParseIntrospectionRequest", q, b, introspectParams)
			if tok == "" || tok != b.Get("token") {
				t.Errorf("ParseIntrospectionRequest: got token %q, want the body's non-empty %q", tok, b.Get("token"))
			}
		}
	})
}

// b64token is RFC 6750 §2.1: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" /
// "+" / "/" ) *"=".
var b64token = regexp.MustCompile(`^[A-Za-z0-9._~+/-]+=*$`)

// bearerHeader is an independent reading of a well-formed `Bearer <token>`
// credential (RFC 6750 §2.1, the scheme compared case-insensitively per
// RFC 9110 §11.1). Spaces beyond the first before the token are tolerated.
var bearerHeader = regexp.MustCompile(`^(?i:bearer) +([A-Za-z0-9._~+/-]+=*)$`)

func FuzzBearerToken(f *testing.F) {
	for _, seed := range []struct {
		first, second string
		headers       uint8
		query         string
	}{
		{"Bearer abc.def.ghi", "", 1, ""},
		{"bearer abc.def.ghi", "", 1, ""},
		{"BEARER  abc-_~+/def==", "", 1, "limit=5"},
		{"Bearer abc", "", 1, "access_token=abc"},
		{"", "", 0, "access_token=abc"},
		{"", "", 0, "access%5Ftoken=abc"},
		{"", "", 0, ""},
		{"Bearer abc", "Bearer abc", 2, ""},
		{"Bearer ", "", 1, ""},
		{"Bearer", "", 1, ""},
		{"Bearer ===", "", 1, ""},
		{"Bearer a=b", "", 1, ""},
		{"Bearer abc ", "", 1, ""},
		{"Bearer\tabc", "", 1, ""},
		{"Bearer a\"b", "", 1, ""},
		{"Basic Og==", "", 1, ""},
		{"", "", 1, ""},
		{"Bearer é", "", 1, ""},
	} {
		f.Add(seed.first, seed.second, seed.headers, seed.query)
	}
	f.Fuzz(func(t *testing.T, first, second string, headers uint8, query string) {
		r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/users/me", RawQuery: query}, Header: http.Header{}}
		values := []string{first, second}[:headers%3]
		if len(values) > 0 {
			r.Header["Authorization"] = values
		}
		q, _ := url.ParseQuery(query) // as tolerant as r.URL.Query

		token, err := BearerToken(r)
		if err != nil {
			e, ok := err.(*BearerError)
			if !ok {
				t.Fatalf("got error %v (%T), want *auth.BearerError", err, err)
			}
			switch {
			case e.Code == "" && e.Status == http.StatusUnauthorized:
			case e.Code == BearerInvalidToken && e.Status == http.StatusUnauthorized:
			case e.Code == BearerInvalidRequest && e.Status == http.StatusBadRequest:
			default:
				t.Errorf("got %d %q, want 401 without code, 401 invalid_token or 400 invalid_request (RFC 6750 §3.1)", e.Status, e.Code)
			}
			if !isNQSChars(e.Description) {
				t.Errorf("got error_description %q, outside RFC 6750 §3 syntax", e.Description)
			}
			if q.Has("access_token") {
				// RFC 6750 §2.3 is not accepted: alone it is no usable
				// credential (401, no code); beside a header token it is a
				// second method (400 invalid_request, §3.1).
				beside := len(values) == 1 && bearerHeader.MatchString(values[0])
				if beside && (e.Status != http.StatusBadRequest || e.Code != BearerInvalidRequest) {
					t.Errorf("access_token in the query beside %q: got %d %q, want 400 invalid_request", values[0], e.Status, e.Code)
				}
				if len(values) == 0 && (e.Status != http.StatusUnauthorized || e.Code != "") {
					t.Errorf("access_token only in the query: got %d %q, want 401 without a code", e.Status, e.Code)
				}
			}
			if len(values) == 0 && !q.Has("access_token") && e.Code != "" {
				t.Errorf("no credentials: got code %q, want none (RFC 6750 §3.1)", e.Code)
			}
			// Completeness: a single well-formed credential is accepted.
			if len(values) == 1 && !q.Has("access_token") && bearerHeader.MatchString(values[0]) {
				t.Errorf("refused well-formed %q: %v", values[0], err)
			}
			return
		}
		if q.Has("access_token") {
			t.Errorf("accepted a request with access_token in the query (RFC 6750 §2.3)")
		}
		if len(values) != 1 {
			t.Fatalf("got token %q from %d Authorization headers, want exactly one", token, len(values))
		}
		if !b64token.MatchString(token) {
			t.Errorf("got token %q, not b64token (RFC 6750 §2.1)", token)
		}
		m := bearerHeader.FindStringSubmatch(values[0])
		if m == nil || m[1] != token {
			t.Errorf("got token %q from %q, want the credential of a Bearer scheme", token, values[0])
		}
	})
}

// verifyFixture is a validator for one signing algorithm with the tokens
// it must accept: tokens signed with its key whose claims are valid. Every
// other token, a revoked twin among them, must be refused.
type verifyFixture struct {
	alg string
	// validators share keys and deny-list: the first verifies every token,
	// the second remembers verified ones (CacheSize) and must agree.
	validators [2]*Validator
	// accept holds the valid tokens; for ES256, their signed parts
	// (header.payload), see FuzzVerify.
	accept map[string]bool
}

// signedPart is header.payload of a compact JWS, or "" without a dot.
func signedPart(token string) string {
	i := strings.LastIndexByte(token, '.')
	if i < 0 {
		return ""
	}
	return token[:i]
}

const (
	fuzzSubject = "user-1"
	fuzzJTI     = "jti-valid"
	// fuzzRevokedJTI is revoked from the start; fuzzRevokedLaterJTI once
	// its token is in the cache.
	fuzzRevokedJTI      = "jti-revoked"
	fuzzRevokedLaterJTI = "jti-revoked-later"
)

func newVerifyFixtures(f *testing.F) ([]verifyFixture, []string) {
	f.Helper()
	clock := newKeyClock()
	now := clock.Now()
	claims := func(jti string, mutate func(*Claims)) *Claims {
		c := &Claims{
			RegisteredClaims: jwt.RegisteredClaims{
				Issuer:    testIssuer,
				Subject:   fuzzSubject,
				Audience:  jwt.ClaimStrings{testAudience},
				ExpiresAt: jwt.NewNumericDate(now.Add(keyTestTTL)),
				NotBefore: jwt.NewNumericDate(now),
				IssuedAt:  jwt.NewNumericDate(now),
				ID:        jti,
			},
			ClientID:  PublicClientID,
			Scope:     "me users:read",
			SessionID: "fuzz-session",
		}
		if mutate != nil {
			mutate(c)
		}
		return c
	}
	sign := func(method jwt.SigningMethod, key any, c *Claims, header map[string]any) string {
		tok := jwt.NewWithClaims(method, c)
		tok.Header["typ"] = AccessTokenType
		for k, v := range header {
			if v == nil {
				delete(tok.Header, k)
				continue
			}
			tok.Header[k] = v
		}
		s, err := tok.SignedString(key)
		if err != nil {
			f.Fatalf("sign %s: %v", method.Alg(), err)
		}
		return s
	}

	var seeds []string
	var fixtures []verifyFixture
	for _, alg := range []string{AlgRS256, AlgES256, AlgEdDSA, AlgHS256} {
		keys, err := LoadKeys(context.Background(), &memKeyStore{}, keyConfig(alg, clock))
		if err != nil {
			f.Fatalf("LoadKeys(%s): %v", alg, err)
		}
		feed := &memFeed{}
		deny := NewRevocations(feed, RevocationsConfig{Now: clock.Now})
		feed.add(storage.ChangeToken, fuzzRevokedJTI, now.Add(keyTestTTL))
		if err := deny.Sync(context.Background()); err != nil {
			f.Fatal(err)
		}
		cfg := ValidatorConfig{Issuer: testIssuer, Audience: testAudience, Leeway: keyTestLeeway, Now: clock.Now, Revocations: deny}
		plain := NewValidator(keys, cfg)
		cfg.CacheSize = 16
		cached := NewValidator(keys, cfg)
		kid, method, key := keys.Signer()
		h := map[string]any{"kid": kid}
		valid := sign(method, key, claims(fuzzJTI, nil), h)
		// RFC 7009: a token revoked after it was verified (and cached) is
		// refused from then on.
		revokedLater := sign(method, key, claims(fuzzRevokedLaterJTI, nil), h)
		if _, err := cached.Verify(revokedLater); err != nil {
			f.Fatalf("%s: Verify before revocation: %v", alg, err)
		}
		feed.add(storage.ChangeToken, fuzzRevokedLaterJTI, now.Add(keyTestTTL))
		if err := deny.Sync(context.Background()); err != nil {
			f.Fatal(err)
		}
		// RFC 9068 §4 with RFC 7515 §4.1.9: the media-type form of typ,
		// compared case-insensitively.
		mediaType := sign(method, key, claims(fuzzJTI, nil), map[string]any{"kid": kid, "typ": "Application/AT+JWT"})
		fx := verifyFixture{alg: alg, validators: [2]*Validator{plain, cached}, accept: map[string]bool{}}
		for _, ok := range []string{valid, mediaType} {
			if alg == AlgES256 {
				ok = signedPart(ok)
			}
			fx.accept[ok] = true
		}
		fixtures = append(fixtures, fx)

		parts := strings.Split(valid, ".")
		signWith := func(mutate func(*Claims), header map[string]any) string {
			return sign(method, key, claims(fuzzJTI, mutate), header)
		}
		seeds = append(seeds,
			valid,
			mediaType,
			sign(method, key, claims(fuzzRevokedJTI, nil), h), // RFC 7009
			revokedLater,
			signWith(func(c *Claims) {
				c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Hour))
				c.IssuedAt = jwt.NewNumericDate(now.Add(-2 * time.Hour))
				c.NotBefore = c.IssuedAt
			}, h),
			signWith(func(c *Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(time.Hour)) }, h),
			signWith(func(c *Claims) { c.IssuedAt = jwt.NewNumericDate(now.Add(time.Hour)) }, h),
			signWith(func(c *Claims) { c.ExpiresAt = nil }, h),
			signWith(func(c *Claims) { c.Issuer = "https://evil.example" }, h),
			signWith(func(c *Claims) { c.Audience = jwt.ClaimStrings{"other"} }, h),
			signWith(func(c *Claims) { c.Subject = "" }, h),
			sign(method, key, claims("", nil), h),                              // no jti
			signWith(nil, map[string]any{"kid": kid, "typ": "JWT"}),            // an ID token's typ
			signWith(nil, map[string]any{"kid": kid, "typ": nil}),              // no typ
			signWith(nil, map[string]any{"kid": kid, "crit": []string{"exp"}}), // RFC 7515 §4.1.11
			signWith(nil, map[string]any{"kid": "nope"}),                       // unknown kid
			signWith(nil, nil), // no kid
			parts[0]+"."+flipLast(parts[1])+"."+parts[2], // tampered payload
			parts[0]+"."+parts[1]+"."+flipLast(parts[2]), // tampered signature
			parts[0]+"."+parts[1]+".",                    // signature stripped
			valid+"=",
			valid+" ",
			valid+"."+parts[2],
			// RFC 8725 §2.1, §3.1: alg "none".
			sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(fuzzJTI, nil), h),
		)
		if alg != AlgHS256 {
			// RFC 8725 §2.1: the public key reused as an HMAC secret
			// (algorithm confusion), as PEM and as DER.
			pub, err := keys.Lookup(&jwt.Token{Method: method, Header: map[string]any{"kid": kid}})
			if err != nil {
				f.Fatal(err)
			}
			der, err := x509.MarshalPKIXPublicKey(pub)
			if err != nil {
				f.Fatal(err)
			}
			pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
			seeds = append(seeds,
				sign(jwt.SigningMethodHS256, pemKey, claims(fuzzJTI, nil), h),
				sign(jwt.SigningMethodHS256, der, claims(fuzzJTI, nil), h),
			)
		}
	}
	seeds = append(seeds,
		"",
		"..",
		"e30.e30.e30",
		"eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d", // a JWE
		strings.Repeat("a", maxTokenBytes+1),
	)
	return fixtures, seeds
}

// flipLast changes the last base64url character of s.
func flipLast(s string) string {
	if s == "" {
		return "A"
	}
	c := byte('A')
	if s[len(s)-1] == 'A' {
		c = 'B'
	}
	return s[:len(s)-1] + string(c)
}

func FuzzVerify(f *testing.F) {
	fixtures, seeds := newVerifyFixtures(f)
	for _, seed := range seeds {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		for _, fx := range fixtures {
			var accepted [2]bool
			for i, v := range fx.validators {
				accepted[i] = checkVerify(t, fx, v, token)
			}
			if accepted[0] != accepted[1] {
				t.Errorf("%s: the validator without cache accepted (%v) and the one with cache accepted (%v) %q", fx.alg, accepted[0], accepted[1], token)
			}
		}
	})
}

// checkVerify runs v.Verify(token), checks the result against fx and
// reports whether the token was accepted.
func checkVerify(t *testing.T, fx verifyFixture, v *Validator, token string) bool {
	t.Helper()
	claims, err := v.Verify(token)
	if (claims == nil) == (err == nil) {
		t.Fatalf("%s: Verify returned claims %v and error %v, want exactly one", fx.alg, claims, err)
	}
	if err != nil {
		e, ok := err.(*BearerError)
		if !ok {
			t.Fatalf("%s: got error %v (%T), want *auth.BearerError", fx.alg, err, err)
		}
		if e.Status != http.StatusUnauthorized || e.Code != BearerInvalidToken {
			t.Errorf("%s: got %d %q, want 401 invalid_token (RFC 6750 §3.1)", fx.alg, e.Status, e.Code)
		}
		if e.Description == "" || !isNQSChars(e.Description) {
			t.Errorf("%s: got error_description %q, want non-empty RFC 6750 §3 syntax", fx.alg, e.Description)
		}
		if len(token) >= 8 && strings.Contains(e.Description, token) {
			t.Errorf("%s: error_description %q echoes the token", fx.alg, e.Description)
		}
		if fx.accept[token] {
			t.Errorf("%s: refused a valid token: %v", fx.alg, err)
		}
		return false
	}
	// Nobody without the private key can make a token the validator
	// accepts. RS256 (PKCS #1 v1.5), EdDSA and HMAC signatures are unique
	// and base64url is decoded strictly, so an accepted token is one we
	// signed; an ECDSA signature (r, s) also verifies as (r, n-s), so for
	// ES256 only the signed part must be ours.
	signed := token
	if fx.alg == AlgES256 {
		signed = signedPart(token)
	}
	if !fx.accept[signed] {
		t.Errorf("%s: accepted %q, which is not a valid token signed with its key", fx.alg, token)
	}
	if claims.Subject != fuzzSubject || claims.ID != fuzzJTI || claims.Issuer != testIssuer {
		t.Errorf("%s: got claims sub %q jti %q iss %q", fx.alg, claims.Subject, claims.ID, claims.Issuer)
	}
	return true
}
