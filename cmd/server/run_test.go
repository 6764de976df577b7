package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestRun_help_prints_every_variable_to_stdout(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"--help", "-h", "help"} {
		var stdout, stderr bytes.Buffer
		// No environment at all: help must not need a valid configuration.
		err := run(t.Context(), []string{arg}, func(string) string { return "" }, strings.NewReader(""), &stdout, &stderr)
		if err != nil {
			t.Errorf("run(%q) = %v, want nil", arg, err)
		}
		for _, e := range envDoc {
			if !strings.Contains(stdout.String(), e.name) {
				t.Errorf("run(%q) stdout does not list %s:\n%s", arg, e.name, stdout.String())
			}
		}
		if !strings.Contains(stdout.String(), "users create") {
			t.Errorf("run(%q) stdout does not show the users commands:\n%s", arg, stdout.String())
		}
		if stderr.Len() != 0 {
			t.Errorf("run(%q) wrote to stderr: %q", arg, stderr.String())
		}
	}
}

func TestRun_unknown_command_is_an_error(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"serve", "now"}, `unknown command "now"`},
		{[]string{"users"}, "usage: gatehouse users"},
		{[]string{"users", "frobnicate"}, `unknown users command "frobnicate"`},
		{[]string{"users", "create"}, "usage: gatehouse users create NAME"},
		{[]string{"users", "create", "bob", "carol"}, "unexpected arguments"},
		{[]string{"users", "create", "bob", "--bogus"}, "-bogus"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		err := run(t.Context(), tt.args, getenvFrom(env), strings.NewReader(bobPassword+"\n"), &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("run(%q) = %v, want an error containing %q", tt.args, err, tt.wantErr)
		}
		if stdout.Len() != 0 {
			t.Errorf("run(%q) wrote to stdout: %q", tt.args, stdout.String())
		}
	}
}

func TestRunVersionAndHealthz(t *testing.T) {
	t.Parallel()
	out, err := runCLI(t, map[string]string{}, "", "version")
	if err != nil || !strings.HasPrefix(out, "gatehouse ") {
		t.Fatalf("server version: %q %v", out, err)
	}
	base, _, _ := startServer(t, testEnv(t))
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Status, Version string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if body.Status != "ok" || body.Version != strings.TrimSpace(out) {
		t.Fatalf("/healthz %+v, want status ok and version %q", body, strings.TrimSpace(out))
	}
}
