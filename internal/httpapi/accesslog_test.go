package httpapi

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strconv"
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

// The access log's timestamps, formatted from a per-second cache, read
// exactly as time.RFC3339Nano writes them: across second boundaries,
// zones (the cache's second belongs to one zone) and nanoseconds with and
// without trailing zeros.
func TestAccessLogClockMatchesRFC3339Nano(t *testing.T) {
	var c stampCache
	base := time.Date(2026, 12, 4, 23, 59, 59, 0, time.UTC)
	zones := []*time.Location{time.UTC, time.FixedZone("E", 5*3600+1800), time.FixedZone("W", -8*3600), time.FixedZone("Z", 0), time.Local}
	for _, loc := range zones {
		for _, ns := range []int{0, 1, 10, 120000000, 456789012, 500000000, 999999999} {
			for _, sec := range []int{0, 1, 2, 3600} {
				at := base.Add(time.Duration(sec)*time.Second + time.Duration(ns)).In(loc)
				// Twice: the first fills the cache, the second reads it.
				for range 2 {
					if got, want := string(c.appendRFC3339Nano(nil, at)), at.Format(time.RFC3339Nano); got != want {
						t.Fatalf("%v: got %s, want %s", at, got, want)
					}
				}
			}
		}
	}
}

// Durations come out as strconv.AppendFloat writes durationMS, from the
// microsecond to far beyond any request.
func TestAccessLogDurationMatchesFloat(t *testing.T) {
	ds := []time.Duration{0, 999 * time.Nanosecond, time.Microsecond, 10 * time.Microsecond, 52 * time.Microsecond, 100 * time.Microsecond, 120 * time.Microsecond, 999 * time.Microsecond, time.Millisecond, 1001 * time.Microsecond, 1500 * time.Microsecond, 2*time.Second + 500*time.Microsecond, time.Hour + time.Microsecond, 1234567 * time.Hour, -time.Microsecond, -1500 * time.Microsecond, 1<<50*time.Microsecond - 1, 1 << 50 * time.Microsecond, 1<<63 - 1, -1 << 63}
	for us := int64(0); us < 100000; us += 7 {
		ds = append(ds, time.Duration(us)*time.Microsecond+time.Duration(us%1000))
	}
	for _, d := range ds {
		if got, want := string(appendMS(nil, d)), string(strconv.AppendFloat(nil, durationMS(d), 'f', -1, 64)); got != want {
			t.Fatalf("%d ns: got %s, want %s", d, got, want)
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
