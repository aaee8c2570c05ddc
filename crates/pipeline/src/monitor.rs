//! Self-monitoring of a running agent: the status file (`agent status`) refreshed every
//! few seconds, and the periodic stats event, made of the writer's, ring's, shipper's and
//! every collector's counters. It knows the ring and the shipper only through the status
//! types they are reported as, so that it sits below both.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use agent_event::{AgentUsage, Event, HostUsage, Timestamp};
use crossbeam_channel::Sender;
use serde_json::{json, Map, Value};

use crate::collector::Report;
use crate::status::{self, RingStatus, ShipperStatus, Status};
use crate::writer::{Control, WriterStats};

/// How often the status file is refreshed.
const STATUS_EVERY: Duration = Duration::from_secs(2);

type Probe<T> = Box<dyn Fn() -> T + Send>;

/// Everything the status file and the stats event are made of.
pub struct Monitor {
    state_dir: PathBuf,
    mode: &'static str,
    version: String,
    started: u64,
    stats_interval: Duration,
    writer: Arc<WriterStats>,
    ring: Option<Probe<RingStatus>>,
    shipper: Option<Probe<ShipperStatus>>,
    health: Option<Probe<Vec<String>>>,
    collectors: Vec<Arc<Report>>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

impl Monitor {
    /// A monitor writing `status.json` into `state_dir`; `console` is the run mode
    /// (printing instead of shipping), `version` the agent's version string.
    pub fn new(
        state_dir: PathBuf,
        console: bool,
        version: String,
        stats_interval: Duration,
        writer: Arc<WriterStats>,
    ) -> Self {
        Monitor {
            state_dir,
            mode: if console { "console" } else { "ship" },
            version,
            started: status::unix_now(),
            stats_interval,
            writer,
            ring: None,
            shipper: None,
            health: None,
            collectors: Vec::new(),
        }
    }

    /// Reports what keeps the agent from doing its whole job (components being
    /// restarted...) through `probe`; with the ring's write error, it makes
    /// [`Status::degraded`].
    pub fn set_health(&mut self, probe: impl Fn() -> Vec<String> + Send + 'static) {
        self.health = Some(Box::new(probe));
    }

    /// Reports the ring through `probe` (called from the monitor thread).
    pub fn set_ring(&mut self, probe: impl Fn() -> RingStatus + Send + 'static) {
        self.ring = Some(Box::new(probe));
    }

    /// Reports the shipper through `probe` (called from the monitor thread).
    pub fn set_shipper(&mut self, probe: impl Fn() -> ShipperStatus + Send + 'static) {
        self.shipper = Some(Box::new(probe));
    }

    /// Reports a collector (running, or failed to start).
    pub fn add_collector(&mut self, report: Arc<Report>) {
        self.collectors.push(report);
    }

    /// The status now.
    pub fn snapshot(&self) -> Status {
        let ring = self.ring.as_ref().map(|probe| probe());
        let shipper = self.shipper.as_ref().map(|probe| probe());
        let collectors = self
            .collectors
            .iter()
            .map(|r| (r.name().to_owned(), r.snapshot()))
            .collect();
        let mut degraded: Vec<String> = ring
            .as_ref()
            .and_then(|r| r.write_error.clone())
            .into_iter()
            .collect();
        if let Some(probe) = &self.health {
            degraded.extend(probe());
        }
        Status {
            pid: std::process::id(),
            version: self.version.clone(),
            mode: self.mode.to_owned(),
            started_unix: self.started,
            updated_unix: status::unix_now(),
            written_events: self.writer.events.load(Ordering::Relaxed),
            written_lines: self.writer.lines.load(Ordering::Relaxed),
            ring,
            shipper,
            collectors,
            stopped: false,
            degraded,
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
            props.insert("ring_lost".into(), json!(r.records_lost));
            props.insert("ring_corrupt".into(), json!(r.corrupt_skipped));
        }
        props.insert("degraded".into(), json!(snap.is_degraded()));
        if snap.is_degraded() {
            props.insert("degraded_reasons".into(), json!(snap.degraded));
        }
        if let Some(t) = &snap.shipper {
            props.insert("sent".into(), json!(t.events_sent));
            props.insert("retries".into(), json!(t.retries));
            props.insert("rejected".into(), json!(t.rejected));
        }
        for (name, c) in &snap.collectors {
            props.insert(format!("{name}_produced"), json!(c.produced));
            props.insert(format!("{name}_dropped"), json!(c.dropped));
            props.insert(format!("{name}_source_lost"), json!(c.source_lost));
        }
        e.action.properties = props.into_iter().collect::<Map<String, Value>>();
        e
    }

    /// Runs the monitor thread until `stop` is set.
    pub fn spawn(
        self,
        control: Sender<Control>,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("monitor".into())
            .spawn(move || self.run(&control, &stop))
    }

