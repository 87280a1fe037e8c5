//! Transactions: the coordinator's state per transactional id, the markers that
//! end a transaction on each of its partitions, and the transactions open or
//! aborted on a partition (what read_committed readers need).
//!
//! The state machine is Kafka's (`TransactionState`), with one difference: no
//! agent owns a transactional id. Every transition is one catalog transaction
//! on the id's row, so any agent may serve any request, and a transaction left
//! in `PrepareCommit`/`PrepareAbort` by an agent that died is completed by the
//! next one that looks (a request for the id, or the timeout sweep). Completing
//! twice is harmless: a marker carries the transaction's sequence number
//! (`txn_seq`) and the commit that appends it keeps it only while that very
//! transaction is open on the partition ([`judge_marker`]).

use crate::producers::ProducerIdentity;
use crate::TopicId;

/// Kafka's `TransactionState`, as stored in `transactions.state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    /// Kafka's names (ListTransactions filters and DescribeTransactions answer
    /// with them).
    pub fn as_str(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    pub fn parse(name: &str) -> Option<TxnState> {
        [
            TxnState::Empty,
            TxnState::Ongoing,
            TxnState::PrepareCommit,
            TxnState::PrepareAbort,
            TxnState::CompleteCommit,
            TxnState::CompleteAbort,
        ]
        .into_iter()
        .find(|state| state.as_str() == name)
    }

    /// Prepared: the markers are being written.
    pub fn is_prepared(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// The transactional side of an append, judged by the commit together with
/// its producer's sequences.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnAppend {
    /// Data batches of a transaction: the append's producer must have the
    /// partition in its open transaction, at its epoch.
    Data,
    /// A control batch ending a transaction on the partition.
    Marker(TxnMarker),
}

/// What a commit or abort marker ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnMarker {
    pub producer_id: i64,
    pub epoch: i16,
    pub txn_seq: i64,
    pub commit: bool,
}

/// A transactional producer on one partition: its transaction there, open
/// or ended by a marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenTxn {
    /// The epoch of its transaction, or of the marker that ended it.
    pub epoch: i16,
    pub txn_seq: i64,
    pub open: bool,
    /// Offset of its first batch on the partition; `None` before one.
    pub first_offset: Option<i64>,
}

/// What the commit does with a transactional data append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataVerdict {
    /// Judge its sequences as any idempotent append's.
    Sequences,
    /// A newer epoch holds the partition's transaction: the producer is fenced.
    Fenced { current: i16 },
    /// The partition is not in the producer's transaction.
    NotInTransaction,
}

/// Kafka's rule, with KIP-890's verification: a transactional batch is
/// appended only to a partition its producer added to the transaction it has
/// open, at the same epoch.
pub fn judge_data(open: Option<&OpenTxn>, epoch: i16) -> DataVerdict {
    match open {
        Some(open) if open.epoch > epoch => DataVerdict::Fenced {
            current: open.epoch,
        },
        Some(open) if open.open && open.epoch == epoch => DataVerdict::Sequences,
        _ => DataVerdict::NotInTransaction,
    }
}

/// Whether a marker ends the transaction open on its partition (append it),
/// or that transaction was ended already (a second completion: drop it).
pub fn judge_marker(open: Option<&OpenTxn>, marker: &TxnMarker) -> bool {
    open.is_some_and(|open| open.open && open.txn_seq == marker.txn_seq)
}

/// An aborted transaction on a partition: readers at read_committed skip its
/// producer's batches from `first_offset` to its abort marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
}

/// A transaction whose markers must be written, then recorded complete with
/// [`crate::TransactionCatalog::complete_transaction`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    pub transactional_id: String,
    pub producer_id: i64,
    /// The epoch the markers carry.
    pub epoch: i16,
    pub txn_seq: i64,
    pub commit: bool,
    pub partitions: Vec<(TopicId, i32)>,
}

impl Completion {
    pub fn marker(&self) -> TxnMarker {
        TxnMarker {
            producer_id: self.producer_id,
            epoch: self.epoch,
            txn_seq: self.txn_seq,
            commit: self.commit,
        }
    }
}

/// InitProducerId with a transactional id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitOutcome {
    /// The producer's id and (bumped) epoch.
    Ready(ProducerIdentity),
    /// A transaction is in the way (left open by the previous incarnation,
    /// now fenced and being aborted, or prepared): complete it, then ask again.
    MustComplete(Completion),
}

/// EndTxn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndOutcome {
    /// Already completed as asked (a retry); the producer's identity now.
    Done(ProducerIdentity),
    /// Prepared: write the markers, then record it complete. The producer
    /// continues with the completion's id and epoch.
    MustComplete(Completion),
}

/// A transactional id as ListTransactions shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionListing {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: TxnState,
    /// The catalog's clock minus the transaction's start, -1 when none is open.
    pub duration_ms: i64,
}

