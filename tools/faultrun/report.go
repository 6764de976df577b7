package main

import (
	"fmt"
	"runtime"
	"sort"
	"strings"
	"time"
)

// renderReport is the markdown of RELIABILITY.md's tables: one row per
// scenario, then each scenario's endpoints, timeline and findings.
func renderReport(results []*result, loadBefore, loadAfter string, o options) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Fault run of %s on %d CPUs (load average %s before, %s after); baseline %s, recovery watched %s; each load worker pauses %s between requests.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), loadBefore, loadAfter, o.baseline, o.after, o.pace)
	b.WriteString("| scenario | answers by status | 500 | > 15 s or no answer | worst latency | p99 | recovery (first write after the fault) | /readyz: 503 during, 200 after | acknowledged lost | change feed after (revoke → refused) |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		if r.skipped != "" {
			fmt.Fprintf(&b, "| %s | skipped: %s | | | | | | | | |\n", r.name, r.skipped)
			continue
		}
		all := append(append([]sample(nil), r.samples...), r.checks...)
		st, _ := tally(r.samples)
		var n500, hang int
		for _, s := range all {
			if s.status >= 500 && s.status != 503 {
				n500++
			}
			if s.status == 0 || s.took > writeTimeout {
				hang++
			}
		}
		w := worst(r.samples)
		rec := "no write after the fault"
		if s, ok := firstWriteAfter(r.samples, r.faultEnd); ok {
			rec = seconds(s.end().Sub(r.faultEnd))
		}
		down, back := readyTimeline(r.samples, "a", r.faultStart, r.faultEnd)
		ready := "no 503"
		if down {
			ready = "503"
		}
		if back >= 0 {
			ready += ", 200 after " + seconds(back)
		} else {
			ready += ", never 200 again"
		}
		lost := fmt.Sprintf("%d of %d users, %d of %d refresh chains", len(r.missingUsers)+len(r.missingReboot), r.ackedUsers, len(r.lostChains), r.chains)
		if !r.checked {
			lost = "not checked"
		}
		if r.reuseAfterLost > 0 {
			lost += fmt.Sprintf("; **%d login ended**: a refresh answered as failed had rotated it, the retry came past the grace window", r.reuseAfterLost)
		}
		feedCol := "n/a (one process)"
		if len(r.feedAfter) > 0 {
			var fs []string
			for _, f := range r.feedAfter {
				fs = append(fs, f.String())
			}
			feedCol = strings.Join(fs, "; ")
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s (%s) | %s | %s | %s | %s | %s |\n",
			r.name, st, yesNo(n500), yesNo(hang), seconds(w.took), w.ep, seconds(percentile(durations(r.samples), 99)), rec, ready, lost, feedCol)
	}
	for _, r := range results {
		if r.skipped != "" {
			continue
		}
		fmt.Fprintf(&b, "\n### %s (%s)\n\n%s. Load average at its start: %s.\n\n", r.name, r.engine, r.fault, r.loadAvg)
		fmt.Fprintf(&b, "Timeline: load from t=0, fault from t=%+.2f s to t=%+.2f s", r.faultStart.Sub(r.t0).Seconds(), r.faultEnd.Sub(r.t0).Seconds())
		if !r.writesFailedAt.IsZero() {
			fmt.Fprintf(&b, " (the disk was full at its start; the first write failed %.2f s later)", r.writesFailedAt.Sub(r.faultStart).Seconds())
		}
		if len(r.samples) > 0 {
			last := r.samples[0].end()
			for _, s := range r.samples {
				if s.end().After(last) {
					last = s.end()
				}
			}
			fmt.Fprintf(&b, ", load until t=%+.2f s", last.Sub(r.t0).Seconds())
		}
		b.WriteString(".\n\n")
		_, byEP := tally(r.samples)
		during := counts{}
		for _, s := range r.samples {
			if !s.start.Before(r.faultStart) && s.start.Before(r.faultEnd) {
				during[statusKey(s)]++
			}
		}
		fmt.Fprintf(&b, "Answers to requests sent during the fault: %s.\n\n", during)
		b.WriteString("| endpoint | answers by status | p50 | p99 | worst |\n|---|---|---|---|---|\n")
		eps := make([]string, 0, len(byEP))
		for ep := range byEP {
			eps = append(eps, ep)
		}
		sort.Strings(eps)
		for _, ep := range eps {
			var ss []sample
			for _, s := range r.samples {
				if endpointName(s) == ep {
					ss = append(ss, s)
				}
			}
			ds := durations(ss)
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", ep, byEP[ep], seconds(percentile(ds, 50)), seconds(percentile(ds, 99)), seconds(worst(ss).took))
		}
		chk, _ := tally(r.checks)
		fmt.Fprintf(&b, "\nChecks after the load (%d requests: %s):\n\n", chk.total(), chk)
		if !r.checked {
			fmt.Fprintf(&b, "- acknowledged users (%d) and refresh chains (%d): not checked, see below\n", r.ackedUsers, r.chains)
		} else {
			r.renderChecks(&b)
		}
		if len(r.feedBefore) > 0 {
			fmt.Fprintf(&b, "- change feed before the fault: %s; after: %s\n", feeds(r.feedBefore), feeds(r.feedAfter))
			down, back := readyTimeline(r.samples, "b", r.faultStart, r.faultEnd)
			again := "never"
			if back >= 0 {
				again = seconds(back) + " after it"
			}
			fmt.Fprintf(&b, "- replica b's /readyz: 503 during the fault: %v; 200 again: %s\n", down, again)
		}
		for _, s := range r.logs {
			fmt.Fprintf(&b, "- server log `%s`: login audit %s; refresh audit %s", baseName(s.path), orNone(s.login), orNone(s.refresh))
			if len(s.levels) > 0 {
				fmt.Fprintf(&b, "; warnings and errors: %s", s.levels)
			}
			fmt.Fprintf(&b, "; requests it logged with a 5xx other than 503 or slower than 15 s: %d", len(s.bad))
			b.WriteString("\n")
		}
		for _, c := range r.endedChains {
			fmt.Fprintf(&b, "- %s\n", c)
		}
		for _, c := range r.retries {
			fmt.Fprintf(&b, "- retried refresh: %s\n", c)
		}
		for _, n := range r.notes {
			fmt.Fprintf(&b, "- note: %s\n", n)
		}
		if f := r.failures(); len(f) > 0 {
			fmt.Fprintf(&b, "\n**Requirements broken:** %s.\n", strings.Join(f, "; "))
		} else {
			b.WriteString("\nEvery requirement held.\n")
		}
		for _, p := range append(append([]string(nil), r.broken...), r.problems...) {
			fmt.Fprintf(&b, "\n```\n%s\n```\n", p)
		}
		for _, c := range r.lostChains {
			fmt.Fprintf(&b, "\n```\n%s\n```\n", c)
		}
	}
	return b.String()
}

