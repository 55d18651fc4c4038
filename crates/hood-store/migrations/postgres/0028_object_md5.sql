-- The MD5 of an object's and of an upload part's bytes: S3's ETag, which
-- SDKs compare with the MD5 they computed of what they sent. Rows written
-- before it have none (their ETag stays the SHA-256).
ALTER TABLE storage_objects ADD COLUMN md5 TEXT;
ALTER TABLE storage_upload_parts ADD COLUMN md5 TEXT;
