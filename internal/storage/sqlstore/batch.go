package sqlstore

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// Writers that take turns (flavor.serialWrites: SQLite's one write lock)
// share transactions. The writer whose turn it is lets the goroutines
// that are ready to run reach the queue first (one scheduler yield), then
// runs the queued bodies, its own among them, in one transaction, each
// inside a savepoint, and commits once. BEGIN IMMEDIATE, COMMIT, the WAL
// append and the file-lock calls around them were about half of a
// refresh's time in the store; under load they are paid once per batch,
// and alone a writer runs as before, in a transaction of its own.
//
// Each body still sees the writes of the bodies before it, as if they had
// committed one by one. A body that fails is rolled back to its
// savepoint and fails alone; a failed commit, or a failure that undid the
// whole transaction (SQLite does so on a full disk or an I/O error),
// fails every body of the batch. A body runs only while its caller
// waits: a caller whose context ends before its body starts is dropped
// from the queue, and once started a body's statements are not
// interrupted by its context, since interrupting a statement would roll
// back the whole batch.

// maxBatch bounds the bodies of one transaction.
const maxBatch = 32

// writeReq is one write waiting for its turn.
type writeReq struct {
	ctx  context.Context
	body func(t *txn) error
	// state: reqQueued, then reqClaimed by the turn that runs it, or
	// reqAbandoned by its caller.
	state atomic.Int32
	err   error         // set before done is closed
	done  chan struct{} // closed once the body's transaction ended
}

const (
	reqQueued int32 = iota
	reqClaimed
	reqAbandoned
)

// errBatchAborted is what the bodies of a batch get when the turn
// running it panicked.
var errBatchAborted = errors.New("sqlstore: the transaction this write shared was aborted")

// batched queues body and waits until a turn, its own or an earlier
// writer's, has run it.
func (s *store) batched(ctx context.Context, body func(t *txn) error) error {
	r := &writeReq{ctx: ctx, body: body, done: make(chan struct{})}
	s.qmu.Lock()
	s.queue = append(s.queue, r)
	s.qmu.Unlock()
	if s.testHookQueued != nil {
		s.testHookQueued()
	}
	select {
	case s.gate <- struct{}{}:
	case <-r.done:
		return r.err
	case <-ctx.Done():
		if r.state.CompareAndSwap(reqQueued, reqAbandoned) {
			return ctx.Err()
		}
		<-r.done // a turn is running it
		return r.err
	}
	defer s.leave()
	// A turn ends its bodies before it leaves, so this one is done or
	// still queued.
	if r.state.Load() == reqQueued {
		runtime.Gosched()
	}
	for r.state.Load() == reqQueued {
		s.runBatch(s.claim())
	}
	<-r.done
	return r.err
}

// claim takes up to maxBatch writes from the front of the queue, the
// abandoned ones dropped.
func (s *store) claim() []*writeReq {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	var batch []*writeReq
	n := 0
	for ; n < len(s.queue) && len(batch) < maxBatch; n++ {
		if q := s.queue[n]; q.state.CompareAndSwap(reqQueued, reqClaimed) {
			batch = append(batch, q)
		}
	}
	rest := copy(s.queue, s.queue[n:])
	clear(s.queue[rest:])
	s.queue = s.queue[:rest]
	return batch
}

// runBatch runs the claimed writes and ends each.
func (s *store) runBatch(batch []*writeReq) {
	for _, q := range batch {
		q.err = errBatchAborted
	}
	defer func() {
		for _, q := range batch {
			close(q.done)
		}
	}()
	if len(batch) == 1 {
		q := batch[0]
		q.err = s.run(q.ctx, q.body)
		return
	}
	// The transaction is the batch's, not one caller's: no caller's
	// deadline may roll back the others' writes.
	bctx := context.WithoutCancel(batch[0].ctx)
	tx, err := s.db.BeginTx(bctx, nil)
	if err != nil && errors.Is(s.f.fault(err), storage.ErrUnavailable) {
		// As in run: a BEGIN on a lost connection started nothing.
		tx, err = s.db.BeginTx(bctx, nil)
	}
	if err != nil {
		for _, q := range batch {
			q.err = err
		}
		return
	}
	defer tx.Rollback() // after a commit: sql.ErrTxDone, ignored
	// fail ends the batch: every body that had not failed alone gets err.
	var ok []*writeReq
	fail := func(from int, err error) {
		for _, q := range ok {
			q.err = err
		}
		for _, q := range batch[from:] {
			q.err = err
		}
	}
	for i, q := range batch {
		if err := q.ctx.Err(); err != nil {
			q.err = err
			continue
		}
		if _, err := tx.ExecContext(bctx, "SAVEPOINT batch"); err != nil {
			fail(i, err)
			return
		}
		t := &txn{tx: tx, s: s, ctx: context.WithoutCancel(q.ctx)}
		err := q.body(t)
		if err == nil {
			err = t.appendChanges()
		}
		if err == nil {
			if _, err := tx.ExecContext(bctx, "RELEASE batch"); err != nil {
				fail(i, err)
				return
			}
			ok = append(ok, q)
			continue
		}
		q.err = err
		// ROLLBACK TO keeps the savepoint; RELEASE ends it without
		// committing (the transaction began with BEGIN). Either fails
		// when the engine has already rolled back the whole transaction:
		// then the batch has failed for the body's error.
		if _, rerr := tx.ExecContext(bctx, "ROLLBACK TO batch"); rerr != nil {
			fail(i+1, cause(err, rerr))
			return
		}
		if _, rerr := tx.ExecContext(bctx, "RELEASE batch"); rerr != nil {
			fail(i+1, cause(err, rerr))
			return
		}
	}
	if len(ok) == 0 {
		return
	}
	err = tx.Commit()
	for _, q := range ok {
		q.err = err
	}
}

// cause is the error the rest of a batch fails with when undoing a body's
// err failed with rerr: err, unless it was the body's own refusal.
func cause(err, rerr error) error {
	var fe *fnError
	if errors.As(err, &fe) {
		return rerr
	}
	return err
}
