package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

const (
	shutdownTimeout = 10 * time.Second
	maxHeaderBytes  = 16 << 10
)

// run is the whole program, with its environment passed in so tests can
// drive it.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "-h", "-help", "--help", "help":
			usage(stdout)
			return nil
		case "version", "--version":
			return runVersion(stdout)
		case "serve":
			args = args[1:]
		case "users":
			return runUsers(ctx, args[1:], getenv, stdin, stdout, stderr)
		case "keys":
			return runKeys(ctx, args[1:], getenv, stdout, stderr)
		case "clients":
			return runClients(ctx, args[1:], getenv, stdout, stderr)
		case "backup":
			return runBackup(ctx, args[1:], getenv, stdout)
		}
	}
	if len(args) > 0 {
		usage(stderr)
		return fmt.Errorf("unknown command %q", strings.Join(args, " "))
	}
	return serve(ctx, getenv, stderr)
}

func usage(w io.Writer) {
	fmt.Fprint(w, `gatehouse: OAuth 2.0 password-grant server

Usage (from a checkout: go run ./cmd/server …; make build: bin/gatehouse):
  gatehouse [serve]                           serve the API
  gatehouse users create NAME [--scopes "me"]
                                              create a user; the password from the terminal or stdin
  gatehouse users list                        list users
  gatehouse users disable NAME | enable NAME  block or allow logging in (disable ends the sessions)
  gatehouse users delete NAME                 delete a user and end its sessions
  gatehouse users set-password NAME           replace the password (also: recover a lost admin password)
  gatehouse users set-scopes NAME "SCOPES"    replace the scopes with this space-separated set
  gatehouse users import FILE|- [--format jsonl|csv]
                                              import users with their bcrypt or argon2id hashes, all or none
  gatehouse keys rotate                       start a signing key rotation
  gatehouse backup PATH                       copy the SQLite store to PATH, safe while servers run
  gatehouse version                           print the version
  gatehouse clients create [ID] [--public] [--scopes "me"]
                                              register a client; prints its secret once
  gatehouse clients list                      list registered clients

Environment:
`)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, e := range envDoc {
		def := e.def
		if def == "" {
			def = "(unset)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", e.name, def, e.doc)
	}
	tw.Flush()
}
