package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/storage/sqlstore"
	"github.com/gatehouse/gatehouse/internal/users"
)

// usersUsage lists the users commands.
const usersUsage = `usage: gatehouse users create NAME [--scopes "me"] | list | disable NAME | enable NAME | delete NAME | set-password NAME | set-scopes NAME "SCOPES" | reset-mfa NAME | import FILE [--format jsonl|csv]`

// runUsers manages accounts on the store directly. Whoever runs it holds
// the store, so it is unrestricted (users.CLIActor); every change is
// audited as the API's are, with actor "cli".
func runUsers(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(usersUsage)
	}
	// Arguments are checked before the store is opened.
	var change func(a *server) error
	cli := slog.String("actor", "cli")
	switch cmd := args[0]; cmd {
	case "create":
		name, scopes, err := parseCreateArgs(args[1:])
		if err != nil {
			return err
		}
		change = func(a *server) error {
			password, err := readPassword(stdin, stderr, name)
			if err != nil {
				return err
			}
			u, err := a.Users.Create(ctx, users.CLIActor(), users.NewUser{Username: name, Password: password, Scopes: scopes})
			if err != nil {
				return fmt.Errorf("users create: %w", err)
			}
			a.Audit.Record(ctx, audit.UserCreated, audit.OK, cli, slog.String("username", u.Username), slog.String("scopes", strings.Join(u.Scopes, " ")))
			fmt.Fprintf(stdout, "created user %s (id %s, scopes %q)\n", u.Username, u.ID, strings.Join(u.Scopes, " "))
			return nil
		}
	case "list":
		if len(args) > 1 {
			return fmt.Errorf("users list: unexpected arguments %q", args[1:])
		}
		change = func(a *server) error { return printUsers(ctx, a, stdout) }
	case "disable", "enable":
		if len(args) != 2 {
			return fmt.Errorf("usage: gatehouse users %s NAME", cmd)
		}
		disabled := cmd == "disable"
		change = func(a *server) error {
			// Disabling ends every session of the user at once.
			u, err := a.Users.Update(ctx, users.CLIActor(), args[1], users.Patch{Disabled: &disabled})
			if err != nil {
				return fmt.Errorf("users %s: %w", cmd, err)
			}
			if disabled {
				a.Audit.Record(ctx, audit.UserDisabled, audit.OK, cli, slog.String("username", u.Username))
				fmt.Fprintf(stdout, "disabled user %s; its sessions are ended\n", u.Username)
			} else {
				a.Audit.Record(ctx, audit.UserChanged, audit.OK, cli, slog.String("username", u.Username), slog.String("changed", "enabled"))
				fmt.Fprintf(stdout, "enabled user %s\n", u.Username)
			}
			return nil
		}
	case "delete":
		if len(args) != 2 {
			return errors.New("usage: gatehouse users delete NAME")
		}
		change = func(a *server) error {
			if err := a.Users.Delete(ctx, users.CLIActor(), args[1]); err != nil {
				return fmt.Errorf("users delete: %w", err)
			}
			name := strings.ToLower(args[1])
			a.Audit.Record(ctx, audit.UserDeleted, audit.OK, cli, slog.String("username", name))
			fmt.Fprintf(stdout, "deleted user %s; its sessions are ended\n", name)
			return nil
		}
	case "set-password":
		if len(args) != 2 {
			return errors.New("usage: gatehouse users set-password NAME (the password from the terminal, or the first line of stdin)")
		}
		change = func(a *server) error {
			// Known before the password is asked for.
			if _, err := a.Users.Get(ctx, args[1]); err != nil {
				return fmt.Errorf("users set-password: %w", err)
			}
			password, err := readPassword(stdin, stderr, args[1])
			if err != nil {
				return err
			}
			// A new password ends every session of the user.
			u, err := a.Users.Update(ctx, users.CLIActor(), args[1], users.Patch{Password: &password})
			if err != nil {
				return fmt.Errorf("users set-password: %w", err)
			}
			a.Audit.Record(ctx, audit.UserChanged, audit.OK, cli, slog.String("username", u.Username), slog.String("changed", "password"))
			fmt.Fprintf(stdout, "set the password of %s; its sessions are ended\n", u.Username)
			return nil
		}
	case "set-scopes":
		if len(args) != 3 {
			return errors.New(`usage: gatehouse users set-scopes NAME "SCOPE ..." (the whole new set, space-separated)`)
		}
		scopes := strings.Fields(args[2])
		change = func(a *server) error {
			u, err := a.Users.Update(ctx, users.CLIActor(), args[1], users.Patch{Scopes: &scopes})
			if err != nil {
				return fmt.Errorf("users set-scopes: %w", err)
			}
			a.Audit.Record(ctx, audit.UserChanged, audit.OK, cli, slog.String("username", u.Username), slog.String("changed", "scopes"))
			fmt.Fprintf(stdout, "set the scopes of %s to %q\n", u.Username, strings.Join(u.Scopes, " "))
			return nil
		}
	case "reset-mfa":
		if len(args) != 2 {
			return errors.New("usage: gatehouse users reset-mfa NAME (removes the user's TOTP factor, for a lost device; ends its sessions)")
		}
		change = func(a *server) error {
			u, err := a.Users.ResetTOTP(ctx, users.CLIActor(), args[1])
			if err != nil {
				return fmt.Errorf("users reset-mfa: %w", err)
			}
			a.Audit.Record(ctx, audit.UserChanged, audit.OK, cli, slog.String("username", u.Username), slog.String("changed", "totp_reset"))
			fmt.Fprintf(stdout, "removed the second factor of %s; its sessions are ended\n", u.Username)
			return nil
		}
	case "import":
		path, format, err := parseImportArgs(args[1:])
		if err != nil {
			return err
		}
		f, err := openImport(path, stdin)
		if err != nil {
			return err
		}
		rows, err := readImport(f, format)
		f.Close()
		if err != nil {
			return err
		}
		change = func(a *server) error { return runImport(ctx, a, rows, stdout) }
	default:
		return fmt.Errorf("unknown users command %q; %s", cmd, usersUsage)
	}

	a, err := openForCLI(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer a.Store.Close()
	return change(a)
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
		return "", nil, errors.New(`usage: gatehouse users create NAME [--scopes "me"] (password on stdin)`)
	}
	return name, strings.Fields(*scopeList), nil
}

