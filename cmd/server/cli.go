package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/users"
)

func runUsers(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(`usage: server users create NAME [--scopes "me"] | server users list`)
	}
	// Arguments are checked before the store is opened, which would create it.
	var create func(a *app) error
	switch args[0] {
	case "create":
		name, scopes, err := parseCreateArgs(args[1:])
		if err != nil {
			return err
		}
		create = func(a *app) error {
			password, err := readPassword(stdin)
			if err != nil {
				return err
			}
			u, err := a.users.Create(ctx, users.CLIActor(), users.NewUser{Username: name, Password: password, Scopes: scopes})
			if err != nil {
				return fmt.Errorf("users create: %w", err)
			}
			// The CLI is unrestricted: whoever runs it holds the store.
			a.audit.Record(ctx, audit.UserCreated, audit.OK, slog.String("actor", "cli"), slog.String("username", u.Username), slog.String("scopes", strings.Join(u.Scopes, " ")))
			fmt.Fprintf(stdout, "created user %s (id %s, scopes %q)\n", u.Username, u.ID, strings.Join(u.Scopes, " "))
			return nil
		}
	case "list":
		if len(args) > 1 {
			return fmt.Errorf("users list: unexpected arguments %q", args[1:])
		}
	default:
		return fmt.Errorf("unknown users command %q", args[0])
	}

	a, err := openForCLI(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer a.store.Close()
	if create != nil {
		return create(a)
	}
	return printUsers(ctx, a, stdout)
}

// parseCreateArgs reads `NAME [--scopes "a b"]`, the name first or last.
func parseCreateArgs(args []string) (name string, scopes []string, err error) {
	fs := flag.NewFlagSet("users create", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	scopeList := fs.String("scopes", "me", "space-separated scopes")
	rest := args
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		name, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return "", nil, fmt.Errorf("users create: %w", err)
	}
	if name == "" && fs.NArg() == 1 {
		name = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return "", nil, fmt.Errorf("users create: unexpected arguments %q", fs.Args())
	}
	if name == "" {
		return "", nil, errors.New(`usage: server users create NAME [--scopes "me"] (password on stdin)`)
	}
	return name, strings.Fields(*scopeList), nil
}

func printUsers(ctx context.Context, a *app, stdout io.Writer) error {
	const pageSize = 100
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "USERNAME\tSCOPES\tDISABLED\tCREATED")
	after := ""
	for {
		page, err := a.users.List(ctx, after, pageSize)
		if err != nil {
			return err
		}
		for _, u := range page {
			fmt.Fprintf(tw, "%s\t%s\t%t\t%s\n", u.Username, strings.Join(u.Scopes, " "), u.Disabled, u.CreatedAt.Format(time.RFC3339))
		}
		if len(page) < pageSize {
			break
		}
		after = page[len(page)-1].Username
	}
	return tw.Flush()
}

// readPassword takes the first line of stdin, so `echo pw | server users
// create` and an interactive paste both work.
func readPassword(stdin io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(stdin, users.MaxPasswordBytes+2)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("users create: no password on stdin")
	}
	return line, nil
}

// openForCLI opens the store and the services over it, for CLI commands.
func openForCLI(ctx context.Context, getenv func(string) string, stderr io.Writer) (*app, error) {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return nil, err
	}
	logger := newLogger(stderr, cfg)
	for _, w := range append(cfg.Warnings, unknownSettings(settingNames(getenv))...) {
		logger.Warn(w)
	}
	return open(ctx, cfg, logger)
}

// openWithKeys also loads the key set.
func openWithKeys(ctx context.Context, getenv func(string) string, stderr io.Writer) (*app, error) {
	a, err := openForCLI(ctx, getenv, stderr)
	if err != nil {
		return nil, err
	}
	if err := a.loadKeys(ctx); err != nil {
		a.store.Close()
		return nil, err
	}
	return a, nil
}

func runKeys(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) != 1 || args[0] != "rotate" {
		return errors.New("usage: server keys rotate")
	}
	a, err := openWithKeys(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer a.store.Close()
	k, err := a.keys.Rotate(ctx)
	if err != nil {
		return fmt.Errorf("keys rotate: %w", err)
	}
	fmt.Fprintf(stdout, "new %s key %s: published now, signs from %s\n", k.Algorithm, k.ID, k.ActivatesAt.Format(time.RFC3339))
	return nil
}

func runClients(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	usage := errors.New(`usage: server clients create [ID] [--public] [--scopes "me"] | server clients list`)
	if len(args) == 0 {
		return usage
	}
	var nc auth.NewClient
	switch args[0] {
	case "create":
		fs := flag.NewFlagSet("clients create", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		public := fs.Bool("public", false, "a public client, without a secret")
		scopes := fs.String("scopes", "", "space-separated scopes the client may request (default: any)")
		rest := args[1:]
		if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
			nc.ID, rest = rest[0], rest[1:]
		}
		if err := fs.Parse(rest); err != nil || fs.NArg() > 0 {
			return usage
		}
		nc.Confidential, nc.Scopes = !*public, strings.Fields(*scopes)
	case "list":
		if len(args) > 1 {
			return usage
		}
	default:
		return usage
	}

	a, err := openForCLI(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer a.store.Close()
	if args[0] == "list" {
		list, err := a.clients.ListClients(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "CLIENT_ID\tCONFIDENTIAL\tSCOPES\tCREATED")
		for _, c := range list {
			fmt.Fprintf(tw, "%s\t%t\t%s\t%s\n", c.ID, c.Confidential(), strings.Join(c.Scopes, " "), c.CreatedAt.Format(time.RFC3339))
		}
		return tw.Flush()
	}
	c, secret, err := a.clients.RegisterClient(ctx, nc)
	if err != nil {
		return fmt.Errorf("clients create: %w", err)
	}
	fmt.Fprintf(stdout, "client_id:     %s\n", c.ID)
	if secret != "" {
		fmt.Fprintf(stdout, "client_secret: %s\n(shown only this once)\n", secret)
	}
	return nil
}
