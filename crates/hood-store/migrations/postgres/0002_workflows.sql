-- Durable workflows (saga engine), PostgreSQL dialect.
-- Same conventions as the SQLite schema: text ids, Unix-millisecond BIGINT
-- timestamps, JSON as text. States are validated by the store against the
-- domain's state machines when read and written.

-- One workflow run. `id` is deterministic and chosen by the caller
-- (`migrate-node-{id}-{version}`), which is what deduplicates starts.
CREATE TABLE workflows (
    id                TEXT    NOT NULL,
    name              TEXT    NOT NULL,
    version           BIGINT  NOT NULL,
    state             TEXT    NOT NULL,
    input             TEXT    NOT NULL,
    output            TEXT,
    error             TEXT,
    parent_id         TEXT,
    waiting_for       TEXT,
    created_at        BIGINT  NOT NULL,
    updated_at        BIGINT  NOT NULL,
    -- When the run is next due to be claimed; NULL = parked until a
    -- signal, a child or an operator sets it.
    next_run_at       BIGINT,
    lease_owner       TEXT,
    -- Fencing token: every claim increments it, every journal write checks it.
    lease_generation  BIGINT  NOT NULL DEFAULT 0,
    lease_expires_at  BIGINT,
    attempts          BIGINT  NOT NULL DEFAULT 0,
    CONSTRAINT workflows_pkey PRIMARY KEY (id),
    CONSTRAINT workflows_parent_fkey FOREIGN KEY (parent_id) REFERENCES workflows (id)
);
CREATE INDEX workflows_due_idx ON workflows (next_run_at) WHERE next_run_at IS NOT NULL;
CREATE INDEX workflows_state_idx ON workflows (state, created_at);
CREATE INDEX workflows_name_idx ON workflows (name, created_at);
CREATE INDEX workflows_parent_idx ON workflows (parent_id) WHERE parent_id IS NOT NULL;

-- The step journal: one row per step that has started.
CREATE TABLE workflow_steps (
    workflow_id   TEXT    NOT NULL,
    step_index    BIGINT  NOT NULL,
    step_name     TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    attempt       BIGINT  NOT NULL,
    undo_attempt  BIGINT  NOT NULL DEFAULT 0,
    output        TEXT,
    error         TEXT,
    undo_error    TEXT,
    wake_at       BIGINT,
    started_at    BIGINT,
    finished_at   BIGINT,
    -- Lease generation of the last write.
    generation    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL,
    CONSTRAINT workflow_steps_pkey PRIMARY KEY (workflow_id, step_index),
    CONSTRAINT workflow_steps_workflow_fkey FOREIGN KEY (workflow_id) REFERENCES workflows (id)
);

-- Append-only: every start and finish of an action or undo, with the lease
-- that ran it. The evidence that no step ran twice at once.
CREATE TABLE workflow_step_executions (
    seq          BIGSERIAL NOT NULL,
    workflow_id  TEXT      NOT NULL,
    step_index   BIGINT    NOT NULL,
    step_name    TEXT      NOT NULL,
    kind         TEXT      NOT NULL,
    event        TEXT      NOT NULL,
    attempt      BIGINT    NOT NULL,
    owner        TEXT      NOT NULL,
    generation   BIGINT    NOT NULL,
    at           BIGINT    NOT NULL,
    outcome      TEXT,
    CONSTRAINT workflow_step_executions_pkey PRIMARY KEY (seq),
    CONSTRAINT workflow_step_executions_workflow_fkey FOREIGN KEY (workflow_id) REFERENCES workflows (id)
);
CREATE INDEX workflow_step_executions_wf_idx ON workflow_step_executions (workflow_id, seq);

CREATE TABLE workflow_signals (
    id           TEXT    NOT NULL,
    workflow_id  TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    consumed_at  BIGINT,
    CONSTRAINT workflow_signals_pkey PRIMARY KEY (id),
    CONSTRAINT workflow_signals_workflow_fkey FOREIGN KEY (workflow_id) REFERENCES workflows (id)
);
CREATE INDEX workflow_signals_pending_idx ON workflow_signals (workflow_id, created_at)
    WHERE consumed_at IS NULL;
