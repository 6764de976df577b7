package sqlstore

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// benchSessions opens a store on a real SQLite file (not :memory:, which
// has no sync to pay) holding n sessions of one user, sid0 to sid<n-1>.
func benchSessions(b *testing.B, n int) *store {
	b.Helper()
	ctx := context.Background()
	s, err := openSQLite(ctx, filepath.Join(b.TempDir(), "gatehouse.db"), Options{}, sqliteTuning{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	u := testUser("alice")
	if err := s.CreateUser(ctx, u); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for i := range n {
		sess := &storage.Session{ID: fmt.Sprintf("sid%d", i), UserID: u.ID, ClientID: "public", Scopes: []string{"me"},
			IdleExpiresAt: now.Add(time.Hour), ExpiresAt: now.Add(2 * time.Hour), SecretHash: "00"}
		if err := s.CreateSession(ctx, sess, u.TokenEpoch, nil); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// rotateForBench is a refresh's change to its session.
func rotateForBench(s *storage.Session, _ *storage.User) error {
	at := time.Now()
	s.Generation++
	s.RotatedAt, s.LastUsedAt, s.GraceUses = at, at, 0
	return nil
}

// BenchmarkUpdateSession is the store's part of a refresh grant: one
// UpdateSession rotating a session, committed to a real SQLite file.
// auth's BenchmarkRefresh is the whole grant.
//
//	go test -run '^$' -bench UpdateSession -benchmem -cpu 1 ./internal/storage/sqlstore/
func BenchmarkUpdateSession(b *testing.B) {
	s := benchSessions(b, 1)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.UpdateSession(ctx, "sid0", rotateForBench); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpdateSessionConcurrent is UpdateSession from 64 callers at
// once, each rotating a session of its own: refresh grants under load,
// where the writers share transactions (batch.go).
func BenchmarkUpdateSessionConcurrent(b *testing.B) {
	const callers = 64
	s := benchSessions(b, callers)
	ctx := context.Background()
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(callers)
	b.RunParallel(func(pb *testing.PB) {
		id := fmt.Sprintf("sid%d", next.Add(1)%callers)
		for pb.Next() {
			if _, _, err := s.UpdateSession(ctx, id, rotateForBench); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