func printUsers(ctx context.Context, a *server, stdout io.Writer) error {
	const pageSize = 100
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "USERNAME\tSCOPES\tDISABLED\tTOTP\tCREATED")
	after := ""
	for {
		page, err := a.Users.List(ctx, after, pageSize)
		if err != nil {
			return err
		}
		for _, u := range page {
			fmt.Fprintf(tw, "%s\t%s\t%t\t%s\t%s\n", u.Username, strings.Join(u.Scopes, " "), u.Disabled, u.TOTP.State(), u.CreatedAt.Format(time.RFC3339))
		}
		if len(page) < pageSize {
			break
		}
		after = page[len(page)-1].Username
	}
	return tw.Flush()
}

// readPassword reads a password for user: from the terminal without echo,
// twice, when stdin is one; otherwise the first line of stdin, so `echo pw
// | gatehouse users create` and a pipe from a secret store both work.
func readPassword(stdin io.Reader, stderr io.Writer, user string) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(stderr, "New password for %s: ", user)
		first, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		fmt.Fprint(stderr, "Again: ")
		again, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if string(first) != string(again) {
			return "", errors.New("the two passwords differ; nothing was changed")
		}
		if len(first) == 0 {
			return "", errors.New("no password typed; nothing was changed")
		}
		return string(first), nil
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, users.MaxPasswordBytes+2)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password on stdin (the first line is the password)")
	}
	return line, nil
}

