-- The cluster monitor: one row of host counters per heartbeat (cumulative
-- since boot, as the agent read them; rates are derived when read), kept
-- for HOOD_RETENTION_HOST_METRICS_DAYS. They go with their host.
CREATE TABLE host_metrics (
    host_id TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    at BIGINT NOT NULL,
    cpu_busy_ticks BIGINT NOT NULL,
    cpu_total_ticks BIGINT NOT NULL,
    memory_total_bytes BIGINT NOT NULL,
    memory_available_bytes BIGINT NOT NULL,
    disk_total_bytes BIGINT NOT NULL,
    disk_available_bytes BIGINT NOT NULL,
    net_rx_bytes BIGINT NOT NULL,
    net_tx_bytes BIGINT NOT NULL,
    PRIMARY KEY (host_id, at)
);
-- Retention deletes by age across hosts.
CREATE INDEX host_metrics_at_idx ON host_metrics (at);
