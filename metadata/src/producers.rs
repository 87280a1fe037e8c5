//! Idempotent producers: their identities from InitProducerId, the batches each
//! appended to each partition, and Kafka's sequence rules that decide whether a
//! new batch is appended, answered as a retry, or refused.
//!
//! The rules run inside the commit transaction (`sql/commit.rs`), on the
//! windows read there under the partitions' locks: whatever agent a batch
//! reaches, it is judged against every batch committed before it, so a retry
//! sent to two agents is appended once and no agent's stale view refuses a
//! valid batch. They are a pure function of a [`Window`] so that they can be
//! tested without a database.
//!
//! A producer's state on a partition is kept until its newest batch there is
//! older than the expiration (Kafka's `producer.id.expiration.ms`); then it is
//! removed whole ([`ExpiryCursor`], [`ExpiryStep`]), and the producer is one the
//! partition has never seen.

use std::collections::VecDeque;

/// A producer id and its current epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerIdentity {
    pub producer_id: i64,
    pub epoch: i16,
}

/// The newest batches the catalog keeps per producer and partition: Kafka
/// recognises a retry of any of the last five.
pub const RECENT_BATCHES_KEPT: usize = 5;

/// The idempotence fields of an append: all its batches come from one producer
/// with contiguous sequences.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerAppend {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_sequence: i32,
    pub last_sequence: i32,
}

/// An idempotent batch already committed to a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_sequence: i32,
    pub last_sequence: i32,
    /// Offset the batch's first record got.
    pub base_offset: i64,
    /// The LogAppendTime its batches were stamped with; -1 on CreateTime topics.
    pub append_time_ms: i64,
}

/// Where a pass expiring idle producers' state has got to: the last recorded
/// batch it looked at. A pass looks at batches oldest commit first (commit time,
/// then topic, partition, producer, offset), so a pass taken in several steps
/// resumes past the batches of active producers it has already passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpiryCursor {
    pub(crate) committed_at_ms: i64,
    pub(crate) topic_id: String,
    pub(crate) partition: i64,
    pub(crate) producer_id: i64,
    pub(crate) base_offset: i64,
}

impl Default for ExpiryCursor {
    /// Before every batch: the start of a pass.
    fn default() -> Self {
        ExpiryCursor {
            committed_at_ms: i64::MIN,
            topic_id: String::new(),
            partition: i64::MIN,
            producer_id: i64::MIN,
            base_offset: i64::MIN,
        }
    }
}

/// What one step of expiring producers' state did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExpiryStep {
    /// Where the next step starts; `None` once the pass has looked at every
    /// batch old enough to matter.
    pub next: Option<ExpiryCursor>,
    /// The (partition, producer) states removed, and the batches they held.
    pub states_removed: u64,
    pub batches_removed: u64,
}

/// Why an idempotent append was refused, as Kafka's broker refuses it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProducerError {
    #[error("producer {producer_id}: expected sequence {expected}, received {received}")]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        received: i32,
    },
    #[error("producer {producer_id}: epoch {epoch} is older than the current epoch {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    /// A transactional batch for a partition its producer has not added to an
    /// open transaction (Kafka's verification, KIP-890).
    #[error(
        "producer {producer_id}: the partition is not in an open transaction of epoch {epoch}"
    )]
    NotInTransaction { producer_id: i64, epoch: i16 },
}

/// One producer's state on one partition: its epoch and its newest batches of
/// that epoch, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    epoch: i16,
    recent: VecDeque<ProducerBatch>,
}

/// What to do with a new idempotent append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Append it (then [`record`] it with the offset it got).
    Append,
    /// A retry of a batch in the window: answer with the original's offset and
    /// append time, store nothing.
    Duplicate {
        base_offset: i64,
        append_time_ms: i64,
    },
    Refused(ProducerError),
}

