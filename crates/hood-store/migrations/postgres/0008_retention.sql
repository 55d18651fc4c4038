-- Retention: the cleanup loop deletes, in batches, raw usage events and
-- agent events older than their retention, step executions older than
-- theirs, finished workflows (with their journal) and published outbox
-- rows. These indexes keep each batch a range scan at any table size.
CREATE INDEX usage_events_at_idx ON usage_events (at);
CREATE INDEX agent_events_at_idx ON agent_events (at);
CREATE INDEX workflow_step_executions_at_idx ON workflow_step_executions (at);
CREATE INDEX workflows_finished_idx ON workflows (updated_at)
    WHERE state IN ('completed', 'failed', 'abandoned');
CREATE INDEX outbox_published_idx ON outbox (published_at) WHERE published_at IS NOT NULL;
