-- Identity and tenancy, PostgreSQL dialect.
-- Conventions shared with the SQLite schema: ids are UUID text,
-- timestamps are Unix milliseconds (BIGINT), JSON is text. Constraint names
-- are explicit because the store maps unique violations by name.
-- Roles and scopes are validated by the store when read (the domain owns
-- the vocabulary), so no CHECK constraints pin their spelling here.

CREATE TABLE orgs (
    id          TEXT   NOT NULL,
    slug        TEXT   NOT NULL,
    name        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    CONSTRAINT orgs_pkey PRIMARY KEY (id),
    CONSTRAINT orgs_slug_key UNIQUE (slug)
);

CREATE TABLE users (
    id              TEXT    NOT NULL,
    org_id          TEXT    NOT NULL,
    -- Stored lower-cased; lookups lower-case their input.
    email           TEXT    NOT NULL,
    display_name    TEXT    NOT NULL,
    role            TEXT    NOT NULL,
    platform_admin  BOOLEAN NOT NULL DEFAULT FALSE,
    password_hash   TEXT,
    disabled        BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      BIGINT  NOT NULL,
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_org_fkey FOREIGN KEY (org_id) REFERENCES orgs (id),
    CONSTRAINT users_email_key UNIQUE (email),
    -- Target of the composite foreign keys below: a key or session always
    -- belongs to the org of its user.
    CONSTRAINT users_id_org_key UNIQUE (id, org_id)
);
CREATE INDEX users_org_created_idx ON users (org_id, created_at);

CREATE TABLE api_keys (
    id            TEXT   NOT NULL,
    org_id        TEXT   NOT NULL,
    user_id       TEXT   NOT NULL,
    name          TEXT   NOT NULL,
    prefix        TEXT   NOT NULL,
    secret_hash   TEXT   NOT NULL,
    role          TEXT   NOT NULL,
    -- JSON array of permission names; empty means "whatever the role allows".
    scopes        TEXT   NOT NULL DEFAULT '[]',
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    revoked_at    BIGINT,
    last_used_at  BIGINT,
    CONSTRAINT api_keys_pkey PRIMARY KEY (id),
    CONSTRAINT api_keys_prefix_key UNIQUE (prefix),
    CONSTRAINT api_keys_org_fkey FOREIGN KEY (org_id) REFERENCES orgs (id),
    CONSTRAINT api_keys_user_fkey FOREIGN KEY (user_id, org_id)
        REFERENCES users (id, org_id) ON DELETE CASCADE
);
CREATE INDEX api_keys_org_created_idx ON api_keys (org_id, created_at);
CREATE INDEX api_keys_user_idx ON api_keys (user_id, org_id);

CREATE TABLE sessions (
    id              TEXT   NOT NULL,
    user_id         TEXT   NOT NULL,
    org_id          TEXT   NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    revoked_at      BIGINT,
    revoked_reason  TEXT,
    CONSTRAINT sessions_pkey PRIMARY KEY (id),
    CONSTRAINT sessions_user_fkey FOREIGN KEY (user_id, org_id)
        REFERENCES users (id, org_id) ON DELETE CASCADE
);
CREATE INDEX sessions_user_idx ON sessions (user_id, org_id);

CREATE TABLE refresh_tokens (
    jti         TEXT   NOT NULL,
    session_id  TEXT   NOT NULL,
    issued_at   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    CONSTRAINT refresh_tokens_pkey PRIMARY KEY (jti),
    CONSTRAINT refresh_tokens_session_fkey FOREIGN KEY (session_id)
        REFERENCES sessions (id) ON DELETE CASCADE
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);

CREATE TABLE signing_keys (
    kid                 TEXT   NOT NULL,
    sealed_private_key  BYTEA  NOT NULL,
    public_key_pem      TEXT   NOT NULL,
    created_at          BIGINT NOT NULL,
    retired_at          BIGINT,
    CONSTRAINT signing_keys_pkey PRIMARY KEY (kid)
);
CREATE INDEX signing_keys_created_idx ON signing_keys (created_at);

CREATE TABLE outbox (
    -- Publish order. Sequence values may commit out of order under
    -- concurrency; the relay selects every unpublished row, so none is lost.
    seq             BIGSERIAL NOT NULL,
    id              TEXT      NOT NULL,
    subject         TEXT      NOT NULL,
    aggregate_type  TEXT      NOT NULL,
    aggregate_id    TEXT      NOT NULL,
    payload         TEXT      NOT NULL,
    created_at      BIGINT    NOT NULL,
    published_at    BIGINT,
    CONSTRAINT outbox_pkey PRIMARY KEY (seq),
    CONSTRAINT outbox_id_key UNIQUE (id)
);
CREATE INDEX outbox_pending_idx ON outbox (seq) WHERE published_at IS NULL;

-- A single row upserted at the start of every bootstrap transaction: its row
-- lock serialises concurrent bootstraps so that exactly one sees zero users.
CREATE TABLE bootstrap_guard (
    id               INTEGER NOT NULL,
    last_attempt_at  BIGINT  NOT NULL,
    CONSTRAINT bootstrap_guard_pkey PRIMARY KEY (id),
    CONSTRAINT bootstrap_guard_single_row CHECK (id = 1)
);
