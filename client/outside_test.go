package client_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A project outside this repository uses client/ and verify/ before they
// are published, as the README says: a replace directive to a checkout.
// The test builds such a project against this checkout.
func TestUsableFromAnotherModuleThroughReplace(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module of its own")
	}
	checkout, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/app\n\ngo 1.26\n\nrequire github.com/gatehouse/gatehouse v0.0.0\n\nreplace github.com/gatehouse/gatehouse => " + checkout + "\n",
		"main.go": `package main

import (
	"context"
	"fmt"
	"net/http"

	"github.com/gatehouse/gatehouse/client"
	"github.com/gatehouse/gatehouse/verify"
)

func main() {
	ctx := context.Background()
	if _, err := client.Login(ctx, "http://127.0.0.1:1", "alice", "wonderland"); err != nil {
		fmt.Println("login:", err != nil)
	}
	v, err := verify.New(ctx, verify.Config{Issuer: "http://127.0.0.1:1", Audience: "gatehouse"})
	if err == nil {
		_ = v.Middleware("me")(http.NotFoundHandler())
	}
}
`,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("mod", "tidy")
	run("build", "-o", filepath.Join(dir, "app"), ".")
}
