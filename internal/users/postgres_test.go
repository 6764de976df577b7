package users

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// postgresTestURL is the server the PostgreSQL tests use. Without one they
// skip, except in CI, where a missing database is a failure.
func postgresTestURL(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("GATEHOUSE_TEST_POSTGRES_URL")
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("GATEHOUSE_TEST_POSTGRES_URL is not set: the PostgreSQL store tests must run in CI")
		}
		t.Skip("set GATEHOUSE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable to run the PostgreSQL store tests")
	}
	return dsn
}

// postgresAdmin connects to the test server as given (no search_path of
// ours) and closes the connection after the test.
func postgresAdmin(t *testing.T) *pgx.Conn {
	t.Helper()
	base := postgresTestURL(t)
	conn, err := pgx.Connect(t.Context(), base)
	if err != nil {
		t.Fatalf("connecting to GATEHOUSE_TEST_POSTGRES_URL: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// newPostgresSchema creates a schema of the test's own, with a random
// name, drops it at cleanup, and returns a DSN whose connections use it
// (search_path) and carry its name as application_name, by which tests
// find the store's sessions in pg_stat_activity.
func newPostgresSchema(t *testing.T) (dsn, schema string) {
	t.Helper()
	base := postgresTestURL(t)
	b := make([]byte, 8)
	rand.Read(b)
	schema = "gatehouse_test_" + hex.EncodeToString(b)
	ident := pgx.Identifier{schema}.Sanitize()

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connecting to GATEHOUSE_TEST_POSTGRES_URL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+ident); err != nil {
		t.Fatalf("CREATE SCHEMA %s: %v", ident, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("DROP SCHEMA %s: %v", ident, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+ident+" CASCADE"); err != nil {
			t.Errorf("DROP SCHEMA %s: %v", ident, err)
		}
	})

	if u, err := url.Parse(base); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		q.Set("search_path", schema)
		q.Set("application_name", schema)
		u.RawQuery = q.Encode()
		return u.String(), schema
	}
	// A key=value DSN: unknown keys are runtime parameters too.
	return base + " search_path=" + schema + " application_name=" + schema, schema
}

// openPostgresAt opens a store on dsn and closes it after the test.
func openPostgresAt(t *testing.T, dsn string) *postgresStore {
	t.Helper()
	s, err := OpenPostgres(t.Context(), dsn, PostgresOptions{})
	if err != nil {
		t.Fatalf("OpenPostgres = %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return s.(*postgresStore)
}

// openTestPostgres opens a store on a fresh schema of its own.
func openTestPostgres(t *testing.T) Store {
	t.Helper()
	dsn, _ := newPostgresSchema(t)
	return openPostgresAt(t, dsn)
}

func TestPostgresStore(t *testing.T) {
	postgresTestURL(t)
	runStoreTests(t, openTestPostgres)
}

// schemaMigrations returns how many rows, and distinct versions,
// schema_migrations has.
func schemaMigrations(t *testing.T, s *postgresStore) (rows, versions int) {
	t.Helper()
	err := s.pool.QueryRow(t.Context(),
		`SELECT count(*), count(DISTINCT version) FROM schema_migrations`).Scan(&rows, &versions)
	if err != nil {
		t.Fatalf("reading schema_migrations: %v", err)
	}
	return rows, versions
}

// Replicas starting together against an empty schema: the advisory lock
// makes them take turns, so every one succeeds and each migration is
// applied once. Without it, concurrent CREATE TABLEs fail.
func TestOpenPostgres_concurrent_openers_of_a_new_schema_apply_each_migration_once(t *testing.T) {
	dsn, _ := newPostgresSchema(t)
	ms, err := loadMigrations(postgresMigrations, "postgres")
	if err != nil {
		t.Fatalf("loadMigrations(postgres) = %v", err)
	}
	const n = 4
	stores := make([]Store, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = OpenPostgres(context.Background(), dsn, PostgresOptions{MaxConns: 2})
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("OpenPostgres #%d = %v", i, err)
			continue
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	if t.Failed() {
		return
	}
	if rows, versions := schemaMigrations(t, stores[0].(*postgresStore)); rows != len(ms) || versions != len(ms) {
		t.Errorf("schema_migrations has %d rows (%d versions), want %d, one per migration", rows, versions, len(ms))
	}
}

func TestOpenPostgres_reopen_keeps_data_and_applies_no_migration_twice(t *testing.T) {
	dsn, _ := newPostgresSchema(t)
	first, err := OpenPostgres(t.Context(), dsn, PostgresOptions{})
	if err != nil {
		t.Fatalf("OpenPostgres = %v", err)
	}
	u := testUser(t, "alice")
	mustCreate(t, first, u)
	first.Close()

	second := openPostgresAt(t, dsn)
	if got := mustGet(t, second, "alice"); got.ID != u.ID {
		t.Errorf("after reopen alice has ID %q, want %q", got.ID, u.ID)
	}
	ms, err := loadMigrations(postgresMigrations, "postgres")
	if err != nil {
		t.Fatalf("loadMigrations(postgres) = %v", err)
	}
	if rows, versions := schemaMigrations(t, second); rows != len(ms) || versions != len(ms) {
		t.Errorf("schema_migrations has %d rows (%d versions), want %d", rows, versions, len(ms))
	}
}

func TestOpenPostgres_refuses_a_newer_schema(t *testing.T) {
	dsn, _ := newPostgresSchema(t)
	s := openPostgresAt(t, dsn)
	if _, err := s.pool.Exec(t.Context(),
		`INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 0)`); err != nil {
		t.Fatalf("inserting a future migration: %v", err)
	}
	if s, err := OpenPostgres(t.Context(), dsn, PostgresOptions{}); err == nil {
		s.Close()
		t.Errorf("OpenPostgres on a schema from the future = nil error, want one")
	}
}

// The DSN's search_path decides where the tables live: they are created
// in, and read from, the test's own schema.
func TestOpenPostgres_creates_the_tables_in_the_search_path_schema(t *testing.T) {
	dsn, schema := newPostgresSchema(t)
	openPostgresAt(t, dsn)
	admin := postgresAdmin(t)
	rows, err := admin.Query(t.Context(), `
		SELECT table_name FROM information_schema.tables
		WHERE table_schema = $1
		ORDER BY table_name`, schema)
	if err != nil {
		t.Fatalf("listing %s's tables: %v", schema, err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("listing %s's tables: %v", schema, err)
	}
	want := []string{"access_tokens", "clients", "login_attempts", "refresh_tokens", "schema_migrations", "signing_keys", "users"}
	if !slices.Equal(got, want) {
		t.Errorf("tables in schema %s = %v, want %v", schema, got, want)
	}
	var partial bool
	err = admin.QueryRow(t.Context(), `
		SELECT indexdef LIKE '%WHERE (revoked_at <> 0)%' FROM pg_indexes
		WHERE schemaname = $1 AND indexname = 'access_tokens_revoked_expires_at'`, schema).Scan(&partial)
	if err != nil || !partial {
		t.Errorf("partial index access_tokens_revoked_expires_at on revoked rows: found %v, %v; want it", partial, err)
	}
}

func TestOpenPostgres_applies_the_options(t *testing.T) {
	dsn, _ := newPostgresSchema(t)
	s, err := OpenPostgres(t.Context(), dsn, PostgresOptions{MaxConns: 3, ConnectTimeout: 7 * time.Second})
	if err != nil {
		t.Fatalf("OpenPostgres = %v", err)
	}
	defer s.Close()
	cfg := s.(*postgresStore).pool.Config()
	if cfg.MaxConns != 3 || cfg.ConnConfig.ConnectTimeout != 7*time.Second {
		t.Errorf("pool MaxConns, ConnectTimeout = %d, %v; want 3, 7s", cfg.MaxConns, cfg.ConnConfig.ConnectTimeout)
	}
}

// These need no server: the options and the DSN are checked first, and
// nothing listens on port 1 of the loopback address.
func TestOpenPostgres_rejects_bad_options_and_keeps_the_password_out_of_errors(t *testing.T) {
	const secret = "s3cret-pw"
	tests := []struct {
		name string
		dsn  string
		opts PostgresOptions
	}{
		{"negative_max_conns", "postgres://u:" + secret + "@127.0.0.1:1/db", PostgresOptions{MaxConns: -1}},
		{"negative_connect_timeout", "postgres://u:" + secret + "@127.0.0.1:1/db", PostgresOptions{ConnectTimeout: -time.Second}},
		{"malformed_url", "postgres://u:" + secret + "@127.0.0.1:notaport/db", PostgresOptions{}},
		{"malformed_key_value", "host=127.0.0.1 port=1 password='" + secret, PostgresOptions{}}, // unterminated quote
		{"unreachable_server", "postgres://u:" + secret + "@127.0.0.1:1/db?sslmode=disable", PostgresOptions{ConnectTimeout: 5 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := OpenPostgres(t.Context(), tt.dsn, tt.opts)
			if err == nil {
				s.Close()
				t.Fatalf("OpenPostgres(%s) = nil error, want one", tt.name)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("OpenPostgres(%s) error %q quotes the password", tt.name, err)
			}
		})
	}
}

func TestTranslatePostgres_maps_driver_errors_to_sentinels(t *testing.T) {
	unique := func(constraint string) error {
		return fmt.Errorf("exec: %w", &pgconn.PgError{Code: "23505", ConstraintName: constraint})
	}
	tests := []struct {
		name string
		err  error
		want error // nil: a wrapped, plain error
	}{
		{"no_rows", pgx.ErrNoRows, ErrNotFound},
		{"username_taken", unique("users_username_key"), ErrUsernameTaken},
		{"client_id_taken", unique("clients_pkey"), ErrClientExists},
		{"user_id_taken", unique("users_pkey"), nil},
		{"refresh_token_hash_taken", unique("refresh_tokens_pkey"), nil},
		{"other_error_on_a_named_constraint", &pgconn.PgError{Code: "23502", ConstraintName: "users_username_key"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := translatePostgres("op", tt.err)
			if tt.want != nil {
				if got != tt.want {
					t.Errorf("translatePostgres(%v) = %v, want %v", tt.err, got, tt.want)
				}
				return
			}
			for _, sentinel := range []error{ErrNotFound, ErrUsernameTaken, ErrClientExists} {
				if errors.Is(got, sentinel) {
					t.Errorf("translatePostgres(%v) = %v, want no sentinel", tt.err, got)
				}
			}
			if !errors.Is(got, tt.err) {
				t.Errorf("translatePostgres(%v) = %v, want it wrapped", tt.err, got)
			}
		})
	}
	if got := translatePostgres("op", nil); got != nil {
		t.Errorf("translatePostgres(nil) = %v, want nil", got)
	}
}

// The unique violations a real server reports carry the constraint names
// translatePostgres expects.
func TestPostgresStore_constraint_violations_map_to_sentinels(t *testing.T) {
	ctx := t.Context()
	s := openTestPostgres(t)
	alice := testUser(t, "alice")
	mustCreate(t, s, alice)
	mustCreate(t, s, testUser(t, "bob"))
	if err := s.CreateClient(ctx, &Client{ID: "web", CreatedAt: tokenNow}); err != nil {
		t.Fatalf("CreateClient(web) = %v", err)
	}
	mustCreateRefreshToken(t, s, newRefreshToken(t, "h1", "fam", alice.ID, "web"))
	mustRecordAccessToken(t, s, newAccessToken(t, "at1", alice.ID, "fam", "web"))
	if err := s.CreateSigningKey(ctx, SigningKey{ID: "k1", Algorithm: "EdDSA", Private: []byte("p")}); err != nil {
		t.Fatalf("CreateSigningKey(k1) = %v", err)
	}

	sameID := testUser(t, "carol")
	sameID.ID = alice.ID
	tests := []struct {
		name string
		op   func() error
		want error // nil: an error that is none of the sentinels
	}{
		{"duplicate_username", func() error { return s.CreateUser(ctx, testUser(t, "alice")) }, ErrUsernameTaken},
		{"rename_onto_a_taken_username", func() error {
			_, err := s.UpdateUser(ctx, "bob", func(u *User) error { u.Username = "alice"; return nil })
			return err
		}, ErrUsernameTaken},
		{"duplicate_client_id", func() error { return s.CreateClient(ctx, &Client{ID: "web", CreatedAt: tokenNow}) }, ErrClientExists},
		{"duplicate_user_id", func() error { return s.CreateUser(ctx, sameID) }, nil},
		{"duplicate_refresh_token_hash", func() error {
			return s.CreateRefreshToken(ctx, newRefreshToken(t, "h1", "fam2", alice.ID, "web"))
		}, nil},
		{"duplicate_access_token_jti", func() error {
			return s.RecordAccessToken(ctx, newAccessToken(t, "at1", alice.ID, "", "web"))
		}, nil},
		{"duplicate_signing_key_id", func() error {
			return s.CreateSigningKey(ctx, SigningKey{ID: "k1", Algorithm: "EdDSA", Private: []byte("q")})
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op()
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Errorf("%s = %v, want %v", tt.name, err, tt.want)
				}
				return
			}
			if err == nil || errors.Is(err, ErrUsernameTaken) || errors.Is(err, ErrClientExists) || errors.Is(err, ErrNotFound) {
				t.Errorf("%s = %v, want a plain error", tt.name, err)
			}
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "23505" {
				t.Errorf("%s = %v, want the unique violation wrapped", tt.name, err)
			}
		})
	}
}

// Two stores on one schema, each with its own pool, stand in for two
// server processes presenting the same refresh token: the row lock, not an
// in-process mutex, must let exactly one of them rotate it.
func TestPostgresStore_two_instances_rotate_a_token_once(t *testing.T) {
	dsn, _ := newPostgresSchema(t)
	a, b := openPostgresAt(t, dsn), openPostgresAt(t, dsn)
	stores := []Store{a, b}
	const perStore = 10
	warmPool(t, a)
	warmPool(t, b)
	mustCreateRefreshToken(t, a, newRefreshToken(t, "h1", "fam", "alice-id", "web"))
	at := tokenNow.Add(time.Minute)
	errs := make([]error, 2*perStore)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() {
			<-start
			_, errs[i] = stores[i%2].RotateRefreshToken(context.Background(), "h1", at, successor(fmt.Sprintf("next-%02d", i), at))
		})
	}
	close(start)
	wg.Wait()
	var won []int
	for i, err := range errs {
		switch {
		case err == nil:
			won = append(won, i)
		case !errors.Is(err, ErrTokenReused):
			t.Errorf("RotateRefreshToken #%d (store %d) = %v, want nil or ErrTokenReused", i, i%2, err)
		}
	}
	if len(won) != 1 {
		t.Fatalf("%d of %d rotations across two instances succeeded (%v), want exactly 1", len(won), len(errs), won)
	}
	winner := mustRefreshToken(t, stores[1], fmt.Sprintf("next-%02d", won[0]))
	if winner.RevokedAt.IsZero() {
		t.Errorf("winner's successor not revoked after %d reuses", len(errs)-1)
	}
}

// warmPool opens as many connections in s's pool as it may hold and
// returns them to it, so that concurrent calls start together rather than
// one connection setup after another.
func warmPool(t *testing.T, s *postgresStore) {
	t.Helper()
	var conns []*pgxpool.Conn
	for range s.pool.Config().MaxConns {
		c, err := s.pool.Acquire(t.Context())
		if err != nil {
			t.Fatalf("warming the pool: %v", err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Release()
	}
}

// Two stores on one schema stand in for two processes starting at once
// with no key: the advisory lock must make them agree on one.
func TestPostgresStore_two_instances_share_one_signing_key(t *testing.T) {
	dsn, _ := newPostgresSchema(t)
	a, b := openPostgresAt(t, dsn), openPostgresAt(t, dsn)
	stores := []Store{a, b}
	const perStore = 5
	warmPool(t, a)
	warmPool(t, b)
	var created atomic.Int32
	ids := make([]string, 2*perStore)
	errs := make([]error, len(ids))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			<-start
			k, err := stores[i%2].EnsureSigningKey(context.Background(), "ES256", func() (SigningKey, error) {
				created.Add(1)
				return SigningKey{Private: []byte("secret")}, nil
			})
			ids[i], errs[i] = k.ID, err
		})
	}
	close(start)
	wg.Wait()
	for i := range ids {
		if errs[i] != nil {
			t.Fatalf("EnsureSigningKey #%d = %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Errorf("EnsureSigningKey #%d returned key %q, #0 returned %q", i, ids[i], ids[0])
		}
	}
	if got := created.Load(); got != 1 {
		t.Errorf("create called %d times across two instances, want 1", got)
	}
}

// waitForLockWait waits until a session of the test's schema (by
// application_name) is blocked on a lock, e.g. a row lock.
func waitForLockWait(t *testing.T, admin *pgx.Conn, schema string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting int
		err := admin.QueryRow(t.Context(), `
			SELECT count(*) FROM pg_stat_activity
			WHERE application_name = $1 AND wait_event_type = 'Lock'`, schema).Scan(&waiting)
		if err != nil {
			t.Fatalf("reading pg_stat_activity: %v", err)
		}
		if waiting > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no session of %s waited for a lock within 10s", schema)
		}
		select {
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// A family revocation that meets a rotation in flight must revoke the
// successor as well, though the successor is committed after the
// revocation's UPDATE took its snapshot (READ COMMITTED): otherwise the
// attacker's token would survive reuse detection. The rotation is played
// here statement by statement, as RotateRefreshToken's transaction runs
// it, so that it can hold the row lock while the revocation waits.
func TestPostgresStore_revocation_waiting_on_a_rotation_revokes_its_successor(t *testing.T) {
	ctx := t.Context()
	dsn, schema := newPostgresSchema(t)
	s := openPostgresAt(t, dsn)
	admin := postgresAdmin(t)
	mustCreateRefreshToken(t, s, newRefreshToken(t, "h1", "fam", "alice-id", "web"))
	at := tokenNow.Add(time.Minute)

	rotation, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatalf("BEGIN: %v", err)
	}
	defer rotation.Rollback(context.Background())
	if _, err := rotation.Exec(ctx, `SELECT hash FROM refresh_tokens WHERE hash = 'h1' FOR UPDATE`); err != nil {
		t.Fatalf("locking h1: %v", err)
	}
	revoked := make(chan error, 1)
	go func() { revoked <- s.RevokeRefreshFamily(context.Background(), "fam", at) }()
	waitForLockWait(t, admin, schema) // the revocation's UPDATE waits on h1
	next, err := encodeRefreshToken(newRefreshToken(t, "h2", "fam", "alice-id", "web"))
	if err != nil {
		t.Fatalf("encoding h2: %v", err)
	}
	if _, err := rotation.Exec(ctx, `UPDATE refresh_tokens SET rotated_at = $1 WHERE hash = 'h1'`, at.UnixNano()); err != nil {
		t.Fatalf("rotating h1: %v", err)
	}
	if _, err := rotation.Exec(ctx,
		`INSERT INTO refresh_tokens (`+postgresRefreshTokenColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		next.args()...); err != nil {
		t.Fatalf("inserting the successor h2: %v", err)
	}
	if err := rotation.Commit(ctx); err != nil {
		t.Fatalf("COMMIT: %v", err)
	}
	select {
	case err := <-revoked:
		if err != nil {
			t.Fatalf("RevokeRefreshFamily(fam) = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RevokeRefreshFamily(fam) still waiting 10s after the rotation committed")
	}
	for _, hash := range []string{"h1", "h2"} {
		if got := mustRefreshToken(t, s, hash); !got.RevokedAt.Equal(at) {
			t.Errorf("RefreshToken(%s).RevokedAt = %v, want %v", hash, got.RevokedAt, at)
		}
	}
	if _, err := s.RotateRefreshToken(ctx, "h2", at, noRotation(t)); !errors.Is(err, ErrTokenInactive) {
		t.Errorf("RotateRefreshToken(successor h2) after the revocation = %v, want ErrTokenInactive", err)
	}
}

// The token endpoint's rotation fn reads the user from the store. With
// more rotations in flight than the pool has connections, none may hold
// a connection while its fn waits for another one: every fn here waits
// until all of them have started, which only a store holding no
// connection across fn lets happen.
func TestPostgresStore_rotation_fns_may_read_the_store_with_more_rotations_than_connections(t *testing.T) {
	dsn, _ := newPostgresSchema(t)
	st, err := OpenPostgres(t.Context(), dsn, PostgresOptions{MaxConns: 2})
	if err != nil {
		t.Fatalf("OpenPostgres = %v", err)
	}
	t.Cleanup(func() { st.Close() })
	u := testUser(t, "alice")
	mustCreate(t, st, u)
	const n = 6
	for i := range n {
		mustCreateRefreshToken(t, st, newRefreshToken(t, fmt.Sprintf("h%d", i), fmt.Sprintf("fam%d", i), u.ID, "web"))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var entered atomic.Int32
	allIn := make(chan struct{})
	at := tokenNow.Add(time.Minute)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = st.RotateRefreshToken(ctx, fmt.Sprintf("h%d", i), at, func(old *RefreshToken) (*RefreshToken, error) {
				if entered.Add(1) == n {
					close(allIn)
				}
				select {
				case <-allIn:
				case <-ctx.Done():
					return nil, fmt.Errorf("only %d of %d rotation fns started: %w", entered.Load(), n, ctx.Err())
				}
				if _, err := st.UserByID(ctx, old.UserID); err != nil {
					return nil, err
				}
				return successor(fmt.Sprintf("next%d", i), at)(old)
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("RotateRefreshToken(h%d) = %v", i, err)
		}
	}
}

// listening is a Listen running for a test.
type listening struct {
	kinds  chan string   // what fn was called with
	exited chan struct{} // closed when Listen has returned err
	err    error
	cancel context.CancelFunc
}

// listenOn runs s.Listen until the test ends and waits until it hears
// notifications: a probe sent through probe repeats until one arrives, so
// no announcement made afterwards can be missed.
func listenOn(t *testing.T, s, probe *postgresStore) *listening {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &listening{kinds: make(chan string, 256), exited: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(l.exited)
		l.err = s.Listen(ctx, func(kind string) {
			select {
			case l.kinds <- kind:
			case <-ctx.Done():
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-l.exited:
		case <-time.After(10 * time.Second):
			t.Error("Listen did not return within 10s of its context ending")
		}
	})

	const probeKind = "probe"
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(10 * time.Second)
	for {
		if _, err := probe.pool.Exec(t.Context(), `SELECT pg_notify($1, $2)`, postgresChangesChannel, probeKind); err != nil {
			t.Fatalf("sending a probe notification: %v", err)
		}
		select {
		case kind := <-l.kinds:
			if kind == probeKind {
				return l
			}
		case <-l.exited:
			t.Fatalf("Listen returned %v before hearing a probe", l.err)
		case <-tick.C:
		case <-timeout:
			t.Fatal("Listen heard no probe notification within 10s")
		}
	}
}

// drain discards what the listener heard so far.
func (l *listening) drain() {
	for {
		select {
		case <-l.kinds:
		default:
			return
		}
	}
}

// expect waits up to a second for the listener to hear kind. Other kinds
// (late probes, or announcements of other tests sharing the server's
// channel) are skipped.
func (l *listening) expect(t *testing.T, kind, after string) {
	t.Helper()
	timeout := time.After(time.Second)
	for {
		select {
		case got := <-l.kinds:
			if got == kind {
				return
			}
		case <-l.exited:
			t.Fatalf("Listen returned %v while waiting for %q after %s", l.err, kind, after)
		case <-timeout:
			t.Fatalf("no %q notification within 1s after %s", kind, after)
		}
	}
}

// A revocation through one instance reaches Listen on another at once:
// that is how replicas update their deny-lists between resyncs.
func TestPostgresStore_revocation_reaches_Listen_on_another_instance(t *testing.T) {
	dsn, _ := newPostgresSchema(t)
	listener, writer := openPostgresAt(t, dsn), openPostgresAt(t, dsn)
	mustRecordAccessToken(t, writer, newAccessToken(t, "at1", "alice-id", "", "web"))
	l := listenOn(t, listener, writer)
	l.drain()

	if err := writer.RevokeAccessToken(t.Context(), "at1", tokenNow); err != nil {
		t.Fatalf("RevokeAccessToken(at1) = %v", err)
	}
	l.expect(t, ChangeRevocations, "RevokeAccessToken on another instance")
	// The announcement follows the commit: the listener can read it.
	if got := revokedJTIs(t, listener, tokenNow); !slices.Equal(got, []string{"at1"}) {
		t.Errorf("RevokedAccessTokens() on the listening instance = %v, want [at1]", got)
	}
}

// Every method that revokes tokens or creates or deletes a signing key
// announces it (ChangeListener).
func TestPostgresStore_announces_revocations_and_key_changes(t *testing.T) {
	dsn, _ := newPostgresSchema(t)
	listener, s := openPostgresAt(t, dsn), openPostgresAt(t, dsn)
	l := listenOn(t, listener, s)
	ctx := t.Context()

	tests := []struct {
		name string
		op   func() error
		want string
	}{
		{"EnsureSigningKey_creating_a_key", func() error {
			_, err := s.EnsureSigningKey(ctx, "EdDSA", func() (SigningKey, error) {
				return SigningKey{ID: "k1", Private: []byte("p")}, nil
			})
			return err
		}, ChangeKeys},
		{"CreateSigningKey", func() error {
			return s.CreateSigningKey(ctx, SigningKey{ID: "k2", Algorithm: "EdDSA", Private: []byte("q")})
		}, ChangeKeys},
		{"DeleteSigningKey", func() error { return s.DeleteSigningKey(ctx, "k1") }, ChangeKeys},
		{"RevokeAccessToken", func() error {
			mustRecordAccessToken(t, s, newAccessToken(t, "at1", "alice-id", "", "web"))
			return s.RevokeAccessToken(ctx, "at1", tokenNow)
		}, ChangeRevocations},
		{"RevokeRefreshFamily", func() error {
			mustCreateRefreshToken(t, s, newRefreshToken(t, "fam-rt", "fam", "alice-id", "web"))
			return s.RevokeRefreshFamily(ctx, "fam", tokenNow)
		}, ChangeRevocations},
		{"RevokeUserTokens", func() error {
			mustCreateRefreshToken(t, s, newRefreshToken(t, "bob-rt", "bob-fam", "bob-id", "web"))
			return s.RevokeUserTokens(ctx, "bob-id", tokenNow)
		}, ChangeRevocations},
		{"RevokeClientTokens", func() error {
			mustRecordAccessToken(t, s, newAccessToken(t, "cli-at", "carol-id", "", "cli"))
			return s.RevokeClientTokens(ctx, "cli", tokenNow)
		}, ChangeRevocations},
		{"RotateRefreshToken_on_reuse", func() error {
			mustCreateRefreshToken(t, s, newRefreshToken(t, "r1", "reuse-fam", "dave-id", "web"))
			mustRotate(t, s, "r1", "r2", tokenNow.Add(time.Minute))
			_, err := s.RotateRefreshToken(ctx, "r1", tokenNow.Add(2*time.Minute), noRotation(t))
			if !errors.Is(err, ErrTokenReused) {
				return fmt.Errorf("RotateRefreshToken(reused r1) = %v, want ErrTokenReused", err)
			}
			return nil
		}, ChangeRevocations},
	}
	for _, tt := range tests {
		l.drain()
		if err := tt.op(); err != nil {
			t.Fatalf("%s = %v", tt.name, err)
		}
		l.expect(t, tt.want, tt.name)
	}
}

func TestPostgresStore_Listen_returns_nil_when_its_context_ends(t *testing.T) {
	dsn, _ := newPostgresSchema(t)
	s := openPostgresAt(t, dsn)
	l := listenOn(t, s, s)
	l.cancel()
	select {
	case <-l.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("Listen did not return within 10s of its context ending")
	}
	if l.err != nil {
		t.Errorf("Listen after its context ended = %v, want nil", l.err)
	}
	// Listen's connection left the pool for good: the store still works.
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping() after Listen = %v", err)
	}
}

func TestPostgresStore_Listen_returns_the_error_when_its_connection_fails(t *testing.T) {
	dsn, schema := newPostgresSchema(t)
	s := openPostgresAt(t, dsn)
	l := listenOn(t, s, s)
	admin := postgresAdmin(t)
	var terminated int
	err := admin.QueryRow(t.Context(), `
		SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1 AND query LIKE 'LISTEN %'`, schema).Scan(&terminated)
	if err != nil || terminated != 1 {
		t.Fatalf("terminating the listening session: %d terminated, %v; want 1", terminated, err)
	}
	select {
	case <-l.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("Listen did not return within 10s of its connection failing")
	}
	if l.err == nil {
		t.Errorf("Listen after its connection was terminated = nil, want the error")
	}
	// Listening again works (the caller's retry).
	listenOn(t, s, s)
}
