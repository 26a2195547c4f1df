//! Restart backoff for a crashing plugin process: 1 s after the first
//! failure, doubling up to 60 s, back to nothing after a success.

use std::time::Duration;

use tokio::time::Instant;

/// The first delay.
const FIRST: Duration = Duration::from_secs(1);
/// The longest delay.
const LONGEST: Duration = Duration::from_secs(60);

/// Consecutive failures and when the next start is allowed.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    failures: u32,
    until: Option<Instant>,
}

impl Backoff {
    /// Records a failure at `now`; returns the delay before the next start.
    pub(crate) fn failed(&mut self, now: Instant) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let doublings = self.failures.saturating_sub(1).min(16);
        let delay = FIRST.saturating_mul(1 << doublings).min(LONGEST);
        self.until = Some(now + delay);
        delay
    }

    /// Forgets earlier failures.
    pub(crate) fn reset(&mut self) {
        *self = Backoff::default();
    }

    /// How long a start must still wait at `now`, if at all.
    pub(crate) fn remaining(&self, now: Instant) -> Option<Duration> {
        self.until
            .filter(|until| *until > now)
            .map(|until| until - now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_a_cap_and_resets() {
        let now = Instant::now();
        let mut backoff = Backoff::default();
        assert_eq!(backoff.remaining(now), None);
        let delays: Vec<u64> = (0..9).map(|_| backoff.failed(now).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff.remaining(now), Some(Duration::from_secs(60)));
        assert_eq!(backoff.remaining(now + Duration::from_secs(60)), None);
        backoff.reset();
        assert_eq!(backoff.remaining(now), None);
        assert_eq!(backoff.failed(now), Duration::from_secs(1));
    }
}
