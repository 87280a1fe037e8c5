-- Compaction and garbage collection of objects. Keep in step with
-- ../postgres/0005_object_lifecycle.sql (the two are identical).

-- Compaction asks for live objects below a size every second; most live objects
-- are compacted ones above it, so it should not scan them all.
CREATE INDEX objects_live_by_size ON objects (size_bytes, id) WHERE state = 'live';

-- Garbage collection: objects waiting out their grace period.
CREATE INDEX objects_deleting_by_time ON objects (deleting_since_ms) WHERE state = 'deleting';
