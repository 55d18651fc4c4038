-- Managed nodes, their history, and their sealed key material.

CREATE TABLE nodes (
    id TEXT NOT NULL,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    name TEXT NOT NULL,
    chain TEXT NOT NULL,
    node_type TEXT NOT NULL,
    provider TEXT NOT NULL,
    region TEXT NOT NULL,
    state TEXT NOT NULL,
    sync_status TEXT NOT NULL,
    app_health TEXT NOT NULL,
    host_id TEXT,
    rpc_endpoint TEXT,
    head_height BIGINT,
    binary_version TEXT,
    failure_reason TEXT,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CONSTRAINT nodes_pkey PRIMARY KEY (id),
    CONSTRAINT nodes_org_name_key UNIQUE (org_id, name)
);
CREATE INDEX nodes_state_idx ON nodes (state);
CREATE INDEX nodes_host_idx ON nodes (host_id);

CREATE TABLE node_events (
    seq BIGSERIAL PRIMARY KEY,
    node_id TEXT NOT NULL REFERENCES nodes (id),
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT,
    message TEXT NOT NULL
);
CREATE INDEX node_events_node_idx ON node_events (node_id, seq);

CREATE TABLE node_keys (
    node_id TEXT NOT NULL REFERENCES nodes (id),
    kind TEXT NOT NULL,
    sealed_data_key BYTEA NOT NULL,
    ciphertext BYTEA NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    CONSTRAINT node_keys_pkey PRIMARY KEY (node_id)
);
