// Package servertest starts real gatehouse server processes for the tests
// of packages that talk to gatehouse over HTTP (the Go SDK, the
// resource-server middleware, end-to-end tests): the binary is built once
// per test process from cmd/server and run on 127.0.0.1 with a SQLite
// store in a temporary directory, unless the caller names another.
package servertest

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// AdminPassword is the bootstrap admin's password in every server started
// here (username "admin", every scope).
const AdminPassword = "servertest-admin-password"

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds cmd/server once and returns its path.
func Binary() (string, error) {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gatehouse-servertest-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "gatehouse")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/gatehouse/gatehouse/cmd/server")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build cmd/server: %v\n%s", err, out)
		}
	})
	return binPath, buildErr
}

// Cleanup removes the binary Binary built. A test package that starts
// servers calls it from TestMain after m.Run, so a test run leaves no
// binary behind (some 36 MB each).
func Cleanup() {
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
}

// Server is one running server process.
type Server struct {
	// URL is the base URL, e.g. http://127.0.0.1:40123.
	URL string
	// Dir holds the server's SQLite database.
	Dir string
	// Env is the environment it was started with (GATEHOUSE_* only).
	Env map[string]string

	cmd  *exec.Cmd
	mu   sync.Mutex
	logs strings.Builder
	done chan struct{}
}

// Start runs a server with the given GATEHOUSE_* variables on top of the
// defaults (a free port, a fresh SQLite file, the bootstrap admin, argon2id
// parameters small enough for tests) and waits until /readyz answers 200.
func Start(env map[string]string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "gatehouse-servertest-data-")
	if err != nil {
		return nil, err
	}
	full := map[string]string{
		"GATEHOUSE_ADDR":                     "127.0.0.1:0",
		"GATEHOUSE_DATABASE_URL":             "sqlite://" + filepath.ToSlash(filepath.Join(dir, "gatehouse.db")),
		"GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD": AdminPassword,
		"GATEHOUSE_ARGON2_MEMORY_KIB":        "64",
		"GATEHOUSE_ARGON2_ITERATIONS":        "1",
	}
	for k, v := range env {
		full[k] = v
	}
	s := &Server{Dir: dir, Env: full, done: make(chan struct{})}
	s.cmd = exec.Command(bin)
	s.cmd.Env = os.Environ()
	for k, v := range full {
		s.cmd.Env = append(s.cmd.Env, k+"="+v)
	}
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	addr := make(chan string, 1)
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.logs.WriteString(line + "\n")
			s.mu.Unlock()
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "gatehouse listening" {
				if a, ok := rec["addr"].(string); ok {
					addr <- a
				}
			}
		}
		s.cmd.Wait()
	}()
	select {
	case a := <-addr:
		s.URL = "http://" + a
	case <-s.done:
		return nil, fmt.Errorf("server exited before listening:\n%s", s.Logs())
	case <-time.After(60 * time.Second):
		s.Stop()
		return nil, fmt.Errorf("server did not listen within 60s:\n%s", s.Logs())
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, errors.New("server not ready within 30s:\n" + s.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Logs returns what the server wrote to stderr so far.
func (s *Server) Logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

// Stop shuts the server down gracefully (SIGTERM) and removes its data.
func (s *Server) Stop() {
	if s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(15 * time.Second):
			s.cmd.Process.Kill()
			<-s.done
		}
	}
	os.RemoveAll(s.Dir)
}

// Kill ends the server at once with SIGKILL, as a crash would, and waits
// for the process to be gone. Unlike Stop it removes nothing, so a test
// can start another server on the same store; Stop may still be called
// afterwards (at cleanup) to remove Dir.
func (s *Server) Kill() {
	if s.cmd.Process != nil {
		s.cmd.Process.Kill()
		<-s.done
	}
}

// TB is the part of testing.TB that StartT needs.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// StartT starts a server for one test and stops it at cleanup.
func StartT(t TB, env map[string]string) *Server {
	t.Helper()
	s, err := Start(env)
	if err != nil {
		t.Fatalf("start gatehouse: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}
