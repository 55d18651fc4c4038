-- RPC edge (SQLite dialect): RPC keys, raw usage events, usage rollups.

-- An RPC key: only the SHA-256 of its secret is kept, found by its public
-- prefix. Revoked keys stay (usage refers to them); `version` rises at
-- every change so edge replicas can ignore stale news.
CREATE TABLE rpc_keys (
    id          TEXT   NOT NULL,
    org_id      TEXT   NOT NULL REFERENCES orgs (id),
    name        TEXT   NOT NULL,
    prefix      TEXT   NOT NULL,
    secret_hash TEXT   NOT NULL,
    plan        TEXT   NOT NULL,
    -- JSON: {chains, allowed_methods, denied_methods, ip_allow, origin_allow}.
    scope       TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    revoked_at  BIGINT,
    version     BIGINT NOT NULL,
    CONSTRAINT rpc_keys_pkey PRIMARY KEY (id),
    CONSTRAINT rpc_keys_prefix_key UNIQUE (prefix)
);
CREATE INDEX rpc_keys_org_idx ON rpc_keys (org_id, created_at);
-- The edge's periodic resync reads keys changed since its last pass.
CREATE INDEX rpc_keys_updated_idx ON rpc_keys (updated_at);

-- One row per served request (per JSON-RPC batch item), keyed by the
-- edge's request id so a redelivered event is stored once. No foreign
-- keys: metering facts must never be refused, or a bus batch would be
-- redelivered forever.
CREATE TABLE usage_events (
    request_id    TEXT   NOT NULL,
    org_id        TEXT   NOT NULL,
    key_id        TEXT   NOT NULL,
    chain         TEXT   NOT NULL,
    method        TEXT   NOT NULL,
    compute_units BIGINT NOT NULL,
    -- ok | rpc_error | rate_limited | denied | upstream_error
    status        TEXT   NOT NULL,
    http_status   BIGINT NOT NULL,
    latency_us    BIGINT NOT NULL,
    at            BIGINT NOT NULL,
    CONSTRAINT usage_events_pkey PRIMARY KEY (request_id)
);
CREATE INDEX usage_events_key_at_idx ON usage_events (key_id, at);

-- Sums of the stored events per bucket (hour | day), key, chain and method,
-- maintained in the transaction that stores the events.
CREATE TABLE usage_rollups (
    granularity    TEXT   NOT NULL,
    bucket_start   BIGINT NOT NULL,
    key_id         TEXT   NOT NULL,
    chain          TEXT   NOT NULL,
    method         TEXT   NOT NULL,
    org_id         TEXT   NOT NULL,
    requests       BIGINT NOT NULL,
    compute_units  BIGINT NOT NULL,
    -- Requests whose status is not `ok`.
    errors         BIGINT NOT NULL,
    latency_us_sum BIGINT NOT NULL,
    CONSTRAINT usage_rollups_pkey PRIMARY KEY (granularity, bucket_start, key_id, chain, method)
);
CREATE INDEX usage_rollups_org_idx ON usage_rollups (org_id, granularity, bucket_start);
