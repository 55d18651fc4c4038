-- Why an allocation ended other than by request (its command exited, its
-- sandbox could not start).
ALTER TABLE allocations ADD COLUMN error TEXT;
