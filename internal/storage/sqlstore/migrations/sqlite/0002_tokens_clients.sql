-- Key rotation, refresh tokens, the access-token revocation list and
-- registered clients. Times are INTEGER unix nanoseconds in UTC as in 0001;
-- 0 in rotated_at and revoked_at means "not yet".
--
-- Token rows carry user_id and client_id without foreign keys: a record
-- must outlive a deleted user or client until it expires, so revocation
-- and the deny-list keep working, and PruneTokens removes it after that.

-- A key signs from activates_at; an existing key has signed since it was
-- created.
ALTER TABLE signing_keys ADD COLUMN activates_at INTEGER NOT NULL DEFAULT 0;
UPDATE signing_keys SET activates_at = created_at;

-- Only the hex SHA-256 of a refresh token is stored (RFC 9700 §4.14).
-- A rotated token stays until its family expires: presenting it again is
-- how reuse is detected.
CREATE TABLE refresh_tokens (
    hash              TEXT    NOT NULL PRIMARY KEY,
    family_id         TEXT    NOT NULL,
    user_id           TEXT    NOT NULL,
    client_id         TEXT    NOT NULL DEFAULT '',
    scopes            TEXT    NOT NULL DEFAULT '',
    issued_at         INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL,
    family_expires_at INTEGER NOT NULL,
    rotated_at        INTEGER NOT NULL DEFAULT 0,
    revoked_at        INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_id ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_client_id ON refresh_tokens (client_id);
CREATE INDEX refresh_tokens_family_expires_at ON refresh_tokens (family_expires_at);

-- Issued access tokens by jti; family_id is '' for a token issued without
-- a refresh token.
CREATE TABLE access_tokens (
    jti        TEXT    NOT NULL PRIMARY KEY,
    user_id    TEXT    NOT NULL,
    family_id  TEXT    NOT NULL DEFAULT '',
    client_id  TEXT    NOT NULL DEFAULT '',
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL DEFAULT 0
) STRICT;

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
    id          TEXT    NOT NULL PRIMARY KEY,
    secret_hash TEXT    NOT NULL DEFAULT '',
    scopes      TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
) STRICT;
