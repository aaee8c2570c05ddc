//! The collector contract: what every source of events (Linux audit, log files, ETW,
//! Endpoint Security, DNS capture) implements, so that the agent starts, watches and stops
//! them all the same way.
//!
//! A collector is built with its own settings, then:
//! 1. [`Collector::start`] gets a [`Sink`]: where its events (or log lines) go. The sink
//!    applies the collector's [`Overflow`] policy and counts what is produced and dropped,
//!    so no collector counts drops by hand and none can block where it must not.
//! 2. While it runs, the agent reads its [`Report`] (shared with the sink) for `agent
//!    status` and the stats event: state, produced, dropped, and `source_lost` (what the
//!    OS lost before the collector saw it: the kernel's audit lost counter, ETW buffer
//!    overruns, Endpoint Security sequence gaps).
//! 3. [`Collector::stop`] ends its threads and releases what it took (kernel audit rules,
//!    OS sessions, checkpoints persisted); it is called once, at shutdown.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use agent_event::Event;
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

use crate::status::CollectorStatus;
use crate::writer::{Control, OwnedLine};

/// What a sink does when the writer thread falls behind and its queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Drop the event and count it. For collectors fed by the kernel or the OS, which must
    /// never stall their source (a stalled audit reader makes the kernel lose records).
    Drop,
    /// Wait until the queue has room. For sources that can be re-read later (log files),
    /// where waiting is lossless.
    Wait,
}

/// A collector's life state, as `agent status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CollectorState {
    /// Built, not started yet.
    #[default]
    Starting,
    /// Producing events.
    Running,
    /// Stopped in order.
    Stopped,
    /// Stopped by an error, or could not start; the reason is for the operator.
    Failed(String),
}

impl fmt::Display for CollectorState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CollectorState::Starting => f.write_str("starting"),
            CollectorState::Running => f.write_str("running"),
            CollectorState::Stopped => f.write_str("stopped"),
            CollectorState::Failed(reason) => write!(f, "failed: {reason}"),
        }
    }
}

/// Counters and state of one collector, shared by the collector, its sink and the agent's
/// monitor. Cheap to update from a hot path (relaxed atomics).
#[derive(Debug)]
pub struct Report {
    name: String,
    produced: AtomicU64,
    dropped: AtomicU64,
    source_lost: AtomicU64,
    state: Mutex<CollectorState>,
    mode: Mutex<Option<String>>,
}

impl Report {
    /// A report for the collector named `name` (the key in `agent status`).
    pub fn new(name: impl Into<String>) -> Arc<Report> {
        Arc::new(Report {
            name: name.into(),
            produced: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            source_lost: AtomicU64::new(0),
            state: Mutex::new(CollectorState::Starting),
            mode: Mutex::new(None),
        })
    }

