//! A rate (bytes, or nanoseconds of work) sampled as Kafka samples quota
//! metrics: `SAMPLES` windows of `SAMPLE` (its `quota.window.num` and
//! `quota.window.size.seconds` defaults), the rate measured over the windows
//! kept, and never over less than all but one of them, so a client's first
//! burst is not judged on a few milliseconds.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

const SAMPLES: u32 = 11;
/// One sample's window.
pub const SAMPLE: Duration = Duration::from_secs(1);
/// The shortest time a rate is measured over.
pub const MIN_WINDOW: Duration = Duration::from_secs(SAMPLE.as_secs() * (SAMPLES as u64 - 1));
/// The longest: every sample kept.
pub const MAX_WINDOW: Duration = Duration::from_secs(SAMPLE.as_secs() * SAMPLES as u64);

/// The samples of one client's traffic: (window start, units), oldest first.
#[derive(Default, Debug)]
pub struct Rate {
    samples: VecDeque<(Instant, u64)>,
}

impl Rate {
    pub fn record(&mut self, bytes: u64, now: Instant) {
        self.expire(now);
        match self.samples.back_mut() {
            Some((start, total)) if now.saturating_duration_since(*start) < SAMPLE => {
                *total = total.saturating_add(bytes);
            }
            _ => self.samples.push_back((now, bytes)),
        }
    }

    /// Whether every sample has expired: the rate is zero and stays so
    /// until the client sends again.
    pub fn is_idle(&self, now: Instant) -> bool {
        self.samples
            .back()
            .is_none_or(|(start, _)| now.saturating_duration_since(*start) >= MAX_WINDOW)
    }

    pub fn unrecord(&mut self, bytes: u64) {
        if let Some((_, total)) = self.samples.back_mut() {
            *total = total.saturating_sub(bytes);
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some((start, _)) = self.samples.front() {
            if now.saturating_duration_since(*start) >= MAX_WINDOW {
                self.samples.pop_front();
            } else {
                break;
            }
        }
    }

    /// The time the rate is measured over.
    fn window(&self, now: Instant) -> Duration {
        let elapsed = self.samples.front().map_or(Duration::ZERO, |(start, _)| {
            now.saturating_duration_since(*start)
        });
        elapsed.max(MIN_WINDOW)
    }

    /// How long the client waits so that its rate comes back to `quota`
    /// units per second: Kafka's (rate - quota) / quota × window, at most the
    /// whole window.
    pub fn throttle(&self, quota: f64, now: Instant) -> Duration {
        if quota <= 0.0 {
            return Duration::ZERO;
        }
        let window = self.window(now);
        let bytes: u64 = self.samples.iter().map(|(_, bytes)| bytes).sum();
        let rate = bytes as f64 / window.as_secs_f64();
        if rate <= quota {
            return Duration::ZERO;
        }
        let throttle = window.mul_f64((rate - quota) / quota);
        throttle.min(MAX_WINDOW)
    }
}
