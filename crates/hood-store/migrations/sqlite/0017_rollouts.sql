-- Upgrades and rollouts.
--
-- A node runs its chain profile's binaries unless pinned here: an upgrade
-- pins the node to the version it installed, so every later start
-- (migration, resume) starts that version.
CREATE TABLE node_binaries (
    node_id TEXT NOT NULL REFERENCES nodes (id),
    binary_name TEXT NOT NULL,
    artifact TEXT NOT NULL,
    version TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (node_id, binary_name)
);

-- A fleet moved to another version in batches (design §5). The batches
-- and each node's progress live in rollout_nodes; the run that drives it
-- is the workflow `rollout-{id}`.
CREATE TABLE rollouts (
    id TEXT PRIMARY KEY,
    upgrade_id TEXT,
    chain TEXT NOT NULL,
    node_type TEXT,
    from_version TEXT NOT NULL,
    -- JSON: binary, artifact, version, forward_only.
    target TEXT NOT NULL,
    -- JSON: canary, batch, max_unavailable, failure_budget, require_approval.
    policy TEXT NOT NULL,
    soak_s BIGINT NOT NULL,
    verify_timeout_s BIGINT NOT NULL,
    state TEXT NOT NULL,
    approved_through BIGINT NOT NULL,
    error TEXT,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX rollouts_created_idx ON rollouts (created_at);

CREATE TABLE rollout_nodes (
    rollout_id TEXT NOT NULL REFERENCES rollouts (id),
    node_id TEXT NOT NULL REFERENCES nodes (id),
    batch BIGINT NOT NULL,
    batch_position BIGINT NOT NULL,
    state TEXT NOT NULL,
    from_version TEXT NOT NULL,
    soak_until BIGINT,
    error TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (rollout_id, node_id)
);
