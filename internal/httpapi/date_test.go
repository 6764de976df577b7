package httpapi

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// The cached Date is what net/http would write for the same instant: the
// second in UTC, whatever the location and the nanoseconds.
func TestDateCache(t *testing.T) {
	var c dateCache
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		paris = time.FixedZone("CET", 3600)
	}
	base := time.Date(2026, 12, 2, 17, 30, 5, 0, time.UTC)
	for _, now := range []time.Time{
		base,
		base.Add(999 * time.Millisecond),        // the same second
		base.Add(time.Second),                   // the next one
		base.Add(time.Second + time.Nanosecond), // still the next one
		base.Add(-time.Hour).In(paris),          // back in time, another zone
		base.Add(-time.Hour + 1).In(paris),
		time.Date(2027, 3, 28, 1, 59, 59, 5, time.UTC).In(paris), // a DST change
		time.Date(2027, 3, 28, 2, 0, 0, 5, time.UTC).In(paris),
	} {
		got := c.at(now)
		if want := now.UTC().Format(http.TimeFormat); len(got) != 1 || got[0] != want {
			t.Errorf("at(%v) = %q, want [%q]", now, got, want)
		}
		if cap(got) != len(got) {
			t.Errorf("at(%v): cap %d, want a full slice so that Add copies", now, cap(got))
		}
	}
}

// Every answer carries a Date of the moment it was sent, not of the
// request's start, and a handler's own Date stays.
func TestDateHeader(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		want    func(string) bool
	}{
		{"written", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("{}")) }, nil},
		{"status only", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }, nil},
		{"flushed", func(w http.ResponseWriter, _ *http.Request) { w.(http.Flusher).Flush() }, nil},
		{"handler's own", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Date", "Tue, 01 Dec 2026 00:00:00 GMT")
			w.WriteHeader(http.StatusOK)
		}, func(d string) bool { return d == "Tue, 01 Dec 2026 00:00:00 GMT" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			before := time.Now().Truncate(time.Second)
			// A request that began seconds ago, as a slow login may.
			sw := &statusWriter{ResponseWriter: rec, start: time.Now().Add(-5 * time.Second)}
			tc.handler(sw, httptest.NewRequest(http.MethodGet, "/", nil))
			after := time.Now()
			d := rec.Result().Header.Get("Date")
			if tc.want != nil {
				if !tc.want(d) {
					t.Fatalf("Date %q, want the handler's", d)
				}
				return
			}
			at, err := http.ParseTime(d)
			if err != nil {
				t.Fatalf("Date %q: %v", d, err)
			}
			if at.Before(before) || at.After(after) {
				t.Errorf("Date %v, want between %v and %v", at, before, after)
			}
		})
	}
}
