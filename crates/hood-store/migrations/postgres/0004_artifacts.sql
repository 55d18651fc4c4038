-- Artifact catalog, PostgreSQL dialect. The bytes live in the object store
-- under `object_key` (content-addressed: `blobs/sha256/{sha256}`), so
-- artifacts with identical content share one object.
-- Artifacts are installation-wide and immutable: (name, version) names one
-- content for ever; the store refuses another sha256 for a taken pair.

CREATE TABLE artifacts (
    name          TEXT   NOT NULL,
    version       TEXT   NOT NULL,
    -- 64 lowercase hex characters.
    sha256        TEXT   NOT NULL,
    size          BIGINT NOT NULL,
    object_key    TEXT   NOT NULL,
    content_type  TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    -- The pushing user's id; no foreign key, so that deleting a user keeps
    -- the record of who pushed.
    created_by    TEXT,
    CONSTRAINT artifacts_pkey PRIMARY KEY (name, version),
    CONSTRAINT artifacts_sha256_check CHECK (length(sha256) = 64),
    CONSTRAINT artifacts_size_check CHECK (size >= 0)
);
-- Which artifacts refer to an object (before an object may be removed).
CREATE INDEX artifacts_object_key_idx ON artifacts (object_key);
