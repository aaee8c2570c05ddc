//! Self-monitoring: the periodic stats event, the status file, and the collectors'
//! handles (how to stop them, what they report).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use agent_buffer::RingStats;
use agent_config::Config;
use agent_event::{AgentUsage, Event, HostUsage, Timestamp};
use agent_pipeline::{Control, WriterStats};
use agent_transport::Counters;
use crossbeam_channel::Sender;
use serde_json::{json, Map, Value};

use super::status::{self, CollectorStatus, RingStatus, ShipperStatus, Status};
use super::{start_err, RunError, RunOptions};

/// How often the status file is refreshed.
const STATUS_EVERY: Duration = Duration::from_secs(2);

type StatusFn = Arc<dyn Fn() -> CollectorStatus + Send + Sync>;

/// A running collector: its name, how to stop it, and what it reports.
pub struct CollectorHandle {
    name: String,
    status: StatusFn,
    stop: Box<dyn FnOnce() + Send>,
}

impl std::fmt::Debug for CollectorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectorHandle")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl CollectorHandle {
    /// A collector named `name`.
    pub fn new(
        name: impl Into<String>,
        status: impl Fn() -> CollectorStatus + Send + Sync + 'static,
        stop: impl FnOnce() + Send + 'static,
    ) -> Self {
        CollectorHandle {
            name: name.into(),
            status: Arc::new(status),
            stop: Box::new(stop),
        }
    }

    /// Stops the collector and waits for it (it persists its own state).
    pub fn stop(self) {
        tracing::info!(collector = %self.name, "stopping collector");
        (self.stop)();
    }
}

/// Everything the status file and the stats event are made of.
pub struct Monitor {
    state_dir: PathBuf,
    mode: &'static str,
    started: u64,
    stats_interval: Duration,
    writer: Arc<WriterStats>,
    ring: Option<Arc<Mutex<RingStats>>>,
    ring_capacity: u64,
    shipper: Option<Arc<Counters>>,
    collectors: Vec<(String, StatusFn)>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

impl Monitor {
    /// A monitor for an agent run with `opts`.
    pub fn new(opts: &RunOptions, writer: Arc<WriterStats>) -> Self {
        Monitor {
            state_dir: opts.paths.state_dir.clone(),
            mode: if opts.console { "console" } else { "ship" },
            started: status::unix_now(),
            stats_interval: opts.stats_interval,
            writer,
            ring: None,
            ring_capacity: 0,
            shipper: None,
            collectors: Vec::new(),
        }
    }

    /// Reports the ring's statistics, published by the writer thread.
    pub fn set_ring(&mut self, stats: Arc<Mutex<RingStats>>) {
        self.ring = Some(stats);
    }

    /// The ring's configured capacity.
    pub fn set_ring_capacity(&mut self, capacity: u64) {
        self.ring_capacity = capacity;
    }

    /// Reports the shipper's counters.
    pub fn set_shipper(&mut self, counters: Arc<Counters>) {
        self.shipper = Some(counters);
    }

    /// Reports a collector that could not start.
    // Only the Linux audit collector can fail to start so far.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub fn add_failed_collector(&mut self, name: &str, error: &str) {
        let state = format!("failed: {error}");
        self.collectors.push((
            name.to_owned(),
            Arc::new(move || CollectorStatus {
                state: state.clone(),
                ..CollectorStatus::default()
            }),
        ));
    }

    /// Reports a collector's state.
    pub fn add_collector(&mut self, c: &CollectorHandle) {
        self.collectors.push((c.name.clone(), c.status.clone()));
    }

    fn snapshot(&self) -> Status {
        let ring = self.ring.as_ref().map(|r| {
            let r = r.lock().unwrap_or_else(PoisonError::into_inner).clone();
            RingStatus {
                bytes_on_disk: r.bytes_on_disk,
                capacity: self.ring_capacity,
                records_pending: r.records_pending,
                records_dropped: r.records_dropped,
                bytes_dropped: r.bytes_dropped,
                corrupt_skipped: r.corrupt_skipped,
            }
        });
        let shipper = self.shipper.as_ref().map(|c| {
            let c = c.snapshot();
            ShipperStatus {
                events_sent: c.events_sent,
                bytes_plain: c.bytes_plain,
                bytes_gzip: c.bytes_gzip,
                retries: c.retries,
                rejected: c.rejected,
                last_success_unix: c.last_success.map(status::unix),
                last_error: c.last_error,
            }
        });
        let collectors: BTreeMap<String, CollectorStatus> = self
            .collectors
            .iter()
            .map(|(n, f)| (n.clone(), f()))
            .collect();
        Status {
            pid: std::process::id(),
            version: crate::version_string(),
            mode: self.mode.to_owned(),
            started_unix: self.started,
            updated_unix: status::unix_now(),
            written_events: self.writer.events.load(Ordering::Relaxed),
            written_lines: self.writer.lines.load(Ordering::Relaxed),
            ring,
            shipper,
            collectors,
            stopped: false,
        }
    }

