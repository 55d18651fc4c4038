-- Service accounts: non-human identities of an organization whose API keys
-- reach only the resources their grants name (`storage.acme.namespaces.logs:
-- [read]`). Grants are JSON, checked against the owner's when written.
-- A deleted account keeps its row (its keys' history points at it); its
-- name is free again.
CREATE TABLE service_accounts (
    id         TEXT   NOT NULL PRIMARY KEY,
    org_id     TEXT   NOT NULL REFERENCES orgs (id),
    owner_id   TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    grants     TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    deleted_at BIGINT
);
CREATE UNIQUE INDEX service_accounts_name_idx ON service_accounts (org_id, name)
    WHERE deleted_at IS NULL;

-- The service account a key belongs to (NULL: a user's own key).
ALTER TABLE api_keys ADD COLUMN service_account_id TEXT REFERENCES service_accounts (id);
CREATE INDEX api_keys_service_account_idx ON api_keys (service_account_id)
    WHERE service_account_id IS NOT NULL;
