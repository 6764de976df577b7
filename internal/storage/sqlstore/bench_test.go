package sqlstore

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// BenchmarkUpdateSession is the store's part of a refresh grant: one
// UpdateSession rotating a session, committed to a real SQLite file (not
// :memory:, which has no sync to pay). auth's BenchmarkRefresh is the
// whole grant.
//
//	go test -run '^$' -bench UpdateSession -benchmem -cpu 1 ./internal/storage/sqlstore/
func BenchmarkUpdateSession(b *testing.B) {
	ctx := context.Background()
	s, err := openSQLite(ctx, filepath.Join(b.TempDir(), "gatehouse.db"), Options{}, sqliteTuning{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	u := testUser("alice")
	if err := s.CreateUser(ctx, u); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	sess := &storage.Session{ID: "sid", UserID: u.ID, ClientID: "public", Scopes: []string{"me"},
		IdleExpiresAt: now.Add(time.Hour), ExpiresAt: now.Add(2 * time.Hour), SecretHash: "00"}
	if err := s.CreateSession(ctx, sess, u.TokenEpoch, nil); err != nil {
		b.Fatal(err)
	}
	rotate := func(s *storage.Session, _ *storage.User) error {
		at := time.Now()
		s.Generation++
		s.RotatedAt, s.LastUsedAt, s.GraceUses = at, at, 0
		return nil
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.UpdateSession(ctx, "sid", rotate); err != nil {
			b.Fatal(err)
		}
	}
}
