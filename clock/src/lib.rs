//! The one clock StreamHouse reads time from.
//!
//! Everything whose behaviour depends on time — group sessions and rebalance
//! deadlines, compaction and garbage-collection ages, append timestamps, and
//! the leases and retention to come — takes a [`SharedClock`] instead of
//! asking the operating system, so a test can drive time with a
//! [`ManualClock`] rather than sleep through it.
//!
//! Two readings, because they answer different questions: [`Clock::now_ms`] is
//! wall-clock time in milliseconds since the Unix epoch (what Kafka timestamps
//! and catalog rows carry, comparable across agents), and [`Clock::now`] is a
//! monotonic [`Instant`] (what local deadlines are measured with; it never
//! jumps when the wall clock is corrected).
//!
//! Sleeping is left to the runtime: a timer task wakes on its own schedule and
//! then asks the clock what time it is, so a manual clock decides what the
//! task finds.
//!
//! [`throttle`] holds repeated warnings to one per period.

pub mod throttle;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// A monotonic instant, for deadlines and ages measured on this agent.
    fn now(&self) -> Instant;
}

/// The clock every component shares.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's clocks.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// Reads the operating system's clocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        unix_ms(SystemTime::now())
    }

    fn now(&self) -> Instant {
        Instant::now()
    }
}

fn unix_ms(time: SystemTime) -> i64 {
    // A clock set before 1970 reads as the epoch; one beyond i64 milliseconds
    // (292 million years) saturates. Neither happens on a working machine,
    // and neither is worth a panic.
    time.duration_since(UNIX_EPOCH)
        .map(|since| i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A clock that moves only when told to: both readings start where the system
/// clocks were when it was made and advance together by [`ManualClock::advance`].
#[derive(Debug)]
pub struct ManualClock {
    start_ms: i64,
    start: Instant,
    /// A std mutex: it is held for an addition, never across an await.
    elapsed: Mutex<Duration>,
}

impl ManualClock {
    pub fn new() -> Arc<ManualClock> {
        Arc::new(ManualClock {
            start_ms: unix_ms(SystemTime::now()),
            start: Instant::now(),
            elapsed: Mutex::new(Duration::ZERO),
        })
    }

    /// Moves both readings forward by `by`.
    pub fn advance(&self, by: Duration) {
        *self.lock() += by;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Duration> {
        // The guarded value is a plain Duration: a panic elsewhere cannot leave
        // it half-written, so a poisoned lock is still good.
        self.elapsed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        let elapsed = i64::try_from(self.lock().as_millis()).unwrap_or(i64::MAX);
        self.start_ms.saturating_add(elapsed)
    }

    fn now(&self) -> Instant {
        self.start + *self.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_both_readings_together() {
        let clock = ManualClock::new();
        let (ms, instant) = (clock.now_ms(), clock.now());
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!((clock.now_ms(), clock.now()), (ms, instant));
        clock.advance(Duration::from_millis(1500));
        assert_eq!(clock.now_ms(), ms + 1500);
        assert_eq!(clock.now() - instant, Duration::from_millis(1500));
    }

    #[test]
    fn the_system_clock_reads_the_wall_clock_in_milliseconds() {
        let before = unix_ms(SystemTime::now());
        let read = SystemClock.now_ms();
        let after = unix_ms(SystemTime::now());
        assert!(
            (before..=after).contains(&read),
            "{before} <= {read} <= {after}"
        );
        // Sanity: after 2020-01-01, so milliseconds and not seconds.
        assert!(read > 1_577_836_800_000);
    }

    #[test]
    fn times_before_the_epoch_read_as_zero() {
        assert_eq!(unix_ms(UNIX_EPOCH - Duration::from_secs(1)), 0);
    }
}
