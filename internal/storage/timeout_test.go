package storage_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// blockUntilDone is a store call that only ends with its context.
func blockUntilDone(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

func TestWithTimeout_a_deadline_it_imposed_is_ErrTimeout(t *testing.T) {
	s := storage.WithTimeout(&fake{ping: blockUntilDone}, 20*time.Millisecond)
	err := s.Ping(context.Background())
	if !errors.Is(err, storage.ErrTimeout) || !storage.IsFault(err) {
		t.Errorf("Ping past the timeout = %v, want ErrTimeout (a fault)", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Ping past the timeout = %v, want the store's error kept inside", err)
	}
}

func TestWithTimeout_a_cancelled_caller_stays_cancelled(t *testing.T) {
	s := storage.WithTimeout(&fake{ping: blockUntilDone}, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Ping(ctx); !errors.Is(err, context.Canceled) || errors.Is(err, storage.ErrTimeout) {
		t.Errorf("Ping with a cancelled context = %v, want context.Canceled and not ErrTimeout", err)
	}
}

func TestWithTimeout_the_callers_own_deadline_is_left_to_the_store(t *testing.T) {
	s := storage.WithTimeout(&fake{ping: blockUntilDone}, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := s.Ping(ctx); !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, storage.ErrTimeout) {
		t.Errorf("Ping past the caller's deadline = %v, want the store's own error", err)
	}
}

func TestWithTimeout_runs_every_method_under_a_deadline(t *testing.T) {
	f := &fake{}
	var deadlines int
	inner := &checkDeadline{fake: f, saw: &deadlines}
	names := callAll(t, storage.WithTimeout(inner, time.Minute))
	if !slices.Equal(f.calls, names) {
		t.Errorf("inner store got %v, want every call passed through once: %v", f.calls, names)
	}
	if deadlines != 3 {
		t.Errorf("%d of the 3 checked methods saw a deadline", deadlines)
	}
}

// checkDeadline counts the calls of Ping, UpdateUser and UpdateSession that
// came with a deadline.
type checkDeadline struct {
	*fake
	saw *int
}

func (c *checkDeadline) count(ctx context.Context) {
	if _, ok := ctx.Deadline(); ok {
		*c.saw++
	}
}

func (c *checkDeadline) Ping(ctx context.Context) error { c.count(ctx); return c.fake.Ping(ctx) }

func (c *checkDeadline) UpdateUser(ctx context.Context, username string, fn func(*storage.User) error, keep ...string) (*storage.User, error) {
	c.count(ctx)
	return c.fake.UpdateUser(ctx, username, fn, keep...)
}

func (c *checkDeadline) UpdateSession(ctx context.Context, id string, fn func(*storage.Session, *storage.User) error) (*storage.Session, *storage.User, error) {
	c.count(ctx)
	return c.fake.UpdateSession(ctx, id, fn)
}

func TestWithTimeout_passes_results_and_updater_errors_through(t *testing.T) {
	fnErr := errors.New("fn says no")
	want := &storage.Session{ID: "s1"}
	f := &fake{updateSession: func(_ context.Context, _ string, fn func(*storage.Session, *storage.User) error) (*storage.Session, *storage.User, error) {
		if err := fn(want, nil); err != nil {
			return nil, nil, err
		}
		return want, nil, nil
	}}
	s := storage.WithTimeout(f, time.Minute)
	if got, _, err := s.UpdateSession(context.Background(), "s1", func(*storage.Session, *storage.User) error { return nil }); got != want || err != nil {
		t.Errorf("UpdateSession = %v, %v; want %v, nil", got, err, want)
	}
	if _, _, err := s.UpdateSession(context.Background(), "s1", func(*storage.Session, *storage.User) error { return fnErr }); err != fnErr {
		t.Errorf("UpdateSession = %v, want fn's error unchanged", err)
	}
}

func TestWithTimeout_keeps_Notifier_and_Listen_has_no_deadline(t *testing.T) {
	if _, ok := storage.WithTimeout(&fake{}, time.Second).(storage.Notifier); ok {
		t.Error("WithTimeout of a store without Listen is a Notifier")
	}
	n := &fakeNotifier{fake: &fake{}, listen: func(ctx context.Context, _ func()) error {
		if _, ok := ctx.Deadline(); ok {
			return errors.New("Listen got a deadline")
		}
		return nil
	}}
	s, ok := storage.WithTimeout(n, time.Millisecond).(storage.Notifier)
	if !ok {
		t.Fatal("WithTimeout of a Notifier is not a Notifier")
	}
	if err := s.Listen(context.Background(), func() {}); err != nil {
		t.Error(err)
	}
	// The wrappers compose: a timed, instrumented Notifier still listens.
	both := storage.Instrument(storage.WithTimeout(n, time.Millisecond), func(context.Context, string, time.Duration, error) {})
	if _, ok := both.(storage.Notifier); !ok {
		t.Error("Instrument(WithTimeout(notifier)) is not a Notifier")
	}
}

func TestWithTimeout_zero_returns_the_store(t *testing.T) {
	f := &fake{}
	if got := storage.WithTimeout(f, 0); got != storage.Store(f) {
		t.Errorf("WithTimeout(s, 0) = %T, want s itself", got)
	}
}
