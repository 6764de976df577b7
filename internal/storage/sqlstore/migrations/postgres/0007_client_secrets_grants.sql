-- A confidential client may hold two secrets at once, so that a service
-- can rotate without a failed request: add a secret, deploy it, remove the
-- old one. Each secret has an id of its own, which tokens of the
-- client-credentials grant carry as their sid. hash is the hex SHA-256 of
-- the secret; the secret itself is never stored. A client from before this
-- migration keeps its one secret, under a new random id.
CREATE TABLE client_secrets (
    id         TEXT   COLLATE "C" NOT NULL,
    client_id  TEXT   COLLATE "C" NOT NULL,
    hash       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    CONSTRAINT client_secrets_pkey PRIMARY KEY (id)
);

CREATE INDEX client_secrets_client_id ON client_secrets (client_id);

INSERT INTO client_secrets (id, client_id, hash, created_at)
    SELECT md5(random()::text || clock_timestamp()::text || id), id, secret_hash, created_at FROM clients WHERE secret_hash <> '';

ALTER TABLE clients DROP COLUMN secret_hash;

-- grants lists the grant types a client may use beyond the password and
-- refresh grants, space-separated: "client_credentials" (RFC 6749 §4.4)
-- or ''. A client from before this migration may use none of them.
ALTER TABLE clients ADD COLUMN grants TEXT NOT NULL DEFAULT '';
