package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/users"
)

// config is the server's configuration, read from GATEHOUSE_* variables.
type config struct {
	Addr        string
	DatabaseURL string
	Database    database

	Throttle        auth.ThrottleConfig
	TrustedProxies  []netip.Prefix
	HashConcurrency int
	HashQueue       int
	HashWait        time.Duration
	PasswordPolicy  users.PasswordPolicy
	TLSCertFile     string
	TLSKeyFile      string
	CORSOrigins     []string
	LogFormat       string
	TokenCacheSize  int
	MetricsAddr     string

	DBMaxConns       int32
	DBConnectTimeout time.Duration
	DBStartupTimeout time.Duration
	Issuer           string
	// IssuerSet is false when Issuer was derived from Addr, and serve
	// re-derives it from the address actually bound (port 0).
	IssuerSet   bool
	Audience    string
	AccessTTL   time.Duration
	SigningAlg  string
	HS256Secret []byte

	RefreshTTL          time.Duration
	RefreshFamilyTTL    time.Duration
	RefreshReuseWindow  time.Duration
	KeyEncryptionKey    []byte
	KeyPrePublish       time.Duration
	KeyRotationInterval time.Duration
	SyncInterval        time.Duration

	AdminUsername string
	AdminPassword string
	Hasher        users.Hasher
	LogLevel      string
	// Warnings are settings that work but deserve a word at start
	// (logged by serve and the CLI).
	Warnings []string
}