func feeds(fs []feed) string {
	var s []string
	for _, f := range fs {
		s = append(s, f.String())
	}
	return strings.Join(s, ", ")
}

func yesNo(n int) string {
	if n == 0 {
		return "none"
	}
	return fmt.Sprintf("**%d**", n)
}

func orNone(c counts) string {
	if len(c) == 0 {
		return "none"
	}
	return c.String()
}

func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// renderChecks writes what the checks after the load found.
func (r *result) renderChecks(b *strings.Builder) {
	fmt.Fprintf(b, "- users acknowledged (201) and found afterwards: %d of %d", r.ackedUsers-len(r.missingUsers), r.ackedUsers)
	if r.engine == "SQLite" {
		if r.rebootChecked {
			fmt.Fprintf(b, "; after restarting the server on the same file: %d of %d", r.ackedUsers-len(r.missingReboot), r.ackedUsers)
		} else {
			b.WriteString("; after restarting the server on the same file: not checked")
		}
	}
	fmt.Fprintf(b, "; POST /users not answered 201: %d, of which %d created the user anyway\n", r.unackedUsers, r.landedAnyway)
	fmt.Fprintf(b, "- refresh chains: %d, %d still rotating at the end, %d ended while the load ran, %d lost; %d refreshes succeeded on a retry with the same parent\n",
		r.chains, r.chainsOK, len(r.endedChains), len(r.lostChains), r.retriedOK)
}