/// A transactional id as DescribeTransactions shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionDescription {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub state: TxnState,
    pub timeout_ms: i32,
    /// -1 when no transaction is open.
    pub start_time_ms: i64,
    pub partitions: Vec<(TopicId, i32)>,
}

/// An offset committed inside a transaction (TxnOffsetCommit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// Why the coordinator refused a request, as Kafka's refuses it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    #[error("the producer id is not the one of transactional id '{0}'")]
    InvalidProducerIdMapping(String),
    #[error(
        "transactional id '{transactional_id}': epoch {epoch} has been fenced by epoch {current}"
    )]
    ProducerFenced {
        transactional_id: String,
        epoch: i16,
        current: i16,
    },
    #[error(
        "transactional id '{transactional_id}': epoch {epoch} is newer than the current {current}"
    )]
    InvalidProducerEpoch {
        transactional_id: String,
        epoch: i16,
        current: i16,
    },
    #[error("transactional id '{transactional_id}' is {state}: {detail}")]
    InvalidTxnState {
        transactional_id: String,
        state: &'static str,
        detail: &'static str,
    },
    #[error("transactional id '{0}' is completing a transaction; retry")]
    ConcurrentTransactions(String),
}

/// The checks every request of a producer makes against its transactional
/// id's row: the id, then the epoch.
pub fn check_producer(
    transactional_id: &str,
    stored: ProducerIdentity,
    asked: ProducerIdentity,
) -> Result<(), TxnError> {
    if stored.producer_id != asked.producer_id {
        return Err(TxnError::InvalidProducerIdMapping(
            transactional_id.to_string(),
        ));
    }
    if asked.epoch < stored.epoch {
        return Err(TxnError::ProducerFenced {
            transactional_id: transactional_id.to_string(),
            epoch: asked.epoch,
            current: stored.epoch,
        });
    }
    if asked.epoch > stored.epoch {
        return Err(TxnError::InvalidProducerEpoch {
            transactional_id: transactional_id.to_string(),
            epoch: asked.epoch,
            current: stored.epoch,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(epoch: i16, txn_seq: i64) -> OpenTxn {
        OpenTxn {
            epoch,
            txn_seq,
            open: true,
            first_offset: None,
        }
    }

    fn ended(epoch: i16, txn_seq: i64) -> OpenTxn {
        OpenTxn {
            open: false,
            ..open(epoch, txn_seq)
        }
    }

    #[test]
    fn data_needs_the_partition_in_a_transaction_of_its_epoch() {
        assert_eq!(judge_data(Some(&open(3, 1)), 3), DataVerdict::Sequences);
        assert_eq!(
            judge_data(Some(&open(4, 1)), 3),
            DataVerdict::Fenced { current: 4 }
        );
        assert_eq!(judge_data(None, 3), DataVerdict::NotInTransaction);
        assert_eq!(
            judge_data(Some(&open(2, 1)), 3),
            DataVerdict::NotInTransaction
        );
        // Ended by the abort that fenced it: its epoch is older than the marker's.
        assert_eq!(
            judge_data(Some(&ended(4, 1)), 3),
            DataVerdict::Fenced { current: 4 }
        );
        assert_eq!(
            judge_data(Some(&ended(3, 1)), 3),
            DataVerdict::NotInTransaction
        );
    }

    #[test]
    fn a_marker_ends_only_its_own_transaction() {
        let marker = TxnMarker {
            producer_id: 7,
            epoch: 0,
            txn_seq: 5,
            commit: true,
        };
        assert!(judge_marker(Some(&open(0, 5)), &marker));
        // Written before by another completion: the producer has begun its
        // next transaction on the partition, which this marker must not end.
        assert!(!judge_marker(Some(&open(0, 6)), &marker));
        assert!(!judge_marker(None, &marker));
        assert!(!judge_marker(Some(&ended(0, 5)), &marker));
    }

    #[test]
    fn requests_are_checked_by_id_then_epoch() {
        let stored = ProducerIdentity {
            producer_id: 1,
            epoch: 5,
        };
        let asked = |producer_id, epoch| ProducerIdentity { producer_id, epoch };
        assert_eq!(check_producer("t", stored, asked(1, 5)), Ok(()));
        assert!(matches!(
            check_producer("t", stored, asked(2, 5)),
            Err(TxnError::InvalidProducerIdMapping(_))
        ));
        assert!(matches!(
            check_producer("t", stored, asked(1, 4)),
            Err(TxnError::ProducerFenced { current: 5, .. })
        ));
        assert!(matches!(
            check_producer("t", stored, asked(1, 6)),
            Err(TxnError::InvalidProducerEpoch { .. })
        ));
    }

    #[test]
    fn states_round_trip_by_name() {
        for name in [
            "Empty",
            "Ongoing",
            "PrepareCommit",
            "PrepareAbort",
            "CompleteCommit",
            "CompleteAbort",
        ] {
            assert_eq!(TxnState::parse(name).unwrap().as_str(), name);
        }
        assert_eq!(TxnState::parse("Dead"), None);
    }
}
