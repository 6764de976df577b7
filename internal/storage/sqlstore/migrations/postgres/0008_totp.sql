-- A second factor: TOTP (RFC 6238). totp_secret is the shared secret in
-- the form internal/users seals it (encrypted at rest when
-- GATEHOUSE_KEY_ENCRYPTION_KEY is set), '' when none is enrolled or
-- pending; it is enforced once totp_confirmed. totp_last_step is the last
-- time step whose code was accepted, so no code is accepted twice
-- (RFC 6238 §5.2). recovery_codes are the hex SHA-256 of the unused
-- recovery codes, space-separated.
ALTER TABLE users ADD COLUMN totp_secret TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN totp_confirmed BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE users ADD COLUMN totp_last_step BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN recovery_codes TEXT NOT NULL DEFAULT '';

-- The first step of a two-step login (a right password of a user with a
-- factor, no code): the mfa_token it answered, exchanged once with a code
-- on a second /token request. secret_hash is the hex SHA-256 of the
-- token's secret part; epoch the user's token epoch at the password check,
-- so an account change in between refuses the exchange.
CREATE TABLE mfa_tokens (
    id          TEXT   COLLATE "C" NOT NULL,
    secret_hash TEXT   NOT NULL,
    user_id     TEXT   NOT NULL,
    client_id   TEXT   NOT NULL,
    scopes      TEXT   NOT NULL DEFAULT '',
    epoch       BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    CONSTRAINT mfa_tokens_pkey PRIMARY KEY (id)
);

CREATE INDEX mfa_tokens_expires_at ON mfa_tokens (expires_at);
