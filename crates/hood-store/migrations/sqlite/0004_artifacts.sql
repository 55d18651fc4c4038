-- Artifact catalog, SQLite dialect. The bytes live in the object store under
-- `object_key` (content-addressed: `blobs/sha256/{sha256}`), so artifacts
-- with identical content share one object.
-- Artifacts are installation-wide and immutable: (name, version) names one
-- content for ever; the store refuses another sha256 for a taken pair.

CREATE TABLE artifacts (
    name          TEXT    NOT NULL,
    version       TEXT    NOT NULL,
    -- 64 lowercase hex characters.
    sha256        TEXT    NOT NULL CHECK (length(sha256) = 64),
    size          INTEGER NOT NULL CHECK (size >= 0),
    object_key    TEXT    NOT NULL,
    content_type  TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    -- The pushing user's id; no foreign key, so that deleting a user keeps
    -- the record of who pushed.
    created_by    TEXT,
    CONSTRAINT artifacts_pkey PRIMARY KEY (name, version)
);
-- Which artifacts refer to an object (before an object may be removed).
CREATE INDEX artifacts_object_key_idx ON artifacts (object_key);
