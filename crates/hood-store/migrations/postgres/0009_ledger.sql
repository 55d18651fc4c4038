-- The ledger (design §8): TigerBeetle's accounts and transfers, and the
-- append-only Merkle log (RFC 6962) of every account creation and
-- transfer, in commit order, with signed checkpoints.
--
-- Amounts and balances are BIGINT minor units (never above 2^63 - 1, which
-- the domain enforces); timestamps are the ledger's nanoseconds, strictly
-- increasing. Transfers are immutable: only `pending_status` of a pending
-- transfer changes (pending → posted | voided | expired).

CREATE TABLE ledger_ledgers (
    id          BIGINT NOT NULL,
    asset       TEXT   NOT NULL,
    scale       BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    CONSTRAINT ledger_ledgers_pkey PRIMARY KEY (id),
    CONSTRAINT ledger_ledgers_asset_key UNIQUE (asset)
);

CREATE TABLE ledger_accounts (
    id               TEXT   NOT NULL,
    ledger           BIGINT NOT NULL REFERENCES ledger_ledgers (id),
    code             BIGINT NOT NULL,
    flags            BIGINT NOT NULL,
    org_id           TEXT,
    -- 32 lowercase hex digits.
    user_data_128    TEXT   NOT NULL,
    -- The u64's bits as a signed BIGINT.
    user_data_64     BIGINT NOT NULL,
    user_data_32     BIGINT NOT NULL,
    debits_pending   BIGINT NOT NULL,
    debits_posted    BIGINT NOT NULL,
    credits_pending  BIGINT NOT NULL,
    credits_posted   BIGINT NOT NULL,
    timestamp        BIGINT NOT NULL,
    leaf_index       BIGINT NOT NULL,
    CONSTRAINT ledger_accounts_pkey PRIMARY KEY (id),
    CONSTRAINT ledger_accounts_timestamp_key UNIQUE (timestamp),
    CONSTRAINT ledger_accounts_leaf_key UNIQUE (leaf_index)
);
CREATE INDEX ledger_accounts_org_idx ON ledger_accounts (org_id, timestamp);

CREATE TABLE ledger_transfers (
    id                 TEXT   NOT NULL,
    debit_account_id   TEXT   NOT NULL REFERENCES ledger_accounts (id),
    credit_account_id  TEXT   NOT NULL REFERENCES ledger_accounts (id),
    amount             BIGINT NOT NULL,
    pending_id         TEXT,
    user_data_128      TEXT   NOT NULL,
    user_data_64       BIGINT NOT NULL,
    user_data_32       BIGINT NOT NULL,
    timeout            BIGINT NOT NULL,
    ledger             BIGINT NOT NULL,
    code               BIGINT NOT NULL,
    flags              BIGINT NOT NULL,
    timestamp          BIGINT NOT NULL,
    leaf_index         BIGINT NOT NULL,
    -- Pending transfers only: pending | posted | voided | expired.
    pending_status     TEXT,
    -- Pending transfers with a timeout: when they expire (ns).
    expires_at         BIGINT,
    CONSTRAINT ledger_transfers_pkey PRIMARY KEY (id),
    CONSTRAINT ledger_transfers_timestamp_key UNIQUE (timestamp),
    CONSTRAINT ledger_transfers_leaf_key UNIQUE (leaf_index)
);
CREATE INDEX ledger_transfers_debit_idx ON ledger_transfers (debit_account_id, timestamp);
CREATE INDEX ledger_transfers_credit_idx ON ledger_transfers (credit_account_id, timestamp);
CREATE INDEX ledger_transfers_expiry_idx ON ledger_transfers (expires_at)
    WHERE pending_status = 'pending' AND expires_at IS NOT NULL;

-- The log: leaf i is the i-th account or transfer committed. `hash` is
-- SHA-256(0x00 ‖ canonical bytes).
CREATE TABLE ledger_leaves (
    leaf_index  BIGINT NOT NULL,
    kind        TEXT   NOT NULL,
    ref_id      TEXT   NOT NULL,
    hash        BYTEA  NOT NULL,
    CONSTRAINT ledger_leaves_pkey PRIMARY KEY (leaf_index)
);

-- Hashes of the perfect subtrees of the log (level ≥ 1) as appends
-- complete them: proofs read O(log n) of them.
CREATE TABLE ledger_tree_nodes (
    level  BIGINT NOT NULL,
    idx    BIGINT NOT NULL,
    hash   BYTEA  NOT NULL,
    CONSTRAINT ledger_tree_nodes_pkey PRIMARY KEY (level, idx)
);

-- The log's head: its size, the last timestamp assigned, and the right
-- edge of the tree (the frontier's hashes, concatenated). Every write
-- takes this row's lock first: commits are serialized in log order.
CREATE TABLE ledger_head (
    id              BIGINT NOT NULL,
    tree_size       BIGINT NOT NULL,
    last_timestamp  BIGINT NOT NULL,
    frontier        BYTEA  NOT NULL,
    CONSTRAINT ledger_head_pkey PRIMARY KEY (id),
    CONSTRAINT ledger_head_single_row CHECK (id = 1)
);
INSERT INTO ledger_head (id, tree_size, last_timestamp, frontier) VALUES (1, 0, 0, ''::bytea);

-- Signed checkpoints (C2SP tlog-checkpoint in a signed note).
CREATE TABLE ledger_checkpoints (
    tree_size    BIGINT NOT NULL,
    root_hash    BYTEA  NOT NULL,
    signed_note  TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    CONSTRAINT ledger_checkpoints_pkey PRIMARY KEY (tree_size)
);

-- The checkpoint signing key: its Ed25519 seed sealed under the master key.
CREATE TABLE ledger_signing_keys (
    name         TEXT   NOT NULL,
    public_key   BYTEA  NOT NULL,
    sealed_seed  BYTEA  NOT NULL,
    created_at   BIGINT NOT NULL,
    CONSTRAINT ledger_signing_keys_pkey PRIMARY KEY (name)
);
