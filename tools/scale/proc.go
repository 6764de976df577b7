package main

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// parseStat returns utime and stime, in clock ticks, from the contents of
// /proc/<pid>/stat (proc(5): fields 14 and 15). The command name (field
// 2) is in parentheses and may itself hold spaces and parentheses, so the
// fields are counted from the last ')'.
func parseStat(b []byte) (utime, stime uint64, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errors.New("proc stat: no ')' after the command name")
	}
	// Fields from 3 (state) on.
	f := strings.Fields(string(b[i+1:]))
	const utimeAt, stimeAt = 14 - 3, 15 - 3
	if len(f) <= stimeAt {
		return 0, 0, fmt.Errorf("proc stat: %d fields after the command name, want more than %d", len(f), stimeAt)
	}
	if utime, err = strconv.ParseUint(f[utimeAt], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("proc stat: utime: %w", err)
	}
	if stime, err = strconv.ParseUint(f[stimeAt], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("proc stat: stime: %w", err)
	}
	return utime, stime, nil
}

// parseStatusKiB returns the value in KiB of the field called name (VmRSS,
// VmHWM) in the contents of /proc/<pid>/status.
func parseStatusKiB(b []byte, name string) (int64, error) {
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(line, name+":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("proc status: %s: unexpected %q", name, strings.TrimSpace(rest))
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, fmt.Errorf("proc status: no %s", name)
}

// cpuTicks is the CPU time (user and system, every thread) pid has used.
func cpuTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	u, s, err := parseStat(b)
	return u + s, err
}

// memKiB reads VmRSS and VmHWM of pid.
func memKiB(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	if rss, err = parseStatusKiB(b, "VmRSS"); err != nil {
		return 0, 0, err
	}
	hwm, err = parseStatusKiB(b, "VmHWM")
	return rss, hwm, err
}

// clockTicks is sysconf(_SC_CLK_TCK), from getconf; Linux has used 100
// on every architecture for a long time.
func clockTicks() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && n > 0 {
			return float64(n)
		}
	}
	return 100
}

// loadAverage is the first three fields of /proc/loadavg.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// loadAverage1 is the one-minute load average, or -1.
func loadAverage1() float64 {
	f := strings.Fields(loadAverage())
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

// percentile is the nearest-rank p-th percentile (0 < p <= 100) of d:
// the smallest sample that at least p% of the samples do not exceed.
// It sorts d. Zero for no samples.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	// p*n first: 99/100 is inexact in binary, 99*300/100 is not.
	rank := int(math.Ceil(p * float64(len(d)) / 100))
	return d[min(max(rank, 1), len(d))-1]
}
