//! Committing uploaded objects: the one write on the produce path, and the
//! one place idempotent producers' sequences are judged.
//!
//! A commit of any number of objects with any number of runs is a fixed number of
//! statements (each a multi-row statement, chunked only when it would exceed the
//! databases' limits on bind parameters): insert the objects, lock and read the
//! touched partitions, read the windows of the idempotent producers carried
//! (`producer_windows.rs`), advance the partitions, insert the index entries,
//! record and trim the idempotent batches. One statement per run made a commit of
//! eight partitions cost 17-40 round trips (16 ms on PostgreSQL under load), and
//! the commit sits in every acknowledgement's latency.
//!
//! Appends are judged in order (objects, then runs, then appends), each
//! idempotent one against its producer's window as updated by the appends
//! before it, so a retry that landed in a later object of the same group commit
//! is a duplicate too. A run may keep only some of its appends: each maximal
//! span of consecutive kept appends is one index entry.
//!
//! The statements' text varies only in how many placeholder tuples it has (and
//! one constant); every value is bound, hence the `AssertSqlSafe`.

use std::collections::BTreeMap;

use sqlx::any::AnyArguments;
use sqlx::{Any, AssertSqlSafe, Transaction};

use super::open_txns::{self, OpenTxns};
use super::producer_windows::{self, ProducerRow, Windows};
use super::rows::{get, to_i32};
use super::Backend;
use crate::producers::{self, ProducerBatch, ProducerError, Verdict};
use crate::transactions::{self, DataVerdict, TxnAppend};
use crate::{AppendOutcome, ObjectCommit, Result, RunAppend, RunOutcome};

/// Rows per multi-row statement. The widest statement binds 9 values a row, so a
/// chunk stays far below SQLite's 32,766 and PostgreSQL's 65,535 parameters.
pub(super) const ROWS_PER_STATEMENT: usize = 1000;

pub(super) type PartitionKey = (String, i32);

/// A partition's log head while the transaction assigns offsets.
pub(super) struct PartitionHead {
    next_offset: i64,
    max_timestamp: i64,
    changed: bool,
}

/// An index row to insert.
pub(super) struct EntryRow {
    pub topic: String,
    pub partition: i32,
    pub base_offset: i64,
    pub last_offset: i64,
    pub object_id: i64,
    pub position: i64,
    pub length: i64,
    pub max_timestamp: i64,
    pub running_max_timestamp: i64,
}

/// The body of [`crate::LogCatalog::commit_objects`], on a write transaction.
pub(super) async fn commit_objects(
    mut tx: Transaction<'static, Any>,
    backend: Backend,
    commits: &[ObjectCommit],
    now_ms: i64,
) -> Result<Vec<Vec<RunOutcome>>> {
    let object_ids = insert_objects(&mut tx, commits, now_ms).await?;
    let touched: Vec<PartitionKey> = {
        let mut keys: Vec<PartitionKey> = commits
            .iter()
            .flat_map(|c| c.runs.iter().map(|r| (r.topic.to_string(), r.partition)))
            .collect();
        // Sorted, so that concurrent committers lock partition rows in one order.
        keys.sort_unstable();
        keys.dedup();
        keys
    };
    let heads = lock_partitions(&mut tx, backend, &touched).await?;
    // Under the partitions' locks: no other commit can append to them (or
    // record a batch of theirs) until this transaction ends.
    let windows = producer_windows::load(&mut tx, commits, &heads).await?;
    let open_txns = open_txns::load(&mut tx, commits, &heads).await?;
    let mut appender = Appender {
        heads,
        windows,
        open_txns,
        entries: Vec::new(),
        producer_rows: Vec::new(),
    };
    let outcomes = commits
        .iter()
        .zip(object_ids)
        .map(|(commit, object_id)| {
            commit
                .runs
                .iter()
                .map(|run| appender.run(run, object_id))
                .collect()
        })
        .collect();
    update_partitions(&mut tx, backend, &appender.heads).await?;
    insert_entries(&mut tx, &appender.entries).await?;
    producer_windows::record(&mut tx, &appender.producer_rows).await?;
    open_txns::record(&mut tx, &appender.open_txns).await?;
    tx.commit().await?;
    Ok(outcomes)
}

