-- Trusted devices and security notifications. Times as in 0001: INTEGER
-- microseconds since the Unix epoch, NULL for the zero time.

CREATE TABLE devices (
    id           TEXT    NOT NULL PRIMARY KEY,
    user_id      TEXT    NOT NULL,
    label        TEXT    NOT NULL,
    hash         BLOB,
    ip           TEXT    NOT NULL,
    created_at   INTEGER,
    expires_at   INTEGER,
    last_used_at INTEGER,
    revoked_at   INTEGER,
    revoked_by   TEXT    NOT NULL
) STRICT;

CREATE INDEX devices_user ON devices (user_id, created_at, id);
CREATE INDEX devices_expires ON devices (expires_at);

CREATE TABLE notifications (
    id              TEXT    NOT NULL PRIMARY KEY,
    user_id         TEXT    NOT NULL,
    event           TEXT    NOT NULL,
    details         TEXT,
    created_at      INTEGER NOT NULL,
    status          TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at INTEGER,
    sent_at         INTEGER,
    last_error      TEXT    NOT NULL
) STRICT;

CREATE INDEX notifications_user ON notifications (user_id, created_at);
CREATE INDEX notifications_due ON notifications (status, next_attempt_at);
