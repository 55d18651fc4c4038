-- Health (SQLite dialect): leader leases, per-node health counters, chain head tracking,
-- incidents, notification channels and deliveries, hourly uptime.

-- One row per singleton loop. `generation` rises at every change of
-- holder: leader-gated writes name the generation they hold (fencing).
CREATE TABLE leader_leases (
    name        TEXT   NOT NULL,
    holder      TEXT   NOT NULL,
    generation  BIGINT NOT NULL,
    acquired_at BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    CONSTRAINT leader_leases_pkey PRIMARY KEY (name)
);

-- What the evaluator carries from one cycle to the next for a node.
CREATE TABLE node_health (
    node_id            TEXT   NOT NULL REFERENCES nodes (id),
    consecutive_misses BIGINT NOT NULL,
    -- Set when the node went down, with the node version it went down at
    -- (the migration workflow id is derived from it).
    down_since         BIGINT,
    down_version       BIGINT,
    last_migration_at  BIGINT,
    last_head          BIGINT,
    head_changed_at    BIGINT,
    -- JSON: policy name -> ms since it has been firing.
    policy_firing      TEXT   NOT NULL,
    updated_at         BIGINT NOT NULL,
    CONSTRAINT node_health_pkey PRIMARY KEY (node_id)
);

CREATE TABLE chain_heads (
    chain          TEXT   NOT NULL,
    best_head      BIGINT NOT NULL,
    advanced_at    BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    CONSTRAINT chain_heads_pkey PRIMARY KEY (chain)
);

CREATE TABLE incidents (
    id                TEXT   NOT NULL,
    org_id            TEXT   NOT NULL REFERENCES orgs (id),
    dedupe_key        TEXT   NOT NULL,
    category          TEXT   NOT NULL,
    severity          TEXT   NOT NULL,
    state             TEXT   NOT NULL,
    node_id           TEXT,
    chain             TEXT,
    title             TEXT   NOT NULL,
    detail            TEXT   NOT NULL,
    -- The chain-wide incident that mutes this one.
    root_id           TEXT,
    escalation_level  BIGINT NOT NULL,
    escalated_at      BIGINT,
    clear_cycles      BIGINT NOT NULL,
    opened_at         BIGINT NOT NULL,
    acknowledged_at   BIGINT,
    acknowledged_by   TEXT,
    resolved_at       BIGINT,
    updated_at        BIGINT NOT NULL,
    CONSTRAINT incidents_pkey PRIMARY KEY (id)
);
-- De-duplication: at most one unresolved incident per key.
CREATE UNIQUE INDEX incidents_open_key ON incidents (dedupe_key) WHERE state <> 'resolved';
CREATE INDEX incidents_org_idx ON incidents (org_id, opened_at);
CREATE INDEX incidents_state_idx ON incidents (state);

CREATE TABLE notification_channels (
    id              TEXT    NOT NULL,
    org_id          TEXT    NOT NULL REFERENCES orgs (id),
    name            TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    -- The full configuration (with its secrets) sealed under the master key.
    sealed_config   BLOB   NOT NULL,
    -- The configuration with secrets masked, for display.
    redacted_config TEXT    NOT NULL,
    enabled         BOOLEAN NOT NULL,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    CONSTRAINT notification_channels_pkey PRIMARY KEY (id),
    CONSTRAINT notification_channels_org_name_key UNIQUE (org_id, name)
);

CREATE TABLE notification_deliveries (
    id               TEXT   NOT NULL,
    channel_id       TEXT   NOT NULL REFERENCES notification_channels (id),
    incident_id      TEXT   NOT NULL REFERENCES incidents (id),
    event            TEXT   NOT NULL,
    escalation_level BIGINT NOT NULL,
    -- pending | delivered | failed
    state            TEXT   NOT NULL,
    attempts         BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    claimed_until    BIGINT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    delivered_at     BIGINT,
    CONSTRAINT notification_deliveries_pkey PRIMARY KEY (id),
    -- One delivery per channel, incident, event and level, however often
    -- the event is redelivered on the bus.
    CONSTRAINT notification_deliveries_once_key UNIQUE (channel_id, incident_id, event, escalation_level)
);
CREATE INDEX notification_deliveries_due_idx ON notification_deliveries (state, next_attempt_at);

CREATE TABLE notification_attempts (
    delivery_id TEXT   NOT NULL REFERENCES notification_deliveries (id),
    attempt     BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    ok          BOOLEAN NOT NULL,
    error       TEXT,
    CONSTRAINT notification_attempts_pkey PRIMARY KEY (delivery_id, attempt)
);

CREATE TABLE node_uptime_hourly (
    node_id        TEXT   NOT NULL REFERENCES nodes (id),
    hour_start     BIGINT NOT NULL,
    up_ms          BIGINT NOT NULL,
    syncing_ms     BIGINT NOT NULL,
    down_ms        BIGINT NOT NULL,
    maintenance_ms BIGINT NOT NULL,
    CONSTRAINT node_uptime_hourly_pkey PRIMARY KEY (node_id, hour_start)
);

-- The uptime worker reads state changes by node and time.
CREATE INDEX node_events_state_idx ON node_events (node_id, kind, at);
