package main

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/users"
)

func TestLoadConfig_reports_every_problem_in_one_error(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		// problems holds one substring per expected problem line.
		problems []string
	}{
		{
			name: "six_bad_variables",
			env: map[string]string{
				"GATEHOUSE_ADDR":                     "localhost",
				"GATEHOUSE_DATABASE_URL":             "mysql://gatehouse@db:5432/gatehouse",
				"GATEHOUSE_ACCESS_TOKEN_TTL":         "0",
				"GATEHOUSE_SIGNING_ALG":              "none",
				"GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD": "short",
				"GATEHOUSE_LOG_LEVEL":                "loud",
			},
			problems: []string{
				`GATEHOUSE_ADDR: "localhost"`,
				`GATEHOUSE_DATABASE_URL: unsupported scheme "mysql"`,
				`GATEHOUSE_ACCESS_TOKEN_TTL: "0"`,
				`GATEHOUSE_SIGNING_ALG: "NONE"`,
				"GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD: must be at least 8 characters",
				`GATEHOUSE_LOG_LEVEL: "loud"`,
			},
		},
		{
			name: "hs256_without_secret_and_more",
			env: map[string]string{
				"GATEHOUSE_SIGNING_ALG":       "HS256",
				"GATEHOUSE_ACCESS_TOKEN_TTL":  "25h",
				"GATEHOUSE_ISSUER":            "ftp://example.com",
				"GATEHOUSE_ARGON2_MEMORY_KIB": "lots",
			},
			problems: []string{
				"GATEHOUSE_HS256_SECRET must be at least 32 bytes",
				`GATEHOUSE_ACCESS_TOKEN_TTL: "25h"`,
				`GATEHOUSE_ISSUER: "ftp://example.com"`,
				`GATEHOUSE_ARGON2_MEMORY_KIB: "lots"`,
			},
		},
		{
			name: "hs256_secret_too_short",
			env: map[string]string{
				"GATEHOUSE_SIGNING_ALG":  "HS256",
				"GATEHOUSE_HS256_SECRET": strings.Repeat("s", 31),
			},
			problems: []string{"GATEHOUSE_HS256_SECRET must be at least 32 bytes"},
		},
		{
			name: "hs256_secret_with_rs256",
			env: map[string]string{
				"GATEHOUSE_HS256_SECRET": strings.Repeat("s", 32),
			},
			problems: []string{"GATEHOUSE_HS256_SECRET is set but GATEHOUSE_SIGNING_ALG is RS256"},
		},
		{
			name: "token_lifecycle_settings",
			env: map[string]string{
				"GATEHOUSE_SIGNING_ALG":           "HS256",
				"GATEHOUSE_HS256_SECRET":          strings.Repeat("s", 32),
				"GATEHOUSE_KEY_ROTATION_INTERVAL": "30d",
				"GATEHOUSE_REFRESH_TOKEN_TTL":     "10d",
				"GATEHOUSE_REFRESH_FAMILY_TTL":    "2d",
				"GATEHOUSE_KEY_ENCRYPTION_KEY":    "c2hvcnQ=",
				"GATEHOUSE_KEY_PREPUBLISH":        "soon",
			},
			problems: []string{
				"GATEHOUSE_KEY_ROTATION_INTERVAL must be 0 with HS256",
				"GATEHOUSE_REFRESH_FAMILY_TTL must not be shorter than GATEHOUSE_REFRESH_TOKEN_TTL",
				"GATEHOUSE_KEY_ENCRYPTION_KEY must be the base64 of exactly 32 bytes",
				`GATEHOUSE_KEY_PREPUBLISH: "soon"`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := loadConfig(getenvFrom(tt.env))
			if err == nil {
				t.Fatalf("loadConfig(%v) = %+v, nil; want an error", tt.env, c)
			}
			msg := err.Error()
			lines := strings.Split(msg, "\n  - ")[1:]
			if len(lines) != len(tt.problems) {
				t.Errorf("loadConfig(%v) reported %d problems, want %d:\n%s", tt.env, len(lines), len(tt.problems), msg)
			}
			for _, want := range tt.problems {
				found := false
				for _, line := range lines {
					found = found || strings.Contains(line, want)
				}
				if !found {
					t.Errorf("loadConfig(%v) error does not name %q:\n%s", tt.env, want, msg)
				}
			}
		})
	}
}