/// Offsets assigned so far in the transaction, and the rows they produce.
struct Appender {
    heads: BTreeMap<PartitionKey, PartitionHead>,
    windows: Windows,
    open_txns: OpenTxns,
    entries: Vec<EntryRow>,
    producer_rows: Vec<ProducerRow>,
}

impl Appender {
    /// Judges a run's appends in order and appends those kept, one index entry
    /// per span of consecutive kept appends.
    fn run(&mut self, run: &RunAppend, object_id: i64) -> RunOutcome {
        let topic = run.topic.to_string();
        let Some(head) = self.heads.get_mut(&(topic.clone(), run.partition)) else {
            return RunOutcome::UnknownPartition;
        };
        let mut outcomes = Vec::with_capacity(run.appends.len());
        let mut span: Option<EntryRow> = None;
        let mut position = run.position;
        for append in &run.appends {
            let window = append.producer.map(|producer| {
                let key = (topic.clone(), run.partition, producer.producer_id);
                (producer, self.windows.entry(key).or_default())
            });
            let txn_key = |producer_id| (topic.clone(), run.partition, producer_id);
            let verdict = match (append.txn, &window) {
                (Some(TxnAppend::Marker(marker)), _) => {
                    let open = self.open_txns.get(&txn_key(marker.producer_id));
                    if transactions::judge_marker(open, &marker) {
                        Verdict::Append
                    } else {
                        // Written by an earlier completion of the transaction.
                        Verdict::Duplicate {
                            base_offset: -1,
                            append_time_ms: -1,
                        }
                    }
                }
                (Some(TxnAppend::Data), Some((producer, window))) => {
                    let open = self.open_txns.get(&txn_key(producer.producer_id));
                    match transactions::judge_data(open, producer.epoch) {
                        DataVerdict::Sequences => producers::check(window.as_ref(), producer),
                        DataVerdict::Fenced { current } => {
                            Verdict::Refused(ProducerError::InvalidProducerEpoch {
                                producer_id: producer.producer_id,
                                epoch: producer.epoch,
                                current,
                            })
                        }
                        DataVerdict::NotInTransaction => {
                            Verdict::Refused(ProducerError::NotInTransaction {
                                producer_id: producer.producer_id,
                                epoch: producer.epoch,
                            })
                        }
                    }
                }
                (_, None) => Verdict::Append,
                (_, Some((producer, window))) => producers::check(window.as_ref(), producer),
            };
            let outcome = match verdict {
                Verdict::Append => {
                    let base_offset = head.next_offset;
                    head.next_offset += append.offset_count;
                    head.max_timestamp = head.max_timestamp.max(append.max_timestamp);
                    head.changed = true;
                    match append.txn {
                        Some(TxnAppend::Marker(marker)) => self.open_txns.ended(
                            &txn_key(marker.producer_id),
                            marker.epoch,
                            marker.commit,
                            base_offset,
                        ),
                        Some(TxnAppend::Data) => {
                            if let Some((producer, _)) = &window {
                                self.open_txns
                                    .started_at(&txn_key(producer.producer_id), base_offset);
                            }
                        }
                        None => {}
                    }
                    if let Some((producer, window)) = window {
                        let batch = ProducerBatch {
                            producer_id: producer.producer_id,
                            epoch: producer.epoch,
                            first_sequence: producer.first_sequence,
                            last_sequence: producer.last_sequence,
                            base_offset,
                            append_time_ms: append.append_time_ms,
                        };
                        producers::record(window, batch);
                        self.producer_rows.push(ProducerRow {
                            topic: topic.clone(),
                            partition: run.partition,
                            batch,
                        });
                    }
                    let entry = span.get_or_insert_with(|| EntryRow {
                        topic: topic.clone(),
                        partition: run.partition,
                        base_offset,
                        last_offset: base_offset,
                        object_id,
                        position,
                        length: 0,
                        max_timestamp: i64::MIN,
                        running_max_timestamp: i64::MIN,
                    });
                    entry.last_offset = head.next_offset - 1;
                    entry.length += append.length;
                    entry.max_timestamp = entry.max_timestamp.max(append.max_timestamp);
                    entry.running_max_timestamp = head.max_timestamp;
                    AppendOutcome::Appended {
                        base_offset,
                        append_time_ms: append.append_time_ms,
                    }
                }
                Verdict::Duplicate {
                    base_offset,
                    append_time_ms,
                } => {
                    self.entries.extend(span.take());
                    AppendOutcome::Duplicate {
                        base_offset,
                        append_time_ms,
                    }
                }
                Verdict::Refused(e) => {
                    self.entries.extend(span.take());
                    AppendOutcome::Refused(e)
                }
            };
            outcomes.push(outcome);
            position += append.length;
        }
        self.entries.extend(span);
        RunOutcome::Committed(outcomes)
    }
}

