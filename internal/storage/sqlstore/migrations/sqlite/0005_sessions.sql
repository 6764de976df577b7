-- Sessions replace refresh and access token rows: one row per login,
-- updated in place by every refresh (RFC 6749 §6), and a change log that
-- every process follows for revocations and the changes the bearer path
-- caches. Times are INTEGER unix nanoseconds in UTC, 0 meaning "not yet".
--
-- Refresh tokens issued before this migration are refused after it, and
-- access tokens issued before it carry no sid and are refused too.
DROP TABLE refresh_tokens;
DROP TABLE access_tokens;

-- secret_hash is the hex SHA-256 of the current refresh secret
-- (RFC 9700 §4.14); no secret is stored. No foreign key to users: a
-- session row outlives its user until PruneSessions removes it.
CREATE TABLE sessions (
    id              TEXT    NOT NULL PRIMARY KEY,
    user_id         TEXT    NOT NULL,
    client_id       TEXT    NOT NULL DEFAULT '',
    scopes          TEXT    NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    last_used_at    INTEGER NOT NULL,
    idle_expires_at INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    generation      INTEGER NOT NULL DEFAULT 0,
    secret_hash     TEXT    NOT NULL DEFAULT '',
    rotated_at      INTEGER NOT NULL DEFAULT 0,
    grace_uses      INTEGER NOT NULL DEFAULT 0,
    revoked_at      INTEGER NOT NULL DEFAULT 0,
    client_addr     TEXT    NOT NULL DEFAULT '',
    user_agent      TEXT    NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_client_id ON sessions (client_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- AUTOINCREMENT: a seq is never handed out twice, even after the newest
-- entries were pruned, so followers never mistake a new entry for one they
-- applied.
CREATE TABLE changes (
    seq        INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    kind       TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;

CREATE INDEX changes_expires_at ON changes (expires_at);

-- Server secrets by name; the bytes are opaque (possibly encrypted).
CREATE TABLE secrets (
    name       TEXT    NOT NULL PRIMARY KEY,
    value      BLOB    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

-- One row that Ping rewrites: readiness means the store takes writes.
CREATE TABLE store_heartbeat (
    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    at INTEGER NOT NULL
) STRICT;
