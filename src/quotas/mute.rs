//! Kafka's muting of a throttled client's connection: once a response tells
//! the client to wait (`throttle_time_ms`), the connection reads no further
//! request until the wait is over. Clients that honour the throttle never
//! notice; one that does not is held back all the same.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// One connection's mute; shared by its reader and its handlers.
#[derive(Default, Debug)]
pub struct Mute(Mutex<Option<Instant>>);

impl Mute {
    /// Mutes the connection for `throttle` from now (a longer mute already
    /// set stays).
    pub fn mute_for(&self, throttle: Duration) {
        if throttle.is_zero() {
            return;
        }
        let until = Instant::now() + throttle;
        let mut muted = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *muted = Some(muted.map_or(until, |earlier| earlier.max(until)));
    }

    /// Waits out the mute, if any.
    pub async fn wait(&self) {
        let until = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_muted_connection_waits_out_the_longest_throttle() {
        let mute = Mute::default();
        let start = Instant::now();
        mute.wait().await;
        assert!(start.elapsed() < Duration::from_millis(50));
        mute.mute_for(Duration::from_millis(300));
        mute.mute_for(Duration::from_millis(100));
        mute.wait().await;
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(300), "{waited:?}");
        // Waited out: no longer muted.
        mute.wait().await;
        assert!(start.elapsed() - waited < Duration::from_millis(50));
    }
}
