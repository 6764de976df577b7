package storage_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// fake is a Store of func fields: a nil field answers with zero values and
// err (nil unless set), and every call is counted by method name.
type fake struct {
	err   error
	calls []string

	createUser     func(ctx context.Context, u *storage.User) error
	updateUser     func(ctx context.Context, username string, fn func(*storage.User) error) (*storage.User, error)
	ping           func(ctx context.Context) error
	updateSession  func(ctx context.Context, id string, fn func(*storage.Session, *storage.User) error) (*storage.Session, *storage.User, error)
	userByUsername func(ctx context.Context, username string) (*storage.User, error)
}

func (f *fake) call(name string) error { f.calls = append(f.calls, name); return f.err }

func (f *fake) CreateUser(ctx context.Context, u *storage.User) error {
	if f.createUser != nil {
		f.calls = append(f.calls, "CreateUser")
		return f.createUser(ctx, u)
	}
	return f.call("CreateUser")
}
func (f *fake) CreateUsers(context.Context, []*storage.User) error { return f.call("CreateUsers") }
func (f *fake) UserByUsername(ctx context.Context, username string) (*storage.User, error) {
	if f.userByUsername != nil {
		f.calls = append(f.calls, "UserByUsername")
		return f.userByUsername(ctx, username)
	}
	return nil, f.call("UserByUsername")
}
func (f *fake) UserByID(context.Context, string) (*storage.User, error) {
	return nil, f.call("UserByID")
}
func (f *fake) ListUsers(context.Context, string, int) ([]*storage.User, error) {
	return nil, f.call("ListUsers")
}
func (f *fake) CountUsers(context.Context) (int, error) { return 0, f.call("CountUsers") }
func (f *fake) CountEnabledWithScope(context.Context, string) (int, error) {
	return 0, f.call("CountEnabledWithScope")
}
func (f *fake) UpdateUser(ctx context.Context, username string, fn func(*storage.User) error, _ ...string) (*storage.User, error) {
	if f.updateUser != nil {
		f.calls = append(f.calls, "UpdateUser")
		return f.updateUser(ctx, username, fn)
	}
	return nil, f.call("UpdateUser")
}
func (f *fake) DeleteUser(context.Context, string, time.Time, func(*storage.User) error, ...string) error {
	return f.call("DeleteUser")
}
func (f *fake) SigningKeys(context.Context) ([]storage.SigningKey, error) {
	return nil, f.call("SigningKeys")
}
func (f *fake) EnsureSigningKey(context.Context, string, func() (storage.SigningKey, error)) (storage.SigningKey, error) {
	return storage.SigningKey{}, f.call("EnsureSigningKey")
}
func (f *fake) CreateSigningKey(context.Context, storage.SigningKey) error {
	return f.call("CreateSigningKey")
}
func (f *fake) DeleteSigningKey(context.Context, string) error { return f.call("DeleteSigningKey") }
func (f *fake) ReplaceSigningKeyPrivate(context.Context, string, []byte, []byte) error {
	return f.call("ReplaceSigningKeyPrivate")
}
func (f *fake) EnsureSecret(context.Context, string, func() ([]byte, error)) ([]byte, error) {
	return nil, f.call("EnsureSecret")
}
func (f *fake) ReplaceSecret(context.Context, string, []byte, []byte) error {
	return f.call("ReplaceSecret")
}
func (f *fake) CreateSession(context.Context, *storage.Session, int64, *storage.AttemptUpdate) error {
	return f.call("CreateSession")
}
func (f *fake) Session(context.Context, string) (*storage.Session, error) {
	return nil, f.call("Session")
}
func (f *fake) UpdateSession(ctx context.Context, id string, fn func(*storage.Session, *storage.User) error) (*storage.Session, *storage.User, error) {
	if f.updateSession != nil {
		f.calls = append(f.calls, "UpdateSession")
		return f.updateSession(ctx, id, fn)
	}
	return nil, nil, f.call("UpdateSession")
}
func (f *fake) ListSessions(context.Context, string, time.Time) ([]*storage.Session, error) {
	return nil, f.call("ListSessions")
}
func (f *fake) RevokeSessions(context.Context, string, string, string, time.Time) (int, error) {
	return 0, f.call("RevokeSessions")
}
func (f *fake) RevokeClientSessions(context.Context, string, time.Time) (int, error) {
	return 0, f.call("RevokeClientSessions")
}
func (f *fake) PruneSessions(context.Context, time.Time) error { return f.call("PruneSessions") }
func (f *fake) RevokeToken(context.Context, string, time.Time, time.Time) error {
	return f.call("RevokeToken")
}
func (f *fake) LastChange(context.Context) (int64, error) { return 0, f.call("LastChange") }
func (f *fake) Changes(context.Context, int64, int) ([]storage.Change, error) {
	return nil, f.call("Changes")
}
func (f *fake) LiveRevocations(context.Context, time.Time) ([]storage.Change, error) {
	return nil, f.call("LiveRevocations")
}
func (f *fake) PruneChanges(context.Context, time.Time) error { return f.call("PruneChanges") }
func (f *fake) CreateClient(context.Context, *storage.Client) error {
	return f.call("CreateClient")
}
func (f *fake) ClientByID(context.Context, string) (*storage.Client, error) {
	return nil, f.call("ClientByID")
}
func (f *fake) ListClients(context.Context) ([]*storage.Client, error) {
	return nil, f.call("ListClients")
}
func (f *fake) CreateMFAToken(context.Context, *storage.MFAToken) error {
	return f.call("CreateMFAToken")
}
func (f *fake) TakeMFAToken(context.Context, string) (*storage.MFAToken, error) {
	return nil, f.call("TakeMFAToken")
}
func (f *fake) PruneMFATokens(context.Context, time.Time) error {
	return f.call("PruneMFATokens")
}
func (f *fake) UpdateClient(context.Context, string, func(*storage.Client) error) (*storage.Client, error) {
	return nil, f.call("UpdateClient")
}
func (f *fake) DeleteClient(context.Context, string, time.Time) error {
	return f.call("DeleteClient")
}
func (f *fake) UpdateLoginAttempts(context.Context, storage.AttemptUpdate) error {
	return f.call("UpdateLoginAttempts")
}
func (f *fake) ReserveLogin(context.Context, storage.AttemptUpdate, string) (*storage.User, error) {
	return nil, f.call("ReserveLogin")
}
func (f *fake) PruneLoginAttempts(context.Context, time.Time) error {
	return f.call("PruneLoginAttempts")
}
func (f *fake) Ping(ctx context.Context) error {
	if f.ping != nil {
		f.calls = append(f.calls, "Ping")
		return f.ping(ctx)
	}
	return f.call("Ping")
}
func (f *fake) Close() error { return f.call("Close") }