/// Rows up to which a multi-row statement is kept prepared per connection.
const CACHED_UP_TO_ROWS: usize = 16;

/// A multi-row statement of `rows` rows. Each row count is a different SQL text,
/// and a prepared statement of a thousand rows is megabytes of SQLite bytecode:
/// with sqlx's cache of 100 statements per connection, a 1000-partition topic
/// filled the cache with such statements (hundreds of MiB). Small, common shapes
/// stay cached; large ones are prepared for the one execution.
pub(super) fn multi_row(
    sql: String,
    rows: usize,
) -> sqlx::query::Query<'static, Any, AnyArguments> {
    sqlx::query(AssertSqlSafe(sql)).persistent(rows <= CACHED_UP_TO_ROWS)
}

/// `($1, $2, ...), (...)`: `rows` tuples of `columns` placeholders.
pub(super) fn placeholders(rows: usize, columns: usize) -> String {
    placeholders_after(0, rows, columns)
}

/// [`placeholders`] numbered from `$(before + 1)`, for a statement whose first
/// `before` parameters are bound ahead of the tuples.
pub(super) fn placeholders_after(before: usize, rows: usize, columns: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 6);
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(before + row * columns + column + 1).to_string());
        }
        sql.push(')');
    }
    sql
}

fn lock_partitions_sql(rows: usize, lock: &str) -> String {
    format!(
        "SELECT topic_id, partition_index, next_offset, max_timestamp FROM partitions \
         WHERE (topic_id, partition_index) IN (VALUES {}) \
         ORDER BY topic_id, partition_index{lock}",
        placeholders(rows, 2)
    )
}

/// Inserts the objects and returns their ids, in the order of `commits`.
async fn insert_objects(
    tx: &mut Transaction<'static, Any>,
    commits: &[ObjectCommit],
    created_at: i64,
) -> Result<Vec<i64>> {
    let mut ids = BTreeMap::new();
    for chunk in commits.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO objects (key, size_bytes, state, created_at_ms) VALUES {} \
             RETURNING id, key",
            placeholders(chunk.len(), 4)
        );
        let mut query = multi_row(sql, chunk.len());
        for commit in chunk {
            query = query
                .bind(commit.object.key.as_str())
                .bind(commit.object.size_bytes)
                .bind("live")
                .bind(created_at);
        }
        for row in query.fetch_all(&mut **tx).await? {
            ids.insert(get::<String>(&row, "key")?, get::<i64>(&row, "id")?);
        }
    }
    // RETURNING promises no row order; match the ids back by key (keys are unique).
    commits
        .iter()
        .map(|commit| {
            ids.get(&commit.object.key).copied().ok_or_else(|| {
                crate::CatalogError::Corrupt(format!(
                    "object '{}' was inserted but not returned",
                    commit.object.key
                ))
            })
        })
        .collect()
}

/// Reads the heads of the partitions that exist among `keys` (sorted), locking
/// their rows on PostgreSQL for the rest of the transaction; on SQLite the
/// transaction holds the database's write lock already.
pub(super) async fn lock_partitions(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    keys: &[PartitionKey],
) -> Result<BTreeMap<PartitionKey, PartitionHead>> {
    let lock = match backend {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    };
    let mut heads = BTreeMap::new();
    for chunk in keys.chunks(ROWS_PER_STATEMENT) {
        let mut query = multi_row(lock_partitions_sql(chunk.len(), lock), chunk.len());
        for (topic, partition) in chunk {
            query = query.bind(topic.as_str()).bind(i64::from(*partition));
        }
        for row in query.fetch_all(&mut **tx).await? {
            let key = (
                get::<String>(&row, "topic_id")?,
                to_i32(get(&row, "partition_index")?, "partition index")?,
            );
            let head = PartitionHead {
                next_offset: get(&row, "next_offset")?,
                max_timestamp: get(&row, "max_timestamp")?,
                changed: false,
            };
            heads.insert(key, head);
        }
    }
    Ok(heads)
}

