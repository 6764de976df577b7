package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// report prints the markdown table for one engine: ms[0] is the empty
// store, the last one the seeded store. It reports whether every target
// was met.
func report(w io.Writer, engine, header string, cfg *config, ms []*measurement) bool {
	base, big := ms[0], ms[len(ms)-1]
	fmt.Fprintf(w, "\n#### gatehouse scale run on %s, %s\n\n", engine, time.Now().UTC().Format("2006-01-02T15:04Z"))
	fmt.Fprintf(w, "%s.\n", header)
	if n := len(big.idleStart); n > 1 {
		fmt.Fprintf(w, "%d replicas on one database; a cell with several values gives them per replica, and the load goes to replica 1.\n", n)
	}
	for _, m := range ms {
		fmt.Fprintf(w, "Load average before the %s run %s, after %s.\n", m.label, m.loadBefore, m.loadAfter)
	}
	fmt.Fprintf(w, "\n| | %s | %s | %s / %s |\n|---|---|---|---|\n", base.label, big.label, big.label, "empty")
	row := func(name string, f func(m *measurement) string, ratio string) {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", name, f(base), f(big), ratio)
	}
	row("store", func(m *measurement) string {
		return fmt.Sprintf("%s users, %s live sessions, %s revoked sessions, %s revoked tokens",
			thousands(m.seed.Users), thousands(m.seed.LiveSessions), thousands(m.seed.RevokedSessions), thousands(m.seed.RevokedTokens))
	}, "")
	row("seeding through the store API", func(m *measurement) string { return round(m.seed.Took) }, "")
	row("store size", func(m *measurement) string {
		if m.storeBytes < 0 {
			return "unknown"
		}
		return mib(m.storeBytes / 1024)
	}, "")
	row("start to /readyz", func(m *measurement) string { return joinDur(m.startToReady) }, ratioDur(base.startToReady[0], big.startToReady[0]))
	row("CPU to start", func(m *measurement) string { return joinF(m.startCPU, "%.2f s") }, ratioF(base.startCPU[0], big.startCPU[0]))
	row(fmt.Sprintf("idle CPU, %s after start", cfg.Idle), func(m *measurement) string { return joinF(m.idleStart, "%.2f%%") }, "")
	row(fmt.Sprintf("idle CPU, %s after the load", cfg.Idle), func(m *measurement) string { return joinF(m.idleLoad, "%.2f%%") }, "")
	row("store calls in the idle window after start", func(m *measurement) string { return calls(m.snapStart.calls) }, "")
	row("RSS idle after start", func(m *measurement) string { return joinKiB(m.rssIdle) }, ratioF(float64(base.rssIdle[0]), float64(big.rssIdle[0])))
	row("RSS after the load", func(m *measurement) string { return joinKiB(m.rssLoad) }, ratioF(float64(base.rssLoad[0]), float64(big.rssLoad[0])))
	row("peak RSS (VmHWM)", func(m *measurement) string { return joinKiB(m.hwm) }, ratioF(float64(base.hwm[0]), float64(big.hwm[0])))
	heap := func(s *metricsSnap) string {
		if s.heap < 0 || s.nextGC < 0 {
			return "unknown"
		}
		return fmt.Sprintf("%s / %s, %s objects", mib(int64(s.heap)/1024), mib(int64(s.nextGC)/1024), thousands(int(s.objects)))
	}
	row("Go heap allocated / next GC goal, after start", func(m *measurement) string { return heap(m.snapStart) }, ratioF(base.snapStart.heap, big.snapStart.heap))
	row("Go heap allocated / next GC goal, after the load", func(m *measurement) string { return heap(m.snapLoad) }, ratioF(base.snapLoad.heap, big.snapLoad.heap))
	lat := func(name string, get func(m *measurement) latencies) {
		row(fmt.Sprintf("%s p50 / p99 (%d)", name, get(base).N), func(m *measurement) string {
			l := get(m)
			return fmt.Sprintf("%s / %s", ms3(l.P50), ms3(l.P99))
		}, ratioDur(get(base).P50, get(big).P50)+" / "+ratioDur(get(base).P99, get(big).P99))
		row(fmt.Sprintf("%s server CPU per request", name), func(m *measurement) string { return ms3(get(m).CPU) },
			ratioDur(get(base).CPU, get(big).CPU))
	}
	lat("login", func(m *measurement) latencies { return m.login })
	lat("refresh (chained)", func(m *measurement) latencies { return m.refresh })
	lat("GET /users/me", func(m *measurement) latencies { return m.me })
	row(fmt.Sprintf("session rows of one login: after it, after 1 and after %d refreshes", cfg.Refreshes), func(m *measurement) string {
		return fmt.Sprintf("%d / %d / %d", m.rows.AfterLogin, m.rows.AfterOne, m.rows.AfterAll)
	}, "")
	row(fmt.Sprintf("rows added to sessions / changes by the %d refreshes", cfg.Refreshes), func(m *measurement) string {
		return fmt.Sprintf("%d / %d", m.rows.SessionsDelta, m.rows.ChangesDelta)
	}, "")

	idleMax := 0.0
	for _, v := range slices.Concat(big.idleStart, big.idleLoad) {
		idleMax = max(idleMax, v)
	}
	idleOK := idleMax < cfg.MaxIdleCPU
	rowsOK := true
	for _, m := range ms {
		r := m.rows
		if r.AfterLogin != 1 || r.AfterOne != 1 || r.AfterAll != 1 || r.SessionsDelta != 0 || r.ChangesDelta != 0 {
			rowsOK = false
		}
	}
	ok := idleOK && rowsOK
	fmt.Fprintf(w, "\n| target | result |\n|---|---|\n")
	fmt.Fprintf(w, "| idle CPU under %g%% of a core per replica with %s | %s (highest %.2f%%) |\n",
		cfg.MaxIdleCPU, big.label, pass(idleOK), idleMax)
	fmt.Fprintf(w, "| constant rows per session: 1 after the login, after 1 and after %d refreshes, nothing added elsewhere | %s |\n",
		cfg.Refreshes, pass(rowsOK))
	return ok
}

func pass(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func round(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(time.Second).String()
	case d >= time.Second:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Millisecond).String()
	}
}

func ms3(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func mib(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

func joinDur(ds []time.Duration) string {
	var s []string
	for _, d := range ds {
		s = append(s, round(d))
	}
	return strings.Join(s, ", ")
}

func joinF(vs []float64, format string) string {
	var s []string
	for _, v := range vs {
		s = append(s, fmt.Sprintf(format, v))
	}
	return strings.Join(s, ", ")
}

func joinKiB(vs []int64) string {
	var s []string
	for _, v := range vs {
		s = append(s, mib(v))
	}
	return strings.Join(s, ", ")
}

func ratioF(base, v float64) string {
	if base <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", v/base)
}

func ratioDur(base, v time.Duration) string { return ratioF(float64(base), float64(v)) }

// calls lists store calls by operation, most frequent first.
func calls(cs map[string]callStat) string {
	if len(cs) == 0 {
		return "none"
	}
	ops := make([]string, 0, len(cs))
	for op := range cs {
		ops = append(ops, op)
	}
	slices.SortFunc(ops, func(a, b string) int {
		return cmp.Or(cmp.Compare(cs[b].N, cs[a].N), cmp.Compare(a, b))
	})
	var s []string
	for _, op := range ops {
		s = append(s, fmt.Sprintf("%s ×%.0f (%.1f ms)", op, cs[op].N, cs[op].Sum*1000))
	}
	return strings.Join(s, ", ")
}

// thousands formats n with commas: 400000 → "400,000".
func thousands(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
