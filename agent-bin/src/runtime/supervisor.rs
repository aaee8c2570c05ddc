//! Supervision of the agent's threads: none may die silently.
//!
//! The main thread checks the components twice a second while it waits for a stop:
//!
//! - the **shipper** thread ending on its own (an error it could not handle, a panic)
//!   is restarted on a new ring reader, which resumes after the last acknowledged
//!   record, after a backoff (1 s doubling to 60 s);
//! - a **collector** whose report turned `failed` while it ran is stopped and started
//!   again with a new sink, with the same backoff;
//! - the **writer** thread ending on its own cannot be restarted (it owns the ring's
//!   writing end): the agent stops and exits non-zero.
//!
//! A component that fails [`MAX_FAILURES`] times within [`WINDOW`] is not restarted
//! again: the agent stops in order and exits non-zero, so that the service manager
//! (systemd, the Windows SCM, launchd) starts a fresh process. While a component waits
//! for its restart, it is listed in the status as a reason the agent is degraded
//! (`agent status` exits non-zero).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use agent_event::Event;
use agent_pipeline::{Collector, CollectorState, Control, Report, Sink};
use crossbeam_channel::Sender;

use super::shipper::ShipperHandle;

/// How often the main thread checks the components.
pub const CHECK_EVERY: Duration = Duration::from_millis(500);
/// Failures of one component within [`WINDOW`] after which the agent exits instead.
pub const MAX_FAILURES: usize = 5;
/// The window [`MAX_FAILURES`] is counted over.
pub const WINDOW: Duration = Duration::from_secs(600);
const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(60);

/// Recent failures of one component and when it may be restarted.
#[derive(Debug, Default)]
struct Budget {
    failures: VecDeque<Instant>,
    /// Set while the component is down, waiting for its restart.
    restart_at: Option<Instant>,
    last_error: String,
}

impl Budget {
    /// Records a failure; `false` when the component failed too often to try again.
    fn failed(&mut self, error: String) -> bool {
        let now = Instant::now();
        while self
            .failures
            .front()
            .is_some_and(|t| now.duration_since(*t) > WINDOW)
        {
            self.failures.pop_front();
        }
        self.failures.push_back(now);
        let n = self.failures.len();
        if n >= MAX_FAILURES {
            return false;
        }
        let delay = FIRST_DELAY
            .saturating_mul(1 << (n - 1).min(6))
            .min(MAX_DELAY);
        self.restart_at = Some(now + delay);
        self.last_error = error;
        true
    }

    fn due(&self) -> bool {
        self.restart_at.is_some_and(|t| Instant::now() >= t)
    }

    fn problem(&self, what: &str) -> Option<String> {
        self.restart_at.map(|t| {
            format!(
                "{what}: stopped ({}), restarting in {}s (failure {} of {MAX_FAILURES} allowed in {} min)",
                self.last_error,
                t.saturating_duration_since(Instant::now()).as_secs(),
                self.failures.len(),
                WINDOW.as_secs() / 60
            )
        })
    }
}

/// Running collectors with their reports.
pub type Collectors = Vec<(Box<dyn Collector>, Arc<Report>)>;

/// Starts a new shipper (on a new ring reader).
pub type SpawnShipper = Box<dyn FnMut() -> Result<ShipperHandle, String>>;

/// The supervised components and their restart budgets.
pub struct Supervisor {
    shipper: Option<ShipperHandle>,
    spawn_shipper: Option<SpawnShipper>,
    shipper_budget: Budget,
    collectors: Vec<(Box<dyn Collector>, Arc<Report>, Budget)>,
    events: Sender<Box<Event>>,
    control: Sender<Control>,
    problems: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("collectors", &self.collectors.len())
            .finish_non_exhaustive()
    }
}

impl Supervisor {
    /// Supervises the running `shipper` (restarted with `spawn_shipper`) and
    /// `collectors` (restarted with new sinks on `events` and `control`). `problems` is
    /// what the monitor reports as degraded.
    pub fn new(
        shipper: Option<(ShipperHandle, SpawnShipper)>,
        collectors: Collectors,
        events: Sender<Box<Event>>,
        control: Sender<Control>,
        problems: Arc<Mutex<Vec<String>>>,
    ) -> Self {
        let (shipper, spawn_shipper) = match shipper {
            Some((handle, spawn)) => (Some(handle), Some(spawn)),
            None => (None, None),
        };
        Supervisor {
            shipper,
            spawn_shipper,
            shipper_budget: Budget::default(),
            collectors: collectors
                .into_iter()
                .map(|(c, r)| (c, r, Budget::default()))
                .collect(),
            events,
            control,
            problems,
        }
    }

