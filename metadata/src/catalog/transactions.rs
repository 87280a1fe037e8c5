//! Transactions: the coordinator's state per transactional id, and what
//! read_committed readers need per partition. The markers themselves are
//! appended through the log ([`crate::LogCatalog::commit_objects`] judges them
//! with [`crate::transactions::judge_marker`]).

use async_trait::async_trait;

use crate::producers::ProducerIdentity;
use crate::transactions::{
    AbortedTxn, Completion, EndOutcome, InitOutcome, TransactionDescription, TransactionListing,
    TxnOffset,
};
use crate::{Result, TopicId};

#[async_trait]
pub trait TransactionCatalog: Send + Sync + 'static {
    /// InitProducerId with a transactional id: a new producer id for a new
    /// transactional id; otherwise the epoch bumped (a new id once the epoch
    /// is exhausted), which fences the previous incarnation. A transaction
    /// left open is first fenced and prepared to abort, a prepared one
    /// returned to be completed ([`InitOutcome::MustComplete`]); the caller
    /// completes it and asks again. `existing` (KIP-360) must be the current
    /// identity or the one before the coordinator's last bump.
    async fn init_transactional_producer(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        existing: Option<ProducerIdentity>,
    ) -> Result<InitOutcome>;

    /// AddPartitionsToTxn: begins a transaction if none is open, adds the
    /// partitions (which must exist), and opens the transaction on each so
    /// that the producer's batches are accepted there.
    async fn add_partitions_to_transaction(
        &self,
        transactional_id: &str,
        producer: ProducerIdentity,
        partitions: &[(TopicId, i32)],
    ) -> Result<()>;

    /// AddOffsetsToTxn: begins a transaction if none is open and adds the group.
    async fn add_group_to_transaction(
        &self,
        transactional_id: &str,
        producer: ProducerIdentity,
        group_id: &str,
    ) -> Result<()>;

    /// TxnOffsetCommit: offsets of `group_id` that take effect when the
    /// transaction commits. The group must have been added to it.
    async fn commit_transaction_offsets(
        &self,
        transactional_id: &str,
        producer: ProducerIdentity,
        group_id: &str,
        offsets: &[TxnOffset],
    ) -> Result<()>;

    /// EndTxn: prepares the open transaction to commit or abort; with
    /// `bump_epoch` (transaction version 2) under the next epoch, which its
    /// markers carry and the producer continues with.
    async fn end_transaction(
        &self,
        transactional_id: &str,
        producer: ProducerIdentity,
        commit: bool,
        bump_epoch: bool,
    ) -> Result<EndOutcome>;

    /// Records a prepared transaction complete once every marker is written:
    /// its offsets take effect (commit) or go (abort). A completion already
    /// recorded (by another agent) is left alone.
    async fn complete_transaction(&self, completion: &Completion) -> Result<()>;

    /// Transactions the coordinator must finish by itself, at most `limit`:
    /// every open one older than its timeout is fenced (epoch bumped) and
    /// prepared to abort; prepared ones untouched for `stalled_after_ms` (their
    /// completer died) are returned as they are. By the catalog's clock.
    async fn transactions_to_finish(
        &self,
        stalled_after_ms: i64,
        limit: u32,
    ) -> Result<Vec<Completion>>;

    async fn list_transactions(&self) -> Result<Vec<TransactionListing>>;

    async fn describe_transaction(
        &self,
        transactional_id: &str,
    ) -> Result<Option<TransactionDescription>>;

    /// The first offset of the oldest transaction open on the partition (its
    /// last stable offset), `None` when none is open with data.
    async fn first_unstable_offset(&self, topic: TopicId, partition: i32) -> Result<Option<i64>>;

    /// Aborted transactions of the partition overlapping `from ..= to`
    /// (their abort marker at or after `from`, their first offset at most `to`),
    /// in order of first offset.
    async fn aborted_transactions(
        &self,
        topic: TopicId,
        partition: i32,
        from: i64,
        to: i64,
    ) -> Result<Vec<AbortedTxn>>;

    /// Producers with a transaction open on the partition, and its first
    /// offset there (-1 before its first batch).
    async fn open_transactions(&self, topic: TopicId, partition: i32) -> Result<Vec<(i64, i64)>>;

    /// Whether any transaction holds uncommitted offsets of the group for the
    /// partition (OffsetFetch answers UNSTABLE_OFFSET_COMMIT to a client that
    /// asks for stable offsets).
    async fn has_pending_transaction_offsets(
        &self,
        group_id: &str,
        topic: &str,
        partition: i32,
    ) -> Result<bool>;
}
