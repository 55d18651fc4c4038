-- Durable workflows (saga engine), SQLite dialect.
-- Same conventions as the PostgreSQL schema: text ids, Unix-millisecond
-- INTEGER timestamps, JSON as text. States are validated by the store
-- against the domain's state machines when read and written.

-- One workflow run. `id` is deterministic and chosen by the caller
-- (`migrate-node-{id}-{version}`), which is what deduplicates starts.
CREATE TABLE workflows (
    id                TEXT    NOT NULL PRIMARY KEY,
    name              TEXT    NOT NULL,
    version           INTEGER NOT NULL,
    state             TEXT    NOT NULL,
    input             TEXT    NOT NULL,
    output            TEXT,
    error             TEXT,
    parent_id         TEXT    REFERENCES workflows (id),
    waiting_for       TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    -- When the run is next due to be claimed; NULL = parked until a
    -- signal, a child or an operator sets it.
    next_run_at       INTEGER,
    lease_owner       TEXT,
    -- Fencing token: every claim increments it, every journal write checks it.
    lease_generation  INTEGER NOT NULL DEFAULT 0,
    lease_expires_at  INTEGER,
    attempts          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX workflows_due_idx ON workflows (next_run_at) WHERE next_run_at IS NOT NULL;
CREATE INDEX workflows_state_idx ON workflows (state, created_at);
CREATE INDEX workflows_name_idx ON workflows (name, created_at);
CREATE INDEX workflows_parent_idx ON workflows (parent_id) WHERE parent_id IS NOT NULL;

-- The step journal: one row per step that has started.
CREATE TABLE workflow_steps (
    workflow_id   TEXT    NOT NULL REFERENCES workflows (id),
    step_index    INTEGER NOT NULL,
    step_name     TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    attempt       INTEGER NOT NULL,
    undo_attempt  INTEGER NOT NULL DEFAULT 0,
    output        TEXT,
    error         TEXT,
    undo_error    TEXT,
    wake_at       INTEGER,
    started_at    INTEGER,
    finished_at   INTEGER,
    -- Lease generation of the last write.
    generation    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (workflow_id, step_index)
);

-- Append-only: every start and finish of an action or undo, with the lease
-- that ran it. The evidence that no step ran twice at once.
CREATE TABLE workflow_step_executions (
    seq          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    workflow_id  TEXT    NOT NULL REFERENCES workflows (id),
    step_index   INTEGER NOT NULL,
    step_name    TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    event        TEXT    NOT NULL,
    attempt      INTEGER NOT NULL,
    owner        TEXT    NOT NULL,
    generation   INTEGER NOT NULL,
    at           INTEGER NOT NULL,
    outcome      TEXT
);
CREATE INDEX workflow_step_executions_wf_idx ON workflow_step_executions (workflow_id, seq);

CREATE TABLE workflow_signals (
    id           TEXT    NOT NULL PRIMARY KEY,
    workflow_id  TEXT    NOT NULL REFERENCES workflows (id),
    name         TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    consumed_at  INTEGER
);
CREATE INDEX workflow_signals_pending_idx ON workflow_signals (workflow_id, created_at)
    WHERE consumed_at IS NULL;