    /// Checks every component once: restarts what is due, and returns why the agent
    /// must exit when something cannot be helped.
    pub fn check(&mut self, writer: &JoinHandle<Result<(), String>>) -> Result<(), String> {
        if writer.is_finished() {
            return Err("the writer thread stopped".to_owned());
        }
        self.check_shipper()?;
        self.check_collectors()?;
        let mut problems: Vec<String> =
            self.shipper_budget.problem("shipper").into_iter().collect();
        for (collector, _, budget) in &self.collectors {
            problems.extend(budget.problem(&format!("collector {}", collector.name())));
        }
        *self.problems.lock().unwrap_or_else(PoisonError::into_inner) = problems;
        Ok(())
    }

    fn check_shipper(&mut self) -> Result<(), String> {
        if let Some((_, handle)) = &self.shipper {
            if !handle.is_finished() {
                return Ok(());
            }
            let why = match self.shipper.take().map(|(_, h)| h.join()) {
                Some(Err(_)) => "it panicked".to_owned(),
                _ => "its error is in the log above".to_owned(),
            };
            tracing::error!("the shipper stopped on its own ({why})");
            if !self.shipper_budget.failed(why) {
                return Err(format!(
                    "the shipper failed {MAX_FAILURES} times within {} min",
                    WINDOW.as_secs() / 60
                ));
            }
            tracing::warn!(
                failures = self.shipper_budget.failures.len(),
                "restarting the shipper after a backoff"
            );
            return Ok(());
        }
        if !self.shipper_budget.due() {
            return Ok(());
        }
        let Some(spawn) = self.spawn_shipper.as_mut() else {
            return Ok(());
        };
        match spawn() {
            Ok(handle) => {
                tracing::warn!(
                    "the shipper restarted; records read but not acknowledged are sent again"
                );
                self.shipper = Some(handle);
                self.shipper_budget.restart_at = None;
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "the shipper could not restart");
                if self.shipper_budget.failed(e) {
                    Ok(())
                } else {
                    Err(format!(
                        "the shipper failed {MAX_FAILURES} times within {} min",
                        WINDOW.as_secs() / 60
                    ))
                }
            }
        }
    }

    fn check_collectors(&mut self) -> Result<(), String> {
        for (collector, report, budget) in &mut self.collectors {
            let name = collector.name().to_owned();
            if budget.restart_at.is_none() {
                let CollectorState::Failed(reason) = report.state() else {
                    continue;
                };
                tracing::error!(collector = %name, reason = %reason, "a collector stopped on an error");
                if !budget.failed(reason) {
                    return Err(format!(
                        "collector {name} failed {MAX_FAILURES} times within {} min",
                        WINDOW.as_secs() / 60
                    ));
                }
                continue;
            }
            if !budget.due() {
                continue;
            }
            if let Err(e) = collector.stop() {
                tracing::warn!(collector = %name, error = %e, "stopping a failed collector");
            }
            let sink = Sink::new(
                self.events.clone(),
                self.control.clone(),
                collector.overflow(),
                report.clone(),
            );
            match collector.start(sink) {
                Ok(()) => {
                    if matches!(
                        report.state(),
                        CollectorState::Failed(_) | CollectorState::Starting
                    ) {
                        report.set_state(CollectorState::Running);
                    }
                    budget.restart_at = None;
                    tracing::warn!(collector = %name, "collector restarted");
                }
                Err(e) => {
                    tracing::error!(collector = %name, error = %e, "a collector could not restart");
                    report.fail(&e);
                    if !budget.failed(e.to_string()) {
                        return Err(format!(
                            "collector {name} failed {MAX_FAILURES} times within {} min",
                            WINDOW.as_secs() / 60
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The reports of the supervised collectors.
    pub fn reports(&self) -> Vec<Arc<Report>> {
        self.collectors.iter().map(|(_, r, _)| r.clone()).collect()
    }

    /// Hands back the components for the orderly shutdown: the collectors (to stop in
    /// reverse start order) and the shipper, if one runs.
    pub fn into_parts(self) -> (Collectors, Option<ShipperHandle>) {
        let collectors = self
            .collectors
            .into_iter()
            .map(|(c, r, _)| (c, r))
            .collect();
        (collectors, self.shipper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_the_budget_runs_out() {
        let mut b = Budget::default();
        assert!(b.failed("x".into()));
        let first = b
            .restart_at
            .unwrap()
            .saturating_duration_since(Instant::now());
        assert!(first <= FIRST_DELAY && first > FIRST_DELAY / 2, "{first:?}");
        assert!(b.problem("shipper").unwrap().contains("restarting in"));
        assert!(b.failed("x".into()));
        let second = b
            .restart_at
            .unwrap()
            .saturating_duration_since(Instant::now());
        assert!(second > FIRST_DELAY, "{second:?}");
        for _ in 2..MAX_FAILURES - 1 {
            assert!(b.failed("x".into()));
        }
        assert!(
            !b.failed("x".into()),
            "the fifth failure in the window gives up"
        );
    }
}
