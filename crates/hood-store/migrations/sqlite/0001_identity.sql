-- Identity and tenancy, SQLite dialect.
-- Conventions shared with the PostgreSQL schema: ids are UUID text,
-- timestamps are Unix milliseconds, JSON is text, booleans are 0/1.
-- Roles and scopes are validated by the store when read (the domain owns
-- the vocabulary), so no CHECK constraints pin their spelling here.

CREATE TABLE orgs (
    id          TEXT    NOT NULL PRIMARY KEY,
    slug        TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    CONSTRAINT orgs_slug_key UNIQUE (slug)
);

CREATE TABLE users (
    id              TEXT    NOT NULL PRIMARY KEY,
    org_id          TEXT    NOT NULL REFERENCES orgs (id),
    -- Stored lower-cased; lookups lower-case their input.
    email           TEXT    NOT NULL,
    display_name    TEXT    NOT NULL,
    role            TEXT    NOT NULL,
    platform_admin  INTEGER NOT NULL DEFAULT 0,
    password_hash   TEXT,
    disabled        INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email),
    -- Target of the composite foreign keys below: a key or session always
    -- belongs to the org of its user.
    CONSTRAINT users_id_org_key UNIQUE (id, org_id)
);
CREATE INDEX users_org_created_idx ON users (org_id, created_at);

CREATE TABLE api_keys (
    id            TEXT    NOT NULL PRIMARY KEY,
    org_id        TEXT    NOT NULL REFERENCES orgs (id),
    user_id       TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    prefix        TEXT    NOT NULL,
    secret_hash   TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    -- JSON array of permission names; empty means "whatever the role allows".
    scopes        TEXT    NOT NULL DEFAULT '[]',
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    revoked_at    INTEGER,
    last_used_at  INTEGER,
    CONSTRAINT api_keys_prefix_key UNIQUE (prefix),
    CONSTRAINT api_keys_user_fkey FOREIGN KEY (user_id, org_id)
        REFERENCES users (id, org_id) ON DELETE CASCADE
);
CREATE INDEX api_keys_org_created_idx ON api_keys (org_id, created_at);
CREATE INDEX api_keys_user_idx ON api_keys (user_id, org_id);

CREATE TABLE sessions (
    id              TEXT    NOT NULL PRIMARY KEY,
    user_id         TEXT    NOT NULL,
    org_id          TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    revoked_at      INTEGER,
    revoked_reason  TEXT,
    CONSTRAINT sessions_user_fkey FOREIGN KEY (user_id, org_id)
        REFERENCES users (id, org_id) ON DELETE CASCADE
);
CREATE INDEX sessions_user_idx ON sessions (user_id, org_id);

CREATE TABLE refresh_tokens (
    jti         TEXT    NOT NULL PRIMARY KEY,
    session_id  TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    issued_at   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);

CREATE TABLE signing_keys (
    kid                 TEXT    NOT NULL PRIMARY KEY,
    sealed_private_key  BLOB    NOT NULL,
    public_key_pem      TEXT    NOT NULL,
    created_at          INTEGER NOT NULL,
    retired_at          INTEGER
);
CREATE INDEX signing_keys_created_idx ON signing_keys (created_at);

CREATE TABLE outbox (
    -- AUTOINCREMENT: never reuse a sequence number, even after deletes.
    seq             INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    id              TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    aggregate_type  TEXT    NOT NULL,
    aggregate_id    TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    published_at    INTEGER,
    CONSTRAINT outbox_id_key UNIQUE (id)
);
CREATE INDEX outbox_pending_idx ON outbox (seq) WHERE published_at IS NULL;

-- A single row written at the start of every bootstrap transaction: it
-- serialises concurrent bootstraps so that exactly one sees zero users.
CREATE TABLE bootstrap_guard (
    id               INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    last_attempt_at  INTEGER NOT NULL
);
