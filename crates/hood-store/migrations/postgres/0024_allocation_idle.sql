-- Since when an active allocation has been under its idle policy's
-- utilization floor (NULL: busy, or no policy). In the row, so an
-- orchestrator's restart or another replica counts on from it instead of
-- starting the idle time again.
ALTER TABLE allocations ADD COLUMN idle_since BIGINT;
