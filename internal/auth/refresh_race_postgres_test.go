package auth

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
	"github.com/gatehouse/gatehouse/internal/storage/sqlstore"
	"github.com/gatehouse/gatehouse/internal/storage/storetest"
	"github.com/gatehouse/gatehouse/internal/users"
)

// replicaIssuer is one replica's token endpoint over store.
func replicaIssuer(t *testing.T, store storage.Store) *Issuer {
	t.Helper()
	ctx := context.Background()
	svc, err := users.NewService(store, users.Options{Hasher: users.Hasher{Memory: 64, Iterations: 1, Parallelism: 1}, Scopes: testScopes})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := LoadKeys(ctx, store, KeyConfig{Algorithm: AlgEdDSA, TokenTTL: testTTL, Leeway: DefaultLeeway})
	if err != nil {
		t.Fatal(err)
	}
	refresh, err := LoadRefreshKey(ctx, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	rev := NewRevocations(store, RevocationsConfig{})
	if err := rev.Load(ctx); err != nil {
		t.Fatal(err)
	}
	v := NewValidator(keys, ValidatorConfig{Issuer: testIssuer, Audience: testAudience, Leeway: DefaultLeeway, Revocations: rev})
	return NewIssuer(IssuerDeps{Users: svc, Clients: NewClients(store, testScopes, nil, nil), Sessions: store, Keys: keys, Refresh: refresh, Validator: v, Revocations: rev},
		IssuerConfig{Issuer: testIssuer, Audience: testAudience, TTL: testTTL, Scopes: testScopes, ReuseWindow: -1})
}

func TestRefreshGrant_rfc9700_4_14_2_50_concurrent_refreshes_split_across_two_replicas_converge(t *testing.T) {
	dsn, _ := storetest.PostgresSchema(t)
	ctx := context.Background()
	open := func() storage.Store {
		s, err := sqlstore.OpenPostgres(ctx, dsn, sqlstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open(), open()
	ia, ib := replicaIssuer(t, a), replicaIssuer(t, b)
	if _, err := ia.Users.(*users.Service).Create(ctx, users.CLIActor(), users.NewUser{Username: "dave", Password: "correct horse", Scopes: []string{"me"}}); err != nil {
		t.Fatal(err)
	}
	login, err := ia.Token(ctx, TokenRequest{GrantType: GrantPassword, Username: "dave", Password: "correct horse"})
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		children = map[string]int{}
	)
	for i := range n {
		issuer := ia
		if i%2 == 1 {
			issuer = ib
		}
		wg.Go(func() {
			r, err := issuer.Token(ctx, TokenRequest{GrantType: GrantRefreshToken, RefreshToken: login.RefreshToken})
			if err != nil {
				t.Errorf("refresh %d: %v", i, err)
				return
			}
			mu.Lock()
			children[r.RefreshToken]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(children) != 1 {
		t.Fatalf("%d concurrent refreshes on two replicas gave %d different refresh tokens, want 1", n, len(children))
	}
	sid, _, _, _ := parseRefreshToken(login.RefreshToken)
	s, err := a.Session(ctx, sid)
	if err != nil || s.Generation != 1 || !s.RevokedAt.IsZero() {
		t.Fatalf("session after the race = %+v, %v; want one live current generation (1)", s, err)
	}
	// Past the window the parent is reuse and ends the session.
	ia.cfg.Now = func() time.Time { return time.Now().Add(DefaultReuseWindow) }
	if _, err := ia.Token(ctx, TokenRequest{GrantType: GrantRefreshToken, RefreshToken: login.RefreshToken}); err == nil {
		t.Fatal("the parent after the window refreshed")
	}
	if s, _ := a.Session(ctx, sid); s.RevokedAt.IsZero() {
		t.Error("reuse after the window left the session live")
	}
}
