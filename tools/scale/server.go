package main

import (
	"bufio"
	"bytes"
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// buildServer builds ./cmd/server into dir.
func buildServer(ctx context.Context, goCmd, dir string) (string, error) {
	bin := filepath.Join(dir, "gatehouse")
	cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath", "-o", bin, "./cmd/server")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/server: %w", err)
	}
	return bin, nil
}

// revision names the commit the binary was built from: go build's stamp,
// or, when stamping is off (GOFLAGS=-buildvcs=false), git's HEAD of the
// working directory, read without touching the index.
func revision(bin string) string {
	var rev, modified string
	if bi, err := buildinfo.ReadFile(bin); err == nil {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
	}
	if rev == "" {
		out, err := exec.Command("git", "rev-parse", "HEAD").Output()
		if err != nil {
			return "unknown commit"
		}
		rev = strings.TrimSpace(string(out))
		if out, err := exec.Command("git", "diff-index", "--name-only", "HEAD", "--").Output(); err == nil && len(bytes.TrimSpace(out)) > 0 {
			modified = "true"
		}
	}
	if len(rev) > 7 {
		rev = rev[:7]
	}
	if modified == "true" {
		return "commit " + rev + " with uncommitted changes"
	}
	return "commit " + rev
}

// server is one running replica.
type server struct {
	cmd     *exec.Cmd
	pid     int
	base    string // http://127.0.0.1:port
	logPath string
	exited  chan struct{}
	waitErr error
	// Started is when it was exec'd; Ready when /readyz first answered
	// 200, and ReadyTicks the CPU it had used by then.
	Started    time.Time
	Ready      time.Time
	ReadyTicks uint64
}

// startServer runs bin with a clean environment (only env, PATH and HOME)
// on 127.0.0.1:0, pinned to cpu with taskset when cpu >= 0, its log in
// logPath, and waits until /readyz answers 200.
func startServer(ctx context.Context, bin string, env []string, cpu int, logPath string, timeout time.Duration) (*server, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	name, args := bin, []string{}
	if cpu >= 0 {
		// taskset execs the server: the pid stays the server's.
		name, args = "taskset", []string{"-c", fmt.Sprint(cpu), bin}
	}
	cmd := exec.Command(name, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "GATEHOUSE_ADDR=127.0.0.1:0"}, env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	s := &server{cmd: cmd, logPath: logPath, exited: make(chan struct{}), Started: time.Now()}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s.pid = cmd.Process.Pid
	go func() { s.waitErr = cmd.Wait(); close(s.exited) }()

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	fail := func(err error) (*server, error) {
		s.stop()
		return nil, fmt.Errorf("%w (server log %s:\n%s)", err, logPath, tail(logPath, 20))
	}
	for s.base == "" {
		addr, err := listeningAddr(logPath)
		if err != nil {
			return fail(err)
		}
		if addr != "" {
			host, _, err := net.SplitHostPort(addr)
			if err != nil || host != "127.0.0.1" {
				return fail(fmt.Errorf("the server listens on %q, not on 127.0.0.1", addr))
			}
			s.base = "http://" + addr
			break
		}
		if err := s.pause(ctx, 20*time.Millisecond); err != nil {
			return fail(fmt.Errorf("waiting for the server to listen: %w", err))
		}
	}
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := c.Get(s.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if err := s.pause(ctx, 20*time.Millisecond); err != nil {
			return fail(fmt.Errorf("waiting for /readyz: %w", err))
		}
	}
	s.Ready = time.Now()
	if s.ReadyTicks, err = cpuTicks(s.pid); err != nil {
		return fail(err)
	}
	return s, nil
}

// pause waits d, failing when ctx ends or the server exits.
func (s *server) pause(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.exited:
		return fmt.Errorf("the server exited: %v", s.waitErr)
	case <-time.After(d):
		return nil
	}
}

// stop ends the server with SIGTERM, then SIGKILL after 10 s.
func (s *server) stop() error {
	select {
	case <-s.exited:
		return nil
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return errors.New("the server did not stop within 10 s of SIGTERM; killed")
	}
	var ee *exec.ExitError
	if s.waitErr != nil && !errors.As(s.waitErr, &ee) {
		return s.waitErr
	}
	return nil
}

// listeningAddr finds the "gatehouse listening" line in the JSON log.
func listeningAddr(logPath string) (string, error) {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "gatehouse listening" {
			return line.Addr, nil
		}
	}
	return "", nil
}

// tail is the last n lines of the file at path.
func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// scrape reads /metrics: the store calls by operation, and the Go heap.
func scrape(ctx context.Context, c *http.Client, base string) (*metricsSnap, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return nil, err
	}
	text := buf.String()
	return &metricsSnap{
		calls:   parseStoreCalls(text),
		heap:    gauge(text, "go_memstats_heap_alloc_bytes"),
		nextGC:  gauge(text, "go_memstats_next_gc_bytes"),
		objects: gauge(text, "go_memstats_heap_objects"),
	}, nil
}

// metricsSnap is what scrape reads; a gauge missing from /metrics is -1.
type metricsSnap struct {
	calls                 map[string]callStat
	heap, nextGC, objects float64
}

// gauge reads the value of an unlabelled metric, or -1.
func gauge(text, name string) float64 {
	for line := range strings.Lines(text) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			if _, err := fmt.Sscan(strings.TrimSpace(v), &f); err == nil {
				return f
			}
		}
	}
	return -1
}

// callStat is a count of store calls and their total duration.
type callStat struct {
	N   float64
	Sum float64 // seconds
}

// parseStoreCalls reads gatehouse_store_duration_seconds_{count,sum} from
// a Prometheus text exposition, summed over results, by op.
func parseStoreCalls(text string) map[string]callStat {
	out := map[string]callStat{}
	for line := range strings.Lines(text) {
		var isSum bool
		rest, ok := strings.CutPrefix(line, "gatehouse_store_duration_seconds_count{")
		if !ok {
			if rest, ok = strings.CutPrefix(line, "gatehouse_store_duration_seconds_sum{"); !ok {
				continue
			}
			isSum = true
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		var op string
		for l := range strings.SplitSeq(labels, ",") {
			if v, ok := strings.CutPrefix(l, `op="`); ok {
				op = strings.TrimSuffix(v, `"`)
			}
		}
		var v float64
		if _, err := fmt.Sscan(strings.TrimSpace(value), &v); err != nil || op == "" {
			continue
		}
		c := out[op]
		if isSum {
			c.Sum += v
		} else {
			c.N += v
		}
		out[op] = c
	}
	return out
}
