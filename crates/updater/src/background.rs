//! The updater inside the running agent: a thread that confirms a freshly installed version
//! once it has run healthy for the grace period, and (with `AutoUpdate: true`) checks for
//! releases shortly after start and then every few hours, with random jitter so a fleet
//! does not ask all at once.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher as _, Hasher as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use semver::Version;

use crate::policy::Request;
use crate::swap::{confirm, Health, Layout};
use crate::updater::{Outcome, UpdaterConfig};

/// When the background thread acts.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Delay before the first check after start (plus up to `jitter`).
    pub first_check: Duration,
    /// Time between checks (plus or minus up to `jitter`).
    pub interval: Duration,
    /// Random spread added to each delay.
    pub jitter: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            first_check: Duration::from_secs(60),
            interval: Duration::from_secs(6 * 3600),
            jitter: Duration::from_secs(3600),
        }
    }
}

/// What the background thread works with.
#[derive(Debug, Clone)]
pub struct Background {
    /// The installation.
    pub layout: Layout,
    /// This agent's version.
    pub running: Version,
    /// `Some(health)` when this start is an updated version on probation (see
    /// [`crate::StartAction::ConfirmAfterGrace`]).
    pub probation: Option<Health>,
    /// `Some` when `AutoUpdate` is on: what to check. `None`: never checks on its own.
    pub updater: Option<UpdaterConfig>,
    /// When to check.
    pub schedule: Schedule,
}

/// The running background thread; [`Running::stop`] ends it.
#[derive(Debug)]
pub struct Running {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Running {
    /// Stops the thread (an ongoing check finishes first) and waits for it.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.thread().unpark();
        let _ = self.thread.join();
    }
}

/// A random duration in `0..=max`.
fn jitter(max: Duration) -> Duration {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    let ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(h.finish() % ms.saturating_add(1))
}

impl Background {
    /// Starts the thread. `healthy` says whether collectors and shipper work;
    /// `restart` is called (once) when the agent must restart: a new version was installed,
    /// or this version on probation stayed unhealthy past [`Health::max_unconfirmed`] (the
    /// next start then rolls it back).
    pub fn spawn(
        self,
        healthy: impl Fn() -> bool + Send + 'static,
        restart: impl FnOnce(&str) + Send + 'static,
    ) -> std::io::Result<Running> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("updater".into())
            .spawn(move || self.run(&flag, healthy, restart))?;
        Ok(Running { stop, thread })
    }

    fn run(self, stop: &AtomicBool, healthy: impl Fn() -> bool, restart: impl FnOnce(&str)) {
        let started = Instant::now();
        let mut confirm_at = self.probation.map(|h| started + h.grace);
        let mut check_at = self
            .updater
            .as_ref()
            .map(|_| started + self.schedule.first_check + jitter(self.schedule.jitter));
        if self.updater.is_none() {
            tracing::info!("automatic updates are off (AutoUpdate: false)");
        }
        loop {
            let Some(due) = [confirm_at, check_at].into_iter().flatten().min() else {
                return;
            };
            // Sleep until due or stopped.
            while Instant::now() < due {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::park_timeout(due.saturating_duration_since(Instant::now()));
            }
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let now = Instant::now();
            if let (Some(at), Some(health)) = (confirm_at, self.probation) {
                if now >= at {
                    if healthy() {
                        match confirm(&self.layout, &self.running) {
                            Ok(_) => {}
                            Err(e) => {
                                tracing::error!(error = %e, "cannot record the update's confirmation")
                            }
                        }
                        confirm_at = None;
                    } else if now.duration_since(started) >= health.max_unconfirmed {
                        tracing::error!(version = %self.running, "the updated version is still not healthy; restarting so that the previous version is restored");
                        restart("the updated version did not become healthy");
                        return;
                    } else {
                        tracing::warn!(version = %self.running, "the updated version is not healthy yet; its confirmation waits");
                        confirm_at = Some(now + health.grace.min(Duration::from_secs(60)));
                    }
                    continue;
                }
            }
            if let (Some(at), Some(updater)) = (check_at, self.updater.as_ref()) {
                if now >= at {
                    if confirm_at.is_some() {
                        // No new update while this one is on probation.
                        check_at = Some(now + self.schedule.interval);
                        continue;
                    }
                    if let Ok(Outcome::Installed { to, .. }) =
                        updater.check_blocking(&Request::default())
                    {
                        restart(&format!("version {to} was installed"));
                        return;
                    }
                    let spread = jitter(self.schedule.jitter.saturating_mul(2));
                    check_at = Some(
                        now + self.schedule.interval.saturating_sub(self.schedule.jitter) + spread,
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_range_and_varies() {
        let max = Duration::from_secs(10);
        let samples: Vec<Duration> = (0..50).map(|_| jitter(max)).collect();
        assert!(samples.iter().all(|d| *d <= max));
        assert!(
            samples.iter().any(|d| *d != samples[0]),
            "no spread: {samples:?}"
        );
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }
}