impl Window {
    /// The window as the catalog remembers it (committed batches of one
    /// producer and partition, oldest first); `None` for a producer the
    /// partition has not seen.
    pub fn from_committed(batches: &[ProducerBatch]) -> Option<Window> {
        let last = batches.last()?;
        let mut recent: VecDeque<ProducerBatch> = batches
            .iter()
            .filter(|b| b.epoch == last.epoch)
            .copied()
            .collect();
        while recent.len() > RECENT_BATCHES_KEPT {
            recent.pop_front();
        }
        Some(Window {
            epoch: last.epoch,
            recent,
        })
    }
}

/// Kafka's checks of an idempotent append against the producer's window:
/// - an older epoch is fenced (INVALID_PRODUCER_EPOCH);
/// - a newer epoch must start again at sequence 0;
/// - sequences equal to one of the window's batches make a retry;
/// - otherwise the append must continue the last batch's sequence (wrapping
///   after `i32::MAX`), or it is OUT_OF_ORDER_SEQUENCE_NUMBER. A producer the
///   partition has not seen may start anywhere.
pub fn check(window: Option<&Window>, append: &ProducerAppend) -> Verdict {
    let Some(window) = window else {
        return Verdict::Append;
    };
    if append.epoch < window.epoch {
        return Verdict::Refused(ProducerError::InvalidProducerEpoch {
            producer_id: append.producer_id,
            epoch: append.epoch,
            current: window.epoch,
        });
    }
    if append.epoch > window.epoch {
        if append.first_sequence == 0 {
            return Verdict::Append;
        }
        return Verdict::Refused(ProducerError::OutOfOrderSequence {
            producer_id: append.producer_id,
            expected: 0,
            received: append.first_sequence,
        });
    }
    if let Some(original) = window.recent.iter().find(|b| {
        b.first_sequence == append.first_sequence && b.last_sequence == append.last_sequence
    }) {
        return Verdict::Duplicate {
            base_offset: original.base_offset,
            append_time_ms: original.append_time_ms,
        };
    }
    let expected = window.recent.back().map_or(append.first_sequence, |last| {
        next_sequence(last.last_sequence)
    });
    if append.first_sequence == expected {
        Verdict::Append
    } else {
        Verdict::Refused(ProducerError::OutOfOrderSequence {
            producer_id: append.producer_id,
            expected,
            received: append.first_sequence,
        })
    }
}

/// Records an appended batch in its producer's window, so that later appends
/// of the same commit are checked against it.
pub fn record(window: &mut Option<Window>, batch: ProducerBatch) {
    match window {
        Some(window) if window.epoch == batch.epoch => {
            if window.recent.len() == RECENT_BATCHES_KEPT {
                window.recent.pop_front();
            }
            window.recent.push_back(batch);
        }
        _ => {
            *window = Some(Window {
                epoch: batch.epoch,
                recent: VecDeque::from([batch]),
            })
        }
    }
}

