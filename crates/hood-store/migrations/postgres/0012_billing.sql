-- Billing: the price book, subscriptions, invoices (numbered without gaps
-- per year), payments and the Stripe events already handled.

-- A version of the price book (JSON of the domain's `RateCard`). Immutable
-- once `used_at` is set: the first issued invoice that priced with it.
CREATE TABLE rate_cards (
    version BIGINT PRIMARY KEY,
    currency TEXT NOT NULL,
    card TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at BIGINT
);

CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    -- JSON of the domain's `ContractTerms`.
    terms TEXT NOT NULL,
    currency TEXT NOT NULL,
    -- The contract's start: periods are anchored to it (YYYY-MM-DD, UTC).
    start_date TEXT NOT NULL,
    rate_card_version BIGINT NOT NULL REFERENCES rate_cards (version),
    grace_ms BIGINT NOT NULL,
    budget_minor BIGINT,
    state TEXT NOT NULL,
    state_since BIGINT NOT NULL,
    grace_until BIGINT,
    reason TEXT,
    -- The end of the last period invoiced (YYYY-MM-DD): close's cursor.
    billed_through TEXT,
    created_at BIGINT NOT NULL,
    version BIGINT NOT NULL
);
-- One live subscription per organization.
CREATE UNIQUE INDEX subscriptions_live_org_idx ON subscriptions (org_id)
    WHERE state IN ('pending_payment', 'active', 'grace');

CREATE TABLE invoices (
    id TEXT PRIMARY KEY,
    subscription_id TEXT NOT NULL REFERENCES subscriptions (id),
    org_id TEXT NOT NULL REFERENCES orgs (id),
    period_start TEXT NOT NULL,
    period_end TEXT NOT NULL,
    state TEXT NOT NULL,
    -- `YYYY-NNNNNN`, set at issue from `invoice_numbers` in the same
    -- transaction.
    number TEXT UNIQUE,
    currency TEXT NOT NULL,
    total_minor BIGINT NOT NULL,
    rate_card_version BIGINT NOT NULL REFERENCES rate_cards (version),
    -- JSON: the domain's lines, and the readings they were rated from.
    lines TEXT NOT NULL,
    readings TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    issued_at BIGINT,
    paid_at BIGINT,
    voided_at BIGINT,
    -- When the ledger confirmed the invoice's transfer (NULL: to post).
    posted_at BIGINT,
    CONSTRAINT invoices_period_key UNIQUE (subscription_id, period_start)
);
CREATE INDEX invoices_org_idx ON invoices (org_id, period_start);

-- The last number issued per year.
CREATE TABLE invoice_numbers (
    year BIGINT PRIMARY KEY,
    last BIGINT NOT NULL
);

CREATE TABLE payments (
    id TEXT PRIMARY KEY,
    invoice_id TEXT REFERENCES invoices (id),
    org_id TEXT NOT NULL REFERENCES orgs (id),
    provider TEXT NOT NULL,
    -- The provider's id of the payment (a Checkout Session, a bank
    -- transfer's reference): one payment per reference.
    reference TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    -- succeeded | failed | refunded
    state TEXT NOT NULL,
    detail TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    -- When the ledger confirmed the payment's transfer (NULL: to post).
    posted_at BIGINT,
    CONSTRAINT payments_reference_key UNIQUE (provider, reference)
);
CREATE INDEX payments_invoice_idx ON payments (invoice_id);

-- Stripe events handled, by id: a redelivery changes nothing.
CREATE TABLE stripe_events (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    created BIGINT NOT NULL,
    received_at BIGINT NOT NULL
);
