package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/users"
)

var testScopes = []string{"me", "tokens:introspect", "users:read", "users:write"}

const (
	testIssuer   = "https://auth.example.test"
	testAudience = "api.example.test"
	testTTL      = 15 * time.Minute
)

// fixture is a token endpoint and validator over a real SQLite store.
type fixture struct {
	store     users.Store
	users     *users.Service
	keys      *Keys
	issuer    *Issuer
	validator *Validator
	deny      *DenyList
	now       time.Time
}

func newFixture(t *testing.T, alg string, secret []byte) *fixture {
	t.Helper()
	ctx := context.Background()
	store, err := users.OpenSQLite(ctx, filepath.Join(t.TempDir(), "gatehouse.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	f := &fixture{store: store, now: time.Now().UTC().Truncate(time.Second)}
	clock := func() time.Time { return f.now }
	f.deny = NewDenyList(store, clock)
	svc, err := users.NewService(store, users.Options{
		Hasher:      users.Hasher{Memory: 64, Iterations: 1, Parallelism: 1},
		Scopes:      testScopes,
		AfterRevoke: func(ctx context.Context) { _ = f.deny.Sync(ctx) },
	})
	if err != nil {
		t.Fatal(err)
	}
	f.users = svc
	keys, err := LoadKeys(ctx, store, KeyConfig{Algorithm: alg, HMACSecret: secret, TokenTTL: testTTL, Leeway: DefaultLeeway, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	f.keys = keys
	f.validator = NewValidator(keys, ValidatorConfig{Issuer: testIssuer, Audience: testAudience, Leeway: DefaultLeeway, Now: clock, DenyList: f.deny})
	f.issuer = NewIssuer(IssuerDeps{Users: svc, Clients: svc, Tokens: store, Keys: keys, Validator: f.validator, DenyList: f.deny},
		IssuerConfig{Issuer: testIssuer, Audience: testAudience, TTL: testTTL, Scopes: testScopes, Now: clock})
	return f
}

func (f *fixture) createUser(t *testing.T, name, password string, scopes ...string) *users.User {
	t.Helper()
	u, err := f.users.Create(context.Background(), users.CLIActor(), users.NewUser{Username: name, Password: password, Scopes: scopes})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return u
}

func (f *fixture) login(t *testing.T, name, password, scope string) string {
	t.Helper()
	resp, err := f.issuer.Token(context.Background(), TokenRequest{GrantType: GrantPassword, Username: name, Password: password, Scope: scope})
	if err != nil {
		t.Fatalf("login %s: %v", name, err)
	}
	return resp.AccessToken
}

// decodeSegment returns the JSON object of a JWT header or payload.
func decodeSegment(t *testing.T, token string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d segments, want 3", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func wantOAuthError(t *testing.T, err error, code string, status int) *Error {
	t.Helper()
	e, ok := err.(*Error)
	if !ok {
		t.Fatalf("got error %v (%T), want *auth.Error %s", err, err, code)
	}
	if e.Code != code || e.Status != status {
		t.Fatalf("got %s/%d (%s), want %s/%d", e.Code, e.Status, e.Description, code, status)
	}
	return e
}