// envDoc documents every variable; `gatehouse --help` prints it.
var envDoc = []struct{ name, def, doc string }{
	{"GATEHOUSE_ADDR", "127.0.0.1:8080", "listen address (host:port)"},
	{"GATEHOUSE_DATABASE_URL", "sqlite:data/gatehouse.db", "store: sqlite:relative/path.db, sqlite:///absolute/path.db, or postgres://user@host:5432/db (several replicas)"},
	{"GATEHOUSE_DATABASE_MAX_CONNS", "10", "PostgreSQL connection pool size"},
	{"GATEHOUSE_DATABASE_CONNECT_TIMEOUT", "5s", "PostgreSQL connect timeout"},
	{"GATEHOUSE_DATABASE_STARTUP_TIMEOUT", "60s", "how long to keep retrying an unreachable PostgreSQL at start (a refused login or a missing database ends start-up at once)"},
	{"GATEHOUSE_ISSUER", "http://<listen address>", "the iss claim of access tokens and base of the RFC 8414 metadata: this server's public URL"},
	{"GATEHOUSE_AUDIENCE", "gatehouse", "the aud claim of access tokens: the resource servers that accept them"},
	{"GATEHOUSE_ACCESS_TOKEN_TTL", "15m", "access token lifetime (1s to 24h; under a minute is for demos and client tests, and is warned about)"},
	{"GATEHOUSE_REFRESH_TOKEN_TTL", "30d", "session idle lifetime: each refresh extends it (1h to 365d)"},
	{"GATEHOUSE_REFRESH_FAMILY_TTL", "90d", "absolute lifetime of a session (a login), whatever the refreshes"},
	{"GATEHOUSE_REFRESH_REUSE_WINDOW", "10s", "after a rotation, presenting the previous refresh token again within this long answers the same new one (0: off, up to 5m)"},
	{"GATEHOUSE_SIGNING_ALG", "RS256", "RS256, ES256 or EdDSA (keys generated and kept in the store), or HS256 (a shared secret)"},
	{"GATEHOUSE_HS256_SECRET", "", "HS256 secret, at least 32 bytes; required with GATEHOUSE_SIGNING_ALG=HS256"},
	{"GATEHOUSE_KEY_ENCRYPTION_KEY", "", "base64 of 32 bytes: encrypts private signing keys at rest (AES-256-GCM)"},
	{"GATEHOUSE_KEY_PREPUBLISH", "15m", "how long a rotated key is published in the JWKS before it signs"},
	{"GATEHOUSE_KEY_ROTATION_INTERVAL", "0", "rotate the signing key automatically this often (0: only on request)"},
	{"GATEHOUSE_SYNC_INTERVAL", "1s", "how often the change log (revocations, account and key changes) is read; PostgreSQL also announces each change at once"},
	{"GATEHOUSE_BOOTSTRAP_ADMIN_USERNAME", "admin", "admin created on first start, when the store has no user"},
	{"GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD", "", "that admin's password; when unset, a random one is printed once to stderr"},
	{"GATEHOUSE_ARGON2_MEMORY_KIB", "19456", "argon2id memory in KiB (OWASP minimum 19456)"},
	{"GATEHOUSE_ARGON2_ITERATIONS", "2", "argon2id passes"},
	{"GATEHOUSE_ARGON2_PARALLELISM", "1", "argon2id lanes"},
	{"GATEHOUSE_THROTTLE_FREE_FAILURES", "5", "failed logins per username and client address before delays start (1s, 2s, 4s …)"},
	{"GATEHOUSE_THROTTLE_MAX_DELAY", "15m", "the longest delay between failed logins from one address"},
	{"GATEHOUSE_THROTTLE_USER_FAILURES", "50", "failed logins per username per hour, all addresses together, before addresses the user never logged in from must wait"},
	{"GATEHOUSE_TRUSTED_PROXIES", "", "comma-separated IPs or CIDRs of proxies whose X-Forwarded-For names the client"},
	{"GATEHOUSE_HASH_CONCURRENCY", "GOMAXPROCS", "password hashes computed at once"},
	{"GATEHOUSE_HASH_QUEUE", "1024 per slot", "logins that may wait for a hashing slot; beyond that /token answers 503 at once"},
	{"GATEHOUSE_HASH_WAIT", "1s", "longest a login waits for a hashing slot before /token answers 503 (10ms to 10s)"},
	{"GATEHOUSE_TOKEN_CACHE_SIZE", "10000", "verified access tokens remembered so each signature is checked once (0: off); expiry and revocation are still checked on every request"},
	{"GATEHOUSE_PASSWORD_MIN_LENGTH", "8", "shortest password accepted, in characters (at least 8)"},
	{"GATEHOUSE_PASSWORD_DENYLIST_FILE", "", "file of common passwords to refuse, one per line"},
	{"GATEHOUSE_TLS_CERT_FILE", "", "serve HTTPS (TLS 1.2+) with this PEM certificate chain; reloaded when the file changes"},
	{"GATEHOUSE_TLS_KEY_FILE", "", "the PEM private key of GATEHOUSE_TLS_CERT_FILE"},
	{"GATEHOUSE_CORS_ORIGINS", "", "comma-separated origins (https://app.example.com) allowed to call the API from a browser; none when unset"},
	{"GATEHOUSE_LOG_LEVEL", "info", "debug, info, warn or error"},
	{"GATEHOUSE_LOG_FORMAT", "json", "json or text"},
	{"GATEHOUSE_METRICS_ADDR", "", "serve /metrics on this address instead of the API's (host:port), so it need not be public"},
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
	db, err := parseDatabaseURL(c.DatabaseURL)
	if err != nil {
		bad("GATEHOUSE_DATABASE_URL: %v", err)
	}
	c.Database = db

	c.TLSCertFile, c.TLSKeyFile = getenv("GATEHOUSE_TLS_CERT_FILE"), getenv("GATEHOUSE_TLS_KEY_FILE")
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		bad("GATEHOUSE_TLS_CERT_FILE and GATEHOUSE_TLS_KEY_FILE must be set together")
	}
	for _, o := range strings.Split(getenv("GATEHOUSE_CORS_ORIGINS"), ",") {
		if o = strings.TrimSpace(o); o == "" {
			continue
		}
		if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			bad("GATEHOUSE_CORS_ORIGINS: %q is not an origin like https://app.example.com", o)
			continue
		}
		c.CORSOrigins = append(c.CORSOrigins, strings.TrimSuffix(o, "/"))
	}
	c.Issuer = get("GATEHOUSE_ISSUER", c.scheme()+"://"+c.Addr)
	c.IssuerSet = strings.TrimSpace(getenv("GATEHOUSE_ISSUER")) != ""
	if !c.IssuerSet {
		// The issuer derived from the listen address is right only for
		// a server reached at that address (see checkServe); several
		// replicas on one store would each derive their own.
		if db.Engine == enginePostgres {
			c.Warnings = append(c.Warnings, "GATEHOUSE_ISSUER is not set on PostgreSQL: the issuer is derived from this replica's listen address ("+c.Issuer+"), so replicas with different addresses sign different iss claims and refuse each other's tokens; set the same GATEHOUSE_ISSUER on every replica")
		}
	}
	if u, err := url.Parse(c.Issuer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		bad("GATEHOUSE_ISSUER: %q must be an http(s) URL without query or fragment (RFC 8414 §2)", c.Issuer)
	}

	duration := func(name, def string, min, max time.Duration) time.Duration {
		v := get(name, def)
		d, err := parseDuration(v)
		if err != nil || d < min || d > max {
			bad("%s: %q must be a duration from %s to %s (e.g. 90s, 15m, 12h, 30d)", name, v, formatDuration(min), formatDuration(max))
		}
		return d
	}
	c.AccessTTL = duration("GATEHOUSE_ACCESS_TOKEN_TTL", "15m", time.Second, 24*time.Hour)
	if c.AccessTTL >= time.Second && c.AccessTTL < time.Minute {
		c.Warnings = append(c.Warnings, fmt.Sprintf("GATEHOUSE_ACCESS_TOKEN_TTL is %s: access tokens expire within a minute, so clients refresh constantly; meant for demos and tests of expiry", c.AccessTTL))
	}
	c.RefreshTTL = duration("GATEHOUSE_REFRESH_TOKEN_TTL", "30d", time.Hour, 365*day)
	c.RefreshFamilyTTL = duration("GATEHOUSE_REFRESH_FAMILY_TTL", "90d", time.Hour, 3650*day)
	if c.RefreshFamilyTTL < c.RefreshTTL {
		bad("GATEHOUSE_REFRESH_FAMILY_TTL must not be shorter than GATEHOUSE_REFRESH_TOKEN_TTL")
	}
	c.RefreshReuseWindow = duration("GATEHOUSE_REFRESH_REUSE_WINDOW", "10s", 0, 5*time.Minute)
	c.KeyPrePublish = duration("GATEHOUSE_KEY_PREPUBLISH", "15m", 0, 7*day)
	c.KeyRotationInterval = duration("GATEHOUSE_KEY_ROTATION_INTERVAL", "0", 0, 3650*day)
	if c.KeyRotationInterval != 0 && c.KeyRotationInterval <= c.KeyPrePublish+c.AccessTTL {
		bad("GATEHOUSE_KEY_ROTATION_INTERVAL must be 0 or longer than GATEHOUSE_KEY_PREPUBLISH plus GATEHOUSE_ACCESS_TOKEN_TTL")
	}
	c.SyncInterval = duration("GATEHOUSE_SYNC_INTERVAL", "1s", 100*time.Millisecond, time.Hour)
	c.DBConnectTimeout = duration("GATEHOUSE_DATABASE_CONNECT_TIMEOUT", "5s", 100*time.Millisecond, 5*time.Minute)
	c.DBStartupTimeout = duration("GATEHOUSE_DATABASE_STARTUP_TIMEOUT", "60s", 0, time.Hour)
	if v := getenv("GATEHOUSE_KEY_ENCRYPTION_KEY"); v != "" {
		c.KeyEncryptionKey = decodeKey(v)
		if len(c.KeyEncryptionKey) != 32 {
			bad("GATEHOUSE_KEY_ENCRYPTION_KEY must be the base64 of exactly 32 bytes (e.g. openssl rand -base64 32)")
		}
	}

	secret := getenv("GATEHOUSE_HS256_SECRET")
	switch c.SigningAlg {
	case auth.AlgRS256, auth.AlgES256, strings.ToUpper(auth.AlgEdDSA):
		if c.SigningAlg != auth.AlgRS256 && c.SigningAlg != auth.AlgES256 {
			c.SigningAlg = auth.AlgEdDSA
		}
		if secret != "" {
			bad("GATEHOUSE_HS256_SECRET is set but GATEHOUSE_SIGNING_ALG is %s; set GATEHOUSE_SIGNING_ALG=HS256 or unset the secret", c.SigningAlg)
		}
	case auth.AlgHS256:
		if len(secret) < auth.MinHMACSecretBytes {
			bad("GATEHOUSE_HS256_SECRET must be at least %d bytes with GATEHOUSE_SIGNING_ALG=HS256", auth.MinHMACSecretBytes)
		}
		c.HS256Secret = []byte(secret)
	default:
		bad("GATEHOUSE_SIGNING_ALG: %q is not RS256, ES256, EdDSA or HS256", c.SigningAlg)
	}
	if c.SigningAlg == auth.AlgHS256 && c.KeyRotationInterval != 0 {
		bad("GATEHOUSE_KEY_ROTATION_INTERVAL must be 0 with HS256: the secret rotates by configuration")
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
	c.DBMaxConns = int32(uintVar("GATEHOUSE_DATABASE_MAX_CONNS", 10, 1000))
	c.TokenCacheSize = auth.DefaultCacheSize
	if v := get("GATEHOUSE_TOKEN_CACHE_SIZE", ""); v != "" {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n > 10_000_000 {
			bad("GATEHOUSE_TOKEN_CACHE_SIZE: %q must be a whole number from 0 (off) to 10000000", v)
		}
		c.TokenCacheSize = int(n)
	}
	c.PasswordPolicy.MinLength = int(uintVar("GATEHOUSE_PASSWORD_MIN_LENGTH", users.MinPasswordLen, 256))
	if c.PasswordPolicy.MinLength < users.MinPasswordLen {
		bad("GATEHOUSE_PASSWORD_MIN_LENGTH must be at least %d", users.MinPasswordLen)
	}
	if path := getenv("GATEHOUSE_PASSWORD_DENYLIST_FILE"); path != "" {
		denied, err := users.LoadDenyList(path)
		if err != nil {
			bad("GATEHOUSE_PASSWORD_DENYLIST_FILE: %v", err)
		}
		c.PasswordPolicy.Denied = denied
	}
	c.Throttle = auth.DefaultThrottle()
	c.Throttle.FreeFailures = int(uintVar("GATEHOUSE_THROTTLE_FREE_FAILURES", uint32(c.Throttle.FreeFailures), 100))
	c.Throttle.MaxDelay = duration("GATEHOUSE_THROTTLE_MAX_DELAY", "15m", time.Second, 24*time.Hour)
	c.Throttle.UserFailures = int(uintVar("GATEHOUSE_THROTTLE_USER_FAILURES", uint32(c.Throttle.UserFailures), 99))
	if v := get("GATEHOUSE_HASH_CONCURRENCY", ""); v != "" {
		c.HashConcurrency = int(uintVar("GATEHOUSE_HASH_CONCURRENCY", 0, 1024))
	}
	if v := get("GATEHOUSE_HASH_QUEUE", ""); v != "" {
		c.HashQueue = int(uintVar("GATEHOUSE_HASH_QUEUE", 0, 1<<20))
	}
	// A queued login must still hash and store within the HTTP write
	// timeout (15s).
	c.HashWait = duration("GATEHOUSE_HASH_WAIT", "1s", 10*time.Millisecond, 10*time.Second)
	for _, p := range strings.Split(getenv("GATEHOUSE_TRUSTED_PROXIES"), ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		prefix, err := netip.ParsePrefix(p)
		if err != nil {
			addr, aerr := netip.ParseAddr(p)
			if aerr != nil {
				bad("GATEHOUSE_TRUSTED_PROXIES: %q is not an IP address or CIDR", p)
				continue
			}
			prefix = netip.PrefixFrom(addr.Unmap(), addr.Unmap().BitLen())
		}
		c.TrustedProxies = append(c.TrustedProxies, prefix.Masked())
	}
	c.Hasher.Memory = uintVar("GATEHOUSE_ARGON2_MEMORY_KIB", c.Hasher.Memory, 4<<20)
	c.Hasher.Iterations = uintVar("GATEHOUSE_ARGON2_ITERATIONS", c.Hasher.Iterations, 100)
	c.Hasher.Parallelism = uint8(uintVar("GATEHOUSE_ARGON2_PARALLELISM", uint32(c.Hasher.Parallelism), 255))
	if err := c.Hasher.Validate(); err != nil {
		bad("argon2id parameters: %v", err)
	}

	c.LogFormat = strings.ToLower(get("GATEHOUSE_LOG_FORMAT", "json"))
	if c.LogFormat != "json" && c.LogFormat != "text" {
		bad("GATEHOUSE_LOG_FORMAT: %q is not json or text", c.LogFormat)
	}
	if c.MetricsAddr = get("GATEHOUSE_METRICS_ADDR", ""); c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			bad("GATEHOUSE_METRICS_ADDR: %q is not host:port", c.MetricsAddr)
		}
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

