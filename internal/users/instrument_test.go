package users

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestInstrument(t *testing.T) {
	base, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "g.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	var (
		mu  sync.Mutex
		got []string
	)
	s := Instrument(base, func(op string, d time.Duration, result string) {
		mu.Lock()
		defer mu.Unlock()
		if d < 0 {
			t.Errorf("%s: negative duration", op)
		}
		got = append(got, op+"="+result)
	})
	if _, ok := s.(ChangeListener); ok {
		t.Error("the SQLite store does not announce changes, so neither may its wrapper")
	}
	ctx := context.Background()
	u := testUser(t, "alice")
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UserByUsername(ctx, "nobody"); err == nil {
		t.Fatal("found nobody")
	}
	if _, err := s.UpdateUser(ctx, "alice", func(u *User) error { u.Disabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	want := []string{"create_user=ok", "user_by_username=not_found", "update_user=ok"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("call %d: got %s, want %s", i, got[i], want[i])
		}
	}
	if back, err := base.UserByUsername(ctx, "alice"); err != nil || !back.Disabled {
		t.Errorf("the wrapper did not pass the update through: %+v %v", back, err)
	}
}
