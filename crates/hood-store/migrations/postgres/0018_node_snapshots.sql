-- A node's data directory in the object store (snapshots/{node}/{name}/):
-- chunks and a manifest there, what it is and how far its upload got here.
CREATE TABLE node_snapshots (
    node_id TEXT NOT NULL REFERENCES nodes (id),
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL,
    head_height BIGINT,
    files BIGINT NOT NULL,
    raw_bytes BIGINT NOT NULL,
    compressed_bytes BIGINT NOT NULL,
    chunks_total BIGINT NOT NULL,
    chunks_done BIGINT NOT NULL,
    error TEXT,
    created_at BIGINT NOT NULL,
    completed_at BIGINT,
    PRIMARY KEY (node_id, name)
);
CREATE INDEX node_snapshots_created_idx ON node_snapshots (node_id, created_at);
