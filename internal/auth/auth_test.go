package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
	"github.com/gatehouse/gatehouse/internal/storage/sqlstore"
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
	store       storage.Store
	users       *users.Service
	clients     *Clients
	keys        *Keys
	issuer      *Issuer
	validator   *Validator
	revocations *Revocations
	view        *UserView
	now         time.Time
}

// openTestStore opens a SQLite store in a fresh directory, closed after
// the test.
func openTestStore(t testing.TB) storage.Store {
	t.Helper()
	store, err := sqlstore.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "gatehouse.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

func newFixture(t *testing.T, alg string, secret []byte) *fixture {
	t.Helper()
	ctx := context.Background()
	store := openTestStore(t)
	f := &fixture{store: store, now: time.Now().UTC().Truncate(time.Second)}
	clock := func() time.Time { return f.now }
	f.view = NewUserView(store, 0)
	f.revocations = NewRevocations(store, RevocationsConfig{Users: f.view, Now: clock})
	sync := func(ctx context.Context) { _ = f.revocations.Sync(ctx) }
	svc, err := users.NewService(store, users.Options{
		Hasher:      users.Hasher{Memory: 64, Iterations: 1, Parallelism: 1},
		Scopes:      testScopes,
		AfterRevoke: sync,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.users = svc
	f.clients = NewClients(store, testScopes, clock, sync)
	keys, err := LoadKeys(ctx, store, KeyConfig{Algorithm: alg, HMACSecret: secret, TokenTTL: testTTL, Leeway: DefaultLeeway, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	f.keys = keys
	refresh, err := LoadRefreshKey(ctx, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.revocations.Load(ctx); err != nil {
		t.Fatal(err)
	}
	f.validator = NewValidator(keys, ValidatorConfig{Issuer: testIssuer, Audience: testAudience, Leeway: DefaultLeeway, Now: clock, Revocations: f.revocations, Users: f.view, Clients: f.clients})
	f.issuer = NewIssuer(IssuerDeps{Users: svc, Clients: f.clients, Sessions: store, Keys: keys, Refresh: refresh, Validator: f.validator, Revocations: f.revocations},
		IssuerConfig{Issuer: testIssuer, Audience: testAudience, TTL: testTTL, Scopes: testScopes, Now: clock, ReuseWindow: -1})
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
