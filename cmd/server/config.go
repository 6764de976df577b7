package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/users"
)

// config is the server's configuration, read from GATEHOUSE_* variables.
type config struct {
	Addr          string
	DatabaseURL   string
	SQLitePath    string
	Issuer        string
	Audience      string
	AccessTTL     time.Duration
	SigningAlg    string
	HS256Secret   []byte
	AdminUsername string
	AdminPassword string
	Hasher        users.Hasher
	LogLevel      string
}

// envDoc documents every variable; `server --help` prints it.
var envDoc = []struct{ name, def, doc string }{
	{"GATEHOUSE_ADDR", "127.0.0.1:8080", "listen address (host:port)"},
	{"GATEHOUSE_DATABASE_URL", "sqlite:data/gatehouse.db", "store: sqlite:relative/path.db, sqlite:///absolute/path.db (postgres:// is reserved for the PostgreSQL store)"},
	{"GATEHOUSE_ISSUER", "http://<GATEHOUSE_ADDR>", "the iss claim of access tokens: this server's public URL"},
	{"GATEHOUSE_AUDIENCE", "gatehouse", "the aud claim of access tokens: the resource servers that accept them"},
	{"GATEHOUSE_ACCESS_TOKEN_TTL", "15m", "access token lifetime (Go duration, 1m to 24h)"},
	{"GATEHOUSE_SIGNING_ALG", "RS256", "RS256 (key generated on first start and kept in the store) or HS256"},
	{"GATEHOUSE_HS256_SECRET", "", "HS256 secret, at least 32 bytes; required with GATEHOUSE_SIGNING_ALG=HS256"},
	{"GATEHOUSE_BOOTSTRAP_ADMIN_USERNAME", "admin", "admin created on first start, when the store has no user"},
	{"GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD", "", "that admin's password; when unset, a random one is printed once to stderr"},
	{"GATEHOUSE_ARGON2_MEMORY_KIB", "19456", "argon2id memory in KiB (OWASP minimum 19456)"},
	{"GATEHOUSE_ARGON2_ITERATIONS", "2", "argon2id passes"},
	{"GATEHOUSE_ARGON2_PARALLELISM", "1", "argon2id lanes"},
	{"GATEHOUSE_LOG_LEVEL", "info", "debug, info, warn or error"},
}

