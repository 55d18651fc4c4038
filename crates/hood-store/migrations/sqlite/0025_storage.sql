-- Storage namespaces (S3 buckets) of organizations, their objects and the
-- blobs that hold the objects' bytes in the storage object store.
--
-- A namespace's usage is kept on its row and changed only in the
-- transaction that adds or removes an object, under the row's lock, so a
-- quota holds exactly; the CHECKs make the database refuse anything else.
CREATE TABLE storage_namespaces (
    id           TEXT   NOT NULL PRIMARY KEY,
    org_id       TEXT   NOT NULL REFERENCES orgs (id),
    name         TEXT   NOT NULL,
    visibility   TEXT   NOT NULL CHECK (visibility IN ('private', 'public')),
    max_bytes    BIGINT NOT NULL CHECK (max_bytes > 0),
    max_objects  BIGINT NOT NULL CHECK (max_objects > 0),
    used_bytes   BIGINT NOT NULL DEFAULT 0
        CHECK (used_bytes >= 0 AND used_bytes <= max_bytes),
    object_count BIGINT NOT NULL DEFAULT 0
        CHECK (object_count >= 0 AND object_count <= max_objects),
    -- 'deleting': its objects are being removed; the row goes last.
    state        TEXT   NOT NULL CHECK (state IN ('active', 'deleting')),
    created_at   BIGINT NOT NULL,
    UNIQUE (org_id, name)
);
CREATE INDEX storage_namespaces_deleting_idx ON storage_namespaces (state)
    WHERE state = 'deleting';

-- Keys sort by their UTF-8 bytes (S3's listing order) on both dialects.
CREATE TABLE storage_objects (
    namespace_id TEXT   NOT NULL REFERENCES storage_namespaces (id),
    object_key   TEXT NOT NULL,
    blob_id      TEXT   NOT NULL,
    size         BIGINT NOT NULL CHECK (size >= 0),
    sha256       TEXT   NOT NULL,
    content_type TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (namespace_id, object_key)
);

-- Every blob in the object store has a row from before its first byte is
-- written: 'writing' (an upload in flight, or abandoned by a crash),
-- 'live' (an object's bytes), 'garbage' (replaced or deleted). The sweeper
-- deletes the bytes of garbage and long-abandoned blobs, then the row, so
-- no byte is ever orphaned.
CREATE TABLE storage_blobs (
    id           TEXT   NOT NULL PRIMARY KEY,
    namespace_id TEXT   NOT NULL,
    state        TEXT   NOT NULL CHECK (state IN ('writing', 'live', 'garbage')),
    updated_at   BIGINT NOT NULL
);
CREATE INDEX storage_blobs_sweep_idx ON storage_blobs (state, updated_at)
    WHERE state <> 'live';
