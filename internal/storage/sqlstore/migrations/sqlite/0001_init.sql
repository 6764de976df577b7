-- Users and signing keys. Times are INTEGER unix nanoseconds in UTC, so they
-- round-trip exactly and sort numerically; scopes are one space-separated
-- string (RFC 6749 §3.3 scope syntax), which is how tokens carry them too.
CREATE TABLE users (
    id            TEXT    NOT NULL PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    scopes        TEXT    NOT NULL DEFAULT '',
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE signing_keys (
    id         TEXT    NOT NULL PRIMARY KEY,
    algorithm  TEXT    NOT NULL,
    private    BLOB    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX signing_keys_algorithm_created_at ON signing_keys (algorithm, created_at DESC);