    fn stats_event(&self, sampler: &mut agent_host::StatsSampler) -> Event {
        let s = sampler.sample();
        let agent = AgentUsage {
            cpu_usage: s.as_ref().map(|s| s.agent_cpu_percent),
            memory_usage: s.as_ref().map(|s| s.agent_memory_percent),
            ..AgentUsage::default()
        };
        let host = HostUsage {
            cpu_usage: s.as_ref().map(|s| s.host_cpu_percent),
            memory_total: s.as_ref().map(|s| s.memory_total),
            memory_available: s.as_ref().map(|s| s.memory_available),
            memory_usage: s.as_ref().map(|s| s.memory_used_percent.round() as u64),
            ..HostUsage::default()
        };
        let mut e = Event::agent_stats(
            Timestamp::now(),
            agent,
            host,
            s.as_ref().and_then(|s| s.uptime_secs),
        );
        // Counters of the pipeline, so that drops and backlogs are visible centrally.
        let snap = self.snapshot();
        let mut props = Map::new();
        if let Some(s) = &s {
            props.insert("agent_rss_bytes".into(), json!(s.agent_rss));
        }
        props.insert("written_events".into(), json!(snap.written_events));
        props.insert("written_lines".into(), json!(snap.written_lines));
        if let Some(r) = &snap.ring {
            props.insert("ring_bytes".into(), json!(r.bytes_on_disk));
            props.insert("ring_pending".into(), json!(r.records_pending));
            props.insert("ring_dropped".into(), json!(r.records_dropped));
        }
        if let Some(t) = &snap.shipper {
            props.insert("sent".into(), json!(t.events_sent));
            props.insert("retries".into(), json!(t.retries));
            props.insert("rejected".into(), json!(t.rejected));
        }
        for (name, c) in &snap.collectors {
            props.insert(format!("{name}_produced"), json!(c.produced));
            props.insert(format!("{name}_dropped"), json!(c.dropped));
        }
        e.action.properties = props.into_iter().collect::<Map<String, Value>>();
        e
    }

    /// Runs the monitor thread until `stop` is set.
    pub fn spawn(
        self,
        control: Sender<Control>,
        stop: Arc<AtomicBool>,
    ) -> Result<JoinHandle<()>, RunError> {
        std::thread::Builder::new()
            .name("monitor".into())
            .spawn(move || self.run(&control, &stop))
            .map_err(|e| start_err("the monitor thread", e))
    }

    fn run(self, control: &Sender<Control>, stop: &AtomicBool) {
        let mut sampler = agent_host::StatsSampler::new();
        let _ = sampler.sample(); // CPU percentages need a previous sample.
        let mut last_stats = Instant::now();
        let mut last_status: Option<Instant> = None;
        let mut status_failed = false;
        while !stop.load(Ordering::Relaxed) {
            if last_status.is_none_or(|t| t.elapsed() >= STATUS_EVERY) {
                last_status = Some(Instant::now());
                match status::write(&self.state_dir, &self.snapshot()) {
                    Ok(()) => status_failed = false,
                    Err(e) if !status_failed => {
                        status_failed = true;
                        tracing::warn!(error = %e, dir = %self.state_dir.display(), "cannot write the status file");
                    }
                    Err(_) => {}
                }
            }
            if last_stats.elapsed() >= self.stats_interval {
                last_stats = Instant::now();
                let e = self.stats_event(&mut sampler);
                let _ = control.send_timeout(Control::Event(Box::new(e)), Duration::from_secs(1));
            }
            // Sleep until the next status or stats is due; stopping unparks this thread.
            let status_in =
                last_status.map_or(Duration::ZERO, |t| STATUS_EVERY.saturating_sub(t.elapsed()));
            let stats_in = self.stats_interval.saturating_sub(last_stats.elapsed());
            std::thread::park_timeout(status_in.min(stats_in).max(Duration::from_millis(10)));
        }
        // The collectors are stopped by now: say so, so that `agent status` does not
        // call the agent running while the file is still fresh.
        let mut last = self.snapshot();
        last.stopped = true;
        let _ = status::write(&self.state_dir, &last);
    }
}

