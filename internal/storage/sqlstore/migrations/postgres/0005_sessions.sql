-- Sessions replace refresh and access token rows: one row per login,
-- updated in place by every refresh (RFC 6749 §6), and a change log that
-- every process follows for revocations and the changes the bearer path
-- caches. Times are BIGINT unix nanoseconds in UTC, 0 meaning "not yet".
--
-- Refresh tokens issued before this migration are refused after it, and
-- access tokens issued before it carry no sid and are refused too.
DROP TABLE refresh_tokens;
DROP TABLE access_tokens;

-- secret_hash is the hex SHA-256 of the current refresh secret
-- (RFC 9700 §4.14); no secret is stored. No foreign key to users: a
-- session row outlives its user until PruneSessions removes it.
CREATE TABLE sessions (
    id              TEXT    COLLATE "C" NOT NULL,
    user_id         TEXT    NOT NULL,
    client_id       TEXT    NOT NULL DEFAULT '',
    scopes          TEXT    NOT NULL DEFAULT '',
    created_at      BIGINT  NOT NULL,
    last_used_at    BIGINT  NOT NULL,
    idle_expires_at BIGINT  NOT NULL,
    expires_at      BIGINT  NOT NULL,
    generation      BIGINT  NOT NULL DEFAULT 0,
    secret_hash     TEXT    NOT NULL DEFAULT '',
    rotated_at      BIGINT  NOT NULL DEFAULT 0,
    grace_uses      INTEGER NOT NULL DEFAULT 0,
    revoked_at      BIGINT  NOT NULL DEFAULT 0,
    client_addr     TEXT    NOT NULL DEFAULT '',
    user_agent      TEXT    NOT NULL DEFAULT '',
    CONSTRAINT sessions_pkey PRIMARY KEY (id)
);

CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_client_id ON sessions (client_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- An identity never hands out a seq twice. Writers append under one
-- advisory lock as their last statements, so seq order is commit order.
CREATE TABLE changes (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY,
    kind       TEXT   NOT NULL,
    subject    TEXT   NOT NULL,
    at         BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    CONSTRAINT changes_pkey PRIMARY KEY (seq)
);

CREATE INDEX changes_expires_at ON changes (expires_at);

-- Server secrets by name; the bytes are opaque (possibly encrypted).
CREATE TABLE secrets (
    name       TEXT   NOT NULL,
    value      BYTEA  NOT NULL,
    created_at BIGINT NOT NULL,
    CONSTRAINT secrets_pkey PRIMARY KEY (name)
);

-- One row that Ping rewrites: readiness means the store takes writes (a
-- hot standby refuses them).
CREATE TABLE store_heartbeat (
    id INTEGER NOT NULL CHECK (id = 1),
    at BIGINT  NOT NULL,
    CONSTRAINT store_heartbeat_pkey PRIMARY KEY (id)
);
