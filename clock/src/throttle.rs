//! Throttling a repeated warning: at most one line per period for one place in
//! the code, saying how many were left out since the last.
//!
//! A failure outside the broker (an object store or a catalog that is down, a
//! process out of file descriptors) fails every request, accept or retry until
//! it ends, and a warning per failure buries everything else in the log. One
//! line per period still says the failure goes on, and the count of those
//! suppressed says how often it happened.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a throttled warning is written at most, unless a call site picks
/// another period: often enough to show a failure is still going on, rarely
/// enough that an outage costs a few lines a minute per call site.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

/// The throttle of one call site; a `static` beside the warning it guards.
///
/// ```
/// use streamhouse_clock::throttle::{Throttle, WARN_EVERY};
///
/// static ACCEPT_FAILED: Throttle = Throttle::new(WARN_EVERY);
/// # let error = "too many open files";
/// if let Some(suppressed) = ACCEPT_FAILED.allow() {
///     eprintln!("accept failed: {error} ({suppressed} more since the last report)");
/// }
/// ```
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// When the last warning was let through.
    last: Option<Instant>,
    /// Warnings held back since then.
    suppressed: u64,
}

impl Throttle {
    pub const fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            state: Mutex::new(State {
                last: None,
                suppressed: 0,
            }),
        }
    }

    /// Whether to write this warning now: `Some(n)`, with `n` the warnings
    /// held back since the last one written, or `None` to hold it back.
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(Instant::now())
    }

    /// [`Throttle::allow`] at `now` (a monotonic reading, e.g. a clock's
    /// [`crate::Clock::now`]).
    pub fn allow_at(&self, now: Instant) -> Option<u64> {
        // A panic elsewhere while holding the lock leaves two plain numbers,
        // valid whatever they are; a warning is not worth a panic.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let due = match state.last {
            None => true,
            Some(last) => now.saturating_duration_since(last) >= self.every,
        };
        if due {
            state.last = Some(now);
            Some(std::mem::take(&mut state.suppressed))
        } else {
            state.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Clock, ManualClock};

    #[test]
    fn one_warning_per_period_with_the_count_of_those_held_back() {
        let clock = ManualClock::new();
        let throttle = Throttle::new(Duration::from_secs(10));

        assert_eq!(throttle.allow_at(clock.now()), Some(0));
        for _ in 0..5 {
            clock.advance(Duration::from_secs(1));
            assert_eq!(throttle.allow_at(clock.now()), None);
        }
        clock.advance(Duration::from_millis(4_999));
        assert_eq!(throttle.allow_at(clock.now()), None);
        clock.advance(Duration::from_millis(1));
        assert_eq!(throttle.allow_at(clock.now()), Some(6));

        // A quiet spell: the next failure is reported at once, nothing held back.
        clock.advance(Duration::from_secs(60));
        assert_eq!(throttle.allow_at(clock.now()), Some(0));
    }

    #[test]
    fn call_sites_are_throttled_apart() {
        let clock = ManualClock::new();
        let accept = Throttle::new(WARN_EVERY);
        let sweep = Throttle::new(WARN_EVERY);
        assert_eq!(accept.allow_at(clock.now()), Some(0));
        assert_eq!(accept.allow_at(clock.now()), None);
        assert_eq!(sweep.allow_at(clock.now()), Some(0));
    }

    #[test]
    fn usable_as_a_static() {
        static WARNINGS: Throttle = Throttle::new(WARN_EVERY);
        assert_eq!(WARNINGS.allow(), Some(0));
        assert_eq!(WARNINGS.allow(), None);
    }
}
