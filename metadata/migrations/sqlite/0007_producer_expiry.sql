-- Expiry of idle producers' state (Kafka's producer.id.expiration.ms). Keep in
-- step with ../postgres/0007_producer_expiry.sql: the same columns and indexes;
-- SQLite rebuilds producer_batches because ALTER TABLE cannot add a column whose
-- default reads the clock.

-- committed_at_ms: when the commit that recorded the batch ran, by the
-- catalog's clock (the same expression as `catalog_now_ms` in
-- metadata/src/sql/agents.rs). Inserts leave it to this default, so every writer stamps
-- it alike, an agent of an older version included. Batches recorded before this
-- migration count from the migration. (append_time_ms cannot serve: it is -1
-- on CreateTime topics, and an agent's clock.)
CREATE TABLE producer_batches_0007 (
    topic_id        TEXT   NOT NULL,
    partition_index BIGINT NOT NULL,
    producer_id     BIGINT NOT NULL,
    epoch           BIGINT NOT NULL,
    first_sequence  BIGINT NOT NULL,
    last_sequence   BIGINT NOT NULL,
    base_offset     BIGINT NOT NULL,
    append_time_ms  BIGINT NOT NULL DEFAULT -1,
    committed_at_ms BIGINT NOT NULL
        DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)),
    PRIMARY KEY (topic_id, partition_index, producer_id, base_offset)
);
INSERT INTO producer_batches_0007 (topic_id, partition_index, producer_id, epoch,
    first_sequence, last_sequence, base_offset, append_time_ms)
SELECT topic_id, partition_index, producer_id, epoch, first_sequence, last_sequence,
    base_offset, append_time_ms
FROM producer_batches;
DROP TABLE producer_batches;
ALTER TABLE producer_batches_0007 RENAME TO producer_batches;

-- The expiry pass walks the batches oldest commit first, from where its last
-- step stopped (commit time, then the primary key): each step is a seek
-- however many batches of active producers it has passed.
CREATE INDEX producer_batches_by_commit_time
    ON producer_batches (committed_at_ms, topic_id, partition_index, producer_id, base_offset);

-- Producer ids handed out or bumped longer ago than the expiration.
CREATE INDEX producers_by_update_time ON producers (updated_at_ms);
