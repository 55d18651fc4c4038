-- Why an allocation ended other than by request (its command exited, its
-- sandbox could not start), its price when it was made, and when it was
-- active (what prepaid credits charge by the minute).
ALTER TABLE allocations ADD COLUMN error TEXT;
ALTER TABLE allocations ADD COLUMN price_per_minute_minor BIGINT NOT NULL DEFAULT 0;
ALTER TABLE allocations ADD COLUMN currency TEXT NOT NULL DEFAULT 'USD';
ALTER TABLE allocations ADD COLUMN active_since BIGINT;
ALTER TABLE allocations ADD COLUMN active_until BIGINT;
CREATE INDEX allocations_org_active_idx ON allocations (org_id, active_since);
