//! `agent run`: the composition of collectors, writer thread, ring and shipper.
//!
//! ```text
//! collectors ──Event──▶ bounded channel ──▶ writer thread ──▶ ring ──▶ shipper ──▶ intake
//! log tailer ──lines (waits for the answer)──▶ ┘                (or stdout with --console)
//! ```
//!
//! Shutdown (SIGTERM, SIGINT, service stop): stop the collectors, let the writer append
//! what is queued and flush, then give the shipper one last short delivery attempt.

pub mod lines;
pub mod logging;
pub mod monitor;
pub mod shipper;
pub mod signals;
pub mod source;
pub mod status;
pub mod stores;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use agent_buffer::{Ring, RingOptions};
use agent_config::{Config, Paths};
use agent_event::Event;
use agent_pipeline::{run_writer, Control, RecordStore, Stamp, WriterConfig, WriterStats};
use agent_transport::Counters;
use crossbeam_channel::{bounded, Receiver, Sender};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use self::monitor::{CollectorHandle, Monitor};

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
    /// The writer thread failed (the ring is unusable).
    #[error("writing events failed: {0}")]
    Writer(String),
}

fn start_err(what: &'static str, e: impl std::fmt::Display) -> RunError {
    RunError::Start {
        what,
        message: e.to_string(),
    }
}

fn load_config(opts: &RunOptions) -> Result<Config, RunError> {
    let path = opts
        .config
        .clone()
        .unwrap_or_else(|| opts.paths.config_file.clone());
    if opts.console && opts.config.is_none() && !path.exists() {
        // Console mode needs no installation: no intake key, defaults for the rest.
        return Ok(Config::default());
    }
    let (config, warnings) = Config::load(&path).map_err(|e| RunError::Config(e.to_string()))?;
    for w in warnings {
        eprintln!("agent: warning: {w}");
    }
    Ok(config)
}

/// Runs the agent until `stop` receives a message (or its senders are gone); returns
/// after an orderly shutdown.
pub fn run(opts: RunOptions, stop: Receiver<()>) -> Result<(), RunError> {
    let config = load_config(&opts)?;
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

    let state_dir = opts.paths.state_dir.clone();
    let stamp = stamp(&state_dir, opts.console)?;
    let writer_cfg = WriterConfig::new(intake_key, stamp);
    let writer_stats = Arc::new(WriterStats::default());

    let mut monitor = Monitor::new(&opts, writer_stats.clone());

    // The store, the writer thread, and (when shipping) the shipper thread.
    let (writer, shipper) = if opts.console {
        let store = stores::ConsoleStore::new(std::io::LineWriter::new(std::io::stdout()));
        let writer = spawn_writer(store, event_rx, control_rx, writer_cfg, writer_stats)?;
        (writer, None)
    } else {
        let ring_opts = RingOptions::default();
        monitor.set_ring_capacity(ring_opts.capacity);
        let (ring_writer, ring_reader) =
            Ring::open(state_dir.join("ring"), ring_opts).map_err(|e| start_err("the ring", e))?;
        let source = source::RingSource::new(ring_reader, control_tx.clone());
        let ring_stats = Arc::new(std::sync::Mutex::new(agent_buffer::RingStats::default()));
        monitor.set_ring(ring_stats.clone());
        let writer = spawn_writer(
            stores::RingStore::new(ring_writer, ring_stats),
            event_rx,
            control_rx,
            writer_cfg,
            writer_stats,
        )?;
        let counters = Arc::new(Counters::default());
        monitor.set_shipper(counters.clone());
        let shipper = shipper::spawn_shipper(&config, &opts, source, counters)?;
        (writer, Some(shipper))
    };

    // Collectors.
    let mut collectors: Vec<CollectorHandle> = Vec::new();
    if !config.logfiles.is_empty() {
        collectors.push(monitor::start_logfile(
            &config,
            &state_dir,
            control_tx.clone(),
        )?);
    }
    #[cfg(target_os = "linux")]
    if config.has_role("event-collector") {
        // An agent without its audit collector still ships log files and its own events:
        // report loudly (agent log, status, stats) rather than refusing to run.
        match monitor::start_audit(&config, event_tx.clone()) {
            Ok(c) => collectors.push(c),
            Err(e) => {
                tracing::error!(error = %e, "the Linux audit collector did not start");
                monitor.add_failed_collector("audit", &e.to_string());
            }
        }
    }
    drop(event_tx);
    for c in &collectors {
        monitor.add_collector(c);
    }

    let monitor_stop = Arc::new(AtomicBool::new(false));
    let monitor_thread = monitor.spawn(control_tx.clone(), monitor_stop.clone())?;
    tracing::info!(collectors = collectors.len(), "agent started");

    // Wait for the stop request.
    let _ = stop.recv();
    tracing::info!("agent stopping");

    for c in collectors {
        c.stop();
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
    writer_result.map_err(RunError::Writer)
}

fn init_logging(opts: &RunOptions, control: Sender<Control>) -> Result<(), RunError> {
    use tracing_subscriber::filter::LevelFilter;
    let level = std::env::var("AGENT_LOG")
        .ok()
        .and_then(|l| l.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let events = logging::EventLayer::new(control);
    let registry = tracing_subscriber::registry().with(level).with(events);
    let result = if opts.console {
        registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init()
    } else {
        let file = logging::LogFile::open(&opts.paths.log_file).map_err(|e| {
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
    let agent_id = match agent_host::AgentId::load_or_create(state_dir) {
        Ok(id) => id.as_str().to_owned(),
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

/// A numeric setting from the environment (tuning knobs for operators and tests).
pub fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}
