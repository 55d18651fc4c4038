-- Customers' containers: a named image run as an allocation of a SKU. The
-- container outlives its allocations (stop releases, start places a new
-- one); `generation` names the allocation of each start (its idempotency
-- key), `allocation_id` is the current one once placed.
CREATE TABLE containers (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    name TEXT NOT NULL,
    sku TEXT NOT NULL,
    spec TEXT NOT NULL,
    desired TEXT NOT NULL,
    generation BIGINT NOT NULL,
    allocation_id TEXT NULL REFERENCES allocations (id),
    error TEXT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CONSTRAINT containers_org_id_name_key UNIQUE (org_id, name)
);
-- The reconciler's question: wanted running, not placed yet.
CREATE INDEX containers_pending_idx ON containers (desired, allocation_id);