func TestLoadConfig_defaults_are_as_documented(t *testing.T) {
	t.Parallel()
	c, err := loadConfig(func(string) string { return "" })
	if err != nil {
		t.Fatalf("loadConfig(empty environment) = %v", err)
	}
	documented := map[string]string{}
	for _, e := range envDoc {
		documented[e.name] = e.def
	}
	tests := []struct {
		variable, got, want string
	}{
		{"GATEHOUSE_ADDR", c.Addr, "127.0.0.1:8080"},
		{"GATEHOUSE_DATABASE_URL", c.DatabaseURL, "sqlite:data/gatehouse.db"},
		{"GATEHOUSE_AUDIENCE", c.Audience, "gatehouse"},
		{"GATEHOUSE_SIGNING_ALG", c.SigningAlg, "RS256"},
		{"GATEHOUSE_BOOTSTRAP_ADMIN_USERNAME", c.AdminUsername, "admin"},
		{"GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD", c.AdminPassword, ""},
		{"GATEHOUSE_HS256_SECRET", string(c.HS256Secret), ""},
		{"GATEHOUSE_LOG_LEVEL", c.LogLevel, "info"},
		{"GATEHOUSE_ACCESS_TOKEN_TTL", c.AccessTTL.String(), (15 * time.Minute).String()},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("default %s = %q, want %q", tt.variable, tt.got, tt.want)
		}
		doc, ok := documented[tt.variable]
		if !ok {
			t.Errorf("%s is missing from envDoc", tt.variable)
			continue
		}
		if tt.variable == "GATEHOUSE_ACCESS_TOKEN_TTL" {
			if d, err := time.ParseDuration(doc); err != nil || d != c.AccessTTL {
				t.Errorf("envDoc documents %s=%q, but the default is %v", tt.variable, doc, c.AccessTTL)
			}
		} else if doc != tt.want {
			t.Errorf("envDoc documents %s=%q, but the default is %q", tt.variable, doc, tt.want)
		}
	}

	if c.Database != (database{Engine: engineSQLite, Path: "data/gatehouse.db"}) {
		t.Errorf("default Database = %+v, want SQLite at data/gatehouse.db", c.Database)
	}
	// The issuer defaults to http://<GATEHOUSE_ADDR>.
	if c.Issuer != "http://127.0.0.1:8080" {
		t.Errorf("default Issuer = %q, want %q", c.Issuer, "http://127.0.0.1:8080")
	}
	if c.Hasher != users.DefaultHasher() {
		t.Errorf("default Hasher = %+v, want users.DefaultHasher() %+v", c.Hasher, users.DefaultHasher())
	}
	h := users.DefaultHasher()
	for variable, want := range map[string]uint32{
		"GATEHOUSE_ARGON2_MEMORY_KIB":  h.Memory,
		"GATEHOUSE_ARGON2_ITERATIONS":  h.Iterations,
		"GATEHOUSE_ARGON2_PARALLELISM": uint32(h.Parallelism),
	} {
		if got := documented[variable]; got != strconv.FormatUint(uint64(want), 10) {
			t.Errorf("envDoc documents %s=%q, but the default is %d", variable, got, want)
		}
	}
}

