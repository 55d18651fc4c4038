-- Monthly budgets: whether reaching a subscription's budget stops metered
-- spending, and where each subscription's current period stands against
-- it (the billing role's latest measurement; the edge reads `capped`).
ALTER TABLE subscriptions ADD COLUMN budget_hard_cap BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE subscription_budgets (
    subscription_id TEXT PRIMARY KEY REFERENCES subscriptions (id),
    org_id TEXT NOT NULL REFERENCES orgs (id),
    -- The period measured (YYYY-MM-DD, UTC): a new period starts over.
    period_start TEXT NOT NULL,
    period_end TEXT NOT NULL,
    budget_minor BIGINT NOT NULL,
    -- The period rated so far, minor units.
    spent_minor BIGINT NOT NULL,
    -- The highest alert sent this period (50, 80, 100).
    alerted_percent BIGINT,
    capped BOOLEAN NOT NULL,
    measured_at BIGINT NOT NULL
);
CREATE INDEX subscription_budgets_org_idx ON subscription_budgets (org_id);
