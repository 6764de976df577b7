package main

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// logSummary is what one server log says, in counts.
type logSummary struct {
	path string
	// warnings and errors by "LEVEL msg"
	levels counts
	// refresh and login audit outcomes (rotated, grace_replay,
	// reuse_detected, …; succeeded, throttled, …)
	refresh, login counts
	// requests the server itself logged as 5xx other than 503, or slower
	// than the write timeout
	bad []string
	// lines that are not JSON (a panic's trace, the runtime's complaints)
	raw []string
}

// logLine is one line of a server log, kept raw for the evidence.
type logLine struct {
	file string
	n    int
	text string
	rec  map[string]any
}

func readLog(path string) []logLine {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []logLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		l := logLine{file: filepath.Base(path), n: n, text: sc.Text()}
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil {
			l.rec = rec
		}
		out = append(out, l)
	}
	return out
}

func str(rec map[string]any, k string) string {
	s, _ := rec[k].(string)
	return s
}

func num(rec map[string]any, k string) float64 {
	f, _ := rec[k].(float64)
	return f
}

// analyze reads the servers' logs and turns every broken requirement into
// a problem with its evidence: the request, its answer and the server's
// log lines around it (also written to <out>/<scenario>-evidence.txt).
func (r *result) analyze(out string) {
	if r.skipped != "" {
		return
	}
	var lines []logLine
	for _, p := range r.logPaths {
		ls := readLog(p)
		lines = append(lines, ls...)
		s := logSummary{path: p, levels: counts{}, refresh: counts{}, login: counts{}}
		for _, l := range ls {
			if l.rec == nil {
				if strings.TrimSpace(l.text) != "" && len(s.raw) < 40 {
					s.raw = append(s.raw, l.text)
				}
				continue
			}
			level, msg := str(l.rec, "level"), str(l.rec, "msg")
			if level == "WARN" || level == "ERROR" {
				s.levels[level+" "+msg]++
			}
			if msg == "audit" && str(l.rec, "event") == "refresh" {
				s.refresh[str(l.rec, "outcome")]++
			}
			if msg == "audit" && str(l.rec, "event") == "login" {
				s.login[str(l.rec, "outcome")]++
			}
			if msg == "request" {
				st := int(num(l.rec, "status"))
				if st >= 500 && st != 503 || num(l.rec, "duration_ms") > float64(writeTimeout.Milliseconds()) {
					s.bad = append(s.bad, l.text)
				}
			}
		}
		r.logs = append(r.logs, s)
	}
	r.explainRetries(lines)
	byRID := map[string][]int{}
	for i, l := range lines {
		if l.rec != nil {
			if id := str(l.rec, "request_id"); id != "" {
				byRID[id] = append(byRID[id], i)
			}
		}
	}

	var ev strings.Builder
	add := func(what string, s sample) {
		desc := describe(s, r.faultStart)
		fmt.Fprintf(&ev, "== %s\n%s\n", what, desc)
		idx := byRID[s.rid]
		var own []string
		for _, i := range idx {
			own = append(own, lines[i].text)
		}
		if len(idx) > 0 {
			lo, hi := max(idx[0]-5, 0), min(idx[len(idx)-1]+5, len(lines)-1)
			for i := lo; i <= hi; i++ {
				if lines[i].file == lines[idx[0]].file {
					fmt.Fprintf(&ev, "%s:%d %s\n", lines[i].file, lines[i].n, lines[i].text)
				}
			}
		} else {
			ev.WriteString("(no server log line carries this request id: the server never finished the request)\n")
			// The lines logged while it was in flight instead.
			for _, l := range lines {
				if l.rec == nil {
					continue
				}
				t, err := time.Parse(time.RFC3339Nano, str(l.rec, "time"))
				if err == nil && !t.Before(s.start) && !t.After(s.end()) && str(l.rec, "msg") != "request" {
					fmt.Fprintf(&ev, "%s:%d %s\n", l.file, l.n, l.text)
				}
			}
		}
		ev.WriteString("\n")
		p := what + ": " + desc
		if len(own) > 0 {
			p += "\n  server log: " + strings.Join(own, "\n  server log: ")
		}
		r.problems = append(r.problems, p)
	}
	const maxEach = 5
	n500, slow, none := 0, 0, 0
	for _, s := range append(append([]sample(nil), r.samples...), r.checks...) {
		switch {
		case s.status >= 500 && s.status != 503:
			if n500++; n500 <= maxEach {
				add(fmt.Sprintf("answer %d", s.status), s)
			}
		case s.status == 0:
			if none++; none <= maxEach {
				add("no answer", s)
			}
		case s.took > writeTimeout:
			if slow++; slow <= maxEach {
				add("slower than the write timeout", s)
			}
		}
	}
	for kind, n := range map[string]int{"5xx other than 503": n500, "no answer": none, "slower than 15 s": slow} {
		if n > maxEach {
			r.problems = append(r.problems, fmt.Sprintf("… and %d more %s (first %d above)", n-maxEach, kind, maxEach))
		}
	}
	for _, s := range r.logs {
		for _, l := range s.raw {
			if strings.Contains(l, "panic") || strings.Contains(l, "fatal error") {
				r.broken = append(r.broken, fmt.Sprintf("%s: %s", filepath.Base(s.path), l))
				fmt.Fprintf(&ev, "== not JSON in %s\n%s\n\n", s.path, strings.Join(s.raw, "\n"))
				break
			}
		}
	}
	// The answers' form: RFC 6749 JSON on the OAuth endpoints, problem
	// details elsewhere, Retry-After on every 503.
	noRetry, wrongForm := counts{}, counts{}
	for _, s := range append(append([]sample(nil), r.samples...), r.checks...) {
		if s.status != 503 {
			continue
		}
		if s.retryAfter == "" {
			noRetry[s.ep]++
		}
		oauth := strings.HasPrefix(s.ep, "POST /token") || s.ep == epRevoke
		switch code, _ := oauthError([]byte(s.body)); {
		case oauth && (code != "temporarily_unavailable" || !strings.HasPrefix(s.contentType, "application/json")):
			wrongForm[s.ep]++
		case !oauth && !strings.HasPrefix(s.contentType, "application/problem+json"):
			wrongForm[s.ep]++
		}
	}
	if len(noRetry) > 0 {
		r.notes = append(r.notes, "503 answers without Retry-After: "+noRetry.String())
	}
	if len(wrongForm) > 0 {
		r.notes = append(r.notes, "503 answers not in the documented form (temporarily_unavailable JSON on /token and /revoke, problem+json elsewhere): "+wrongForm.String())
	}
	if ev.Len() > 0 {
		path := filepath.Join(out, r.name+"-evidence.txt")
		if err := os.WriteFile(path, []byte(ev.String()), 0o600); err == nil {
			r.notes = append(r.notes, "evidence (requests and server log lines around them): "+path)
		}
	}
	sort.Strings(r.notes)
}

