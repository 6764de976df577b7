package httpapi_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// The form bodies of the OAuth endpoints are parsed once and checked
// against the spec's schema; every way a body can be wrong is still an
// RFC 6749 §5.2 error (or 413), never a 500, and the endpoint still sees
// a well-formed body.
func TestFormBodies(t *testing.T) {
	ts := newTestServer(t)
	for _, tc := range []struct {
		name, body, contentType string
		status                  int
		code                    string
	}{
		{"bad_percent_encoding", "grant_type=password&username=%zz", formType, 400, "invalid_request"},
		{"empty_body", "", formType, 400, "invalid_request"},
		{"schema_missing_grant_type", "username=alice", formType, 400, "invalid_request"},
		{"json_is_not_a_form", `{"grant_type":"password"}`, "application/json", 400, "invalid_request"},
		{"too_large", "grant_type=password&username=" + strings.Repeat("a", 70_000), formType, http.StatusRequestEntityTooLarge, "invalid_request"},
		{"media_type_parameters_and_case", form("grant_type", "password", "username", "nobody", "password", "wrong-password-1"), "Application/X-WWW-Form-Urlencoded; charset=UTF-8", 400, "invalid_grant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantOAuth(t, ts.do(t, "POST", "/token", tc.body, "Content-Type", tc.contentType), tc.status, tc.code)
		})
	}
	t.Run("a_body_of_unknown_length_reaches_the_endpoint", func(t *testing.T) {
		// A chunked body: no Content-Length to size the read by.
		body := form("grant_type", "password", "username", "alice", "password", userPassword)
		req, err := http.NewRequest("POST", ts.URL+"/token", io.NopCloser(strings.NewReader(body)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", formType)
		req.ContentLength = -1
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("got %d", resp.StatusCode)
		}
	})
	t.Run("a_parameter_in_the_url_is_refused_as_the_endpoint_refuses_it", func(t *testing.T) {
		// With a query string the form is parsed by ParseForm, the query
		// kept apart from the body (RFC 6749 §3.2).
		wantOAuth(t, ts.do(t, "POST", "/token?password=x", form("grant_type", "password", "username", "alice", "password", userPassword), "Content-Type", formType), 400, "invalid_request")
	})
	t.Run("a_well_formed_form_reaches_the_endpoint", func(t *testing.T) {
		r := ts.do(t, "POST", "/token", form("grant_type", "password", "username", "alice", "password", userPassword), "Content-Type", formType)
		if r.status != http.StatusOK {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
}