// fakeNotifier is a fake shared by several processes.
type fakeNotifier struct {
	*fake
	listen func(ctx context.Context, wake func()) error
}

func (f *fakeNotifier) Listen(ctx context.Context, wake func()) error { return f.listen(ctx, wake) }

// opNames is every Store method but Close with the op Instrument reports.
var opNames = map[string]string{
	"CreateUser":               "create_user",
	"CreateUsers":              "create_users",
	"UserByUsername":           "user_by_username",
	"UserByID":                 "user_by_id",
	"ListUsers":                "list_users",
	"CountUsers":               "count_users",
	"CountEnabledWithScope":    "count_enabled_with_scope",
	"UpdateUser":               "update_user",
	"DeleteUser":               "delete_user",
	"SigningKeys":              "signing_keys",
	"EnsureSigningKey":         "ensure_signing_key",
	"CreateSigningKey":         "create_signing_key",
	"DeleteSigningKey":         "delete_signing_key",
	"ReplaceSigningKeyPrivate": "replace_signing_key_private",
	"EnsureSecret":             "ensure_secret",
	"ReplaceSecret":            "replace_secret",
	"CreateSession":            "create_session",
	"Session":                  "session",
	"UpdateSession":            "update_session",
	"ListSessions":             "list_sessions",
	"RevokeSessions":           "revoke_sessions",
	"RevokeClientSessions":     "revoke_client_sessions",
	"PruneSessions":            "prune_sessions",
	"RevokeToken":              "revoke_token",
	"LastChange":               "last_change",
	"Changes":                  "changes",
	"LiveRevocations":          "live_revocations",
	"PruneChanges":             "prune_changes",
	"CreateClient":             "create_client",
	"ClientByID":               "client_by_id",
	"ListClients":              "list_clients",
	"UpdateClient":             "update_client",
	"CreateMFAToken":           "create_mfa_token",
	"TakeMFAToken":             "take_mfa_token",
	"PruneMFATokens":           "prune_mfa_tokens",
	"DeleteClient":             "delete_client",
	"UpdateLoginAttempts":      "update_login_attempts",
	"ReserveLogin":             "reserve_login",
	"PruneLoginAttempts":       "prune_login_attempts",
	"Ping":                     "ping",
}

