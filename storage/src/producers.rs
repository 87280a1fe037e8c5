//! Sequence checks of idempotent producers, as the write path runs them.
//!
//! For each (topic, partition, producer) the packer keeps the producer's epoch
//! and its last few batches — committed ones from the catalog, and ones still on
//! their way through the write path — each with a channel that will carry (or
//! already carries) the batch's outcome. A new batch is checked against that
//! window before it enters the open object:
//! - an older epoch is fenced (INVALID_PRODUCER_EPOCH);
//! - a newer epoch must start again at sequence 0;
//! - a batch whose sequences equal one in the window is a retry: it is not
//!   stored again, and its sender gets the original batch's outcome;
//! - otherwise the batch must continue the last one's sequence, or it is
//!   OUT_OF_ORDER_SEQUENCE_NUMBER.
//!
//! The window is this agent's: with one agent per catalog it is authoritative,
//! and it is persisted with each commit so a restarted agent resumes it.

use std::collections::VecDeque;

use streamhouse_metadata::producers::{ProducerBatch, RECENT_BATCHES_KEPT};
use tokio::sync::watch;

use crate::append::{AppendOutcome, ProducerAppend};
use crate::StorageError;

/// Where an append's outcome will be published.
pub type OutcomeReceiver = watch::Receiver<Option<AppendOutcome>>;
pub type OutcomeSender = watch::Sender<Option<AppendOutcome>>;

struct RecentBatch {
    first_sequence: i32,
    last_sequence: i32,
    outcome: OutcomeReceiver,
}

/// One producer's state on one partition.
pub struct ProducerWindow {
    epoch: i16,
    recent: VecDeque<RecentBatch>,
}

/// What to do with a new batch.
pub enum Verdict {
    /// Store it; publish its outcome on this sender.
    Accept(OutcomeSender),
    /// A retry of a batch already accepted: answer with that batch's outcome.
    Duplicate(OutcomeReceiver),
    /// Refuse it.
    Reject(StorageError),
}

impl ProducerWindow {
    /// The window as the catalog remembers it (committed batches, oldest first).
    pub fn from_committed(batches: &[ProducerBatch]) -> Option<ProducerWindow> {
        let last = batches.last()?;
        let recent = batches
            .iter()
            .filter(|b| b.epoch == last.epoch)
            .map(|b| RecentBatch {
                first_sequence: b.first_sequence,
                last_sequence: b.last_sequence,
                outcome: watch::channel(Some(Ok(b.base_offset))).1,
            })
            .collect();
        Some(ProducerWindow {
            epoch: last.epoch,
            recent,
        })
    }

    /// Checks `append` against the window and, if accepted, records it.
    pub fn check(window: &mut Option<ProducerWindow>, append: &ProducerAppend) -> Verdict {
        let Some(state) = window else {
            // A producer this partition has not seen: any starting sequence.
            let (verdict, window_state) = Self::start(append);
            *window = Some(window_state);
            return verdict;
        };
        if append.epoch < state.epoch {
            return Verdict::Reject(StorageError::InvalidProducerEpoch {
                producer_id: append.producer_id,
                epoch: append.epoch,
                current: state.epoch,
            });
        }
        if append.epoch > state.epoch {
            if append.first_sequence != 0 {
                return Verdict::Reject(StorageError::OutOfOrderSequence {
                    producer_id: append.producer_id,
                    expected: 0,
                    received: append.first_sequence,
                });
            }
            let (verdict, window_state) = Self::start(append);
            *state = window_state;
            return verdict;
        }
        if let Some(original) = state.recent.iter().find(|b| {
            b.first_sequence == append.first_sequence && b.last_sequence == append.last_sequence
        }) {
            return Verdict::Duplicate(original.outcome.clone());
        }
        let expected = state.recent.back().map_or(append.first_sequence, |last| {
            next_sequence(last.last_sequence)
        });
        if append.first_sequence != expected {
            return Verdict::Reject(StorageError::OutOfOrderSequence {
                producer_id: append.producer_id,
                expected,
                received: append.first_sequence,
            });
        }
        let (tx, rx) = watch::channel(None);
        state.push(append, rx);
        Verdict::Accept(tx)
    }