/// Starts the log-file tailer on a thread of its own.
pub fn start_logfile(
    config: &Config,
    state_dir: &Path,
    control: Sender<Control>,
) -> Result<CollectorHandle, RunError> {
    let specs = config
        .logfiles
        .iter()
        .map(|l| agent_logfile::WatchSpec {
            pattern: l.filepath.clone(),
            intake_key: l.intakekey.clone(),
        })
        .collect();
    let mut tailer = agent_logfile::Tailer::new(
        specs,
        state_dir.join("logfile"),
        agent_logfile::Options::default(),
    )
    .map_err(|e| start_err("the log-file collector", e))?;
    let stop = tailer.stop_handle();
    let stats = tailer.stats();
    let state = Arc::new(Mutex::new("running".to_owned()));
    let thread_state = state.clone();
    let handle = std::thread::Builder::new()
        .name("logfile".into())
        .spawn(move || {
            let mut sink = super::lines::WriterLineSink::new(control);
            let outcome = match tailer.run(&mut sink) {
                Ok(()) => "stopped".to_owned(),
                Err(e) => {
                    tracing::error!(error = %e, "the log-file collector stopped");
                    format!("failed: {e}")
                }
            };
            *thread_state.lock().unwrap_or_else(PoisonError::into_inner) = outcome;
        })
        .map_err(|e| start_err("the log-file thread", e))?;
    Ok(CollectorHandle::new(
        "logfile",
        move || CollectorStatus {
            state: state.lock().unwrap_or_else(PoisonError::into_inner).clone(),
            produced: stats.lines.load(Ordering::Relaxed),
            dropped: 0,
        },
        move || {
            stop.stop();
            let _ = handle.join();
        },
    ))
}

/// Starts the Linux kernel audit collector (needs root; takes the audit netlink socket).
#[cfg(target_os = "linux")]
pub fn start_audit(
    config: &Config,
    events: Sender<Box<Event>>,
) -> Result<CollectorHandle, RunError> {
    use agent_linux_audit::collector::{Collector, CollectorConfig, RulesSource};

    let cfg = CollectorConfig {
        hash_policy: agent_host::HashPolicy::new(
            config.hashes_excluded_paths.iter().cloned(),
            agent_host::HashPolicy::DEFAULT_MAX_SIZE,
        ),
        rules: std::env::var_os("ENDPOINT_AGENT_AUDIT_RULES").map_or(RulesSource::Default, |p| {
            RulesSource::File(PathBuf::from(p))
        }),
        ..CollectorConfig::default()
    };
    let collector =
        Collector::start(cfg, events).map_err(|e| start_err("the audit collector", e))?;
    for skipped in collector.skipped_rules() {
        tracing::warn!(line = skipped.line, rule = %skipped.text, reason = %skipped.reason, "audit rule skipped");
    }
    tracing::info!(rules = collector.loaded_rules(), "audit collector started");
    let shared = Arc::new(Mutex::new(Some(collector)));
    let for_status = shared.clone();
    Ok(CollectorHandle::new(
        "audit",
        move || {
            let guard = for_status.lock().unwrap_or_else(PoisonError::into_inner);
            match guard.as_ref() {
                Some(c) => {
                    let s = c.stats();
                    CollectorStatus {
                        state: if c.is_running() {
                            "running".to_owned()
                        } else {
                            "failed: the audit reader stopped".to_owned()
                        },
                        produced: s.emitted,
                        dropped: s.dropped + s.kernel_lost,
                    }
                }
                None => CollectorStatus {
                    state: "stopped".to_owned(),
                    ..CollectorStatus::default()
                },
            }
        },
        move || {
            let taken = shared.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(c) = taken {
                match c.stop() {
                    Ok(stats) => tracing::info!(
                        emitted = stats.emitted,
                        dropped = stats.dropped,
                        kernel_lost = stats.kernel_lost,
                        "audit collector stopped; rules removed and audit state restored"
                    ),
                    Err(e) => tracing::error!(error = %e, "stopping the audit collector"),
                }
            }
        },
    ))
}
