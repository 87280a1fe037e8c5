//! Expiry of idle producers' state (Kafka's `producer.id.expiration.ms`), by
//! the catalog's clock ([`catalog_now_ms`]) against the times the catalog
//! stamped: `producer_batches.committed_at_ms` (the commit that recorded the
//! batch) and `producers.updated_at_ms` (the id handed out or bumped).
//!
//! A producer's state on a partition is all its recorded batches there. As in
//! Kafka (`ProducerStateManager.removeExpiredProducers`) it goes whole once the
//! newest of them is older than the expiration; a producer still writing keeps
//! every batch of its window, old ones included, so a retry of any of its last
//! five is still recognised. Kafka keeps a producer with a transaction open;
//! there are no transactions yet.
//!
//! A step looks at a bounded number of batches, oldest commit first from a
//! cursor (index `producer_batches_by_commit_time`, migration 0007), so it is
//! a short transaction however large the backlog, and a pass moves past the
//! older batches of active producers instead of reading them again at every
//! step. On PostgreSQL a step locks the partitions' rows first, in the
//! committers' order: a commit judges appends against the windows it read
//! under those locks, and expiry must not remove a window in between.

use std::collections::BTreeSet;

use sqlx::{Any, AssertSqlSafe, Transaction};

use super::agents::catalog_now_ms;
use super::commit::{self, multi_row, placeholders_after, PartitionKey, ROWS_PER_STATEMENT};
use super::rows::{get, to_i32};
use super::Backend;
use crate::producers::{ExpiryCursor, ExpiryStep};
use crate::Result;

/// (topic id, partition, producer id).
type StateKey = (String, i64, i64);

/// The batches committed at least the expiration ago, after the cursor, in
/// the index's order; with the cutoff they were chosen by, so the deletion
/// uses the same instant. `$1` expiration, `$2..$6` cursor, `$7` limit.
pub(super) fn old_batches_sql(backend: Backend) -> String {
    format!(
        "SELECT committed_at_ms, topic_id, partition_index, producer_id, base_offset, \
                {now} - $1 AS cutoff \
         FROM producer_batches \
         WHERE committed_at_ms <= {now} - $1 \
           AND (committed_at_ms, topic_id, partition_index, producer_id, base_offset) \
               > ($2, $3, $4, $5, $6) \
         ORDER BY committed_at_ms, topic_id, partition_index, producer_id, base_offset \
         LIMIT $7",
        now = catalog_now_ms(backend)
    )
}

/// Deletes every batch of the (partition, producer) states given whose newest
/// batch was committed at or before the cutoff (`$1`): a primary-key prefix
/// seek per state. Returns the states of the deleted rows.
pub(super) fn delete_idle_states_sql(states: usize) -> String {
    format!(
        "DELETE FROM producer_batches \
         WHERE (topic_id, partition_index, producer_id) IN (VALUES {}) \
           AND NOT EXISTS (SELECT 1 FROM producer_batches AS newer \
               WHERE newer.topic_id = producer_batches.topic_id \
                 AND newer.partition_index = producer_batches.partition_index \
                 AND newer.producer_id = producer_batches.producer_id \
                 AND newer.committed_at_ms > $1) \
         RETURNING topic_id, partition_index, producer_id",
        placeholders_after(1, states, 3)
    )
}