    fn run(self, control: &Sender<Control>, stop: &AtomicBool) {
        let mut sampler = agent_host::StatsSampler::new();
        let _ = sampler.sample(); // CPU percentages need a previous sample.
        let mut last_stats = Instant::now();
        let mut last_status: Option<Instant> = None;
        let mut status_failed = false;
        let mut seen = Seen::default();
        while !stop.load(Ordering::Relaxed) {
            if last_status.is_none_or(|t| t.elapsed() >= STATUS_EVERY) {
                last_status = Some(Instant::now());
                let snap = self.snapshot();
                seen.log_changes(&snap);
                match status::write(&self.state_dir, &snap) {
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

/// What the monitor last saw, to log changes once rather than every refresh.
#[derive(Debug, Default)]
struct Seen {
    records_lost: u64,
    degraded: Vec<String>,
}

impl Seen {
    fn log_changes(&mut self, snap: &Status) {
        if let Some(r) = &snap.ring {
            if r.records_lost > self.records_lost {
                tracing::error!(
                    lost = r.records_lost - self.records_lost,
                    total = r.records_lost,
                    "records were lost from the ring (damaged, emptied or deleted segment files)"
                );
                self.records_lost = r.records_lost;
            }
        }
        // Reasons carry durations; compare what they are about, not the text.
        let kinds = |v: &[String]| -> Vec<String> {
            v.iter()
                .map(|r| r.split(':').next().unwrap_or_default().to_owned())
                .collect()
        };
        if kinds(&snap.degraded) != kinds(&self.degraded) {
            if snap.degraded.is_empty() {
                tracing::warn!("the agent is healthy again");
            } else {
                tracing::warn!(reasons = ?snap.degraded, "the agent is degraded");
            }
            self.degraded.clone_from(&snap.degraded);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::CollectorState;
    use crossbeam_channel::bounded;

    fn monitor(dir: &std::path::Path, interval: Duration) -> Monitor {
        let writer = Arc::new(WriterStats::default());
        writer.events.store(5, Ordering::Relaxed);
        let mut m = Monitor::new(dir.to_path_buf(), false, "v9.9.9".into(), interval, writer);
        m.set_ring(|| RingStatus {
            records_pending: 3,
            capacity: 100,
            ..RingStatus::default()
        });
        m.set_shipper(|| ShipperStatus {
            events_sent: 2,
            ..ShipperStatus::default()
        });
        m
    }

    #[test]
    fn snapshot_and_stats_event_carry_every_collector_counter() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = monitor(dir.path(), Duration::from_secs(60));
        let audit = Report::new("audit");
        audit.set_state(CollectorState::Running);
        audit.add_produced(10);
        audit.add_dropped(1);
        audit.set_source_lost(4);
        let failed = Report::new("etw");
        failed.fail("not on this OS");
        m.add_collector(audit);
        m.add_collector(failed);

        let s = m.snapshot();
        assert_eq!(s.version, "v9.9.9");
        assert_eq!(s.mode, "ship");
        assert_eq!(s.written_events, 5);
        assert_eq!(s.ring.as_ref().unwrap().records_pending, 3);
        assert_eq!(s.shipper.as_ref().unwrap().events_sent, 2);
        assert_eq!(s.collectors["audit"].produced, 10);
        assert_eq!(s.collectors["etw"].state, "failed: not on this OS");

        let mut sampler = agent_host::StatsSampler::new();
        let e = m.stats_event(&mut sampler);
        let p = &e.action.properties;
        assert_eq!(p["audit_produced"], json!(10));
        assert_eq!(p["audit_dropped"], json!(1));
        assert_eq!(p["audit_source_lost"], json!(4));
        assert_eq!(p["ring_pending"], json!(3));
        assert_eq!(p["sent"], json!(2));
        assert_eq!(p["degraded"], json!(false));
        assert_eq!(e.event.action, "stats");
    }

    #[test]
    fn a_ring_that_cannot_write_or_a_restarting_component_makes_the_agent_degraded() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = monitor(dir.path(), Duration::from_secs(60));
        m.set_ring(|| RingStatus {
            write_error: Some("the ring cannot write: No space left on device (for 3s)".into()),
            records_lost: 4,
            ..RingStatus::default()
        });
        m.set_health(|| vec!["shipper: restarting".to_owned()]);
        let s = m.snapshot();
        assert!(s.is_degraded());
        assert_eq!(s.degraded.len(), 2, "{:?}", s.degraded);
        let mut sampler = agent_host::StatsSampler::new();
        let e = m.stats_event(&mut sampler);
        let p = &e.action.properties;
        assert_eq!(p["degraded"], json!(true));
        assert_eq!(p["ring_lost"], json!(4));
        assert_eq!(p["degraded_reasons"][1], json!("shipper: restarting"));
    }

    #[test]
    fn thread_writes_status_sends_stats_and_marks_an_orderly_stop() {
        let dir = tempfile::tempdir().unwrap();
        let m = monitor(dir.path(), Duration::from_millis(20));
        let (tx, rx) = bounded(16);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = m.spawn(tx, stop.clone()).unwrap();
        match rx.recv_timeout(Duration::from_secs(10)).unwrap() {
            Control::Event(e) => assert_eq!(e.event.action, "stats"),
            other => panic!("{other:?}"),
        }
        let live = status::read(dir.path()).unwrap();
        assert!(!live.stopped);
        assert!(live.is_running(status::unix_now()));
        stop.store(true, Ordering::Relaxed);
        thread.thread().unpark();
        thread.join().unwrap();
        let last = status::read(dir.path()).unwrap();
        assert!(last.stopped);
        assert!(!last.is_running(status::unix_now()));
    }
}
