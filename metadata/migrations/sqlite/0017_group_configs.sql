-- Group configs (Kafka's ConfigResource type GROUP, set with
-- IncrementalAlterConfigs), stored as set; the broker validates them. A
-- group's configs go with the group when it is deleted.
-- Keep in step with ../postgres/0017_group_configs.sql.

CREATE TABLE group_configs (
    group_id TEXT NOT NULL,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (group_id, key)
) WITHOUT ROWID;
