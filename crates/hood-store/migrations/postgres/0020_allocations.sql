-- Allocations: rented slices of hosts. What each host offers (reported by
-- its agent or declared by an operator), and each allocation with the
-- placement it holds (cores, memory, disk, GPUs: JSON of
-- hood_domain::placement::Reservation). Live allocations (not released,
-- not failed) are what placement reads. `spec` is JSON of
-- hood_domain::allocation::AllocationSpec (what runs, its limits).
CREATE TABLE host_capacity (
    host_id     TEXT    NOT NULL PRIMARY KEY REFERENCES hosts (id),
    source      TEXT    NOT NULL,
    capacity    TEXT    NOT NULL,
    updated_at  BIGINT  NOT NULL
);

CREATE TABLE allocations (
    id              TEXT    NOT NULL PRIMARY KEY,
    org_id          TEXT    NOT NULL REFERENCES orgs (id),
    host_id         TEXT    NOT NULL REFERENCES hosts (id),
    sku             TEXT    NOT NULL,
    spec            TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    reservation     TEXT    NOT NULL,
    idempotency_key TEXT,
    expires_at      BIGINT,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    UNIQUE (org_id, idempotency_key)
);
CREATE INDEX allocations_live_idx ON allocations (host_id)
    WHERE state NOT IN ('released', 'failed');
CREATE INDEX allocations_org_idx ON allocations (org_id, created_at);
-- The provisioning worker's queue: allocations in a state it acts on.
CREATE INDEX allocations_state_idx ON allocations (state, updated_at);
-- Allocations whose maximum duration runs out.
CREATE INDEX allocations_expiry_idx ON allocations (expires_at)
    WHERE expires_at IS NOT NULL AND state NOT IN ('releasing', 'released', 'failed');