// loadConfig reads and checks the configuration, reporting every problem at
// once rather than the first.
func loadConfig(getenv func(string) string) (*config, error) {
	get := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	c := &config{
		Addr:          get("GATEHOUSE_ADDR", "127.0.0.1:8080"),
		DatabaseURL:   get("GATEHOUSE_DATABASE_URL", "sqlite:data/gatehouse.db"),
		Audience:      get("GATEHOUSE_AUDIENCE", "gatehouse"),
		SigningAlg:    strings.ToUpper(get("GATEHOUSE_SIGNING_ALG", auth.AlgRS256)),
		AdminUsername: get("GATEHOUSE_BOOTSTRAP_ADMIN_USERNAME", "admin"),
		AdminPassword: getenv("GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD"),
		LogLevel:      strings.ToLower(get("GATEHOUSE_LOG_LEVEL", "info")),
		Hasher:        users.DefaultHasher(),
	}

	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		bad("GATEHOUSE_ADDR: %q is not host:port", c.Addr)
	}
	path, err := sqlitePath(c.DatabaseURL)
	if err != nil {
		bad("GATEHOUSE_DATABASE_URL: %v", err)
	}
	c.SQLitePath = path

	c.Issuer = get("GATEHOUSE_ISSUER", "http://"+c.Addr)
	if u, err := url.Parse(c.Issuer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		bad("GATEHOUSE_ISSUER: %q must be an http(s) URL without query or fragment (RFC 8414 §2)", c.Issuer)
	}

	ttl := get("GATEHOUSE_ACCESS_TOKEN_TTL", "15m")
	c.AccessTTL, err = time.ParseDuration(ttl)
	if err != nil || c.AccessTTL < time.Minute || c.AccessTTL > 24*time.Hour {
		bad("GATEHOUSE_ACCESS_TOKEN_TTL: %q must be a duration from 1m to 24h", ttl)
	}

	secret := getenv("GATEHOUSE_HS256_SECRET")
	switch c.SigningAlg {
	case auth.AlgRS256:
		if secret != "" {
			bad("GATEHOUSE_HS256_SECRET is set but GATEHOUSE_SIGNING_ALG is RS256; set GATEHOUSE_SIGNING_ALG=HS256 or unset the secret")
		}
	case auth.AlgHS256:
		if len(secret) < auth.MinHMACSecretBytes {
			bad("GATEHOUSE_HS256_SECRET must be at least %d bytes with GATEHOUSE_SIGNING_ALG=HS256", auth.MinHMACSecretBytes)
		}
		c.HS256Secret = []byte(secret)
	default:
		bad("GATEHOUSE_SIGNING_ALG: %q is not RS256 or HS256", c.SigningAlg)
	}

	if _, err := users.NormalizeUsername(c.AdminUsername); err != nil {
		bad("GATEHOUSE_BOOTSTRAP_ADMIN_USERNAME: %v", err)
	}
	if c.AdminPassword != "" {
		if err := users.CheckPassword("GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD", c.AdminPassword); err != nil {
			bad("%v", err)
		}
	}

	uintVar := func(name string, def uint32, max uint64) uint32 {
		s := get(name, strconv.FormatUint(uint64(def), 10))
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil || n == 0 || n > max {
			bad("%s: %q must be a whole number from 1 to %d", name, s, max)
			return def
		}
		return uint32(n)
	}
	c.Hasher.Memory = uintVar("GATEHOUSE_ARGON2_MEMORY_KIB", c.Hasher.Memory, 4<<20)
	c.Hasher.Iterations = uintVar("GATEHOUSE_ARGON2_ITERATIONS", c.Hasher.Iterations, 100)
	c.Hasher.Parallelism = uint8(uintVar("GATEHOUSE_ARGON2_PARALLELISM", uint32(c.Hasher.Parallelism), 255))
	if err := c.Hasher.Validate(); err != nil {
		bad("argon2id parameters: %v", err)
	}

	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("GATEHOUSE_LOG_LEVEL: %q is not debug, info, warn or error", c.LogLevel)
	}

	if len(problems) > 0 {
		return nil, errors.New("invalid configuration:\n  - " + strings.Join(problems, "\n  - "))
	}
	return c, nil
}

// sqlitePath maps a sqlite: URL to a file path: sqlite:rel/path.db is
// relative to the working directory, sqlite:///abs/path.db is absolute.
func sqlitePath(dbURL string) (string, error) {
	scheme, rest, ok := strings.Cut(dbURL, ":")
	if !ok {
		return "", fmt.Errorf("%q has no scheme; use sqlite:path/to/file.db", dbURL)
	}
	switch strings.ToLower(scheme) {
	case "sqlite":
	case "postgres", "postgresql":
		return "", errors.New("the PostgreSQL store is not part of this build yet; use sqlite:path/to/file.db")
	default:
		return "", fmt.Errorf("unsupported scheme %q; use sqlite:path/to/file.db", scheme)
	}
	if strings.HasPrefix(rest, "//") {
		// sqlite:///abs/path.db: an empty authority, then an absolute path.
		if !strings.HasPrefix(rest, "///") {
			return "", fmt.Errorf("%q: use sqlite:///absolute/path.db or sqlite:relative/path.db", dbURL)
		}
		rest = rest[2:]
	}
	if rest == "" || strings.ContainsAny(rest, "?#") {
		return "", fmt.Errorf("%q: the path must be a plain file path", dbURL)
	}
	return rest, nil
}
