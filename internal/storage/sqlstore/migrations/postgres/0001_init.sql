-- The whole schema of SQLite's 0001 and 0002 in one step: users, signing
-- keys, refresh tokens, the access-token revocation list and registered
-- clients. Tables are never schema-qualified: they are created in, and
-- read from, the first schema of the connection's search_path.
--
-- Times are BIGINT unix nanoseconds in UTC, as in the SQLite store, so both
-- engines round-trip every instant exactly and through the same code
-- (rows.go); 0 in rotated_at and revoked_at means "not yet". Scopes are one
-- space-separated string (RFC 6749 §3.3 scope syntax), as tokens carry
-- them.
--
-- Columns that lists are ordered by (users.username, clients.id,
-- access_tokens.jti) use the "C" collation: byte order, as in SQLite,
-- whatever the database's default collation, and their indexes serve
-- those orders.
--
-- Constraints that the store maps to sentinels are named here, since the
-- store tells them apart by name: users_username_key is ErrUsernameTaken,
-- clients_pkey ErrClientExists.

CREATE TABLE users (
    id            TEXT    NOT NULL,
    username      TEXT    COLLATE "C" NOT NULL,
    password_hash TEXT    NOT NULL,
    scopes        TEXT    NOT NULL DEFAULT '',
    disabled      BOOLEAN NOT NULL DEFAULT false,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL,
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_username_key UNIQUE (username)
);

-- A key signs from activates_at and is published from created_at. seq is
-- the insertion order, which breaks ties between keys created in the same
-- nanosecond (SQLite uses its rowid).
CREATE TABLE signing_keys (
    id           TEXT   NOT NULL,
    algorithm    TEXT   NOT NULL,
    private      BYTEA  NOT NULL,
    created_at   BIGINT NOT NULL,
    activates_at BIGINT NOT NULL,
    seq          BIGINT GENERATED ALWAYS AS IDENTITY,
    CONSTRAINT signing_keys_pkey PRIMARY KEY (id)
);

CREATE INDEX signing_keys_algorithm_created_at ON signing_keys (algorithm, created_at DESC, seq DESC);

-- Token rows carry user_id and client_id without foreign keys: a record
-- must outlive a deleted user or client until it expires, so revocation
-- and the deny-list keep working, and PruneTokens removes it after that.

-- Only the hex SHA-256 of a refresh token is stored (RFC 9700 §4.14).
-- A rotated token stays until its family expires: presenting it again is
-- how reuse is detected.
CREATE TABLE refresh_tokens (
    hash              TEXT   NOT NULL,
    family_id         TEXT   NOT NULL,
    user_id           TEXT   NOT NULL,
    client_id         TEXT   NOT NULL DEFAULT '',
    scopes            TEXT   NOT NULL DEFAULT '',
    issued_at         BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    family_expires_at BIGINT NOT NULL,
    rotated_at        BIGINT NOT NULL DEFAULT 0,
    revoked_at        BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT refresh_tokens_pkey PRIMARY KEY (hash)
);

CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_id ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_client_id ON refresh_tokens (client_id);
CREATE INDEX refresh_tokens_family_expires_at ON refresh_tokens (family_expires_at);

-- Issued access tokens by jti; family_id is '' for a token issued without
-- a refresh token.
CREATE TABLE access_tokens (
    jti        TEXT   COLLATE "C" NOT NULL,
    user_id    TEXT   NOT NULL,
    family_id  TEXT   NOT NULL DEFAULT '',
    client_id  TEXT   NOT NULL DEFAULT '',
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT access_tokens_pkey PRIMARY KEY (jti)
);

CREATE INDEX access_tokens_user_id ON access_tokens (user_id);
CREATE INDEX access_tokens_family_id ON access_tokens (family_id);
CREATE INDEX access_tokens_client_id ON access_tokens (client_id);
CREATE INDEX access_tokens_expires_at ON access_tokens (expires_at);
-- The deny-list (RevokedAccessTokens) reads only revoked rows, a small
-- part of the table.
CREATE INDEX access_tokens_revoked_expires_at ON access_tokens (expires_at) WHERE revoked_at <> 0;

-- secret_hash is the hex SHA-256 of the client secret, '' for a public
-- client.
CREATE TABLE clients (
    id          TEXT   COLLATE "C" NOT NULL,
    secret_hash TEXT   NOT NULL DEFAULT '',
    scopes      TEXT   NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    CONSTRAINT clients_pkey PRIMARY KEY (id)
);