// TestLoadConfig_reads_only_documented_variables checks that `--help`,
// which prints envDoc, lists every variable loadConfig reads.
func TestLoadConfig_reads_only_documented_variables(t *testing.T) {
	t.Parallel()
	documented := map[string]bool{}
	for _, e := range envDoc {
		documented[e.name] = true
	}
	read := map[string]bool{}
	if _, err := loadConfig(func(name string) string { read[name] = true; return "" }); err != nil {
		t.Fatalf("loadConfig(empty environment) = %v", err)
	}
	for name := range read {
		if !documented[name] {
			t.Errorf("loadConfig reads %s, which envDoc (and so --help) does not list", name)
		}
	}
	for name := range documented {
		if !read[name] {
			t.Errorf("envDoc lists %s, which loadConfig never reads", name)
		}
	}
}

func TestParseDatabaseURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url     string
		want    database
		wantErr string // substring of the error; "" means success
	}{
		{url: "sqlite:rel.db", want: database{Engine: engineSQLite, Path: "rel.db"}},
		{url: "sqlite:data/gatehouse.db", want: database{Engine: engineSQLite, Path: "data/gatehouse.db"}},
		{url: "sqlite:///abs/x.db", want: database{Engine: engineSQLite, Path: "/abs/x.db"}},
		{url: "SQLite:///abs/x.db", want: database{Engine: engineSQLite, Path: "/abs/x.db"}},
		{url: "sqlite://host/x", wantErr: "sqlite:///absolute/path.db"},
		{url: "sqlite:", wantErr: "plain file path"},
		{url: "sqlite:x.db?mode=ro", wantErr: "plain file path"},
		{url: "postgres://gatehouse@db/gatehouse", want: database{Engine: enginePostgres, DSN: "postgres://gatehouse@db/gatehouse"}},
		{url: "postgresql://gatehouse:pw@db:5432/gatehouse?sslmode=disable", want: database{Engine: enginePostgres, DSN: "postgresql://gatehouse:pw@db:5432/gatehouse?sslmode=disable"}},
		{url: "postgres:///gatehouse", wantErr: "needs a host"},
		{url: "mysql://db/gatehouse", wantErr: `unsupported scheme "mysql"`},
		{url: "data/gatehouse.db", wantErr: "no scheme"},
	}
	for _, tt := range tests {
		got, err := parseDatabaseURL(tt.url)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("parseDatabaseURL(%q) = %v, want %+v", tt.url, err, tt.want)
		case tt.wantErr == "" && got != tt.want:
			t.Errorf("parseDatabaseURL(%q) = %+v, want %+v", tt.url, got, tt.want)
		case tt.wantErr != "" && err == nil:
			t.Errorf("parseDatabaseURL(%q) = %+v, nil; want an error containing %q", tt.url, got, tt.wantErr)
		case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
			t.Errorf("parseDatabaseURL(%q) = %v, want an error containing %q", tt.url, err, tt.wantErr)
		}
	}
}

func TestDatabaseStringHidesThePassword(t *testing.T) {
	d, err := parseDatabaseURL("postgres://gatehouse:s3cret@db:5432/gatehouse")
	if err != nil {
		t.Fatal(err)
	}
	if got := d.String(); strings.Contains(got, "s3cret") || !strings.Contains(got, "db:5432") {
		t.Errorf("got %q, want the URL without its password", got)
	}
}

