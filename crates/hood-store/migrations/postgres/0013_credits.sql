-- Prepaid credits: organizations whose usage is paid per accrual window
-- from a ledger balance that cannot go below zero. The balance itself is
-- the ledger's; this row is the accrual's cursor and the cut-off state the
-- edge reads.
CREATE TABLE credit_accounts (
    org_id TEXT PRIMARY KEY REFERENCES orgs (id),
    rate_card_version BIGINT NOT NULL REFERENCES rate_cards (version),
    window_ms BIGINT NOT NULL,
    -- JSON array of minor-unit thresholds.
    low_balance_minor TEXT NOT NULL,
    -- active | stopped
    state TEXT NOT NULL,
    reason TEXT,
    state_since BIGINT NOT NULL,
    accrued_through BIGINT NOT NULL,
    -- JSON of the current hold, or NULL.
    hold TEXT,
    warned_below BIGINT,
    created_at BIGINT NOT NULL,
    version BIGINT NOT NULL
);
CREATE INDEX credit_accounts_state_idx ON credit_accounts (state);

-- The accrual reads each organization's raw usage of a window.
CREATE INDEX usage_events_org_at_idx ON usage_events (org_id, at);
