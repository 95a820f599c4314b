-- Hosts, their pinned keys, enrolment and admin tokens, chain heads, alerts, integrity events.

-- Enrolment tokens: only the SHA-256 of each token is stored. Tokens are 256-bit random
-- strings, so a fast hash is as good as a password hash here: there is nothing to guess.
CREATE TABLE enroll_tokens (
    id          bigserial PRIMARY KEY,
    token_hash  bytea NOT NULL UNIQUE,
    uses_total  integer NOT NULL CHECK (uses_total > 0),
    uses_left   integer NOT NULL CHECK (uses_left >= 0),
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE admin_tokens (
    id          bigserial PRIMARY KEY,
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- Console sessions: the cookie value is random; only its hash is stored.
CREATE TABLE admin_sessions (
    session_hash    bytea PRIMARY KEY,
    admin_token_id  bigint NOT NULL REFERENCES admin_tokens (id) ON DELETE CASCADE,
    csrf_token      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL
);
CREATE INDEX admin_sessions_expiry ON admin_sessions (expires_at);

-- One row per host id. `epoch` counts pinned keys: `hosts reset` unpins the key and starts a
-- new epoch, so a reinstalled host's new chain (seq from 1 again) never collides with the old.
CREATE TABLE hosts (
    host_id             text PRIMARY KEY,
    hostname            text NOT NULL,
    os                  text NOT NULL,
    agent_version       text NOT NULL,
    epoch               integer NOT NULL DEFAULT 1,
    public_key          bytea,            -- NULL between a reset and the next enrolment
    key_id              text,
    enrolled_at         timestamptz NOT NULL,
    last_seen           timestamptz,
    silent_since        timestamptz,      -- set once when the host goes silent
    reported_head_seq   bigint,           -- the chain head of the last heartbeat
    reported_head_hash  bytea,
    policy_version      bigint,
    events_dropped      bigint,
    last_status         jsonb             -- the last heartbeat's status fields
);

-- Every key ever pinned, so stored alerts of earlier epochs can still be re-verified.
CREATE TABLE host_keys (
    host_id     text NOT NULL REFERENCES hosts (host_id),
    epoch       integer NOT NULL,
    public_key  bytea NOT NULL,
    key_id      text NOT NULL,
    pinned_at   timestamptz NOT NULL DEFAULT now(),
    reset_at    timestamptz,
    PRIMARY KEY (host_id, epoch)
);

-- The row every ingest of a host locks (SELECT ... FOR UPDATE): per-host ordering is decided
-- here, so any replica may take any request.
CREATE TABLE chain_heads (
    host_id       text PRIMARY KEY REFERENCES hosts (host_id),
    epoch         integer NOT NULL,
    head_seq      bigint NOT NULL DEFAULT 0,     -- the highest seq stored this epoch
    head_hash     bytea NOT NULL,                -- its payload's SHA-256 (zeros at 0)
    fork_seq      bigint,                        -- the first forked seq, until a reset
    rollback_seq  bigint                         -- a heartbeat's head below head_seq
);

-- The chain itself: unique (host, epoch, seq), small rows, not partitioned (a unique key
-- across time partitions would have to include the time).
CREATE TABLE chain_index (
    host_id       text NOT NULL,
    epoch         integer NOT NULL,
    seq           bigint NOT NULL,
    payload_hash  bytea NOT NULL,
    prev_hash     bytea NOT NULL,
    received_at   timestamptz NOT NULL,
    PRIMARY KEY (host_id, epoch, seq)
);

-- Alerts, partitioned by the time the server received them (server time: a host cannot
-- choose where its rows land, and old partitions can be detached for retention).
CREATE TABLE alerts (
    host_id      text NOT NULL,
    epoch        integer NOT NULL,
    seq          bigint NOT NULL,
    received_at  timestamptz NOT NULL,
    alert_time   timestamptz NOT NULL,
    uuid         text NOT NULL,
    rule_id      text NOT NULL,
    rule_name    text NOT NULL,
    severity     text NOT NULL,
    key_id       text NOT NULL,
    envelope     bytea NOT NULL,                 -- the DSSE envelope, byte for byte
    payload      jsonb NOT NULL,
    PRIMARY KEY (host_id, epoch, seq, received_at)
) PARTITION BY RANGE (received_at);
CREATE TABLE alerts_default PARTITION OF alerts DEFAULT;
-- Newest-first pages scan this index backwards; (alert_time, host_id, epoch, seq) is the cursor.
CREATE INDEX alerts_by_time ON alerts (alert_time, host_id, epoch, seq);
CREATE INDEX alerts_by_rule ON alerts (rule_id, alert_time, host_id, epoch, seq);
CREATE INDEX alerts_by_host ON alerts (host_id, alert_time, epoch, seq);
CREATE INDEX alerts_by_severity ON alerts (severity, alert_time, host_id, epoch, seq);
CREATE INDEX alerts_by_uuid ON alerts (uuid);

CREATE TABLE integrity_events (
    id         bigserial PRIMARY KEY,
    host_id    text NOT NULL,
    epoch      integer NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('gap', 'fork', 'rollback', 'bad_signature', 'reset', 'silent')),
    at         timestamptz NOT NULL DEFAULT now(),
    seq_from   bigint,
    seq_to     bigint,
    detail     text NOT NULL,
    closed_at  timestamptz                      -- a gap once filled
);
CREATE INDEX integrity_by_host ON integrity_events (host_id, at DESC);
CREATE INDEX integrity_by_time ON integrity_events (at DESC);

-- The missing ranges of open gaps; a fill splits or removes its row.
CREATE TABLE chain_gaps (
    host_id   text NOT NULL,
    epoch     integer NOT NULL,
    from_seq  bigint NOT NULL,
    to_seq    bigint NOT NULL CHECK (to_seq >= from_seq),
    event_id  bigint NOT NULL REFERENCES integrity_events (id),
    PRIMARY KEY (host_id, epoch, from_seq)
);

-- Signed requests seen within the clock-skew window: a replayed request is refused.
CREATE TABLE request_replay (
    sig_hash  bytea PRIMARY KEY,
    seen_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX request_replay_age ON request_replay (seen_at);

-- Published policies (filled by `policy publish`); the version only grows.
CREATE TABLE policies (
    version       bigint PRIMARY KEY CHECK (version > 0),
    published_at  timestamptz NOT NULL DEFAULT now(),
    rules         integer NOT NULL,
    exceptions    integer NOT NULL,
    envelope      bytea NOT NULL
);