    fn start(append: &ProducerAppend) -> (Verdict, ProducerWindow) {
        let (tx, rx) = watch::channel(None);
        let mut window = ProducerWindow {
            epoch: append.epoch,
            recent: VecDeque::with_capacity(RECENT_BATCHES_KEPT),
        };
        window.push(append, rx);
        (Verdict::Accept(tx), window)
    }

    fn push(&mut self, append: &ProducerAppend, outcome: OutcomeReceiver) {
        if self.recent.len() == RECENT_BATCHES_KEPT {
            self.recent.pop_front();
        }
        self.recent.push_back(RecentBatch {
            first_sequence: append.first_sequence,
            last_sequence: append.last_sequence,
            outcome,
        });
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

    fn accept(window: &mut Option<ProducerWindow>, a: ProducerAppend) -> OutcomeSender {
        match ProducerWindow::check(window, &a) {
            Verdict::Accept(tx) => tx,
            _ => panic!("expected {a:?} to be accepted"),
        }
    }

    #[test]
    fn consecutive_batches_are_accepted() {
        let mut window = None;
        accept(&mut window, append(0, 0, 4));
        accept(&mut window, append(0, 5, 9));
    }

    #[test]
    fn a_gap_is_out_of_order() {
        let mut window = None;
        accept(&mut window, append(0, 0, 4));
        assert!(matches!(
            ProducerWindow::check(&mut window, &append(0, 7, 9)),
            Verdict::Reject(StorageError::OutOfOrderSequence {
                expected: 5,
                received: 7,
                ..
            })
        ));
    }

    #[test]
    fn a_retry_gets_the_original_outcome() {
        let mut window = None;
        let original = accept(&mut window, append(0, 0, 4));
        accept(&mut window, append(0, 5, 9));
        let Verdict::Duplicate(rx) = ProducerWindow::check(&mut window, &append(0, 0, 4)) else {
            panic!("expected a duplicate");
        };
        original.send_replace(Some(Ok(42)));
        assert!(matches!(*rx.borrow(), Some(Ok(42))));
    }

    #[test]
    fn an_old_epoch_is_fenced_and_a_new_one_restarts_at_zero() {
        let mut window = None;
        accept(&mut window, append(1, 0, 0));
        assert!(matches!(
            ProducerWindow::check(&mut window, &append(0, 1, 1)),
            Verdict::Reject(StorageError::InvalidProducerEpoch { .. })
        ));
        assert!(matches!(
            ProducerWindow::check(&mut window, &append(2, 3, 3)),
            Verdict::Reject(StorageError::OutOfOrderSequence { expected: 0, .. })
        ));
        accept(&mut window, append(2, 0, 0));
    }

    #[test]
    fn committed_batches_seed_the_window() {
        let committed: Vec<ProducerBatch> = (0..5)
            .map(|i| ProducerBatch {
                producer_id: 7,
                epoch: 3,
                first_sequence: i * 10,
                last_sequence: i * 10 + 9,
                base_offset: 100 + i64::from(i) * 10,
            })
            .collect();
        let mut window = ProducerWindow::from_committed(&committed);
        let Verdict::Duplicate(rx) = ProducerWindow::check(&mut window, &append(3, 20, 29)) else {
            panic!("expected a duplicate");
        };
        assert!(matches!(*rx.borrow(), Some(Ok(120))));
        accept(&mut window, append(3, 50, 59));
    }

    #[test]
    fn sequences_wrap_after_the_maximum() {
        let mut window = None;
        accept(&mut window, append(0, i32::MAX - 1, i32::MAX));
        accept(&mut window, append(0, 0, 3));
    }
}
