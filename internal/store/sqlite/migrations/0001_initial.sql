-- Times are INTEGER microseconds since the Unix epoch, UTC; NULL is the zero
-- time. Counter windows and lease expiries are INTEGER nanoseconds: they are
-- computed and compared only by the store.

CREATE TABLE credentials (
    id           TEXT    NOT NULL PRIMARY KEY,
    user_id      TEXT    NOT NULL,
    factor       TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    label        TEXT    NOT NULL,
    data         BLOB,
    counter      INTEGER NOT NULL,
    failures     INTEGER NOT NULL,
    locked_until INTEGER,
    created_at   INTEGER,
    updated_at   INTEGER,
    last_used_at INTEGER
) STRICT;

CREATE INDEX credentials_user ON credentials (user_id, created_at, id);

CREATE TABLE challenges (
    id            TEXT    NOT NULL PRIMARY KEY,
    kind          TEXT    NOT NULL,
    user_id       TEXT    NOT NULL,
    session_id    TEXT    NOT NULL,
    factor        TEXT    NOT NULL,
    credential_id TEXT    NOT NULL,
    data          BLOB,
    attempts      INTEGER NOT NULL,
    max_attempts  INTEGER NOT NULL,
    created_at    INTEGER,
    expires_at    INTEGER,
    consumed_at   INTEGER
) STRICT;

CREATE INDEX challenges_expires ON challenges (expires_at);

CREATE TABLE counters (
    key       TEXT    NOT NULL,
    window_ns INTEGER NOT NULL,
    start_ns  INTEGER NOT NULL,
    end_ns    INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    PRIMARY KEY (key, window_ns, start_ns)
) STRICT;

CREATE INDEX counters_end ON counters (end_ns);

CREATE TABLE leases (
    name       TEXT    NOT NULL PRIMARY KEY,
    holder     TEXT    NOT NULL,
    expires_ns INTEGER NOT NULL
) STRICT;

-- AUTOINCREMENT: a plain rowid may reuse the number of a pruned last row,
-- and a reader paging with AfterSeq would then miss the new event.
CREATE TABLE audit (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    time       INTEGER NOT NULL,
    type       TEXT    NOT NULL,
    actor      TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    factor     TEXT    NOT NULL,
    session_id TEXT    NOT NULL,
    ip         TEXT    NOT NULL,
    outcome    TEXT    NOT NULL,
    details    TEXT
) STRICT;

CREATE INDEX audit_user ON audit (user_id, seq);
CREATE INDEX audit_time ON audit (time);

-- The trail is append-only: rows are inserted and, for retention, deleted,
-- never rewritten.
CREATE TRIGGER audit_append_only BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit is append-only');
END;