    /// The collector's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets the state.
    pub fn set_state(&self, state: CollectorState) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = state;
    }

    /// Marks the collector failed with `reason` (its thread ended on an error).
    pub fn fail(&self, reason: impl fmt::Display) {
        self.set_state(CollectorState::Failed(reason.to_string()));
    }

    /// The state now.
    pub fn state(&self) -> CollectorState {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A short note on how the collector runs, shown by `agent status` (for example the
    /// audit collector's "multicast beside auditd").
    pub fn set_mode(&self, mode: impl Into<String>) {
        *self.mode.lock().unwrap_or_else(PoisonError::into_inner) = Some(mode.into());
    }

    /// Counts `n` events or lines handed to the pipeline.
    pub fn add_produced(&self, n: u64) {
        self.produced.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts `n` events dropped by the agent.
    pub fn add_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets what the source lost before the collector saw it (a counter the OS keeps).
    pub fn set_source_lost(&self, n: u64) {
        self.source_lost.store(n, Ordering::Relaxed);
    }

    /// Adds to what the source lost (gaps the collector detects itself).
    pub fn add_source_lost(&self, n: u64) {
        self.source_lost.fetch_add(n, Ordering::Relaxed);
    }

    /// Events or lines handed to the pipeline so far.
    pub fn produced(&self) -> u64 {
        self.produced.load(Ordering::Relaxed)
    }

    /// Events dropped by the agent so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// What the source lost so far.
    pub fn source_lost(&self) -> u64 {
        self.source_lost.load(Ordering::Relaxed)
    }

    /// The status entry of this collector.
    pub fn snapshot(&self) -> CollectorStatus {
        CollectorStatus {
            state: self.state().to_string(),
            produced: self.produced(),
            dropped: self.dropped(),
            source_lost: self.source_lost(),
            mode: self
                .mode
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }
}

/// Why the sink did not take an event or lines.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SinkError {
    /// The writer thread is gone (the agent is stopping).
    #[error("the writer thread has stopped")]
    Closed,
    /// The store (ring) refused the lines.
    #[error("the buffer refused the lines: {0}")]
    Store(String),
}

/// What happened to an event handed to [`Sink::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Queued for the writer.
    Queued,
    /// Dropped because the queue was full (counted in the report).
    Dropped,
}

/// Where a collector puts what it produces. Cloneable: a collector with several threads
/// gives each a clone; all count into the same [`Report`].
#[derive(Debug, Clone)]
pub struct Sink {
    events: Sender<Box<Event>>,
    control: Option<Sender<Control>>,
    overflow: Overflow,
    report: Arc<Report>,
}

impl Sink {
    /// A sink into the writer thread's event queue (and control queue, for log lines).
    pub fn new(
        events: Sender<Box<Event>>,
        control: Sender<Control>,
        overflow: Overflow,
        report: Arc<Report>,
    ) -> Sink {
        Sink {
            events,
            control: Some(control),
            overflow,
            report,
        }
    }

    /// A sink on a channel of its own, for a collector used without the agent (tests,
    /// tools): events arrive on the returned receiver; [`Sink::send_lines`] is refused.
    pub fn channel(
        name: &str,
        capacity: usize,
        overflow: Overflow,
    ) -> (Sink, Receiver<Box<Event>>) {
        let (tx, rx) = bounded(capacity);
        let sink = Sink {
            events: tx,
            control: None,
            overflow,
            report: Report::new(name),
        };
        (sink, rx)
    }

    /// The collector's report (state, counters).
    pub fn report(&self) -> &Arc<Report> {
        &self.report
    }

    /// The overflow policy this sink applies.
    pub fn overflow(&self) -> Overflow {
        self.overflow
    }

    /// Hands one event to the writer, applying the overflow policy. Events are boxed: an
    /// [`Event`] is a few KiB and a bounded channel allocates every slot up front.
    pub fn send(&self, event: Box<Event>) -> Result<Sent, SinkError> {
        match self.overflow {
            Overflow::Drop => match self.events.try_send(event) {
                Ok(()) => {
                    self.report.add_produced(1);
                    Ok(Sent::Queued)
                }
                Err(TrySendError::Full(_)) => {
                    self.report.add_dropped(1);
                    Ok(Sent::Dropped)
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.report.add_dropped(1);
                    Err(SinkError::Closed)
                }
            },
            Overflow::Wait => match self.events.send(event) {
                Ok(()) => {
                    self.report.add_produced(1);
                    Ok(Sent::Queued)
                }
                Err(_) => Err(SinkError::Closed),
            },
        }
    }

    /// Hands raw log lines to the writer and returns once they are in the store, so that
    /// a tailer's checkpoint only ever covers stored lines. Always waits (lossless).
    pub fn send_lines(&self, lines: Vec<OwnedLine>) -> Result<(), SinkError> {
        if lines.is_empty() {
            return Ok(());
        }
        let control = self.control.as_ref().ok_or(SinkError::Closed)?;
        let n = lines.len() as u64;
        let (done, answer) = bounded(1);
        control
            .send(Control::Lines { lines, done })
            .map_err(|_| SinkError::Closed)?;
        match answer.recv() {
            Ok(Ok(())) => {
                self.report.add_produced(n);
                Ok(())
            }
            Ok(Err(e)) => Err(SinkError::Store(e)),
            Err(_) => Err(SinkError::Closed),
        }
    }
}

/// Why a collector could not start or stop cleanly: the collector's own typed error,
/// boxed so that the agent can hold every collector behind one trait.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct CollectorError {
    #[source]
    source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl CollectorError {
    /// Wraps a collector's error.
    pub fn new(source: impl std::error::Error + Send + Sync + 'static) -> CollectorError {
        CollectorError {
            source: Box::new(source),
        }
    }

    /// An error that is only a message.
    pub fn msg(message: impl Into<String>) -> CollectorError {
        CollectorError {
            source: message.into().into(),
        }
    }
}

/// The contract every collector implements. See the module documentation.
pub trait Collector: Send {
    /// Stable short name: the key in `agent status` and the stats event
    /// (`audit`, `logfile`, `etw`, `dns`, ...).
    fn name(&self) -> &'static str;

    /// The sink's policy when the writer falls behind.
    fn overflow(&self) -> Overflow;

    /// Starts producing into `sink`; returns once the collector runs (threads started,
    /// OS sessions open) or failed to. The collector keeps `sink.report()` current
    /// (failed state, source-lost counter); the sink counts produced and dropped.
    fn start(&mut self, sink: Sink) -> Result<(), CollectorError>;

    /// Stops the collector and releases what it took; waits for its threads. Called once,
    /// after a successful start.
    fn stop(&mut self) -> Result<(), CollectorError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_event() -> Box<Event> {
        Box::new(Event::agent_log(
            agent_event::Timestamp::now(),
            agent_event::LogLevel::Warning,
            "x",
            None,
        ))
    }

    #[test]
    fn drop_policy_never_blocks_and_counts_drops() {
        let (sink, rx) = Sink::channel("t", 2, Overflow::Drop);
        for _ in 0..5 {
            let _ = sink.send(test_event());
        }
        assert_eq!(rx.len(), 2);
        let s = sink.report().snapshot();
        assert_eq!((s.produced, s.dropped), (2, 3));
        drop(rx);
        assert_eq!(sink.send(test_event()), Err(SinkError::Closed));
        assert_eq!(sink.report().dropped(), 4);
    }

    #[test]
    fn wait_policy_waits_for_room_and_loses_nothing() {
        let (sink, rx) = Sink::channel("t", 1, Overflow::Wait);
        let producer = {
            let sink = sink.clone();
            std::thread::spawn(move || {
                for _ in 0..100 {
                    sink.send(test_event()).unwrap();
                }
            })
        };
        let mut got = 0;
        while got < 100 {
            rx.recv().unwrap();
            got += 1;
        }
        producer.join().unwrap();
        let s = sink.report().snapshot();
        assert_eq!((s.produced, s.dropped), (100, 0));
    }

    #[test]
    fn lines_are_acknowledged_only_once_stored() {
        let (etx, _erx) = bounded(1);
        let (ctx, crx) = bounded(1);
        let sink = Sink::new(etx, ctx, Overflow::Wait, Report::new("logfile"));
        let writer = std::thread::spawn(move || match crx.recv().unwrap() {
            Control::Lines { lines, done } => {
                assert_eq!(lines.len(), 2);
                done.send(Err("disk full".to_owned())).unwrap();
            }
            other => panic!("{other:?}"),
        });
        let line = |b: &[u8]| OwnedLine {
            intake_key: Arc::from("k"),
            bytes: b.to_vec(),
        };
        let r = sink.send_lines(vec![line(b"a"), line(b"b")]);
        writer.join().unwrap();
        assert_eq!(r, Err(SinkError::Store("disk full".into())));
        assert_eq!(sink.report().produced(), 0);
    }

    #[test]
    fn state_and_mode_show_in_the_snapshot() {
        let r = Report::new("audit");
        assert_eq!(r.snapshot().state, "starting");
        r.set_state(CollectorState::Running);
        r.set_mode("multicast beside auditd");
        r.set_source_lost(7);
        let s = r.snapshot();
        assert_eq!(s.state, "running");
        assert_eq!(s.mode.as_deref(), Some("multicast beside auditd"));
        assert_eq!(s.source_lost, 7);
        r.fail("netlink: EBADF");
        assert_eq!(r.snapshot().state, "failed: netlink: EBADF");
    }
}
