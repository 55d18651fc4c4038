-- S3 access keys of service accounts. SigV4 signs with the secret, so the
-- server must read it: it is sealed under the installation's master key
-- (the access key id as associated data), never hashed, never logged.
-- A key is revoked with its account.
CREATE TABLE s3_access_keys (
    access_key_id      TEXT   NOT NULL PRIMARY KEY,
    service_account_id TEXT   NOT NULL REFERENCES service_accounts (id),
    org_id             TEXT   NOT NULL REFERENCES orgs (id),
    sealed_secret      BLOB  NOT NULL,
    created_at         BIGINT NOT NULL,
    revoked_at         BIGINT
);
CREATE INDEX s3_access_keys_account_idx ON s3_access_keys (service_account_id);

-- Multipart uploads in progress (S3's CreateMultipartUpload). Each part's
-- bytes are a blob of their own ('live' while its part row holds it);
-- completion composes them into one new object and turns them 'garbage',
-- as do an abort, an upload's expiry and its namespace's deletion.
CREATE TABLE storage_uploads (
    id           TEXT   NOT NULL PRIMARY KEY,
    namespace_id TEXT   NOT NULL REFERENCES storage_namespaces (id),
    object_key   TEXT NOT NULL,
    content_type TEXT   NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX storage_uploads_namespace_idx ON storage_uploads (namespace_id);
CREATE INDEX storage_uploads_age_idx ON storage_uploads (created_at);

CREATE TABLE storage_upload_parts (
    upload_id   TEXT    NOT NULL REFERENCES storage_uploads (id),
    part_number BIGINT  NOT NULL CHECK (part_number BETWEEN 1 AND 10000),
    blob_id     TEXT    NOT NULL,
    size        BIGINT  NOT NULL CHECK (size >= 0),
    sha256      TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);