pub(super) async fn expire_states(
    mut tx: Transaction<'static, Any>,
    backend: Backend,
    expiration_ms: i64,
    from: &ExpiryCursor,
    limit: u32,
) -> Result<ExpiryStep> {
    let rows = sqlx::query(AssertSqlSafe(old_batches_sql(backend)))
        .bind(expiration_ms)
        .bind(from.committed_at_ms)
        .bind(from.topic_id.as_str())
        .bind(from.partition)
        .bind(from.producer_id)
        .bind(from.base_offset)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
    let Some(last) = rows.last() else {
        return Ok(ExpiryStep::default());
    };
    let cutoff: i64 = get(last, "cutoff")?;
    let next = (rows.len() >= limit as usize)
        .then(|| -> Result<ExpiryCursor> {
            Ok(ExpiryCursor {
                committed_at_ms: get(last, "committed_at_ms")?,
                topic_id: get(last, "topic_id")?,
                partition: get(last, "partition_index")?,
                producer_id: get(last, "producer_id")?,
                base_offset: get(last, "base_offset")?,
            })
        })
        .transpose()?;
    let mut states = BTreeSet::new();
    for row in &rows {
        states.insert((
            get::<String>(row, "topic_id")?,
            get::<i64>(row, "partition_index")?,
            get::<i64>(row, "producer_id")?,
        ));
    }
    let states: Vec<StateKey> = states.into_iter().collect();
    // Sorted by topic and partition already, as the committers lock them.
    let mut partitions: Vec<PartitionKey> = Vec::with_capacity(states.len());
    for (topic, partition, _) in &states {
        let key = (topic.clone(), to_i32(*partition, "partition index")?);
        if partitions.last() != Some(&key) {
            partitions.push(key);
        }
    }
    if backend == Backend::Postgres {
        commit::lock_partitions(&mut tx, backend, &partitions).await?;
    }
    let mut removed = BTreeSet::new();
    let mut batches_removed = 0;
    for chunk in states.chunks(ROWS_PER_STATEMENT) {
        let mut query = multi_row(delete_idle_states_sql(chunk.len()), chunk.len()).bind(cutoff);
        for (topic, partition, producer_id) in chunk {
            query = query
                .bind(topic.as_str())
                .bind(*partition)
                .bind(*producer_id);
        }
        for row in query.fetch_all(&mut *tx).await? {
            batches_removed += 1;
            removed.insert((
                get::<String>(&row, "topic_id")?,
                get::<i64>(&row, "partition_index")?,
                get::<i64>(&row, "producer_id")?,
            ));
        }
    }
    // A removed producer's ended transactions on those partitions go with its
    // state (open ones stay: they end by their marker or their timeout).
    for (topic, partition, producer_id) in &removed {
        sqlx::query(
            "DELETE FROM open_transactions WHERE topic_id = $1 AND partition_index = $2 \
             AND producer_id = $3 AND is_open = 0",
        )
        .bind(topic.as_str())
        .bind(*partition)
        .bind(*producer_id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(ExpiryStep {
        next,
        states_removed: removed.len() as u64,
        batches_removed,
    })
}

/// Producer ids handed out or bumped at least the expiration (`$1`) ago, the
/// oldest `$2` of them (index `producers_by_update_time`). The time is checked
/// again on the row deleted: on PostgreSQL a bump committed meanwhile makes
/// the row young again, and the recheck sees the bumped row.
pub(super) fn expire_ids_sql(backend: Backend) -> String {
    format!(
        "DELETE FROM producers \
         WHERE updated_at_ms <= {now} - $1 \
           AND producer_id IN (SELECT producer_id FROM producers \
               WHERE updated_at_ms <= {now} - $1 ORDER BY updated_at_ms LIMIT $2)",
        now = catalog_now_ms(backend)
    )
}

pub(super) async fn expire_ids(
    mut tx: Transaction<'static, Any>,
    backend: Backend,
    expiration_ms: i64,
    limit: u32,
) -> Result<u64> {
    let deleted = sqlx::query(AssertSqlSafe(expire_ids_sql(backend)))
        .bind(expiration_ms)
        .bind(i64::from(limit))
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::super::SqlCatalog;
    use super::*;

    async fn sqlite_plan(catalog: &SqlCatalog, sql: &str, params: usize) -> Vec<String> {
        let mut query = sqlx::query(AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")));
        for _ in 0..params {
            query = query.bind(1_i64);
        }
        query
            .fetch_all(&catalog.writes)
            .await
            .unwrap()
            .iter()
            .map(|row| sqlx::Row::get::<String, _>(row, "detail"))
            .collect()
    }

    /// A step must cost its `limit` rows, not the backlog: the old batches
    /// come in order from the commit-time index, from the cursor on, with no
    /// scan and no sort; old ids from theirs.
    #[tokio::test]
    async fn sqlite_expiry_walks_the_time_indexes() {
        let catalog = SqlCatalog::connect("sqlite::memory:").await.unwrap();
        let plan = sqlite_plan(&catalog, &old_batches_sql(Backend::Sqlite), 7).await;
        assert_eq!(plan.len(), 1, "{plan:?}");
        assert!(
            plan[0].starts_with(
                "SEARCH producer_batches USING COVERING INDEX producer_batches_by_commit_time \
                 ((committed_at_ms,topic_id,partition_index,producer_id,base_offset)>"
            ),
            "{plan:?}"
        );
        let plan = sqlite_plan(&catalog, &expire_ids_sql(Backend::Sqlite), 2).await;
        assert!(
            plan.iter()
                .any(|step| step
                    .starts_with("SEARCH producers USING INDEX producers_by_update_time")),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|step| step.starts_with("SCAN")),
            "{plan:?}"
        );
    }
}