// writeSamples writes every request of the scenario to
// <out>/<scenario>-samples.csv, times relative to the fault's start.
func (r *result) writeSamples(out string) {
	if r.skipped != "" {
		return
	}
	f, err := os.Create(filepath.Join(out, r.name+"-samples.csv"))
	if err != nil {
		return
	}
	defer f.Close()
	w := csv.NewWriter(f)
	w.Write([]string{"phase", "replica", "endpoint", "sent_s_from_fault_start", "took_ms", "status", "error", "request_id"})
	for phase, ss := range map[string][]sample{"load": r.samples, "check": r.checks} {
		for _, s := range ss {
			w.Write([]string{phase, s.server, s.ep, fmt.Sprintf("%.3f", s.start.Sub(r.faultStart).Seconds()),
				fmt.Sprintf("%.1f", float64(s.took.Microseconds())/1000), fmt.Sprint(s.status), s.err, s.rid})
		}
	}
	w.Flush()
}

// explainRetries says, for each refresh that succeeded only on a retry
// with the same parent, what the failed attempts answered and what the
// server's audit log says the success was: "grace_replay" means a failed
// attempt had rotated the session after all (its answer was lost) and
// the grace window answered the same child again; "rotated" means none
// had committed.
func (r *result) explainRetries(lines []logLine) {
	type audit struct {
		at      time.Time
		outcome string
	}
	bySid := map[string][]audit{}
	for _, l := range lines {
		if l.rec == nil || str(l.rec, "msg") != "audit" || str(l.rec, "event") != "refresh" {
			continue
		}
		if t, err := time.Parse(time.RFC3339Nano, str(l.rec, "time")); err == nil {
			sid := str(l.rec, "sid")
			bySid[sid] = append(bySid[sid], audit{t, str(l.rec, "outcome")})
		}
	}
	rel := func(t time.Time) string { return fmt.Sprintf("fault%+.2f s", t.Sub(r.faultStart).Seconds()) }
	for _, ch := range r.chainData {
		for _, rt := range ch.retried {
			what := "no audit record found"
			for _, a := range bySid[ch.sid] {
				if !a.at.Before(rt.ok.sent.Add(-50*time.Millisecond)) && !a.at.After(rt.ok.at.Add(50*time.Millisecond)) {
					what = "server audit: " + a.outcome
					switch a.outcome {
					case "grace_replay":
						what += " (a failed attempt had rotated the session after all, its answer lost; the grace window answered the same child again)"
					case "rotated":
						what += " (no failed attempt had committed)"
					}
				}
			}
			first := rt.failed[0]
			st := counts{}
			for _, f := range rt.failed {
				if f.status == 0 {
					st["no answer"]++
				} else {
					st[fmt.Sprint(f.status)]++
				}
			}
			desc := fmt.Sprint(first.status)
			if first.status == 0 {
				desc = "no answer (" + first.err + ")"
			} else if first.desc != "" {
				desc += " " + first.desc
			}
			r.retries = append(r.retries, fmt.Sprintf("chain %d (%s): the refresh sent at %s answered %s (X-Request-Id %s); attempts with the same parent answered %s until the one sent at %s answered 200 (X-Request-Id %s) — %s",
				ch.id, ch.user, rel(first.sent), desc, first.rid, st, rel(rt.ok.sent), rt.ok.rid, what))
		}
	}
}
