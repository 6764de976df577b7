// Command server is gatehouse, an OAuth 2.0 password-grant server, built
// as the gatehouse binary (make build); it also manages users, clients and
// keys:
//
//	gatehouse                                     serve (the default)
//	gatehouse users create NAME --scopes "me"     create a user; password on stdin
//	gatehouse users list                          list users
//
// Configuration comes from GATEHOUSE_* environment variables; `gatehouse
// --help` lists them.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "gatehouse:", err)
		os.Exit(1)
	}
}