// callAll calls every Store method of s but Close, each with a background
// context and zero arguments, and returns the method names in call order.
func callAll(t *testing.T, s storage.Store) []string {
	t.Helper()
	v := reflect.ValueOf(s)
	st := reflect.TypeOf((*storage.Store)(nil)).Elem()
	ctxType := reflect.TypeOf((*context.Context)(nil)).Elem()
	var names []string
	for i := range st.NumMethod() {
		m := st.Method(i)
		if m.Name == "Close" {
			continue
		}
		args := make([]reflect.Value, m.Type.NumIn())
		for j := range args {
			if in := m.Type.In(j); in == ctxType {
				args[j] = reflect.ValueOf(context.Background())
			} else {
				args[j] = reflect.Zero(in)
			}
		}
		if m.Type.IsVariadic() {
			v.MethodByName(m.Name).CallSlice(args)
		} else {
			v.MethodByName(m.Name).Call(args)
		}
		names = append(names, m.Name)
	}
	return names
}

type observed struct {
	op  string
	err error
}

func TestInstrument_observes_every_method_once_with_its_snake_case_op(t *testing.T) {
	boom := errors.New("boom")
	f := &fake{err: boom}
	var got []observed
	s := storage.Instrument(f, func(ctx context.Context, op string, took time.Duration, err error) {
		if ctx == nil {
			t.Errorf("%s: observed without the call's context", op)
		}
		if took < 0 {
			t.Errorf("%s: negative duration %s", op, took)
		}
		got = append(got, observed{op, err})
	})
	names := callAll(t, s)

	var table []string
	for name := range opNames {
		table = append(table, name)
	}
	slices.Sort(table)
	if sorted := slices.Sorted(slices.Values(names)); !slices.Equal(sorted, table) {
		t.Fatalf("Store methods %v, want the op table's %v: keep opNames and Instrument in step with the contract", sorted, table)
	}
	if len(got) != len(names) {
		t.Fatalf("observed %d calls for %d methods: %v", len(got), len(names), got)
	}
	for i, name := range names {
		if got[i].op != opNames[name] {
			t.Errorf("%s observed as %q, want %q", name, got[i].op, opNames[name])
		}
		if got[i].err != boom {
			t.Errorf("%s observed error %v, want the store's %v", name, got[i].err, boom)
		}
	}
	if !slices.Equal(f.calls, names) {
		t.Errorf("inner store got %v, want every call passed through once: %v", f.calls, names)
	}
	if err := s.Close(); err != boom {
		t.Errorf("Close() = %v, want the inner store's %v", err, boom)
	}
	if len(got) != len(names) {
		t.Errorf("Close was observed: %v", got[len(names):])
	}
}

func TestInstrument_passes_results_and_updater_errors_through_unchanged(t *testing.T) {
	want := &storage.User{ID: "u1", Username: "alice"}
	fnErr := errors.New("fn says no")
	f := &fake{
		userByUsername: func(context.Context, string) (*storage.User, error) { return want, nil },
		updateUser: func(_ context.Context, _ string, fn func(*storage.User) error) (*storage.User, error) {
			return nil, fn(&storage.User{})
		},
	}
	var errs []error
	s := storage.Instrument(f, func(_ context.Context, _ string, _ time.Duration, err error) { errs = append(errs, err) })
	if got, err := s.UserByUsername(context.Background(), "alice"); got != want || err != nil {
		t.Errorf("UserByUsername = %v, %v; want %v, nil", got, err, want)
	}
	if _, err := s.UpdateUser(context.Background(), "alice", func(*storage.User) error { return fnErr }); err != fnErr {
		t.Errorf("UpdateUser = %v, want fn's error unchanged", err)
	}
	if len(errs) != 2 || errs[0] != nil || errs[1] != fnErr {
		t.Errorf("observed errors %v, want [nil %v]", errs, fnErr)
	}
}

func TestInstrument_keeps_Notifier_exactly_when_the_store_has_it(t *testing.T) {
	observe := func(context.Context, string, time.Duration, error) {}
	if _, ok := storage.Instrument(&fake{}, observe).(storage.Notifier); ok {
		t.Error("Instrument of a store without Listen is a Notifier")
	}
	woke := 0
	n := &fakeNotifier{fake: &fake{}, listen: func(_ context.Context, wake func()) error { wake(); return nil }}
	s, ok := storage.Instrument(n, observe).(storage.Notifier)
	if !ok {
		t.Fatal("Instrument of a Notifier is not a Notifier")
	}
	if err := s.Listen(context.Background(), func() { woke++ }); err != nil || woke != 1 {
		t.Errorf("Listen through the wrapper = %v with %d wakes, want nil and 1", err, woke)
	}
}
