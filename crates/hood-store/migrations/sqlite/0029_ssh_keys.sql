-- Users' SSH public keys, the SSH gateway's credentials: a user holds a key
-- once; the gateway finds keys by fingerprint. They go with their user.
CREATE TABLE ssh_keys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    name TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    public_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    CONSTRAINT ssh_keys_user_id_fingerprint_key UNIQUE (user_id, fingerprint)
);
CREATE INDEX ssh_keys_fingerprint_idx ON ssh_keys (fingerprint);
