package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "faultrun:", err)
	}
	os.Exit(code)
}

// options are the command line's.
type options struct {
	postgres  string
	scenarios []string
	out       string
	baseline  time.Duration
	after     time.Duration
	restart   time.Duration
	stop      time.Duration
	freeze    time.Duration
	full      time.Duration
	tmpfsSize string
	pace      time.Duration
	server    string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("faultrun", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defPG := os.Getenv("GATEHOUSE_TEST_POSTGRES_URL")
	if defPG == "" {
		defPG = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	var o options
	var scen string
	fs.StringVar(&o.postgres, "postgres", defPG, "PostgreSQL on 127.0.0.1 to run in (a schema of its own is created and dropped)")
	fs.StringVar(&scen, "scenarios", "restart,stop,freeze,disk", "scenarios to run, comma-separated")
	fs.StringVar(&o.out, "out", "", "directory for server logs and evidence (default: a new temporary directory, kept)")
	fs.DurationVar(&o.baseline, "baseline", 5*time.Second, "load before each fault")
	fs.DurationVar(&o.after, "after", 15*time.Second, "load after each fault ends")
	fs.DurationVar(&o.restart, "restart", 2*time.Second, "how long the restarting database refuses connections")
	fs.DurationVar(&o.stop, "stop", 20*time.Second, "how long the stopped database refuses connections")
	fs.DurationVar(&o.freeze, "freeze", 20*time.Second, "how long the frozen database moves no byte")
	fs.DurationVar(&o.full, "full", 10*time.Second, "how long the disk stays full once writes fail")
	fs.StringVar(&o.tmpfsSize, "tmpfs-size", "16m", "size of the SQLite tmpfs (the WAL grows to ~4 MiB before its first checkpoint)")
	fs.DurationVar(&o.pace, "pace", 25*time.Millisecond, "pause of each load worker between requests")
	fs.StringVar(&o.server, "server", "", "server binary to run (default: go build ./cmd/server into a temporary directory)")
	if err := fs.Parse(args); err != nil {
		return 2, nil
	}
	for _, s := range strings.Split(scen, ",") {
		if s = strings.TrimSpace(s); s != "" {
			if _, ok := scenarios[s]; !ok {
				return 2, fmt.Errorf("unknown scenario %q (restart, stop, freeze, disk)", s)
			}
			o.scenarios = append(o.scenarios, s)
		}
	}
	if o.out == "" {
		dir, err := os.MkdirTemp("", "faultrun-")
		if err != nil {
			return 1, err
		}
		o.out = dir
	} else if err := os.MkdirAll(o.out, 0o700); err != nil {
		return 1, err
	}
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "%s faultrun: "+format+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
	}
	logf("logs and evidence in %s", o.out)
	bin := o.server
	if bin == "" {
		logf("building ./cmd/server")
		binDir, err := os.MkdirTemp("", "faultrun-bin-")
		if err != nil {
			return 1, err
		}
		defer os.RemoveAll(binDir)
		if bin, err = buildServer(ctx, binDir); err != nil {
			return 1, err
		}
	}
	env := &runEnv{o: o, bin: bin, logf: logf}
	loadBefore := uptime()
	var results []*result
	for _, name := range o.scenarios {
		if ctx.Err() != nil {
			break
		}
		logf("scenario %s: start", name)
		r := scenarios[name](ctx, env)
		r.analyze(o.out)
		r.writeSamples(o.out)
		results = append(results, r)
		if r.skipped != "" {
			logf("scenario %s: SKIPPED: %s", name, r.skipped)
		} else {
			logf("scenario %s: done, %s", name, r.verdict())
		}
	}
	loadAfter := uptime()
	report := renderReport(results, loadBefore, loadAfter, o)
	fmt.Fprint(stdout, report)
	_ = os.WriteFile(o.out+"/report.md", []byte(report), 0o600)
	logf("report written to %s/report.md", o.out)
	if ctx.Err() != nil {
		return 1, errors.New("interrupted")
	}
	for _, r := range results {
		if r.skipped == "" && len(r.failures()) > 0 {
			return 1, nil
		}
	}
	return 0, nil
}

// uptime is the load line of uptime(1): others share the machine.
func uptime() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], ", ")
}
