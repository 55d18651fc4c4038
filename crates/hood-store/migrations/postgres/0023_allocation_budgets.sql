-- An organization's monthly cap on what its allocations may cost: new
-- allocations are refused and running ones released once the calendar
-- month's allocation charges reach it.
CREATE TABLE allocation_budgets (
    org_id TEXT PRIMARY KEY REFERENCES orgs (id),
    monthly_limit_minor BIGINT NOT NULL CHECK (monthly_limit_minor > 0),
    currency TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
