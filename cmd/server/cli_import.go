package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gatehouse/gatehouse/internal/audit"
	"github.com/gatehouse/gatehouse/internal/users"
)

const importUsage = "usage: gatehouse users import FILE|- [--format jsonl|csv] (one user per line: username, password_hash, scopes, disabled)"

// importRow is one user of an import file and the line it is on.
type importRow struct {
	line int
	user users.ImportedUser
}

// parseImportArgs reads `FILE [--format jsonl|csv]`; the format defaults
// to the file's extension (.csv, else JSON lines).
func parseImportArgs(args []string) (path, format string, err error) {
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--format" && i+1 < len(args):
			format = args[i+1]
			i++
		case strings.HasPrefix(a, "--format="):
			format = strings.TrimPrefix(a, "--format=")
		case path == "" && (a == "-" || !strings.HasPrefix(a, "-")):
			path = a
		default:
			return "", "", errors.New(importUsage)
		}
	}
	if path == "" {
		return "", "", errors.New(importUsage)
	}
	if format == "" {
		format = "jsonl"
		if strings.EqualFold(filepath.Ext(path), ".csv") {
			format = "csv"
		}
	}
	if format != "jsonl" && format != "csv" {
		return "", "", fmt.Errorf("users import: --format %q is not jsonl or csv", format)
	}
	return path, format, nil
}

// readImport parses the whole file before anything is stored, so a bad
// line is reported with its number and nothing is half-imported.
func readImport(r io.Reader, format string) ([]importRow, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("users import: %w", err)
	}
	if format == "csv" {
		return readImportCSV(data)
	}
	var rows []importRow
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var rec struct {
			Username     *string         `json:"username"`
			PasswordHash *string         `json:"password_hash"`
			Scopes       json.RawMessage `json:"scopes"`
			Disabled     bool            `json:"disabled"`
		}
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rec); err != nil {
			return nil, fmt.Errorf("users import: line %d: not a user object: %v", i+1, err)
		}
		if rec.Username == nil || rec.PasswordHash == nil {
			return nil, fmt.Errorf("users import: line %d: username and password_hash are required", i+1)
		}
		scopes, err := importScopes(rec.Scopes)
		if err != nil {
			return nil, fmt.Errorf("users import: line %d: scopes: %v", i+1, err)
		}
		rows = append(rows, importRow{line: i + 1, user: users.ImportedUser{Username: *rec.Username, PasswordHash: *rec.PasswordHash, Scopes: scopes, Disabled: rec.Disabled}})
	}
	return rows, nil
}

// importScopes takes a JSON array of scopes or one space-separated string.
func importScopes(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err == nil {
		return list, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, errors.New("want an array of strings or a space-separated string")
	}
	return strings.Fields(s), nil
}

// readImportCSV reads a CSV file whose header names the columns
// username and password_hash, and optionally scopes (space-separated)
// and disabled (true/false, 1/0, empty for false).
func readImportCSV(data []byte) ([]importRow, error) {
	cr := csv.NewReader(bytes.NewReader(data))
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("users import: line 1: %v", err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		switch h {
		case "username", "password_hash", "scopes", "disabled":
			col[h] = i
		default:
			return nil, fmt.Errorf("users import: line 1: unknown column %q (username, password_hash, scopes, disabled)", h)
		}
	}
	if _, ok := col["username"]; !ok {
		return nil, errors.New("users import: line 1: the header must name the username and password_hash columns")
	}
	if _, ok := col["password_hash"]; !ok {
		return nil, errors.New("users import: line 1: the header must name the username and password_hash columns")
	}
	var rows []importRow
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			return nil, fmt.Errorf("users import: %v", err)
		}
		if len(rec) != len(header) {
			return nil, fmt.Errorf("users import: line %d: %d fields, the header has %d", line, len(rec), len(header))
		}
		get := func(name string) string {
			if i, ok := col[name]; ok {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		disabled := false
		if v := get("disabled"); v != "" {
			if disabled, err = strconv.ParseBool(v); err != nil {
				return nil, fmt.Errorf("users import: line %d: disabled: %q is not true or false", line, v)
			}
		}
		rows = append(rows, importRow{line: line, user: users.ImportedUser{Username: get("username"), PasswordHash: get("password_hash"), Scopes: strings.Fields(get("scopes")), Disabled: disabled}})
	}
}

// runImport imports the rows in one transaction and audits each user.
func runImport(ctx context.Context, a *server, rows []importRow, stdout io.Writer) error {
	if len(rows) == 0 {
		return errors.New("users import: the file holds no users")
	}
	batch := make([]users.ImportedUser, len(rows))
	for i, r := range rows {
		batch[i] = r.user
	}
	created, err := a.Users.Import(ctx, users.CLIActor(), batch)
	var ie *users.ImportError
	if errors.As(err, &ie) {
		msg := ie.Field + " " + ie.Message
		if ie.Earlier >= 0 {
			msg = fmt.Sprintf("username %q repeats line %d", batch[ie.Index].Username, rows[ie.Earlier].line)
		}
		return fmt.Errorf("users import: line %d: %s; nothing was imported", rows[ie.Index].line, msg)
	}
	if err != nil {
		return fmt.Errorf("users import: %w; nothing was imported", err)
	}
	for _, u := range created {
		a.Audit.Record(ctx, audit.UserCreated, audit.OK, slog.String("actor", "cli"), slog.String("username", u.Username),
			slog.String("scopes", strings.Join(u.Scopes, " ")), slog.String("via", "import"))
	}
	fmt.Fprintf(stdout, "imported %d users; each keeps its password until its next login, which rehashes it with argon2id\n", len(created))
	return nil
}

// openImport opens path ("-": stdin).
func openImport(path string, stdin io.Reader) (io.ReadCloser, error) {
	if path == "-" {
		return io.NopCloser(stdin), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("users import: %w", err)
	}
	return f, nil
}
