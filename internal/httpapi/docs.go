package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/swaggest/swgui"
	"github.com/swaggest/swgui/v5/static"
	"github.com/swaggest/swgui/v5emb"
)

// docsPath is where Swagger UI is served. Its Authorize button runs the
// spec's oauth2 password flow against tokenUrl /token (RFC 6749 §4.3.2).
const docsPath = "/docs"

// docs serves Swagger UI: one HTML page, rendered once, and the UI's
// embedded scripts, styles and icons. Nothing is fetched from a CDN.
type docs struct {
	page   []byte
	csp    string
	assets http.Handler    // v5emb's handler, for everything but the page
	served map[string]bool // asset names under docsPath/
}

// newDocs returns the handler of GET /docs and GET /docs/*, a Swagger UI
// reading specURL. It panics if the embedded page cannot be rendered: a
// build defect that TestDocs catches, as with regexp.MustCompile.
func newDocs(specURL string) http.Handler {
	ui := v5emb.NewHandlerWithConfig(swgui.Config{
		Title:       "gatehouse",
		SwaggerJSON: specURL,
		BasePath:    docsPath + "/",
		// Proxy stays off: it would make /docs/?proxy=URL fetch any URL.
		// The spec's server is "/", so the UI calls the origin it was
		// loaded from, the only one its CSP lets it reach.
	})

	// The page depends only on the configuration: render it once, so the
	// inline blocks the CSP admits by hash are exactly the ones served.
	rec := &pageRecorder{header: http.Header{}}
	ui.ServeHTTP(rec, &http.Request{Method: http.MethodGet, URL: &url.URL{Path: docsPath + "/"}, Header: http.Header{}})
	if rec.status != http.StatusOK {
		panic(fmt.Sprintf("httpapi: rendering the Swagger UI page: status %d: %s", rec.status, rec.body.Bytes()))
	}
	page := rec.body.Bytes()

	return &docs{
		page:   page,
		csp:    docsCSP(page),
		assets: ui,
		served: docsAssets(),
	}
}

func (d *docs) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, _ := strings.CutPrefix(r.URL.Path, docsPath)
	name = strings.TrimPrefix(name, "/")
	switch {
	case name == "":
		w.Header().Set("Content-Security-Policy", d.csp)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(d.page)))
		_, _ = w.Write(d.page)
	case d.served[name]:
		w.Header().Set("Content-Security-Policy", d.csp)
		d.assets.ServeHTTP(w, r)
	default:
		writeProblem(w, http.StatusNotFound, "no such resource", nil)
	}
}

// docsAssets lists the files of the embedded UI that /docs/ serves: its
// scripts, styles and favicons. oauth2-redirect.html is left out: it serves
// only the implicit and authorization code flows, which gatehouse lacks.
func docsAssets() map[string]bool {
	served := map[string]bool{}
	entries, err := fs.ReadDir(static.FS, ".")
	if err != nil {
		panic(fmt.Sprintf("httpapi: listing the embedded Swagger UI: %v", err))
	}
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".gz")
		switch path.Ext(name) {
		case ".js", ".css", ".png":
			served[name] = true
		}
	}
	return served
}

var (
	inlineScript = regexp.MustCompile(`(?s)<script>(.*?)</script>`)
	inlineStyle  = regexp.MustCompile(`(?s)<style>(.*?)</style>`)
)

// docsCSP is the Content-Security-Policy of /docs: nothing but this origin.
// The page's inline <script> blocks (the SwaggerUIBundle setup, which
// carries the configuration) and its <style> block are admitted by their
// SHA-256 hashes, computed from the rendered page, so neither needs
// 'unsafe-inline'; v5emb offers no way to move them into files. Swagger UI
// sets element styles through the CSSOM, which CSP does not govern, and
// needs no eval. img-src admits data: for the icons swagger-ui.css inlines.
// The page takes passwords: it may not be framed (clickjacking), and
// nothing on it submits a form.
func docsCSP(page []byte) string {
	hashes := func(re *regexp.Regexp) string {
		var b strings.Builder
		for _, m := range re.FindAllSubmatch(page, -1) {
			sum := sha256.Sum256(m[1])
			b.WriteString(" 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'")
		}
		return b.String()
	}
	return strings.Join([]string{
		"default-src 'self'",
		"script-src 'self'" + hashes(inlineScript),
		"style-src 'self'" + hashes(inlineStyle),
		"img-src 'self' data:",
		"connect-src 'self'",
		"object-src 'none'",
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'none'",
	}, "; ")
}

// pageRecorder captures the one response newDocs renders.
type pageRecorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (p *pageRecorder) Header() http.Header { return p.header }

func (p *pageRecorder) WriteHeader(status int) {
	if p.status == 0 {
		p.status = status
	}
}

func (p *pageRecorder) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return p.body.Write(b)
}