// checkServe refuses what would make a serving process wrong though the
// CLI may work with it: an issuer derived from an address on every
// interface would be http://0.0.0.0:8080, which no client can reach and
// every resource server would refuse as iss.
func (c *config) checkServe() error {
	if host, _, err := net.SplitHostPort(c.Addr); err == nil && !c.IssuerSet && isUnspecified(host) {
		return fmt.Errorf("invalid configuration:\n  - GATEHOUSE_ISSUER must be set when GATEHOUSE_ADDR (%s) listens on every interface: set it to the URL clients use, e.g. https://auth.example.com", c.Addr)
	}
	return nil
}

// isUnspecified reports whether host is empty or an unspecified address
// (0.0.0.0, ::): a listener on every interface.
func isUnspecified(host string) bool {
	if host == "" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsUnspecified()
}

// unknownSettings returns a warning for each name in names that starts
// with GATEHOUSE_ but is no setting (envDoc), naming the nearest setting
// when one is close: a typo such as GATEHOUSE_DATABSE_URL would otherwise
// leave its setting at the default without a word.
func unknownSettings(names []string) []string {
	var warnings []string
	for _, name := range names {
		if !strings.HasPrefix(name, "GATEHOUSE_") || knownSetting(name) {
			continue
		}
		w := name + " is not a gatehouse setting and is ignored"
		if near := nearestSetting(name); near != "" {
			w += "; did you mean " + near + "?"
		}
		warnings = append(warnings, w+" (gatehouse --help lists them)")
	}
	return warnings
}

