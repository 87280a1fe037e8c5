//! Expiry of idle producers' state (Kafka's `producer.id.expiration.ms`): the
//! catalog removes a producer's state on a partition once its last append
//! there is older than the expiration, and a producer id once it was handed
//! out or bumped longer ago than that (`ProducerCatalog::expire_producer_states`
//! and `expire_producer_ids`; the catalog compares with its own clock, never
//! this agent's).
//!
//! One agent of the cluster runs it ([`WorkShare::producer_expiry`]), every
//! `producer_expiry_interval` (Kafka's `producer.id.expiration.check.interval.ms`).
//! A pass is catalog transactions of at most [`STEP_ROWS`] rows each, so a
//! large backlog never holds locks a commit waits for for long; after
//! [`MAX_STEPS`] of them the pass yields to compaction and to shutdown and
//! resumes where it stopped on the next loop of the worker.
//!
//! [`WorkShare::producer_expiry`]: super::WorkShare::producer_expiry

use std::time::Duration;

use streamhouse_clock::throttle::{Throttle, WARN_EVERY};
use streamhouse_metadata::producers::ExpiryCursor;
use tokio::time::Instant;

use super::CompactionWorker;
use crate::StorageError;

/// Rows one catalog transaction looks at (batches) or deletes (ids): a few
/// milliseconds of a commit's locks at most.
const STEP_ROWS: u32 = 1000;

/// Transactions one pass takes before it yields: 100,000 batches looked at.
const MAX_STEPS: usize = 100;

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerExpiry {
    /// (partition, producer) states removed, and their recorded batches.
    pub states_removed: u64,
    pub batches_removed: u64,
    pub ids_removed: u64,
    /// Where the pass stopped when it ran out of steps; `None` once it
    /// finished.
    pub resume: Option<ExpiryCursor>,
}

pub(super) async fn pass(
    worker: &CompactionWorker,
    mut from: ExpiryCursor,
    max_steps: usize,
) -> Result<ProducerExpiry, StorageError> {
    let expiration =
        i64::try_from(worker.config.producer_id_expiration.as_millis()).unwrap_or(i64::MAX);
    let catalog = &worker.catalog;
    let metrics = &worker.metrics.compaction;
    let mut outcome = ProducerExpiry::default();
    let mut steps = 0;
    loop {
        if steps == max_steps {
            outcome.resume = Some(from);
            return Ok(outcome);
        }
        steps += 1;
        let step = catalog
            .expire_producer_states(expiration, &from, STEP_ROWS)
            .await?;
        outcome.states_removed += step.states_removed;
        outcome.batches_removed += step.batches_removed;
        metrics.producer_states_expired.inc_by(step.states_removed);
        match step.next {
            Some(next) => from = next,
            None => break,
        }
    }
    // Ids last: a pass that yielded resumes its batches first.
    while steps < max_steps {
        steps += 1;
        let removed = catalog.expire_producer_ids(expiration, STEP_ROWS).await?;
        outcome.ids_removed += removed;
        metrics.producer_ids_expired.inc_by(removed);
        if removed < u64::from(STEP_ROWS) {
            return Ok(outcome);
        }
    }
    // Out of steps among the ids: the next pass starts afresh, past nothing.
    outcome.resume = Some(ExpiryCursor::default());
    Ok(outcome)
}

/// When the worker's loop runs the next pass, and where it resumes.
pub(super) struct Schedule {
    interval: Duration,
    next: Instant,
    resume: Option<ExpiryCursor>,
}

impl Schedule {
    /// The first pass one interval after the start, as garbage collection's:
    /// agents restarting together do not all start with it.
    pub(super) fn new(interval: Duration) -> Schedule {
        Schedule {
            interval,
            next: Instant::now() + interval,
            resume: None,
        }
    }

    /// When the loop should wake for the next pass.
    pub(super) fn next_at(&self) -> Instant {
        self.next
    }

    /// Runs a pass if one is due and the job is this agent's; a pass that
    /// yielded keeps it due, so the loop comes straight back to it.
    pub(super) async fn tick(&mut self, worker: &CompactionWorker) {
        if Instant::now() < self.next {
            return;
        }
        if !worker.share.current().producer_expiry {
            // Another agent's job now; its own pass starts afresh.
            self.resume = None;
            self.next = Instant::now() + self.interval;
            return;
        }
        let from = self.resume.take().unwrap_or_default();
        match worker.expire_producers(from, MAX_STEPS).await {
            Ok(ProducerExpiry {
                resume: Some(resume),
                ..
            }) => self.resume = Some(resume),
            Ok(_) => self.next = Instant::now() + self.interval,
            Err(e) => {
                static WARNINGS: Throttle = Throttle::new(WARN_EVERY);
                if let Some(suppressed) = WARNINGS.allow() {
                    tracing::warn!(error = %e, suppressed, "producer state expiry failed; retrying later");
                }
                self.next = Instant::now() + self.interval;
            }
        }
    }
}
