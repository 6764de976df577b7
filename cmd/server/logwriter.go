package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// logBuffer is the size of the log's buffer: some 150 access-log lines.
const logBuffer = 32 << 10

// logWriter buffers the log's output and writes it every interval, when
// the buffer fills, and at once after a record that must not wait (see
// promptHandler). Writing each access-log line with its own write system
// call cost about a tenth of a /users/me request; buffered, the lines of
// a busy second leave in a few dozen writes. What a crash of the process
// can lose is the last interval's request lines; warnings, errors and
// audit events are written before the call that logged them returns.
type logWriter struct {
	mu     sync.Mutex
	buf    *bufio.Writer
	direct io.Writer // set: no buffering
	stop   chan struct{}
	done   chan struct{}
}

// newLogWriter buffers w, flushing it every interval until Close. An
// interval of 0 or less writes every record at once (no buffering).
func newLogWriter(w io.Writer, interval time.Duration) *logWriter {
	lw := &logWriter{stop: make(chan struct{}), done: make(chan struct{})}
	if interval <= 0 {
		lw.direct = w
		close(lw.done)
		return lw
	}
	lw.buf = bufio.NewWriterSize(w, logBuffer)
	go lw.run(interval)
	return lw
}

func (lw *logWriter) run(interval time.Duration) {
	defer close(lw.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-lw.stop:
			return
		case <-t.C:
			_ = lw.Flush()
		}
	}
}

// Write buffers one record (slog handlers write a record per call); a
// record larger than the buffer goes out at once.
func (lw *logWriter) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if lw.direct != nil {
		return lw.direct.Write(p)
	}
	return lw.buf.Write(p)
}

// Flush writes what is buffered.
func (lw *logWriter) Flush() error {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if lw.direct != nil {
		return nil
	}
	return lw.buf.Flush()
}

// Close stops the periodic flush and writes what is left.
func (lw *logWriter) Close() error {
	select {
	case <-lw.stop:
	default:
		close(lw.stop)
	}
	<-lw.done
	return lw.Flush()
}

// promptHandler flushes the log writer after each record that should not
// sit in the buffer: warnings and errors, which an operator may be
// waiting for, and audit events, the record of who did what.
type promptHandler struct {
	slog.Handler
	w *logWriter
}

func (h promptHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level >= slog.LevelWarn || r.Message == "audit" {
		if ferr := h.w.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

func (h promptHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return promptHandler{h.Handler.WithAttrs(as), h.w}
}

func (h promptHandler) WithGroup(name string) slog.Handler {
	return promptHandler{h.Handler.WithGroup(name), h.w}
}
