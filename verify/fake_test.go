package verify_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// fakeIssuer is an authorization server that only publishes metadata and a
// JWK Set, and signs whatever tokens a test asks for.
type fakeIssuer struct {
	*httptest.Server
	key         *rsa.PrivateKey
	kid         string
	jwksFetches atomic.Int32

	mu   sync.Mutex
	jwks []jose.JSONWebKey
}

func newFakeIssuer(t *testing.T) *fakeIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeIssuer{key: key, kid: "fake-" + rand.Text()}
	f.jwks = []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: f.kid, Algorithm: "RS256", Use: "sig"}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": f.URL, "jwks_uri": f.URL + "/jwks"})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		f.jwksFetches.Add(1)
		f.mu.Lock()
		defer f.mu.Unlock()
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: f.jwks})
	})
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

// retire stops publishing the signing key.
func (f *fakeIssuer) retire() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jwks = []jose.JSONWebKey{}
}

// publishPrivate publishes the key with its private part, as a broken
// server might.
func (f *fakeIssuer) publishPrivate() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jwks = []jose.JSONWebKey{{Key: f.key, KeyID: f.kid, Algorithm: "RS256", Use: "sig"}}
}

// sign returns an RFC 9068 access token like gatehouse's, with header and
// claims changed as given; a nil value removes the member.
func (f *fakeIssuer) sign(t *testing.T, header, claims map[string]any) string {
	t.Helper()
	now := time.Now()
	c := jwt.MapClaims{
		"iss": f.URL, "sub": "user-1", "aud": "gatehouse", "client_id": "gatehouse",
		"exp": now.Add(15 * time.Minute).Unix(), "iat": now.Unix(), "nbf": now.Unix(),
		"jti": rand.Text(), "scope": "me", "preferred_username": "alice",
	}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	alg, _ := header["alg"].(string)
	if alg == "" {
		alg = "RS256"
	}
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(alg), c)
	tok.Header["typ"] = "at+jwt"
	tok.Header["kid"] = f.kid
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	signed, err := tok.SignedString(f.key)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}
