-- Login throttling state, one row per key (auth decides the keys).
CREATE TABLE login_attempts (
    key           TEXT COLLATE "C" NOT NULL,
    failures      INTEGER NOT NULL,
    window_start  BIGINT  NOT NULL,
    blocked_until BIGINT  NOT NULL,
    last_success  BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL,
    CONSTRAINT login_attempts_pkey PRIMARY KEY (key)
);

CREATE INDEX login_attempts_updated_at ON login_attempts (updated_at);
