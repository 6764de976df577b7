package main

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// percentile is the nearest-rank p-th percentile (0 < p <= 100) of ds:
// the smallest value with at least p% of the values at or below it. It
// is 0 for no values.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

// statusKey is how a sample's outcome is counted: the status code, or
// "no answer" when the request got none.
func statusKey(s sample) string {
	if s.status == 0 {
		return "no answer"
	}
	return fmt.Sprint(s.status)
}

// counts is a tally by key.
type counts map[string]int

// String lists the tally as "200:12 503:4", keys in order (numbers
// first, by value).
func (c counts) String() string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if len(keys[i]) != len(keys[j]) {
			return len(keys[i]) < len(keys[j])
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, c[k])
	}
	return strings.Join(parts, ", ")
}

func (c counts) total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// tally counts samples by status, overall and by endpoint (the endpoint
// of a replica other than "a" is named with it).
func tally(samples []sample) (all counts, byEndpoint map[string]counts) {
	all, byEndpoint = counts{}, map[string]counts{}
	for _, s := range samples {
		k := statusKey(s)
		all[k]++
		ep := endpointName(s)
		if byEndpoint[ep] == nil {
			byEndpoint[ep] = counts{}
		}
		byEndpoint[ep][k]++
	}
	return all, byEndpoint
}

func endpointName(s sample) string {
	if s.server == "a" {
		return s.ep
	}
	return s.ep + " (replica " + s.server + ")"
}

// worst is the slowest sample (the zero sample for none).
func worst(samples []sample) sample {
	var w sample
	for _, s := range samples {
		if s.took > w.took {
			w = s
		}
	}
	return w
}

func durations(samples []sample) []time.Duration {
	ds := make([]time.Duration, len(samples))
	for i, s := range samples {
		ds[i] = s.took
	}
	return ds
}

// firstWriteAfter is the first successful write answered at or after t
// (by when it was answered); ok is false when there was none.
func firstWriteAfter(samples []sample, t time.Time) (sample, bool) {
	var best sample
	found := false
	for _, s := range samples {
		if !isWrite(s.ep) || s.status < 200 || s.status >= 300 || s.end().Before(t) {
			continue
		}
		if !found || s.end().Before(best.end()) {
			best, found = s, true
		}
	}
	return best, found
}

// readyTimeline summarises a replica's /readyz samples around a fault:
// whether one answered 503 while it lasted, and when it answered 200 for
// good after it ended (measured from end; negative when it never did).
func readyTimeline(samples []sample, server string, start, end time.Time) (sawDown bool, backAfter time.Duration) {
	var rs []sample
	for _, s := range samples {
		if s.ep == epReady && s.server == server {
			rs = append(rs, s)
		}
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].start.Before(rs[j].start) })
	lastBad := time.Time{}
	for _, s := range rs {
		if s.end().After(start) && s.start.Before(end) && s.status == 503 {
			sawDown = true
		}
		if s.status != 200 {
			lastBad = s.end()
		}
	}
	backAfter = -1
	for _, s := range rs {
		if s.status == 200 && !s.end().Before(end) && !s.start.Before(lastBad) {
			backAfter = max(0, s.end().Sub(end))
			break
		}
	}
	return sawDown, backAfter
}

// seconds formats d as seconds with two decimals.
func seconds(d time.Duration) string {
	return fmt.Sprintf("%.2f s", d.Seconds())
}
