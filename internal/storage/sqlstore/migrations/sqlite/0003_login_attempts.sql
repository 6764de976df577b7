-- Login throttling state, one row per key (auth decides the keys).
CREATE TABLE login_attempts (
    key           TEXT    NOT NULL PRIMARY KEY,
    failures      INTEGER NOT NULL,
    window_start  INTEGER NOT NULL,
    blocked_until INTEGER NOT NULL,
    last_success  INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;

CREATE INDEX login_attempts_updated_at ON login_attempts (updated_at);
