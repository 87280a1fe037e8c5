-- The cluster's identity, created by the first agent that opens the catalog and
-- reported to clients as the Kafka cluster id (Metadata, DescribeCluster).
CREATE TABLE cluster (
    singleton  BIGINT NOT NULL PRIMARY KEY CHECK (singleton = 1),
    cluster_id TEXT   NOT NULL
);
