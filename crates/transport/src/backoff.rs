//! Exponential backoff with jitter for transient intake failures.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher as _, Hasher as _};
use std::time::Duration;

/// Doubling delays from `min` to `max`; each delay is drawn uniformly in
/// `[nominal * 3/4, nominal]` (never below `min`) so that thousands of agents that lost
/// the intake together do not come back in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
    seed: u64,
}

impl Backoff {
    /// A backoff with no failure yet.
    pub fn new(min: Duration, max: Duration) -> Self {
        let seed = RandomState::new().build_hasher().finish() | 1;
        Backoff {
            min,
            max: max.max(min),
            failures: 0,
            seed,
        }
    }

    /// Forgets past failures (after a success).
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Failures counted since the last [`Backoff::reset`].
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The delay before the next attempt, and counts one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let factor = 1u32 << self.failures.min(20);
        self.failures = self.failures.saturating_add(1);
        let nominal = self.min.saturating_mul(factor).min(self.max);
        self.jitter(nominal).max(self.min)
    }

    /// `nominal` minus up to a quarter of it, drawn uniformly.
    pub fn jitter(&mut self, nominal: Duration) -> Duration {
        // xorshift64: cheap, good enough for jitter.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let quarter = nominal / 4;
        nominal - quarter.mul_f64((self.seed % 1_000_000) as f64 / 1_000_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_bounded_jitter() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
        let mut nominal = Duration::from_secs(1);
        for _ in 0..15 {
            let d = b.next_delay();
            assert!(
                d <= nominal && d >= (nominal * 3 / 4).max(Duration::from_secs(1)),
                "{d:?} vs {nominal:?}"
            );
            nominal = (nominal * 2).min(Duration::from_secs(300));
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
    }
}
