package httpapi_test

import (
	"crypto/sha256"
	"encoding/base64"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestDocs checks Swagger UI at /docs without a browser:
// cmd/server's TestBrowserDocsAuthorizePasswordFlow drives it in one.
func TestDocs(t *testing.T) {
	ts := newTestServer(t)
	page := ts.do(t, "GET", "/docs", "")

	t.Run("page_is_html_reading_openapi_json", func(t *testing.T) {
		if page.status != 200 {
			t.Fatalf("GET /docs = %d %s, want 200", page.status, page.body)
		}
		if got := page.header.Get("Content-Type"); got != "text/html; charset=utf-8" {
			t.Errorf("Content-Type = %q, want text/html; charset=utf-8", got)
		}
		if !strings.Contains(string(page.body), `"swaggerJsonUrl":"/openapi.json"`) {
			t.Errorf("the page does not configure Swagger UI with /openapi.json:\n%s", page.body)
		}
		if got := page.header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("Cache-Control = %q, want no-store", got)
		}
		if slash := ts.do(t, "GET", "/docs/", ""); slash.status != 200 || string(slash.body) != string(page.body) {
			t.Errorf("GET /docs/ = %d, want the page of /docs", slash.status)
		}
	})

	t.Run("csp_admits_this_origin_and_the_pages_inline_blocks_only", func(t *testing.T) {
		csp := directives(page.header.Get("Content-Security-Policy"))
		if got := csp["default-src"]; !slices.Equal(got, []string{"'self'"}) {
			t.Errorf("default-src = %q, want 'self'", got)
		}
		for name, sources := range csp {
			for _, s := range sources {
				if s == "*" || s == "'unsafe-inline'" || s == "'unsafe-eval'" || strings.Contains(s, "://") || strings.HasSuffix(s, ":") && s != "data:" {
					t.Errorf("%s admits %s: want nothing beyond this origin and hashes", name, s)
				}
			}
		}
		for _, d := range []string{"object-src", "base-uri", "form-action", "frame-ancestors"} {
			if got := csp[d]; !slices.Equal(got, []string{"'none'"}) {
				t.Errorf("%s = %q, want 'none'", d, got)
			}
		}
		// Every inline block is admitted by its hash, so the UI starts and
		// is styled; nothing else inline is.
		for directive, re := range map[string]*regexp.Regexp{
			"script-src": regexp.MustCompile(`(?s)<script>(.*?)</script>`),
			"style-src":  regexp.MustCompile(`(?s)<style>(.*?)</style>`),
		} {
			want := []string{"'self'"}
			for _, m := range re.FindAllSubmatch(page.body, -1) {
				sum := sha256.Sum256(m[1])
				want = append(want, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
			}
			if len(want) == 1 {
				t.Errorf("the page has no inline block for %s: has the template changed?", directive)
			}
			if got := csp[directive]; !slices.Equal(got, want) {
				t.Errorf("%s = %q, want %q (the hashes of the page's inline blocks)", directive, got, want)
			}
		}
	})

	t.Run("assets_are_embedded_and_typed", func(t *testing.T) {
		refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllSubmatch(page.body, -1)
		var assets []string
		for _, m := range refs {
			assets = append(assets, string(m[1]))
		}
		for _, want := range []string{"/docs/swagger-ui-bundle.js", "/docs/swagger-ui-standalone-preset.js", "/docs/swagger-ui.css"} {
			if !slices.Contains(assets, want) {
				t.Errorf("the page does not load %s; it loads %q", want, assets)
			}
		}
		types := map[string]string{".js": "application/javascript", ".css": "text/css; charset=utf-8", ".png": "image/png"}
		for _, a := range assets {
			if !strings.HasPrefix(a, "/docs/") {
				t.Errorf("the page loads %s, from outside /docs/", a)
				continue
			}
			r := ts.do(t, "GET", a, "")
			if r.status != 200 || len(r.body) == 0 {
				t.Errorf("GET %s = %d with %d bytes, want 200 with a body", a, r.status, len(r.body))
			}
			if got, want := r.header.Get("Content-Type"), types[path.Ext(a)]; got != want {
				t.Errorf("GET %s: Content-Type = %q, want %q", a, got, want)
			}
			if got := r.header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("GET %s: X-Content-Type-Options = %q, want nosniff", a, got)
			}
		}
	})

	t.Run("nothing_else_is_served_under_docs", func(t *testing.T) {
		for _, target := range []string{
			"/docs/oauth2-redirect.html", // only for flows gatehouse lacks
			"/docs/index.html",
			"/docs/swagger-ui.js.gz",
			"/docs/static/",
			"/docs/nope.js",
		} {
			wantProblem(t, ts.do(t, "GET", target, ""), 404)
		}
		// The proxy of swgui stays off: ?proxy= does not fetch anything.
		if r := ts.do(t, "GET", "/docs/?proxy=http://127.0.0.1:1/", ""); r.status != 200 || string(r.body) != string(page.body) {
			t.Errorf("GET /docs/?proxy=… = %d %.100s, want the page", r.status, r.body)
		}
		r := ts.do(t, "POST", "/docs", "")
		if r.status != 405 || r.header.Get("Allow") != "GET, HEAD" {
			t.Errorf("POST /docs = %d Allow %q, want 405 Allow GET, HEAD", r.status, r.header.Get("Allow"))
		}
	})

	t.Run("only_docs_gets_the_csp", func(t *testing.T) {
		for _, target := range []string{"/openapi.json", "/healthz", "/users/me"} {
			if got := ts.do(t, "GET", target, "").header.Get("Content-Security-Policy"); got != "" {
				t.Errorf("GET %s has Content-Security-Policy %q, want none", target, got)
			}
		}
	})
}

// directives parses a Content-Security-Policy into its directives' sources.
func directives(policy string) map[string][]string {
	out := map[string][]string{}
	for _, d := range strings.Split(policy, ";") {
		fields := strings.Fields(d)
		if len(fields) > 0 {
			out[fields[0]] = fields[1:]
		}
	}
	return out
}
