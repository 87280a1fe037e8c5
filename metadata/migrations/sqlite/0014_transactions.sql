-- Transactions: the coordinator's state per transactional id, what each open
-- transaction holds, and per partition the transactions still open on it and
-- those aborted (read_committed fetches). Keep in step with
-- ../postgres/0014_transactions.sql.

-- One row per transactional id. state is Kafka's TransactionState name
-- (Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit,
-- CompleteAbort). txn_seq counts the transactions begun: markers carry it, so
-- a marker written twice (two agents completing one transaction) can never
-- end a later transaction of the same producer. Times are the catalog's clock.
CREATE TABLE transactions (
    transactional_id    TEXT   NOT NULL PRIMARY KEY,
    producer_id         BIGINT NOT NULL,
    producer_epoch      BIGINT NOT NULL,
    -- The epoch before the coordinator last bumped it (a timed-out
    -- transaction's abort), -1 if none: that producer may still retry.
    last_producer_epoch BIGINT NOT NULL DEFAULT -1,
    timeout_ms          BIGINT NOT NULL,
    state               TEXT   NOT NULL,
    txn_seq             BIGINT NOT NULL DEFAULT 0,
    started_at_ms       BIGINT NOT NULL DEFAULT -1,
    updated_at_ms       BIGINT NOT NULL
) WITHOUT ROWID;
CREATE INDEX transactions_by_state ON transactions (state, started_at_ms);

-- The partitions added to a transactional id's current transaction.
CREATE TABLE transaction_partitions (
    transactional_id TEXT   NOT NULL,
    topic_id         TEXT   NOT NULL,
    partition_index  BIGINT NOT NULL,
    PRIMARY KEY (transactional_id, topic_id, partition_index)
) WITHOUT ROWID;

-- The groups added to it (AddOffsetsToTxn).
CREATE TABLE transaction_groups (
    transactional_id TEXT NOT NULL,
    group_id         TEXT NOT NULL,
    PRIMARY KEY (transactional_id, group_id)
) WITHOUT ROWID;

-- Offsets committed inside a transaction (TxnOffsetCommit): moved into
-- group_offsets when it commits, dropped when it aborts.
CREATE TABLE transaction_offsets (
    group_id            TEXT   NOT NULL,
    topic_name          TEXT   NOT NULL,
    partition_index     BIGINT NOT NULL,
    transactional_id    TEXT   NOT NULL,
    committed_offset    BIGINT NOT NULL,
    leader_epoch        BIGINT NOT NULL DEFAULT -1,
    metadata            TEXT,
    commit_timestamp_ms BIGINT NOT NULL,
    PRIMARY KEY (group_id, topic_name, partition_index, transactional_id)
) WITHOUT ROWID;
CREATE INDEX transaction_offsets_by_txn ON transaction_offsets (transactional_id);

-- A transactional producer on a partition: its transaction is open from the
-- partition's addition to it (is_open 1, first_offset set by the commit of its
-- first batch there, NULL until then) to the commit of its marker (is_open 0;
-- producer_epoch then the marker's, which fences older epochs as Kafka's
-- producer state does). The smallest first_offset of the open ones is the
-- partition's last stable offset.
CREATE TABLE open_transactions (
    topic_id        TEXT   NOT NULL,
    partition_index BIGINT NOT NULL,
    producer_id     BIGINT NOT NULL,
    producer_epoch  BIGINT NOT NULL,
    txn_seq         BIGINT NOT NULL,
    is_open         BIGINT NOT NULL,
    first_offset    BIGINT,
    PRIMARY KEY (topic_id, partition_index, producer_id)
) WITHOUT ROWID;

-- Aborted transactions with data, per partition: first data offset to the
-- abort marker's offset (inclusive). Fetch at read_committed lists those
-- overlapping what it returns.
CREATE TABLE aborted_transactions (
    topic_id        TEXT   NOT NULL,
    partition_index BIGINT NOT NULL,
    last_offset     BIGINT NOT NULL,
    producer_id     BIGINT NOT NULL,
    first_offset    BIGINT NOT NULL,
    PRIMARY KEY (topic_id, partition_index, last_offset)
) WITHOUT ROWID;
