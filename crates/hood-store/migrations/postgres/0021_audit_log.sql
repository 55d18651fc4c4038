-- The audit log: one row per mutation, written in the transaction of the
-- change (hood_domain::audit::AuditEntry). Append-only: a trigger refuses
-- any UPDATE or DELETE.
CREATE TABLE audit_log (
    id            TEXT    NOT NULL PRIMARY KEY,
    at            BIGINT  NOT NULL,
    org_id        TEXT,
    actor         TEXT    NOT NULL,
    action        TEXT    NOT NULL,
    resource_type TEXT    NOT NULL,
    resource_id   TEXT    NOT NULL,
    before        TEXT,
    after         TEXT,
    request_id    TEXT,
    -- Why, when the actor gave a reason (an operator's force-release).
    reason        TEXT
);
CREATE INDEX audit_log_org_idx ON audit_log (org_id, at);
CREATE INDEX audit_log_resource_idx ON audit_log (resource_type, resource_id, at);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
