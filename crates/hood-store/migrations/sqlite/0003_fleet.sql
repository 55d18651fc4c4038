-- Fleet: hosts, enrollment, host certificates, the internal CA, durable
-- agent commands, workload reports and agent events. SQLite dialect; same
-- tables, columns and constraint names as the PostgreSQL schema.
-- States are validated by the store against the domain machines, so no
-- CHECK constraints pin their spelling here.

CREATE TABLE hosts (
    id              TEXT    NOT NULL PRIMARY KEY,
    -- NULL: a platform host shared by all organizations.
    org_id          TEXT    REFERENCES orgs (id),
    provider        TEXT    NOT NULL,
    region          TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    address         TEXT,
    -- Provider handle (sandbox path, cloud server id, ...), JSON.
    provider_ref    TEXT    NOT NULL DEFAULT '{}',
    hostname        TEXT,
    agent_version   TEXT,
    last_seen_at    INTEGER,
    -- The open agent session, if any (cleared when it ends).
    connected_at    INTEGER,
    session_id      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX hosts_state_idx ON hosts (state);
CREATE INDEX hosts_org_idx ON hosts (org_id);

-- Only the SHA-256 of each token is stored.
CREATE TABLE enrollment_tokens (
    token_hash  TEXT    NOT NULL PRIMARY KEY,
    host_id     TEXT    NOT NULL REFERENCES hosts (id),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER,
    -- SHA-256 of the public key that spent the token: a retry with the
    -- same key (lost response) gets a certificate again; any other key is refused.
    key_sha256  TEXT
);
CREATE INDEX enrollment_tokens_host_idx ON enrollment_tokens (host_id);

CREATE TABLE host_certificates (
    serial      TEXT    NOT NULL PRIMARY KEY,
    host_id     TEXT    NOT NULL REFERENCES hosts (id),
    not_before  INTEGER NOT NULL,
    not_after   INTEGER NOT NULL,
    issued_at   INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX host_certificates_host_idx ON host_certificates (host_id);

-- The internal CA: one row, private key sealed under the master key.
CREATE TABLE pki_ca (
    id          INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    cert_pem    TEXT    NOT NULL,
    sealed_key  BLOB    NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE agent_commands (
    id                TEXT    NOT NULL PRIMARY KEY,
    host_id           TEXT    NOT NULL REFERENCES hosts (id),
    kind              TEXT    NOT NULL,
    payload           TEXT    NOT NULL,
    idempotency_key   TEXT    NOT NULL,
    state             TEXT    NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL,
    dispatched_at     INTEGER,
    acked_at          INTEGER,
    finished_at       INTEGER,
    expires_at        INTEGER NOT NULL,
    progress_percent  INTEGER,
    progress_message  TEXT,
    result            TEXT,
    error             TEXT,
    CONSTRAINT agent_commands_host_key_key UNIQUE (host_id, idempotency_key)
);
CREATE INDEX agent_commands_dispatch_idx ON agent_commands (host_id, state, created_at);
CREATE INDEX agent_commands_expiry_idx ON agent_commands (state, expires_at);

-- Latest status of each workload, replaced on every heartbeat.
CREATE TABLE host_workloads (
    host_id      TEXT    NOT NULL REFERENCES hosts (id),
    workload_id  TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    pid          INTEGER,
    restarts     INTEGER NOT NULL,
    observation  TEXT    NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (host_id, workload_id)
);

CREATE TABLE agent_events (
    seq          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    host_id      TEXT    NOT NULL REFERENCES hosts (id),
    kind         TEXT    NOT NULL,
    workload_id  TEXT,
    message      TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    at           INTEGER NOT NULL
);
CREATE INDEX agent_events_host_idx ON agent_events (host_id, seq);