// A typo in a variable's name is reported with the setting it was probably
// meant for; other variables are left alone.
func TestUnknownSettings(t *testing.T) {
	t.Parallel()
	got := unknownSettings([]string{"GATEHOUSE_DATABSE_URL", "GATEHOUSE_ADDR", "GATEHOUSE_NOT_A_THING_AT_ALL", "PATH", "GATEHOUSE_ACCESS_TOKEN_TLL"})
	want := []string{
		"GATEHOUSE_DATABSE_URL is not a gatehouse setting and is ignored; did you mean GATEHOUSE_DATABASE_URL? (gatehouse --help lists them)",
		"GATEHOUSE_NOT_A_THING_AT_ALL is not a gatehouse setting and is ignored (gatehouse --help lists them)",
		"GATEHOUSE_ACCESS_TOKEN_TLL is not a gatehouse setting and is ignored; did you mean GATEHOUSE_ACCESS_TOKEN_TTL? (gatehouse --help lists them)",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Short access-token lifetimes are allowed down to a second, with a
// warning; an issuer derived from an address on every interface is
// refused, and one derived on PostgreSQL is warned about.
func TestLoadConfig_lifetimes_and_issuers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		env     map[string]string
		problem string // "" for none
		warning string // "" for none
	}{
		{"ttl_of_a_second", map[string]string{"GATEHOUSE_ACCESS_TOKEN_TTL": "1s"}, "", "GATEHOUSE_ACCESS_TOKEN_TTL is 1s"},
		{"ttl_of_a_minute", map[string]string{"GATEHOUSE_ACCESS_TOKEN_TTL": "1m"}, "", ""},
		{"ttl_under_a_second", map[string]string{"GATEHOUSE_ACCESS_TOKEN_TTL": "500ms"}, `GATEHOUSE_ACCESS_TOKEN_TTL: "500ms" must be a duration from 1s`, ""},
		{"every_interface_without_issuer", map[string]string{"GATEHOUSE_ADDR": "0.0.0.0:8080"}, "GATEHOUSE_ISSUER must be set when GATEHOUSE_ADDR (0.0.0.0:8080) listens on every interface", ""},
		{"every_ipv6_interface_without_issuer", map[string]string{"GATEHOUSE_ADDR": "[::]:8080"}, "GATEHOUSE_ISSUER must be set", ""},
		{"no_host_without_issuer", map[string]string{"GATEHOUSE_ADDR": ":8080"}, "GATEHOUSE_ISSUER must be set", ""},
		{"every_interface_with_issuer", map[string]string{"GATEHOUSE_ADDR": "0.0.0.0:8080", "GATEHOUSE_ISSUER": "https://auth.example.com"}, "", ""},
		{"postgres_without_issuer", map[string]string{"GATEHOUSE_DATABASE_URL": "postgres://u@db:5432/g"}, "", "GATEHOUSE_ISSUER is not set on PostgreSQL"},
		{"postgres_with_issuer", map[string]string{"GATEHOUSE_DATABASE_URL": "postgres://u@db:5432/g", "GATEHOUSE_ISSUER": "https://auth.example.com"}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(getenvFrom(tc.env))
			if err == nil {
				err = c.checkServe()
			}
			if tc.problem != "" {
				if err == nil || !strings.Contains(err.Error(), tc.problem) {
					t.Fatalf("got %v, want a problem containing %q", err, tc.problem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			warnings := strings.Join(c.Warnings, "\n")
			if (tc.warning == "") != (warnings == "") || !strings.Contains(warnings, tc.warning) {
				t.Fatalf("got warnings %q, want %q", warnings, tc.warning)
			}
		})
	}
}

// The names checked are the process environment's, as the environment
// given to run sees them.
func TestSettingNames(t *testing.T) {
	t.Setenv("GATEHOUSE_DATABSE_URL", "sqlite:typo.db")
	t.Setenv("GATEHOUSE_UNSEEN", "x")
	got := settingNames(getenvFrom(map[string]string{"GATEHOUSE_DATABSE_URL": "sqlite:typo.db"}))
	if !slices.Equal(got, []string{"GATEHOUSE_DATABSE_URL"}) {
		t.Fatalf("got %q", got)
	}
}

// The CLI needs no issuer: a container's GATEHOUSE_ADDR=0.0.0.0:8080
// without one still lets `users list` and the rest run.
func TestLoadConfig_every_interface_is_fine_for_the_cli(t *testing.T) {
	t.Parallel()
	if _, err := loadConfig(getenvFrom(map[string]string{"GATEHOUSE_ADDR": "0.0.0.0:8080"})); err != nil {
		t.Fatalf("loadConfig = %v", err)
	}
}
