-- Users' notification feeds: one item per user per event of their
-- organization (fanned out from the bus), read or unread. They go with
-- their user.
CREATE TABLE feed_items (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    event_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    title TEXT NOT NULL,
    detail TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    read_at BIGINT,
    CONSTRAINT feed_items_user_id_event_id_key UNIQUE (user_id, event_id)
);
CREATE INDEX feed_items_user_idx ON feed_items (user_id, id);