/// Advances the changed heads, stamping them with a new head change sequence
/// number (SQLite; see `changes.rs`).
async fn update_partitions(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    heads: &BTreeMap<PartitionKey, PartitionHead>,
) -> Result<()> {
    let changed: Vec<_> = heads.iter().filter(|(_, head)| head.changed).collect();
    if !changed.is_empty() {
        super::changes::next_head_seq(tx, backend).await?;
    }
    for chunk in changed.chunks(ROWS_PER_STATEMENT) {
        // VALUES columns are named column1.. in both databases.
        let sql = format!(
            "UPDATE partitions SET next_offset = v.column3, max_timestamp = v.column4, \
             change_seq = {} \
             FROM (VALUES {}) AS v \
             WHERE partitions.topic_id = v.column1 AND partitions.partition_index = v.column2",
            super::changes::HEAD_SEQ,
            placeholders(chunk.len(), 4)
        );
        let mut query = multi_row(sql, chunk.len());
        for ((topic, partition), head) in chunk {
            query = query
                .bind(topic.as_str())
                .bind(i64::from(*partition))
                .bind(head.next_offset)
                .bind(head.max_timestamp);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

pub(super) async fn insert_entries(
    tx: &mut Transaction<'static, Any>,
    entries: &[EntryRow],
) -> Result<()> {
    for chunk in entries.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO index_entries (topic_id, partition_index, base_offset, last_offset, \
             object_id, position, length, max_timestamp, running_max_timestamp) VALUES {}",
            placeholders(chunk.len(), 9)
        );
        let mut query = multi_row(sql, chunk.len());
        for entry in chunk {
            query = query
                .bind(entry.topic.as_str())
                .bind(i64::from(entry.partition))
                .bind(entry.base_offset)
                .bind(entry.last_offset)
                .bind(entry.object_id)
                .bind(entry.position)
                .bind(entry.length)
                .bind(entry.max_timestamp)
                .bind(entry.running_max_timestamp);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::SqlCatalog;
    use super::*;

    #[test]
    fn placeholders_number_rows_then_columns() {
        assert_eq!(placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(placeholders(1, 1), "($1)");
        assert_eq!(placeholders_after(1, 2, 2), "($2, $3), ($4, $5)");
    }

    /// Statements run inside a write transaction must seek, not scan: on
    /// SQLite every producer's commit waits for them.
    #[tokio::test]
    async fn sqlite_seeks_the_rows_of_multi_row_statements() {
        let catalog = SqlCatalog::connect("sqlite::memory:").await.unwrap();
        let statements = [
            (lock_partitions_sql(3, ""), 6),
            (producer_windows::trim_producer_batches_sql(3), 9),
            (producer_windows::load_windows_sql(3), 9),
            (super::super::lifecycle::delete_entries_of_objects_sql(3), 3),
            (super::super::producer_expiry::delete_idle_states_sql(3), 10),
        ];
        for (sql, params) in statements {
            let explain = format!("EXPLAIN QUERY PLAN {sql}");
            let mut query = multi_row(explain, 3);
            for _ in 0..params {
                query = query.bind(1_i64);
            }
            let plan: Vec<String> = query
                .fetch_all(&catalog.writes)
                .await
                .unwrap()
                .iter()
                .map(|row| sqlx::Row::get::<String, _>(row, "detail"))
                .collect();
            let scans = [
                "SCAN partitions",
                "SCAN producer_batches",
                "SCAN index_entries",
            ];
            assert!(
                !plan
                    .iter()
                    .any(|step| scans.iter().any(|scan| step.starts_with(scan))),
                "{sql}\n{plan:?}"
            );
        }
    }
}
