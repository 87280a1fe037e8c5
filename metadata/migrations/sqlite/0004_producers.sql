-- Idempotent producers: ids handed out by InitProducerId, their latest epoch,
-- and the last few batches each producer appended to each partition (enough to
-- recognise a retried batch and to check the next sequence number).

CREATE TABLE producer_ids (
    singleton        BIGINT NOT NULL PRIMARY KEY CHECK (singleton = 1),
    next_producer_id BIGINT NOT NULL
);
INSERT INTO producer_ids (singleton, next_producer_id) VALUES (1, 0);

CREATE TABLE producers (
    producer_id   BIGINT NOT NULL PRIMARY KEY,
    epoch         BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

CREATE TABLE producer_batches (
    topic_id        TEXT   NOT NULL,
    partition_index BIGINT NOT NULL,
    producer_id     BIGINT NOT NULL,
    epoch           BIGINT NOT NULL,
    first_sequence  BIGINT NOT NULL,
    last_sequence   BIGINT NOT NULL,
    base_offset     BIGINT NOT NULL,
    PRIMARY KEY (topic_id, partition_index, producer_id, base_offset)
);
