package httpapi

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"
	"time"
)

// The JSON access log's own writer must write exactly the line slog's
// JSONHandler writes for the same record, so log pipelines see one
// format whichever path wrote it.
func TestJSONAccessLogMatchesSlog(t *testing.T) {
	at := time.Date(2026, 12, 2, 1, 2, 3, 456789012, time.FixedZone("X", 5*3600+1800))
	for _, rec := range []AccessRecord{
		{Time: at, RequestID: "abc-123", Method: "GET", Route: "/users/me", Status: 200, Bytes: 87, Duration: 52 * time.Microsecond, ClientIP: "127.0.0.1"},
		{Time: at.UTC(), RequestID: "x", Method: "POST", Route: "unmatched", Status: 503, Bytes: 0, Duration: 0, ClientIP: "2001:db8::1"},
		{Time: at, RequestID: "q\"uo\\te", Method: "PATCH", Route: "/a\tb\nc\rd\x01e\x7f", Status: 404, Bytes: 1 << 20, Duration: 2*time.Second + 500*time.Microsecond, ClientIP: "caf\u00e9\u2028\u2029\xff"},
		{Time: at, Duration: 1234567 * time.Hour},
	} {
		var fast bytes.Buffer
		JSONAccessLog(&fast).LogRequest(context.Background(), &rec)

		var viaSlog bytes.Buffer
		logger := slog.New(atTime{slog.NewJSONHandler(&viaSlog, nil), rec.Time})
		slogAccessLog{logger}.LogRequest(context.Background(), &rec)
		if fast.String() != viaSlog.String() {
			t.Errorf("access line differs from slog's:\n got %s\nwant %s", fast.String(), viaSlog.String())
		}
	}
}

// One access record costs no allocation of its own.
func TestJSONAccessLogAllocations(t *testing.T) {
	var buf bytes.Buffer
	l := JSONAccessLog(&buf)
	rec := AccessRecord{Time: time.Now(), RequestID: "abc", Method: "GET", Route: "/healthz", Status: 200, Bytes: 40, Duration: time.Millisecond, ClientIP: "127.0.0.1"}
	allocs := testing.AllocsPerRun(100, func() {
		buf.Reset()
		l.LogRequest(context.Background(), &rec)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per access record, want 0", allocs)
	}
}

// atTime gives every record the same time.
type atTime struct {
	slog.Handler
	t time.Time
}

func (h atTime) Handle(ctx context.Context, r slog.Record) error {
	r.Time = h.t
	return h.Handler.Handle(ctx, r)
}

// BenchmarkAccessLog is one access-log line, through the JSON writer the
// server uses and through slog's JSONHandler, both to io.Discard.
func BenchmarkAccessLog(b *testing.B) {
	rec := AccessRecord{Time: time.Now(), RequestID: "028ef577e651000000017f22", Method: "GET", Route: "/users/me", Status: 200, Bytes: 235, Duration: 52 * time.Microsecond, ClientIP: "127.0.0.1"}
	for _, tc := range []struct {
		name string
		log  AccessLogger
	}{
		{"json_writer", JSONAccessLog(io.Discard)},
		{"slog_json", slogAccessLog{slog.New(slog.NewJSONHandler(io.Discard, nil))}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tc.log.LogRequest(context.Background(), &rec)
			}
		})
	}
}
