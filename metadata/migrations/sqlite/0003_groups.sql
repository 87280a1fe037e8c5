-- Consumer groups of the classic protocol, as the coordinator persists them so a
-- restarted (or another) agent continues a group where it was: Kafka keeps the
-- same record in its __consumer_offsets topic. Keep in step with
-- ../postgres/0003_groups.sql. Committed offsets stay in group_offsets (0001).

CREATE TABLE consumer_groups (
    group_id      TEXT   NOT NULL PRIMARY KEY,
    -- NULL until a member joins (a group that only commits offsets has none).
    protocol_type TEXT,
    -- The protocol chosen in the current generation; NULL when the group is empty.
    protocol_name TEXT,
    generation    BIGINT NOT NULL,
    leader_id     TEXT,
    updated_at_ms BIGINT NOT NULL
) WITHOUT ROWID;

CREATE TABLE consumer_group_members (
    group_id             TEXT   NOT NULL REFERENCES consumer_groups (group_id),
    member_id            TEXT   NOT NULL,
    group_instance_id    TEXT,
    client_id            TEXT   NOT NULL,
    client_host          TEXT   NOT NULL,
    rebalance_timeout_ms BIGINT NOT NULL,
    session_timeout_ms   BIGINT NOT NULL,
    -- The member's metadata for the chosen protocol, and the leader's assignment.
    subscription         BLOB   NOT NULL,
    assignment           BLOB   NOT NULL,
    PRIMARY KEY (group_id, member_id)
) WITHOUT ROWID;
