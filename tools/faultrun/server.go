package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// adminPassword is the bootstrap admin's password in every server started
// here.
const adminPassword = "faultrun-admin-password"

// buildServer builds cmd/server into dir with the go command named by
// $GO (default "go"), from the module the tool runs in.
func buildServer(ctx context.Context, dir string) (string, error) {
	goCmd := os.Getenv("GO")
	if goCmd == "" {
		goCmd = "go"
	}
	bin := filepath.Join(dir, "gatehouse")
	cmd := exec.CommandContext(ctx, goCmd, "build", "-o", bin, "github.com/gatehouse/gatehouse/cmd/server")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/server: %v\n%s", err, out)
	}
	return bin, nil
}

// server is one running server process whose stderr (JSON logs) goes to
// a file.
type server struct {
	name    string
	url     string
	logPath string

	cmd    *exec.Cmd
	done   chan struct{}
	mu     sync.Mutex
	exited bool
	err    error
}

// startServer runs bin with env on top of the defaults (127.0.0.1:0, the
// bootstrap admin, cheap argon2id) and waits until it listens and /readyz
// answers 200.
func startServer(bin, name, logPath string, env map[string]string) (*server, error) {
	full := map[string]string{
		"GATEHOUSE_ADDR":                     "127.0.0.1:0",
		"GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD": adminPassword,
		"GATEHOUSE_ARGON2_MEMORY_KIB":        "64",
		"GATEHOUSE_ARGON2_ITERATIONS":        "1",
	}
	for k, v := range env {
		full[k] = v
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin)
	cmd.Env = os.Environ()
	for k, v := range full {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	// The server dies with the tool, whatever ends it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		logFile.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	s := &server{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		defer close(s.done)
		defer logFile.Close()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			logFile.Write(line)
			logFile.Write([]byte{'\n'})
			var rec struct{ Msg, Addr string }
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "gatehouse listening" {
				select {
				case addr <- rec.Addr:
				default:
				}
			}
		}
		io.Copy(logFile, stderr)
		err := cmd.Wait()
		s.mu.Lock()
		s.exited, s.err = true, err
		s.mu.Unlock()
	}()
	select {
	case a := <-addr:
		s.url = "http://" + a
	case <-s.done:
		return nil, fmt.Errorf("%s exited before listening (log: %s)", name, logPath)
	case <-time.After(90 * time.Second):
		s.stop()
		return nil, fmt.Errorf("%s did not listen within 90s (log: %s)", name, logPath)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := c.Get(s.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("%s not ready within 60s (log: %s)", name, logPath)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// alive reports whether the process is still running, and if not, how it
// ended.
func (s *server) alive() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.exited, s.err
}

// stop sends SIGTERM, waits up to 20 s for the graceful shutdown, then
// kills.
func (s *server) stop() {
	if ok, _ := s.alive(); !ok {
		<-s.done
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}