/// Sequences wrap from i32::MAX to 0, as in Kafka.
fn next_sequence(last: i32) -> i32 {
    if last == i32::MAX {
        0
    } else {
        last + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(epoch: i16, first: i32, last: i32) -> ProducerAppend {
        ProducerAppend {
            producer_id: 7,
            epoch,
            first_sequence: first,
            last_sequence: last,
        }
    }

    /// Checks `a` and, if it is to be appended, records it at `base_offset`.
    fn judge(window: &mut Option<Window>, a: ProducerAppend, base_offset: i64) -> Verdict {
        let verdict = check(window.as_ref(), &a);
        if verdict == Verdict::Append {
            record(
                window,
                ProducerBatch {
                    producer_id: a.producer_id,
                    epoch: a.epoch,
                    first_sequence: a.first_sequence,
                    last_sequence: a.last_sequence,
                    base_offset,
                    append_time_ms: base_offset * 1_000,
                },
            );
        }
        verdict
    }

    fn out_of_order(expected: i32, received: i32) -> Verdict {
        Verdict::Refused(ProducerError::OutOfOrderSequence {
            producer_id: 7,
            expected,
            received,
        })
    }

    #[test]
    fn a_new_producer_may_start_at_any_sequence_and_must_then_continue() {
        let mut window = None;
        assert_eq!(judge(&mut window, append(0, 40, 44), 0), Verdict::Append);
        assert_eq!(judge(&mut window, append(0, 45, 49), 5), Verdict::Append);
        assert_eq!(
            judge(&mut window, append(0, 52, 53), 10),
            out_of_order(50, 52)
        );
        assert_eq!(judge(&mut window, append(0, 50, 53), 10), Verdict::Append);
    }

    #[test]
    fn a_retry_of_any_of_the_last_five_is_a_duplicate_with_the_original_offset_and_time() {
        let mut window = None;
        for i in 0..6 {
            judge(
                &mut window,
                append(0, i * 10, i * 10 + 9),
                i64::from(i) * 10,
            );
        }
        assert_eq!(
            judge(&mut window, append(0, 10, 19), 60),
            Verdict::Duplicate {
                base_offset: 10,
                append_time_ms: 10_000
            }
        );
        assert_eq!(
            judge(&mut window, append(0, 50, 59), 60),
            Verdict::Duplicate {
                base_offset: 50,
                append_time_ms: 50_000
            }
        );
        // The sixth-newest is forgotten, as in Kafka: no longer a duplicate.
        assert_eq!(judge(&mut window, append(0, 0, 9), 60), out_of_order(60, 0));
        // Same first sequence, different last: not the same batch.
        assert_eq!(
            judge(&mut window, append(0, 50, 55), 60),
            out_of_order(60, 50)
        );
    }

    #[test]
    fn an_old_epoch_is_fenced_and_a_new_one_restarts_at_zero() {
        let mut window = None;
        judge(&mut window, append(1, 0, 0), 0);
        assert_eq!(
            judge(&mut window, append(0, 1, 1), 1),
            Verdict::Refused(ProducerError::InvalidProducerEpoch {
                producer_id: 7,
                epoch: 0,
                current: 1
            })
        );
        assert_eq!(judge(&mut window, append(2, 3, 3), 1), out_of_order(0, 3));
        assert_eq!(judge(&mut window, append(2, 0, 0), 1), Verdict::Append);
        // The new epoch's window holds only its own batches: the old epoch's
        // sequence 0 is now fenced, not a duplicate.
        assert!(matches!(
            judge(&mut window, append(1, 0, 0), 2),
            Verdict::Refused(ProducerError::InvalidProducerEpoch { current: 2, .. })
        ));
        assert_eq!(judge(&mut window, append(2, 1, 1), 2), Verdict::Append);
    }

    #[test]
    fn committed_batches_seed_the_window_with_the_newest_epoch_only() {
        let batch = |epoch, first: i32, base_offset| ProducerBatch {
            producer_id: 7,
            epoch,
            first_sequence: first,
            last_sequence: first + 9,
            base_offset,
            append_time_ms: -1,
        };
        let committed = [batch(2, 90, 0), batch(3, 0, 10), batch(3, 10, 20)];
        let mut window = Window::from_committed(&committed);
        assert_eq!(
            judge(&mut window, append(3, 0, 9), 30),
            Verdict::Duplicate {
                base_offset: 10,
                append_time_ms: -1
            }
        );
        assert_eq!(
            judge(&mut window, append(3, 90, 99), 30),
            out_of_order(20, 90)
        );
        assert_eq!(judge(&mut window, append(3, 20, 29), 30), Verdict::Append);
        assert_eq!(Window::from_committed(&[]), None);
    }

    #[test]
    fn sequences_wrap_after_the_maximum() {
        let mut window = None;
        judge(&mut window, append(0, i32::MAX - 1, i32::MAX), 0);
        assert_eq!(judge(&mut window, append(0, 1, 3), 2), out_of_order(0, 1));
        assert_eq!(judge(&mut window, append(0, 0, 3), 2), Verdict::Append);
    }
}
