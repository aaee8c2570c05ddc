//! `agent run`: the composition of collectors, writer thread, ring and shipper.
//!
//! ```text
//! collectors ──Event──▶ bounded channel ──▶ writer thread ──▶ ring ──▶ shipper ──▶ intake
//! log tailer ──lines (waits for the answer)──▶ ┘                (or stdout with --console)
//! ```
//!
//! Shutdown (SIGTERM, SIGINT, service stop): stop the collectors, let the writer append
//! what is queued and flush, then give the shipper one last short delivery attempt.

pub mod collectors;
pub mod shipper;
pub mod signals;
pub mod source;
pub mod stores;
pub mod supervisor;

/// The status file's schema and helpers (owned by agent-pipeline; `agent status` reads it).
pub use agent_pipeline::status;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use agent_buffer::{Ring, RingOptions, RingStats};
use agent_config::{Config, Paths};
use agent_event::Event;
use agent_pipeline::agent_log::{EventLayer, LogFile};
use agent_pipeline::{
    run_writer, Collector, CollectorState, Control, Monitor, RecordStore, Report, RingStatus,
    ShipperStatus, Sink, Stamp, WriterConfig, WriterStats,
};
use agent_transport::Counters;
use crossbeam_channel::{bounded, Receiver, Sender};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Capacity of the collectors' event channel: about a second of a very busy host, so
/// that a slow disk never stalls the kernel audit reader.
const EVENT_CHANNEL: usize = 16_384;
/// Capacity of the control channel (log-file batches, agent events).
const CONTROL_CHANNEL: usize = 1_024;

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Print events as JSON lines on stdout instead of shipping them.
    pub console: bool,
    /// config.yaml to use instead of the installed one.
    pub config: Option<PathBuf>,
    /// Well-known paths (from the environment: root prefix and overrides).
    pub paths: Paths,
    /// Interval of the stats event.
    pub stats_interval: Duration,
    /// Extra CA file trusted for the intake (corporate TLS inspection, test intakes).
    pub extra_ca_file: Option<PathBuf>,
}

