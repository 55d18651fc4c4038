-- Fleet: hosts, enrollment, host certificates, the internal CA, durable
-- agent commands, workload reports and agent events. PostgreSQL dialect;
-- same tables, columns and constraint names as the SQLite schema.
-- States are validated by the store against the domain machines, so no
-- CHECK constraints pin their spelling here.

CREATE TABLE hosts (
    id              TEXT    NOT NULL,
    -- NULL: a platform host shared by all organizations.
    org_id          TEXT,
    provider        TEXT    NOT NULL,
    region          TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    address         TEXT,
    -- Provider handle (sandbox path, cloud server id, ...), JSON.
    provider_ref    TEXT    NOT NULL DEFAULT '{}',
    hostname        TEXT,
    agent_version   TEXT,
    last_seen_at    BIGINT,
    -- The open agent session, if any (cleared when it ends).
    connected_at    BIGINT,
    session_id      TEXT,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    CONSTRAINT hosts_pkey PRIMARY KEY (id),
    CONSTRAINT hosts_org_fkey FOREIGN KEY (org_id) REFERENCES orgs (id)
);
CREATE INDEX hosts_state_idx ON hosts (state);
CREATE INDEX hosts_org_idx ON hosts (org_id);

-- Only the SHA-256 of each token is stored.
CREATE TABLE enrollment_tokens (
    token_hash  TEXT    NOT NULL,
    host_id     TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL,
    used_at     BIGINT,
    -- SHA-256 of the public key that spent the token: a retry with the
    -- same key (lost response) gets a certificate again; any other key is refused.
    key_sha256  TEXT,
    CONSTRAINT enrollment_tokens_pkey PRIMARY KEY (token_hash),
    CONSTRAINT enrollment_tokens_host_fkey FOREIGN KEY (host_id) REFERENCES hosts (id)
);
CREATE INDEX enrollment_tokens_host_idx ON enrollment_tokens (host_id);

CREATE TABLE host_certificates (
    serial      TEXT    NOT NULL,
    host_id     TEXT    NOT NULL,
    not_before  BIGINT  NOT NULL,
    not_after   BIGINT  NOT NULL,
    issued_at   BIGINT  NOT NULL,
    revoked_at  BIGINT,
    CONSTRAINT host_certificates_pkey PRIMARY KEY (serial),
    CONSTRAINT host_certificates_host_fkey FOREIGN KEY (host_id) REFERENCES hosts (id)
);
CREATE INDEX host_certificates_host_idx ON host_certificates (host_id);

-- The internal CA: one row, private key sealed under the master key.
CREATE TABLE pki_ca (
    id          INTEGER NOT NULL,
    cert_pem    TEXT    NOT NULL,
    sealed_key  BYTEA   NOT NULL,
    created_at  BIGINT  NOT NULL,
    CONSTRAINT pki_ca_pkey PRIMARY KEY (id),
    CONSTRAINT pki_ca_single_row CHECK (id = 1)
);

CREATE TABLE agent_commands (
    id                TEXT    NOT NULL,
    host_id           TEXT    NOT NULL,
    kind              TEXT    NOT NULL,
    payload           TEXT    NOT NULL,
    idempotency_key   TEXT    NOT NULL,
    state             TEXT    NOT NULL,
    attempts          BIGINT  NOT NULL DEFAULT 0,
    created_at        BIGINT  NOT NULL,
    dispatched_at     BIGINT,
    acked_at          BIGINT,
    finished_at       BIGINT,
    expires_at        BIGINT  NOT NULL,
    progress_percent  BIGINT,
    progress_message  TEXT,
    result            TEXT,
    error             TEXT,
    CONSTRAINT agent_commands_pkey PRIMARY KEY (id),
    CONSTRAINT agent_commands_host_fkey FOREIGN KEY (host_id) REFERENCES hosts (id),
    CONSTRAINT agent_commands_host_key_key UNIQUE (host_id, idempotency_key)
);
CREATE INDEX agent_commands_dispatch_idx ON agent_commands (host_id, state, created_at);
CREATE INDEX agent_commands_expiry_idx ON agent_commands (state, expires_at);

-- Latest status of each workload, replaced on every heartbeat.
CREATE TABLE host_workloads (
    host_id      TEXT    NOT NULL,
    workload_id  TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    pid          BIGINT,
    restarts     BIGINT  NOT NULL,
    observation  TEXT    NOT NULL,
    updated_at   BIGINT  NOT NULL,
    CONSTRAINT host_workloads_pkey PRIMARY KEY (host_id, workload_id),
    CONSTRAINT host_workloads_host_fkey FOREIGN KEY (host_id) REFERENCES hosts (id)
);

CREATE TABLE agent_events (
    seq          BIGSERIAL NOT NULL,
    host_id      TEXT      NOT NULL,
    kind         TEXT      NOT NULL,
    workload_id  TEXT,
    message      TEXT      NOT NULL,
    payload      TEXT      NOT NULL,
    at           BIGINT    NOT NULL,
    CONSTRAINT agent_events_pkey PRIMARY KEY (seq),
    CONSTRAINT agent_events_host_fkey FOREIGN KEY (host_id) REFERENCES hosts (id)
);
CREATE INDEX agent_events_host_idx ON agent_events (host_id, seq);
