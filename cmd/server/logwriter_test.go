package main

import (
	"log/slog"
	"strings"
	"testing"
	"time"
)

// Request lines wait in the buffer; warnings, errors and audit events are
// out before the call that logged them returns, and Close writes the rest.
func TestLogWriterBuffersRequestLinesOnly(t *testing.T) {
	var out syncBuffer
	// An interval no test outlasts: only records and Close flush.
	lw := newLogWriter(&out, time.Hour)
	log := newLogger(lw, &config{LogLevel: "info", LogFormat: "json"})

	log.Info("request", "route", "/healthz")
	if got := out.String(); got != "" {
		t.Fatalf("a request line was written at once: %q", got)
	}
	log.Info("audit", "event", "login")
	if got := out.String(); !strings.Contains(got, `"msg":"request"`) || !strings.Contains(got, `"msg":"audit"`) {
		t.Fatalf("after an audit event, the log holds %q; want the buffered line and the event", got)
	}
	log.Info("request", "route", "/users/me")
	log.Warn("store fault")
	if got := out.String(); !strings.Contains(got, `"route":"/users/me"`) || !strings.Contains(got, `"msg":"store fault"`) {
		t.Fatalf("after a warning, the log holds %q", got)
	}
	log.Info("request", "route", "/readyz")
	if err := lw.Close(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.Contains(got, `"route":"/readyz"`) {
		t.Fatalf("Close left a line in the buffer: %q", got)
	}
	if n := strings.Count(out.String(), "\n"); n != 5 {
		t.Errorf("%d lines, want 5:\n%s", n, out.String())
	}
}

// The periodic flush writes buffered lines without any other record.
func TestLogWriterFlushesPeriodically(t *testing.T) {
	var out syncBuffer
	lw := newLogWriter(&out, time.Millisecond)
	defer lw.Close()
	slog.New(slog.NewJSONHandler(lw, nil)).Info("request")
	deadline := time.Now().Add(10 * time.Second)
	for out.String() == "" {
		if time.Now().After(deadline) {
			t.Fatal("the buffered line was not written within 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// With no interval every record is written at once.
func TestLogWriterUnbuffered(t *testing.T) {
	var out syncBuffer
	lw := newLogWriter(&out, 0)
	newLogger(lw, &config{LogLevel: "info", LogFormat: "text"}).Info("request")
	if !strings.Contains(out.String(), "msg=request") {
		t.Fatalf("got %q", out.String())
	}
}
