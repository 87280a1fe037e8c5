-- Share groups (KIP-932, queues): the state of each partition a share group
-- reads, as Kafka's share coordinator keeps it: the share-partition start
-- offset and, above it, which records are acquired (by which member, until
-- when), acknowledged, archived or available again, with their delivery
-- counts. One JSON document per partition, encoded by the broker; every
-- acquisition and acknowledgement rewrites it in one transaction that holds
-- the row, so agents serving one share group take turns. The group's
-- membership is in consumer_groups.consumer_state (0015).
-- Keep in step with ../sqlite/0016_share_partitions.sql.

CREATE TABLE share_partitions (
    group_id        TEXT   NOT NULL,
    topic_id        TEXT   NOT NULL,
    partition_index BIGINT NOT NULL,
    state           TEXT   NOT NULL,
    updated_at_ms   BIGINT NOT NULL,
    PRIMARY KEY (group_id, topic_id, partition_index)
);