/// Why the agent could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration is unusable.
    #[error("{0}")]
    Config(String),
    /// A component could not start.
    #[error("cannot start {what}: {message}")]
    Start {
        /// The component.
        what: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The agent stopped to restart into another binary (an update was installed, or an
    /// updated version stayed unhealthy): a non-zero exit, so that every service manager
    /// starts it again (the Windows SCM restarts a service only as a failure action).
    #[error("restarting for an update: {0}")]
    Restart(String),
    /// The writer thread failed (the ring is unusable).
    #[error("writing events failed: {0}")]
    Writer(String),
    /// A component failed and restarting it did not help: a non-zero exit, so that the
    /// service manager starts a fresh process.
    #[error("stopping because a component keeps failing: {0}")]
    Supervision(String),
}

fn start_err(what: &'static str, e: impl std::fmt::Display) -> RunError {
    RunError::Start {
        what,
        message: e.to_string(),
    }
}

/// The configuration and the loader's warnings (logged once logging is up).
fn load_config(opts: &RunOptions) -> Result<(Config, Vec<String>), RunError> {
    let path = opts
        .config
        .clone()
        .unwrap_or_else(|| opts.paths.config_file.clone());
    if opts.console && opts.config.is_none() && !path.exists() {
        // Console mode needs no installation: no intake key, defaults for the rest.
        return Ok((Config::default(), Vec::new()));
    }
    let (config, warnings) = Config::load(&path).map_err(|e| RunError::Config(e.to_string()))?;
    Ok((config, warnings.iter().map(ToString::to_string).collect()))
}

/// Runs the agent until `stop` receives a message (or its senders are gone); returns
/// after an orderly shutdown.
pub fn run(opts: RunOptions, stop: Receiver<()>) -> Result<(), RunError> {
    // Before anything else, config included: an updated version on probation counts its
    // starts, or is rolled back (then exit so the service manager starts the restored one).
    let (probation, update_note) = match opts.console {
        true => (None, None),
        false => crate::cmd::update::at_start(&opts.paths)
            .map_err(|m| start_err("the updated agent", m))?,
    };
    let (config, config_warnings) = load_config(&opts)?;
    let intake_key = match (&config.intake_key, opts.console) {
        (Some(k), _) => k.clone(),
        (None, true) => String::new(),
        (None, false) => {
            return Err(RunError::Config(format!(
                "no IntakeKey in {}: install the agent with `agent install --intake-key KEY`, \
                 or run `agent run --console` to print events instead of shipping them",
                opts.config
                    .as_ref()
                    .unwrap_or(&opts.paths.config_file)
                    .display()
            )))
        }
    };

    let (event_tx, event_rx) = bounded::<Box<Event>>(EVENT_CHANNEL);
    let (control_tx, control_rx) = bounded::<Control>(CONTROL_CHANNEL);
    init_logging(&opts, control_tx.clone())?;
    tracing::info!(version = %crate::version_string(), console = opts.console, "agent starting");
    if let Some(note) = update_note {
        tracing::warn!("update: {note}");
    }
    // In the agent log and as agent-log events, so that a setting that does nothing is
    // visible centrally too; on stderr as well when the log goes to a file.
    for w in &config_warnings {
        if !opts.console {
            eprintln!("agent: warning: {w}");
        }
        tracing::warn!("configuration: {w}");
    }

    let state_dir = opts.paths.state_dir.clone();
    let stamp = stamp(&state_dir, opts.console)?;
    let writer_cfg = WriterConfig::new(intake_key, stamp);
    let writer_stats = Arc::new(WriterStats::default());

    let mut monitor = Monitor::new(
        state_dir.clone(),
        opts.console,
        crate::version_string(),
        opts.stats_interval,
        writer_stats.clone(),
    );

    // What the supervisor reports as keeping the agent degraded.
    let problems = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let probe = problems.clone();
    monitor.set_health(move || {
        probe
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    });

    // The store, the writer thread, and (when shipping) the shipper thread.
    let (writer, shipper, ring_health) = if opts.console {
        let store = stores::ConsoleStore::new(std::io::LineWriter::new(std::io::stdout()));
        let writer = spawn_writer(store, event_rx, control_rx, writer_cfg, writer_stats)?;
        (writer, None, None)
    } else {
        let mut ring_opts = RingOptions::default();
        // Test knob: small segments make multi-segment rings cheap to build.
        if let Some(n) = env_u64("ENDPOINT_AGENT_RING_SEGMENT_BYTES") {
            ring_opts.segment_size = n;
        }
        let capacity = ring_opts.capacity;
        let (ring_writer, ring_reader) =
            Ring::open(state_dir.join("ring"), ring_opts).map_err(|e| start_err("the ring", e))?;
        let reopener = ring_reader.reopener();
        let source = source::RingSource::new(ring_reader, control_tx.clone());
        let ring_stats = Arc::new(std::sync::Mutex::new(RingStats::default()));
        let store = stores::RingStore::new(ring_writer, ring_stats.clone());
        let health = store.health();
        let probe = ring_stats.clone();
        let write_error = health.clone();
        monitor.set_ring(move || {
            let mut status = ring_status(
                &probe
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
                capacity,
            );
            status.write_error = write_error.write_error();
            status
        });
        let writer = spawn_writer(store, event_rx, control_rx, writer_cfg, writer_stats)?;
        let counters = Arc::new(Counters::default());
        let probe = counters.clone();
        monitor.set_shipper(move || shipper_status(&probe));
        let shipper = shipper::spawn_shipper(&config, &opts, source, counters.clone())?;
        // A shipper that stops on its own is started again on a new reader.
        let (config, opts, control) = (config.clone(), opts.clone(), control_tx.clone());
        let respawn: supervisor::SpawnShipper = Box::new(move || {
            let reader = reopener.reopen().map_err(|e| e.to_string())?;
            let source = source::RingSource::new(reader, control.clone());
            shipper::spawn_shipper(&config, &opts, source, counters.clone())
                .map_err(|e| e.to_string())
        });
        (writer, Some((shipper, respawn)), Some(health))
    };

    // Collectors: each gets a sink with its own overflow policy and report. One that
    // cannot start is reported (agent log, status, stats) while the others run.
    let mut collectors: Vec<(Box<dyn Collector>, Arc<Report>)> = Vec::new();
    for mut collector in collectors::planned(&config, &state_dir) {
        let report = Report::new(collector.name());
        monitor.add_collector(report.clone());
        let sink = Sink::new(
            event_tx.clone(),
            control_tx.clone(),
            collector.overflow(),
            report.clone(),
        );
        match collector.start(sink) {
            Ok(()) => collectors.push((collector, report)),
            Err(e) => {
                tracing::error!(collector = collector.name(), error = %e, "a collector did not start");
                report.fail(e);
            }
        }
    }
    let mut supervisor =
        supervisor::Supervisor::new(shipper, collectors, event_tx, control_tx.clone(), problems);

    let monitor_stop = Arc::new(AtomicBool::new(false));
    let monitor_thread = monitor
        .spawn(control_tx.clone(), monitor_stop.clone())
        .map_err(|e| start_err("the monitor thread", e))?;
    tracing::info!("agent started");

    // Updates: confirm a version on probation once healthy; AutoUpdate checks. A restart
    // it asks for (a new version installed) stops the agent like a stop request.
    let (restart_tx, restart_rx) = bounded::<String>(1);
    // Kept until the stop, so that an updater thread that ends quietly is not a restart.
    let _restart_kept = restart_tx.clone();
    let reports: Vec<Arc<Report>> = supervisor.reports();
    let healthy = move || reports.iter().all(|r| r.state() == CollectorState::Running);
    let updater = (!opts.console)
        .then(|| {
            crate::cmd::update::spawn_background(
                &config,
                &opts.paths,
                opts.extra_ca_file.clone(),
                probation,
                healthy,
                move |why| {
                    tracing::info!(reason = why, "agent restarting for an update");
                    let _ = restart_tx.send(why.to_owned());
                },
            )
        })
        .flatten();

    // Wait for the stop request, supervising the components meanwhile.
    let (restart, failure) = loop {
        crossbeam_channel::select! {
            recv(stop) -> _ => break (None, None),
            recv(restart_rx) -> why => break (why.ok(), None),
            default(supervisor::CHECK_EVERY) => {
                if let Err(why) = supervisor.check(&writer) {
                    tracing::error!(reason = %why, "stopping: exiting non-zero so that the service manager starts a fresh agent");
                    break (None, Some(why));
                }
            }
        }
    };
    tracing::info!("agent stopping");
    // A ring that cannot write stops retrying: stopping must not wait for disk space.
    if let Some(health) = &ring_health {
        health.give_up();
    }
    let (collectors, shipper) = supervisor.into_parts();
    if let Some(updater) = updater {
        updater.stop();
    }

    for (mut collector, report) in collectors.into_iter().rev() {
        tracing::info!(collector = collector.name(), "stopping collector");
        match collector.stop() {
            Ok(()) if report.state() == CollectorState::Running => {
                report.set_state(CollectorState::Stopped);
            }
            Ok(()) => {}
            Err(e) => {
                tracing::error!(collector = collector.name(), error = %e, "stopping a collector");
                report.fail(e);
            }
        }
    }
    monitor_stop.store(true, Ordering::Relaxed);
    monitor_thread.thread().unpark();
    let _ = monitor_thread.join();
    // The writer appends everything already queued, flushes and returns.
    let _ = control_tx.send(Control::Stop);
    drop(control_tx);
    let writer_result = writer
        .join()
        .unwrap_or_else(|_| Err("the writer thread panicked".to_owned()));
    if let Some((shutdown, handle)) = shipper {
        let _ = shutdown.send(());
        let _ = handle.join();
    }
    tracing::info!("agent stopped");
    writer_result.map_err(RunError::Writer)?;
    if let Some(why) = failure {
        return Err(RunError::Supervision(why));
    }
    match restart {
        Some(why) => Err(RunError::Restart(why)),
        None => Ok(()),
    }
}

fn init_logging(opts: &RunOptions, control: Sender<Control>) -> Result<(), RunError> {
    use tracing_subscriber::filter::LevelFilter;
    let level = std::env::var("AGENT_LOG")
        .ok()
        .and_then(|l| l.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let events = EventLayer::new(control);
    let registry = tracing_subscriber::registry().with(level).with(events);
    let result = if opts.console {
        registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init()
    } else {
        let file = LogFile::open(&opts.paths.log_file).map_err(|e| {
            start_err(
                "the agent log",
                format!("{}: {e}", opts.paths.log_file.display()),
            )
        })?;
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(move || file.clone()),
            )
            .try_init()
    };
    // Already initialised (tests running the agent in-process): keep the first.
    let _ = result;
    Ok(())
}

fn stamp(state_dir: &std::path::Path, console: bool) -> Result<Stamp, RunError> {
    let agent_id = match agent_host::AgentId::load_or_recover(state_dir) {
        Ok((id, recovery)) => {
            // A new id is a new host for the customer: loud, on stderr too.
            match recovery {
                Some(r) if r.id_changed() => {
                    eprintln!("agent: WARNING: {r}");
                    tracing::error!("{r}");
                }
                Some(r) => {
                    eprintln!("agent: warning: {r}");
                    tracing::warn!("{r}");
                }
                None => {}
            }
            id.as_str().to_owned()
        }
        Err(e) if console => {
            tracing::warn!(error = %e, "no persistent agent id in console mode");
            String::new()
        }
        Err(e) => return Err(start_err("the agent id", e)),
    };
    let facts = agent_host::HostFacts::collect().map_err(|e| start_err("host facts", e))?;
    Ok(Stamp {
        agent_id,
        agent_version: crate::version_string(),
        hostname: facts.hostname.clone(),
        os_type: agent_host::os_type().as_str().to_owned(),
        ips: facts.ips.iter().map(ToString::to_string).collect(),
    })
}

fn spawn_writer<S>(
    mut store: S,
    events: Receiver<Box<Event>>,
    control: Receiver<Control>,
    cfg: WriterConfig,
    stats: Arc<WriterStats>,
) -> Result<JoinHandle<Result<(), String>>, RunError>
where
    S: RecordStore + Send + 'static,
{
    std::thread::Builder::new()
        .name("writer".into())
        .spawn(move || {
            run_writer(&mut store, events, control, &cfg, &stats).map_err(|e| {
                tracing::error!(error = %e, "the writer thread stopped");
                e.to_string()
            })
        })
        .map_err(|e| start_err("the writer thread", e))
}

/// The ring's part of the status.
fn ring_status(r: &RingStats, capacity: u64) -> RingStatus {
    RingStatus {
        bytes_on_disk: r.bytes_on_disk,
        capacity,
        records_pending: r.records_pending,
        records_dropped: r.records_dropped,
        bytes_dropped: r.bytes_dropped,
        corrupt_skipped: r.corrupt_skipped,
        records_lost: r.records_lost,
        leftover_segments: r.leftover_segments as u64,
        write_error: None,
    }
}

/// The shipper's part of the status. The last error is shown only while no request
/// succeeded after it: once the intake accepts again, it is history.
fn shipper_status(counters: &Counters) -> ShipperStatus {
    shipper_status_of(counters.snapshot())
}

fn shipper_status_of(mut c: agent_transport::CountersSnapshot) -> ShipperStatus {
    if !c.error_is_current() {
        c.last_error = None;
    }
    ShipperStatus {
        events_sent: c.events_sent,
        bytes_plain: c.bytes_plain,
        bytes_gzip: c.bytes_gzip,
        retries: c.retries,
        rejected: c.rejected,
        last_success_unix: c.last_success.map(status::unix),
        last_error: c.last_error,
    }
}

/// A numeric setting from the environment (tuning knobs for operators and tests).
pub fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn the_last_shipper_error_is_shown_only_until_a_request_succeeds_after_it() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let mut c = agent_transport::CountersSnapshot {
            last_error: Some("connection refused".into()),
            last_error_at: Some(t),
            failing_since: Some(t),
            ..Default::default()
        };
        assert_eq!(
            shipper_status_of(c.clone()).last_error.as_deref(),
            Some("connection refused")
        );
        // Recovered: an accepted request after the error.
        c.failing_since = None;
        c.last_success = Some(t + Duration::from_secs(5));
        assert_eq!(shipper_status_of(c).last_error, None);
    }
}
