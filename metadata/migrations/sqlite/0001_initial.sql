-- StreamHouse catalog, SQLite flavour. Keep in step with ../postgres/0001_initial.sql:
-- the two differ only where the dialects do (identity columns, WITHOUT ROWID).
-- Every integer is BIGINT so that sqlx's Any driver decodes both databases alike.

CREATE TABLE topics (
    -- Hyphenated UUID text; never reused.
    id              TEXT    NOT NULL PRIMARY KEY,
    name            TEXT    NOT NULL UNIQUE,
    partition_count BIGINT  NOT NULL CHECK (partition_count >= 0),
    created_at_ms   BIGINT  NOT NULL
);

CREATE TABLE topic_configs (
    topic_id TEXT NOT NULL REFERENCES topics (id),
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (topic_id, key)
) WITHOUT ROWID;

CREATE TABLE partitions (
    topic_id         TEXT   NOT NULL REFERENCES topics (id),
    partition_index  BIGINT NOT NULL,
    -- The high watermark: the offset the next appended record gets.
    next_offset      BIGINT NOT NULL,
    log_start_offset BIGINT NOT NULL,
    -- Largest max_timestamp of any run ever appended (-2^63 before the first);
    -- copied into each index entry as its running_max_timestamp.
    max_timestamp    BIGINT NOT NULL,
    PRIMARY KEY (topic_id, partition_index)
) WITHOUT ROWID;

CREATE TABLE objects (
    -- Alias of the rowid: a 64-bit integer assigned on insert.
    id                INTEGER PRIMARY KEY,
    key               TEXT    NOT NULL UNIQUE,
    size_bytes        BIGINT  NOT NULL,
    state             TEXT    NOT NULL DEFAULT 'live' CHECK (state IN ('live', 'deleting')),
    created_at_ms     BIGINT  NOT NULL,
    deleting_since_ms BIGINT
);

CREATE TABLE index_entries (
    topic_id              TEXT   NOT NULL,
    partition_index       BIGINT NOT NULL,
    base_offset           BIGINT NOT NULL,
    -- Inclusive.
    last_offset           BIGINT NOT NULL,
    object_id             BIGINT NOT NULL REFERENCES objects (id),
    position              BIGINT NOT NULL,
    length                BIGINT NOT NULL,
    max_timestamp         BIGINT NOT NULL,
    -- max(max_timestamp) over this entry and every earlier one of the partition.
    -- It never decreases with base_offset, so "first entry with max_timestamp >= T"
    -- is an index seek on it instead of a scan of the partition's history.
    running_max_timestamp BIGINT NOT NULL,
    PRIMARY KEY (topic_id, partition_index, base_offset),
    FOREIGN KEY (topic_id, partition_index) REFERENCES partitions (topic_id, partition_index),
    CHECK (last_offset >= base_offset)
) WITHOUT ROWID;

-- Fetch: the first entry with last_offset >= X.
CREATE UNIQUE INDEX index_entries_by_last_offset
    ON index_entries (topic_id, partition_index, last_offset);
-- ListOffsets by timestamp.
CREATE INDEX index_entries_by_timestamp
    ON index_entries (topic_id, partition_index, running_max_timestamp, base_offset);
-- Garbage collection: is this object still referenced?
CREATE INDEX index_entries_by_object ON index_entries (object_id);

-- Committed consumer-group offsets (OffsetCommit / OffsetFetch); keyed by topic name
-- as Kafka does. No catalog methods use it yet.
CREATE TABLE group_offsets (
    group_id            TEXT   NOT NULL,
    topic_name          TEXT   NOT NULL,
    partition_index     BIGINT NOT NULL,
    committed_offset    BIGINT NOT NULL,
    -- -1 when the client did not send one.
    leader_epoch        BIGINT NOT NULL DEFAULT -1,
    metadata            TEXT,
    commit_timestamp_ms BIGINT NOT NULL,
    PRIMARY KEY (group_id, topic_name, partition_index)
) WITHOUT ROWID;
