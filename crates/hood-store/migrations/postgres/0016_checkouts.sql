-- Hosted checkouts asked of the payment provider, one per idempotency
-- key. A request the provider could not take (down, 5xx, 429) stays
-- `pending` and the billing role retries it with backoff; `open` holds the
-- session to send the customer to; `failed` the provider's refusal.
CREATE TABLE checkouts (
    idempotency_key TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    -- The invoice it pays; NULL for a credit top-up.
    invoice_id TEXT REFERENCES invoices (id),
    -- JSON of the provider request, sent again as it was.
    request TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT,
    last_error TEXT,
    session_id TEXT,
    url TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX checkouts_due_idx ON checkouts (state, next_attempt_at);
