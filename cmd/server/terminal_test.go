package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/servertest"
)

// On a terminal, `users create` asks for the password twice without
// echoing it. script(1) gives the command a pseudo-terminal and types what
// the test writes.
func TestCLIReadsThePasswordFromATerminalWithoutEcho(t *testing.T) {
	t.Parallel()
	scriptPath, err := exec.LookPath("script")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("script(1) is required in CI (Debian's bsdutils)")
		}
		t.Skip("skipping the terminal test: no script(1) (Debian's bsdutils provides it)")
	}
	bin, err := servertest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	env := testEnv(t)
	env["GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD"] = adminPassword
	base, _, _ := startServer(t, env)

	typeInto := func(name string, lines ...string) string {
		cmd := exec.Command(scriptPath, "-qec", bin+" users create "+name+" --scopes me", "/dev/null")
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		cmd.Env = append(cmd.Env, "PATH="+os.Getenv("PATH"), "TERM=dumb")
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		var out syncBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Each line once its prompt is up: a terminal in no-echo mode
		// discards what was typed before.
		for i, line := range lines {
			prompt := []string{"New password for " + name + ":", "Again:"}[i]
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(out.String(), prompt) {
				if time.Now().After(deadline) {
					t.Fatalf("no prompt %q; output:\n%s", prompt, out.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
			if _, err := stdin.Write([]byte(line + "\r")); err != nil {
				t.Fatal(err)
			}
		}
		stdin.Close()
		_ = cmd.Wait()
		return out.String()
	}

	out := typeInto("tina", "typed-password-1", "typed-password-1")
	if !strings.Contains(out, "created user tina") {
		t.Fatalf("users create on a terminal:\n%s", out)
	}
	if strings.Contains(out, "typed-password-1") {
		t.Errorf("the password was echoed:\n%s", out)
	}
	accessToken(t, newClient(t, base), "tina", "typed-password-1", "me")

	out = typeInto("tom", "typed-password-1", "typed-password-2")
	if !strings.Contains(out, "the two passwords differ; nothing was changed") {
		t.Errorf("two different passwords:\n%s", out)
	}
	if _, ok := listUsers(t, env)["tom"]; ok {
		t.Error("tom was created from two different passwords")
	}
}