func knownSetting(name string) bool {
	for _, e := range envDoc {
		if e.name == name {
			return true
		}
	}
	return false
}

// nearestSetting is the setting within a few edits of name, "" when none
// is.
func nearestSetting(name string) string {
	best, bestDist := "", 4
	for _, e := range envDoc {
		if d := editDistance(name, e.name); d < bestDist {
			best, bestDist = e.name, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// settingNames are the names of the process environment's GATEHOUSE_*
// variables that getenv sees set: os.Environ's, read through getenv so a test's
// environment (a map) decides what counts.
func settingNames(getenv func(string) string) []string {
	var names []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "GATEHOUSE_") && getenv(name) != "" {
			names = append(names, name)
		}
	}
	return names
}

const day = 24 * time.Hour

// parseDuration is time.ParseDuration plus a whole-days form ("30d").
func parseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 16)
		if err != nil {
			return 0, err
		}
		return time.Duration(n) * day, nil
	}
	return time.ParseDuration(s)
}

func formatDuration(d time.Duration) string {
	if d >= day && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	return d.String()
}

// decodeKey reads base64 in either alphabet, padded or not.
func decodeKey(s string) []byte {
	s = strings.TrimRight(strings.TrimSpace(s), "=")
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b
		}
	}
	return nil
}

