-- Trusted devices and security notifications.

CREATE TABLE devices (
    id           text        NOT NULL PRIMARY KEY,
    user_id      text        NOT NULL,
    label        text        NOT NULL,
    hash         bytea,
    ip           text        NOT NULL,
    created_at   timestamptz,
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz,
    revoked_by   text        NOT NULL
);

CREATE INDEX devices_user ON devices (user_id, created_at NULLS FIRST, id COLLATE "C");
CREATE INDEX devices_expires ON devices (expires_at);

CREATE TABLE notifications (
    id              text        NOT NULL PRIMARY KEY,
    user_id         text        NOT NULL,
    event           text        NOT NULL,
    details         jsonb,
    created_at      timestamptz NOT NULL,
    status          text        NOT NULL,
    attempts        integer     NOT NULL,
    next_attempt_at timestamptz,
    sent_at         timestamptz,
    last_error      text        NOT NULL
);

CREATE INDEX notifications_user ON notifications (user_id, created_at DESC);
CREATE INDEX notifications_due ON notifications (status, next_attempt_at);
