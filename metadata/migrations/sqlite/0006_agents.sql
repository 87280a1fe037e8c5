-- A cluster of agents on one catalog: membership, group ownership, and what lets
-- agents see each other's changes. Keep in step with ../postgres/0006_agents.sql
-- (they differ only in WITHOUT ROWID). Lease instants are the catalog's clock,
-- computed and compared inside SQL, never an agent's.

-- Live agents: a row from registration until clean shutdown or reaping.
CREATE TABLE agents (
    node_id             BIGINT NOT NULL PRIMARY KEY,  -- the Kafka broker id
    incarnation         TEXT   NOT NULL UNIQUE,       -- a UUID per process start
    host                TEXT   NOT NULL,              -- as advertised to clients
    port                BIGINT NOT NULL,
    zone                TEXT,                         -- --zone; the broker's rack
    registered_at_ms    BIGINT NOT NULL,
    lease_expires_at_ms BIGINT NOT NULL
) WITHOUT ROWID;
CREATE INDEX agents_by_lease ON agents (lease_expires_at_ms);
-- Two live agents advertising one address would be one address for two brokers.
CREATE UNIQUE INDEX agents_by_address ON agents (host, port);

-- Monotonic counters. 'membership': bumped with every change of the agents'
-- row set, so one value names one set. 'catalog': bumped by every change of
-- topics, partition counts or configs, so agents drop their cached topics.
-- 'heads': SQLite's sequence of head changes (see partitions.change_seq).
CREATE TABLE counters (
    name  TEXT   NOT NULL PRIMARY KEY,
    value BIGINT NOT NULL
) WITHOUT ROWID;
INSERT INTO counters (name, value) VALUES ('membership', 0), ('catalog', 0), ('heads', 0);

-- Which agent coordinates each group. One row per group ever coordinated and
-- never deleted, so a lease epoch never repeats. The lease is valid while the
-- owner's agents row (same node id and incarnation) exists.
CREATE TABLE group_leases (
    group_id          TEXT   NOT NULL PRIMARY KEY,
    owner_node_id     BIGINT,            -- NULL: released
    owner_incarnation TEXT,
    lease_epoch       BIGINT NOT NULL,   -- fencing token, +1 on every acquisition
    acquired_at_ms    BIGINT NOT NULL
) WITHOUT ROWID;
CREATE INDEX group_leases_by_owner ON group_leases (owner_incarnation);

-- The sequence number of the last change of this head (SQLite: agents poll for
-- numbers above the last they saw; PostgreSQL notifies instead and leaves it 0).
ALTER TABLE partitions ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX partitions_by_change_seq ON partitions (change_seq);

-- The original's LogAppendTime, returned with a retried batch's answer (-1 for
-- CreateTime topics).
ALTER TABLE producer_batches ADD COLUMN append_time_ms BIGINT NOT NULL DEFAULT -1;
