-- Billing's meter events: a quantity of one meter at one instant, with
-- dimensions (JSON object of strings), de-duplicated by the producer's id
-- within an organization (the first arrival is kept).
CREATE TABLE meter_events (
    org_id TEXT NOT NULL REFERENCES orgs (id),
    id TEXT NOT NULL,
    meter TEXT NOT NULL,
    dimensions TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    at BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    CONSTRAINT meter_events_pkey PRIMARY KEY (org_id, id)
);
-- A meter's events of a period are one range scan.
CREATE INDEX meter_events_meter_idx ON meter_events (org_id, meter, at);
