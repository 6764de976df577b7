package sqlstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// The tests queue writes behind a turn held open by an updater that
// waits, then let the turn end: the queued writes then share the next
// transaction (batch.go), in the order they queued.

type batchFixture struct {
	t      *testing.T
	s      *store
	user   *storage.User
	queued chan struct{}
}

func newBatchFixture(t *testing.T, sessions ...string) *batchFixture {
	t.Helper()
	s, _ := openTestSQLite(t, sqliteTuning{})
	f := &batchFixture{t: t, s: s, user: testUser("alice"), queued: make(chan struct{}, 8)}
	ctx := t.Context()
	if err := s.CreateUser(ctx, f.user); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, id := range append([]string{"holder"}, sessions...) {
		sess := &storage.Session{ID: id, UserID: f.user.ID, ClientID: "public", Scopes: []string{"me"},
			IdleExpiresAt: now.Add(time.Hour), ExpiresAt: now.Add(2 * time.Hour), SecretHash: "00"}
		if err := s.CreateSession(ctx, sess, f.user.TokenEpoch, nil); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// hold starts a write whose updater waits until the returned release is
// called, and returns once that write has the turn.
func (f *batchFixture) hold() (release func()) {
	inside, wait, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		_, _, err := f.s.UpdateSession(context.Background(), "holder", func(*storage.Session, *storage.User) error {
			close(inside)
			<-wait
			return nil
		})
		done <- err
	}()
	<-inside
	f.s.testHookQueued = func() { f.queued <- struct{}{} }
	return func() {
		close(wait)
		if err := <-done; err != nil {
			f.t.Errorf("the holding write = %v", err)
		}
	}
}

// queue starts write and returns once it waits in the queue; its error
// arrives on the channel.
func (f *batchFixture) queue(write func() error) <-chan error {
	out := make(chan error, 1)
	go func() { out <- write() }()
	<-f.queued
	return out
}

func (f *batchFixture) rotate(id string) func() error {
	return func() error {
		_, _, err := f.s.UpdateSession(context.Background(), id, func(s *storage.Session, _ *storage.User) error {
			s.Generation++
			return nil
		})
		return err
	}
}

func (f *batchFixture) generation(id string) int64 {
	f.t.Helper()
	sess, err := f.s.Session(context.Background(), id)
	if err != nil {
		f.t.Fatalf("Session(%s) = %v", id, err)
	}
	return sess.Generation
}

func TestWrite_in_a_shared_transaction_a_refused_update_fails_alone(t *testing.T) {
	f := newBatchFixture(t, "a", "b")
	release := f.hold()
	refusal := errors.New("refused")
	refused := f.queue(func() error {
		_, _, err := f.s.UpdateSession(context.Background(), "a", func(s *storage.Session, _ *storage.User) error {
			s.Generation++
			return refusal
		})
		return err
	})
	rotated := f.queue(f.rotate("b"))
	now := time.Now()
	revoked := f.queue(func() error { return f.s.RevokeToken(context.Background(), "jti-1", now.Add(time.Hour), now) })
	release()

	if err := <-refused; !errors.Is(err, refusal) {
		t.Errorf("the refused update = %v, want the updater's error", err)
	}
	if err := <-rotated; err != nil {
		t.Errorf("the update after it = %v", err)
	}
	if err := <-revoked; err != nil {
		t.Errorf("RevokeToken after it = %v", err)
	}
	if g := f.generation("a"); g != 0 {
		t.Errorf("the refused session's generation = %d, want 0 (unchanged)", g)
	}
	if g := f.generation("b"); g != 1 {
		t.Errorf("the rotated session's generation = %d, want 1", g)
	}
	live, err := f.s.LiveRevocations(context.Background(), now)
	if err != nil || len(live) != 1 || live[0].Subject != "jti-1" {
		t.Errorf("LiveRevocations = %v, %v; want the one revoked token", live, err)
	}
}

func TestWrite_in_a_shared_transaction_each_write_sees_the_ones_before(t *testing.T) {
	f := newBatchFixture(t, "a")
	release := f.hold()
	first := f.queue(f.rotate("a"))
	var seen int64 = -1
	second := f.queue(func() error {
		_, _, err := f.s.UpdateSession(context.Background(), "a", func(s *storage.Session, _ *storage.User) error {
			seen = s.Generation
			s.Generation++
			return nil
		})
		return err
	})
	release()
	if err := errors.Join(<-first, <-second); err != nil {
		t.Fatal(err)
	}
	if seen != 1 {
		t.Errorf("the second update read generation %d, want 1 (the first's)", seen)
	}
	if g := f.generation("a"); g != 2 {
		t.Errorf("generation = %d, want 2", g)
	}
}

// When the engine undoes the whole transaction (SQLite does on a full
// disk or an I/O error; here a body ends it itself), every write of the
// batch fails, those before it included, and nothing after it runs
// outside a transaction.
func TestWrite_a_shared_transaction_undone_fails_every_write_of_it(t *testing.T) {
	f := newBatchFixture(t, "a", "b")
	release := f.hold()
	before := f.queue(f.rotate("a"))
	undone := f.queue(func() error {
		return f.s.write(context.Background(), "undo", func(t *txn) error {
			if _, err := t.tx.ExecContext(t.ctx, "ROLLBACK"); err != nil {
				return err
			}
			return errors.New("the transaction is gone")
		})
	})
	after := f.queue(f.rotate("b"))
	release()
	for name, ch := range map[string]<-chan error{"before": before, "undone": undone, "after": after} {
		if err := <-ch; err == nil {
			t.Errorf("the write %s the undoing one succeeded", name)
		}
	}
	if ga, gb := f.generation("a"), f.generation("b"); ga != 0 || gb != 0 {
		t.Errorf("generations a %d, b %d, want 0 and 0 (nothing committed)", ga, gb)
	}
	if err := f.rotate("a")(); err != nil {
		t.Fatalf("a write after the failed batch = %v", err)
	}
	if g := f.generation("a"); g != 1 {
		t.Errorf("generation after the next write = %d, want 1", g)
	}
}

func TestWrite_a_caller_gone_before_its_turn_writes_nothing(t *testing.T) {
	f := newBatchFixture(t, "a")
	release := f.hold()
	ctx, cancel := context.WithCancel(context.Background())
	gone := f.queue(func() error {
		_, _, err := f.s.UpdateSession(ctx, "a", func(s *storage.Session, _ *storage.User) error {
			s.Generation++
			return nil
		})
		return err
	})
	cancel()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Errorf("the cancelled write = %v, want context.Canceled", err)
	}
	release()
	if g := f.generation("a"); g != 0 {
		t.Errorf("generation = %d, want 0: the cancelled write ran", g)
	}
}
