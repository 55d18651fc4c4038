-- Corrections of issued invoices: why one was voided, and credit notes
-- (numbered without gaps per year in their own series, `CN-YYYY-NNNNNN`).
ALTER TABLE invoices ADD COLUMN void_reason TEXT;

CREATE TABLE credit_notes (
    id TEXT PRIMARY KEY,
    invoice_id TEXT NOT NULL REFERENCES invoices (id),
    org_id TEXT NOT NULL REFERENCES orgs (id),
    number TEXT NOT NULL UNIQUE,
    currency TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    reason TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- When the ledger confirmed its transfer (NULL: billing's loop posts it).
    posted_at BIGINT
);
CREATE INDEX credit_notes_invoice_idx ON credit_notes (invoice_id);
CREATE INDEX credit_notes_org_idx ON credit_notes (org_id, created_at);

-- The last credit note number issued per year.
CREATE TABLE credit_note_numbers (
    year BIGINT PRIMARY KEY,
    last BIGINT NOT NULL
);