// openForCLI opens the store and the services over it, for CLI commands.
func openForCLI(ctx context.Context, getenv func(string) string, stderr io.Writer) (*server, error) {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return nil, err
	}
	if cfg.Database.Engine == engineSQLite {
		// Opening would create an empty store: the wrong one, most
		// likely (another directory, a mistyped GATEHOUSE_DATABASE_URL).
		if _, err := os.Stat(cfg.Database.Path); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no store at %s: the server creates it on its first start (make run), or set GATEHOUSE_DATABASE_URL to the store the server uses", cfg.Database.Path)
		}
	}
	logger := newLogger(stderr, cfg)
	for _, w := range append(cfg.Warnings, unknownSettings(settingNames(getenv))...) {
		logger.Warn(w)
	}
	a, err := open(ctx, cfg, logger, true)
	if errors.Is(err, sqlstore.ErrNoStore) {
		return nil, fmt.Errorf("no store at %s: the server creates it on its first start, or set GATEHOUSE_DATABASE_URL to the store the server uses", cfg.Database)
	}
	return a, err
}

// openWithKeys also loads the key set.
func openWithKeys(ctx context.Context, getenv func(string) string, stderr io.Writer) (*server, error) {
	a, err := openForCLI(ctx, getenv, stderr)
	if err != nil {
		return nil, err
	}
	if err := a.LoadKeys(ctx); err != nil {
		a.Store.Close()
		return nil, err
	}
	return a, nil
}

func runKeys(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) != 1 || args[0] != "rotate" {
		return errors.New("usage: gatehouse keys rotate")
	}
	a, err := openWithKeys(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer a.Store.Close()
	k, err := a.Keys.Rotate(ctx)
	if err != nil {
		return fmt.Errorf("keys rotate: %w", err)
	}
	fmt.Fprintf(stdout, "new %s key %s: published now, signs from %s\n", k.Algorithm, k.ID, k.ActivatesAt.Format(time.RFC3339))
	return nil
}

const clientsUsage = `usage:
  gatehouse clients create [ID] [--public] [--scopes "me"] [--service-scopes "tokens:introspect"] [--grants client_credentials]
  gatehouse clients list
  gatehouse clients update ID [--scopes "…"] [--service-scopes "…"] [--grants "client_credentials" | --grants ""]
  gatehouse clients secret add ID          (a second secret, for rotation; printed once)
  gatehouse clients secret remove ID SECRET_ID`