// scheme is the URL scheme the server answers on.
func (c *config) scheme() string {
	if c.TLSCertFile != "" {
		return "https"
	}
	return "http"
}

// Store engines GATEHOUSE_DATABASE_URL selects.
const (
	engineSQLite   = "sqlite"
	enginePostgres = "postgres"
)

// database is a parsed GATEHOUSE_DATABASE_URL.
type database struct {
	Engine string
	// Path is the SQLite file; DSN the PostgreSQL connection string.
	Path, DSN string
}

// String names the store for logs, never with a password.
func (d database) String() string {
	if d.Engine == engineSQLite {
		return "sqlite:" + d.Path
	}
	if u, err := url.Parse(d.DSN); err == nil {
		return u.Redacted()
	}
	return enginePostgres
}

// parseDatabaseURL reads GATEHOUSE_DATABASE_URL: sqlite:rel/path.db is
// relative to the working directory, sqlite:///abs/path.db is absolute, and
// postgres:// or postgresql:// URLs go to PostgreSQL unchanged.
func parseDatabaseURL(dbURL string) (database, error) {
	scheme, rest, ok := strings.Cut(dbURL, ":")
	if !ok {
		return database{}, fmt.Errorf("%q has no scheme; use sqlite:path/to/file.db or postgres://…", dbURL)
	}
	switch strings.ToLower(scheme) {
	case "sqlite":
	case "postgres", "postgresql":
		u, err := url.Parse(dbURL)
		if err != nil || u.Host == "" {
			return database{}, errors.New("a PostgreSQL URL needs a host: postgres://user@host:5432/dbname")
		}
		return database{Engine: enginePostgres, DSN: dbURL}, nil
	default:
		return database{}, fmt.Errorf("unsupported scheme %q; use sqlite:path/to/file.db or postgres://…", scheme)
	}
	if strings.HasPrefix(rest, "//") {
		// sqlite:///abs/path.db: an empty authority, then an absolute path.
		if !strings.HasPrefix(rest, "///") {
			return database{}, fmt.Errorf("%q: use sqlite:///absolute/path.db or sqlite:relative/path.db", dbURL)
		}
		rest = rest[2:]
	}
	if rest == "" || strings.ContainsAny(rest, "?#") {
		return database{}, fmt.Errorf("%q: the path must be a plain file path", dbURL)
	}
	return database{Engine: engineSQLite, Path: rest}, nil
}
