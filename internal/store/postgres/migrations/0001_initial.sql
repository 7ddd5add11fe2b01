-- Times are timestamptz (microseconds); NULL is the zero time. Counter
-- windows and lease expiries are bigint nanoseconds since the Unix epoch:
-- they are computed and compared only by the store.

CREATE TABLE credentials (
    id           text        NOT NULL PRIMARY KEY,
    user_id      text        NOT NULL,
    factor       text        NOT NULL,
    status       text        NOT NULL,
    label        text        NOT NULL,
    data         bytea,
    counter      bigint      NOT NULL,
    failures     integer     NOT NULL,
    locked_until timestamptz,
    created_at   timestamptz,
    updated_at   timestamptz,
    last_used_at timestamptz
);

CREATE INDEX credentials_user ON credentials (user_id, created_at NULLS FIRST, id COLLATE "C");

CREATE TABLE challenges (
    id            text        NOT NULL PRIMARY KEY,
    kind          text        NOT NULL,
    user_id       text        NOT NULL,
    session_id    text        NOT NULL,
    factor        text        NOT NULL,
    credential_id text        NOT NULL,
    data          bytea,
    attempts      integer     NOT NULL,
    max_attempts  integer     NOT NULL,
    created_at    timestamptz,
    expires_at    timestamptz,
    consumed_at   timestamptz
);

CREATE INDEX challenges_expires ON challenges (expires_at);

CREATE TABLE counters (
    key       text   NOT NULL,
    window_ns bigint NOT NULL,
    start_ns  bigint NOT NULL,
    end_ns    bigint NOT NULL,
    count     bigint NOT NULL,
    PRIMARY KEY (key, window_ns, start_ns)
);

CREATE INDEX counters_end ON counters (end_ns);

CREATE TABLE leases (
    name       text   NOT NULL PRIMARY KEY,
    holder     text   NOT NULL,
    expires_ns bigint NOT NULL
);

-- seq comes from an identity sequence, but only while the appender holds
-- the audit advisory lock (see audit.go): that is what makes seq order the
-- commit order.
CREATE TABLE audit (
    seq        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time       timestamptz NOT NULL,
    type       text        NOT NULL,
    actor      text        NOT NULL,
    user_id    text        NOT NULL,
    factor     text        NOT NULL,
    session_id text        NOT NULL,
    ip         text        NOT NULL,
    outcome    text        NOT NULL,
    details    jsonb
);

CREATE INDEX audit_user ON audit (user_id, seq);
CREATE INDEX audit_time ON audit (time);

-- The trail is append-only: rows are inserted and, for retention, deleted,
-- never rewritten or truncated wholesale.
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit is append-only (% refused)', TG_OP;
END
$$;

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