func runClients(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	usage := errors.New(clientsUsage)
	if len(args) == 0 {
		return usage
	}
	var (
		nc auth.NewClient
		up auth.ClientUpdate
		id string
	)
	// lists reads the flags that set a client's lists; set reports which
	// were given, so that an update changes only those.
	lists := func(name string, rest []string) (set map[string]*[]string, err error) {
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		public := fs.Bool("public", false, "a public client, without a secret")
		scopes := fs.String("scopes", "", "space-separated scopes the client may request on a user's behalf (default: any)")
		service := fs.String("service-scopes", "", "space-separated scopes the client holds itself, e.g. tokens:introspect (default: none)")
		grants := fs.String("grants", "", "grants beyond password and refresh: client_credentials (default: none)")
		if err := fs.Parse(rest); err != nil || fs.NArg() > 0 || (*public && name != "clients create") {
			return nil, usage
		}
		set = map[string]*[]string{}
		fs.Visit(func(f *flag.Flag) {
			var v *string
			switch f.Name {
			case "scopes":
				v = scopes
			case "service-scopes":
				v = service
			case "grants":
				v = grants
			default:
				return
			}
			l := strings.Fields(*v)
			set[f.Name] = &l
		})
		nc.Confidential = !*public
		return set, nil
	}
	switch {
	case args[0] == "create":
		rest := args[1:]
		if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
			nc.ID, rest = rest[0], rest[1:]
		}
		set, err := lists("clients create", rest)
		if err != nil {
			return err
		}
		for name, dst := range map[string]*[]string{"scopes": &nc.Scopes, "service-scopes": &nc.ServiceScopes, "grants": &nc.Grants} {
			if l := set[name]; l != nil {
				*dst = *l
			}
		}
	case args[0] == "list":
		if len(args) > 1 {
			return usage
		}
	case args[0] == "update" && len(args) >= 2:
		id = args[1]
		set, err := lists("clients update", args[2:])
		if err != nil {
			return err
		}
		if len(set) == 0 {
			return usage
		}
		up = auth.ClientUpdate{Scopes: set["scopes"], ServiceScopes: set["service-scopes"], Grants: set["grants"]}
	case args[0] == "secret" && len(args) == 3 && args[1] == "add":
		id = args[2]
	case args[0] == "secret" && len(args) == 4 && args[1] == "remove":
		id = args[2]
	default:
		return usage
	}

	a, err := openForCLI(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer a.Store.Close()
	cli := slog.String("actor", "cli")
	switch args[0] {
	case "list":
		list, err := a.Clients.ListClients(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "CLIENT_ID\tCONFIDENTIAL\tSCOPES\tSERVICE_SCOPES\tGRANTS\tSECRETS\tCREATED")
		for _, c := range list {
			var secrets []string
			for _, s := range c.Secrets {
				secrets = append(secrets, s.ID)
			}
			fmt.Fprintf(tw, "%s\t%t\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Confidential(), strings.Join(c.Scopes, " "), strings.Join(c.ServiceScopes, " "),
				strings.Join(c.Grants, " "), strings.Join(secrets, " "), c.CreatedAt.Format(time.RFC3339))
		}
		return tw.Flush()
	case "update":
		c, err := a.Clients.UpdateClient(ctx, id, up)
		if err != nil {
			return fmt.Errorf("clients update: %w", err)
		}
		a.Audit.Record(ctx, audit.ClientChanged, audit.OK, cli, slog.String("client_id", c.ID),
			slog.Any("scopes", c.Scopes), slog.Any("service_scopes", c.ServiceScopes), slog.Any("grants", c.Grants))
		fmt.Fprintf(stdout, "client %s: scopes %q, service scopes %q, grants %q\n", c.ID, strings.Join(c.Scopes, " "), strings.Join(c.ServiceScopes, " "), strings.Join(c.Grants, " "))
		return nil
	case "secret":
		if args[1] == "add" {
			sec, secret, err := a.Clients.AddClientSecret(ctx, id)
			if err != nil {
				return fmt.Errorf("clients secret add: %w", err)
			}
			a.Audit.Record(ctx, audit.SecretAdded, audit.OK, cli, slog.String("client_id", id), slog.String("secret_id", sec.ID))
			fmt.Fprintf(stdout, "secret_id:     %s\nclient_secret: %s\n(shown only this once; the old secret works until you remove it)\n", sec.ID, secret)
			return nil
		}
		if err := a.Clients.RemoveClientSecret(ctx, id, args[3]); err != nil {
			return fmt.Errorf("clients secret remove: %w", err)
		}
		a.Audit.Record(ctx, audit.SecretRemoved, audit.OK, cli, slog.String("client_id", id), slog.String("secret_id", args[3]))
		fmt.Fprintf(stdout, "removed secret %s of client %s\n", args[3], id)
		return nil
	}
	c, secret, err := a.Clients.RegisterClient(ctx, nc)
	if err != nil {
		return fmt.Errorf("clients create: %w", err)
	}
	a.Audit.Record(ctx, audit.ClientCreated, audit.OK, cli, slog.String("client_id", c.ID), slog.Bool("confidential", c.Confidential()),
		slog.Any("service_scopes", c.ServiceScopes), slog.Any("grants", c.Grants))
	fmt.Fprintf(stdout, "client_id:     %s\n", c.ID)
	if secret != "" {
		fmt.Fprintf(stdout, "client_secret: %s\n(shown only this once)\n", secret)
	}
	return nil
}

// runBackup copies the SQLite store to a new file, consistently while
// servers use it (sqlstore.BackupSQLite). PostgreSQL has its own tools.
func runBackup(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		return errors.New("usage: gatehouse backup PATH (a new file: the copy of the SQLite store)")
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	if cfg.Database.Engine != engineSQLite {
		return errors.New("backup copies a SQLite store; back up PostgreSQL with its own tools: pg_dump --format=custom --file=gatehouse.dump DATABASE_URL, restored with pg_restore --clean --dbname=DATABASE_URL gatehouse.dump (see README, Backups)")
	}
	if _, err := os.Stat(cfg.Database.Path); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no store at %s to back up; set GATEHOUSE_DATABASE_URL to the store the server uses", cfg.Database.Path)
	}
	if err := sqlstore.BackupSQLite(ctx, cfg.Database.Path, args[0]); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backed up %s to %s\n", cfg.Database.Path, args[0])
	return nil
}
