package sqlstore

import (
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// flavor is what one engine does differently; everything else is the one
// SQL body per method in the aggregate files, written for SQLite's
// dialect with '?' placeholders and PostgreSQL's row-lock clauses, and
// translated per engine (dex storage/sql's flavor is the model).
type flavor struct {
	name string

	// numbered rewrites '?' placeholders as $1, $2, … (PostgreSQL).
	numbered bool
	// replacers run after the placeholders, in order.
	replacers []replacer

	// migrationsTable creates schema_migrations if missing.
	migrationsTable string
	// lockMigrations, when set, runs first in the migration transaction.
	lockMigrations string
	// lockKeys, when set, serialises EnsureSigningKey's creation of a key
	// across processes (SQLite's BEGIN IMMEDIATE already does).
	lockKeys string
	// lockChanges, when set, runs right before a transaction appends to
	// the change log, as its last statements: the appenders take turns
	// from their first seq to their commit, so seq order is commit order.
	lockChanges string
	// lockHolders, when set, runs first in a user change with a keep:
	// those changes take turns from their count of the scope's holders to
	// their commit (SQLite's BEGIN IMMEDIATE already does).
	lockHolders string
	// notify, when set, runs after the appends: it wakes Listen on commit.
	notify string

	// serialWrites: the engine has one writer at a time, so the store
	// queues its own writers in-process (fairly, and without each one
	// polling the busy handler) before they begin.
	serialWrites bool

	// fault returns the storage fault sentinel err is, or nil.
	fault func(err error) error
	// conflict returns "table.column" of the unique constraint err
	// violates, or "".
	conflict func(err error) string
	// retryable reports whether a transaction that failed with err may
	// run again from its start (a deadlock victim, a serialization
	// failure).
	retryable func(err error) bool

	// cache holds translated queries: the bodies are constants, so each
	// is translated once.
	cache sync.Map
}

// replacer rewrites what re matches in a query with with.
type replacer struct {
	re   *regexp.Regexp
	with string
}

// q returns query in the flavor's dialect, translating it on first use.
func (f *flavor) q(query string) string {
	if v, ok := f.cache.Load(query); ok {
		return v.(string)
	}
	t := f.translate(query)
	f.cache.Store(query, t)
	return t
}

// translate returns query in the flavor's dialect. A '?' is a placeholder
// unless it is inside a string literal ('…'; a doubled quote escapes
// one), a quoted identifier ("…") or a comment (-- to the end of the line,
// /* … */). Replacers see the whole query, literals too: the bodies keep
// what they match out of literals.
func (f *flavor) translate(query string) string {
	if f.numbered {
		query = numberPlaceholders(query)
	}
	for _, r := range f.replacers {
		query = r.re.ReplaceAllString(query, r.with)
	}
	return query
}

// numberPlaceholders rewrites each placeholder '?' of query as $n.
func numberPlaceholders(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		c := query[i]
		end := -1 // the end of a literal or comment starting at i
		switch {
		case c == '\'' || c == '"':
			// To the closing quote. A doubled quote inside reads as a
			// closing and a reopening, which copies it all the same.
			end = i + 1
			for end < len(query) && query[end] != c {
				end++
			}
			end = min(end+1, len(query))
		case c == '-' && strings.HasPrefix(query[i:], "--"):
			if end = strings.IndexByte(query[i:], '\n'); end < 0 {
				end = len(query)
			} else {
				end += i
			}
		case c == '/' && strings.HasPrefix(query[i:], "/*"):
			if end = strings.Index(query[i+2:], "*/"); end < 0 {
				end = len(query)
			} else {
				end += i + 4
			}
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		default:
			b.WriteByte(c)
			continue
		}
		b.WriteString(query[i:end])
		i = end - 1
	}
	return b.String()
}

// The replacers, each named after what it does.
var (
	// SQLite has no row locks: BEGIN IMMEDIATE took the database's one
	// write lock before the first statement, which is stronger.
	stripRowLocks = replacer{regexp.MustCompile(`\s+FOR\s+(UPDATE|SHARE)\s*$`), ""}
	// SQLite's instr(haystack, needle) is PostgreSQL's strpos.
	instrToStrpos = replacer{regexp.MustCompile(`\binstr\(`), "strpos("}
	// signing_keys' insertion order: SQLite's implicit rowid is
	// PostgreSQL's seq identity column (postgres/0001).
	rowidToSeq = replacer{regexp.MustCompile(`\browid\b`), "seq"}
)
