//! The writer thread: the one place where events are serialized and records enter the
//! store (the ring, or stdout in console mode).
//!
//! Collectors send [`Event`]s on a bounded channel and never wait on the network; log-file
//! tailers send [`Control::Lines`] and wait for the reply, because their checkpoints may
//! only cover lines that reached the store. The writer stamps every event with the agent
//! and host identity ([`Stamp`]), serializes it once, tags it with its route
//! ([`RoutedRecord`]) and appends whole batches. It exits when every sender is gone,
//! after a final flush: shutting down is "stop the collectors, drop the senders, join".

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agent_event::Event;
use crossbeam_channel::{select, Receiver, RecvTimeoutError, Sender, TryRecvError};

use crate::routed::{RecordKind, RoutedRecord};

/// Where the writer puts encoded routed records.
pub trait RecordStore {
    /// The store's failure type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Appends records in order; returns once the store owns them.
    fn append_batch(&mut self, records: &[Vec<u8>]) -> Result<(), Self::Error>;

    /// Called at least every [`WriterConfig::tick`]: lets the store publish buffered data
    /// or sync on its own schedule.
    fn tick(&mut self) -> Result<(), Self::Error>;

    /// Makes everything appended so far durable.
    fn flush(&mut self) -> Result<(), Self::Error>;
}

/// One raw line from a watched file, with the intake key it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedLine {
    /// The intake key of the file's format.
    pub intake_key: Arc<str>,
    /// The line's bytes, without terminator.
    pub bytes: Vec<u8>,
}

/// Requests other than collector events.
#[derive(Debug)]
pub enum Control {
    /// Append these lines, then answer (the tailer checkpoints only after `Ok`).
    Lines {
        /// The lines, in file order.
        lines: Vec<OwnedLine>,
        /// Receives the outcome once the lines are in the store.
        done: Sender<Result<(), String>>,
    },
    /// An event produced by the agent itself (stats, agent log); never dropped.
    Event(Box<Event>),
    /// Append already encoded routed records again, then answer. The shipper uses it to
    /// move records of an intake key that is refused (401/403) behind newer records, so
    /// that their ring positions can be acknowledged without losing them.
    Requeue {
        /// Encoded routed records, in order.
        records: Vec<Vec<u8>>,
        /// Receives the outcome once the records are in the store.
        done: Sender<Result<(), String>>,
    },
    /// Flush the store, then answer.
    Flush(Sender<Result<(), String>>),
    /// Append every event already queued, flush and return, even if senders remain
    /// (a logging layer may hold one for the life of the process).
    Stop,
}

/// Identity stamped on every event that does not carry it already.
#[derive(Debug, Clone, Default)]
pub struct Stamp {
    /// `agent.id`.
    pub agent_id: String,
    /// `agent.version`.
    pub agent_version: String,
    /// `host.hostname`.
    pub hostname: String,
    /// `host.os.type`.
    pub os_type: String,
    /// `host.ip[]`.
    pub ips: Vec<String>,
}

impl Stamp {
    /// Fills the identity fields the collector left empty.
    pub fn apply(&self, e: &mut Event) {
        if e.agent.id.is_empty() {
            e.agent.id.clone_from(&self.agent_id);
        }
        if e.agent.version.is_empty() {
            e.agent.version.clone_from(&self.agent_version);
        }
        if e.host.hostname.is_empty() {
            e.host.hostname.clone_from(&self.hostname);
        }
        if e.host.os.os_type.is_empty() {
            e.host.os.os_type.clone_from(&self.os_type);
        }
        if e.host.ip.is_empty() {
            e.host.ip.clone_from(&self.ips);
        }
    }
}

/// How the writer behaves.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Intake key that dialect events are delivered under.
    pub events_intake_key: String,
    /// Identity stamped on events.
    pub stamp: Stamp,
    /// Most events appended in one batch.
    pub max_batch: usize,
    /// How often the store is ticked when idle.
    pub tick: Duration,
}

impl WriterConfig {
    /// Defaults: batches of up to 512 events, a tick every 100 ms.
    pub fn new(events_intake_key: impl Into<String>, stamp: Stamp) -> Self {
        WriterConfig {
            events_intake_key: events_intake_key.into(),
            stamp,
            max_batch: 512,
            tick: Duration::from_millis(100),
        }
    }
}

/// Counters of the writer thread, shared with status and stats reporting.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Events appended to the store.
    pub events: AtomicU64,
    /// Log lines appended to the store.
    pub lines: AtomicU64,
    /// Events that could not be serialized or encoded (dropped).
    pub encode_errors: AtomicU64,
    /// Store failures (the batch is lost and the error logged).
    pub store_errors: AtomicU64,
}

/// Runs the writer loop until every sender of both channels is dropped; then flushes.
pub fn run_writer<S: RecordStore>(
    store: &mut S,
    events: Receiver<Box<Event>>,
    control: Receiver<Control>,
    cfg: &WriterConfig,
    stats: &WriterStats,
) -> Result<(), S::Error> {
    let mut w = Writer {
        store,
        cfg,
        stats,
        batch: Vec::with_capacity(cfg.max_batch),
        json: Vec::with_capacity(4096),
    };
    let mut events_open = true;
    let mut control_open = true;
    while events_open || control_open {
        // Wait for the first message (or a tick), then drain what is already queued so
        // that one append covers many events.
        let first = wait(&events, &control, events_open, control_open, cfg.tick);
        match first {
            Msg::Event(e) => w.push_event(*e),
            Msg::Control(Control::Stop) => {
                // Everything sent before Stop is already queued: drain it, then finish.
                while let Ok(e) = events.try_recv() {
                    w.push_event(*e);
                    if w.batch.len() >= cfg.max_batch {
                        w.flush_batch()?;
                    }
                }
                while let Ok(c) = control.try_recv() {
                    if !matches!(c, Control::Stop) {
                        w.control(c)?;
                    }
                }
                break;
            }
            Msg::Control(c) => w.control(c)?,
            Msg::EventsClosed => events_open = false,
            Msg::ControlClosed => control_open = false,
            Msg::Tick => {}
        }
        while events_open && w.batch.len() < cfg.max_batch {
            match events.try_recv() {
                Ok(e) => w.push_event(*e),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => events_open = false,
            }
        }
        w.flush_batch()?;
        w.store.tick()?;
    }
    w.flush_batch()?;
    w.store.flush()
}

enum Msg {
    Event(Box<Event>),
    Control(Control),
    EventsClosed,
    ControlClosed,
    Tick,
}

fn wait(
    events: &Receiver<Box<Event>>,
    control: &Receiver<Control>,
    events_open: bool,
    control_open: bool,
    tick: Duration,
) -> Msg {
    match (events_open, control_open) {
        (true, true) => select! {
            recv(events) -> m => m.map(Msg::Event).unwrap_or(Msg::EventsClosed),
            recv(control) -> m => m.map(Msg::Control).unwrap_or(Msg::ControlClosed),
            default(tick) => Msg::Tick,
        },
        (true, false) => match events.recv_timeout(tick) {
            Ok(e) => Msg::Event(e),
            Err(RecvTimeoutError::Timeout) => Msg::Tick,
            Err(RecvTimeoutError::Disconnected) => Msg::EventsClosed,
        },
        (false, true) => match control.recv_timeout(tick) {
            Ok(c) => Msg::Control(c),
            Err(RecvTimeoutError::Timeout) => Msg::Tick,
            Err(RecvTimeoutError::Disconnected) => Msg::ControlClosed,
        },
        (false, false) => Msg::Tick,
    }
}

struct Writer<'a, S> {
    store: &'a mut S,
    cfg: &'a WriterConfig,
    stats: &'a WriterStats,
    batch: Vec<Vec<u8>>,
    json: Vec<u8>,
}

impl<S: RecordStore> Writer<'_, S> {
    fn push_event(&mut self, mut e: Event) {
        self.cfg.stamp.apply(&mut e);
        self.json.clear();
        let encoded = e.write_json(&mut self.json).ok().and_then(|()| {
            RoutedRecord {
                kind: RecordKind::Event,
                intake_key: &self.cfg.events_intake_key,
                payload: &self.json,
            }
            .encode()
            .ok()
        });
        match encoded {
            Some(rec) => self.batch.push(rec),
            None => {
                self.stats.encode_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn flush_batch(&mut self) -> Result<(), S::Error> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let n = self.batch.len() as u64;
        let res = self.store.append_batch(&self.batch);
        self.batch.clear();
        match res {
            Ok(()) => {
                self.stats.events.fetch_add(n, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    fn control(&mut self, c: Control) -> Result<(), S::Error> {
        match c {
            Control::Event(e) => self.push_event(*e),
            Control::Lines { lines, done } => {
                // Keep file order relative to events already queued.
                self.flush_batch()?;
                let mut recs = Vec::with_capacity(lines.len());
                let mut bad = 0u64;
                for line in &lines {
                    let rec = RoutedRecord {
                        kind: RecordKind::LogLine,
                        intake_key: &line.intake_key,
                        payload: &line.bytes,
                    };
                    match rec.encode() {
                        Ok(r) => recs.push(r),
                        Err(_) => bad += 1,
                    }
                }
                self.stats.encode_errors.fetch_add(bad, Ordering::Relaxed);
                match self.store.append_batch(&recs) {
                    Ok(()) => {
                        self.stats
                            .lines
                            .fetch_add(recs.len() as u64, Ordering::Relaxed);
                        let _ = done.send(Ok(()));
                    }
                    Err(e) => {
                        self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                        let _ = done.send(Err(e.to_string()));
                        return Err(e);
                    }
                }
            }
            Control::Stop => {}
            Control::Requeue { records, done } => {
                self.flush_batch()?;
                let res = self.store.append_batch(&records);
                let _ = done.send(res.as_ref().map(|_| ()).map_err(|e| e.to_string()));
                res?;
            }
            Control::Flush(done) => {
                self.flush_batch()?;
                let res = self.store.flush();
                let _ = done.send(res.as_ref().map(|_| ()).map_err(|e| e.to_string()));
                res?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_event::{Process, Timestamp};
    use crossbeam_channel::bounded;

    #[derive(Default)]
    struct VecStore {
        records: Vec<Vec<u8>>,
        flushes: usize,
    }

    impl RecordStore for VecStore {
        type Error = std::io::Error;
        fn append_batch(&mut self, records: &[Vec<u8>]) -> Result<(), Self::Error> {
            self.records.extend_from_slice(records);
            Ok(())
        }
        fn tick(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
        fn flush(&mut self) -> Result<(), Self::Error> {
            self.flushes += 1;
            Ok(())
        }
    }

    fn stamp() -> Stamp {
        Stamp {
            agent_id: "a".repeat(64),
            agent_version: "v0.1.0".into(),
            hostname: "h1".into(),
            os_type: "linux".into(),
            ips: vec!["192.0.2.1".into()],
        }
    }

    #[test]
    fn requeued_records_are_appended_verbatim_and_answered() {
        let (etx, erx) = bounded::<Box<Event>>(4);
        let (ctx, crx) = bounded(4);
        let cfg = WriterConfig::new("K", stamp());
        let stats = WriterStats::default();
        let rec = RoutedRecord {
            kind: RecordKind::Event,
            intake_key: "REVOKED",
            payload: b"{\"a\":1}",
        }
        .encode()
        .unwrap();
        let (dtx, drx) = bounded(1);
        ctx.send(Control::Requeue {
            records: vec![rec.clone()],
            done: dtx,
        })
        .unwrap();
        ctx.send(Control::Stop).unwrap();
        let mut store = VecStore::default();
        run_writer(&mut store, erx, crx, &cfg, &stats).unwrap();
        assert_eq!(drx.recv().unwrap(), Ok(()));
        assert_eq!(store.records, vec![rec]);
        drop((etx, ctx));
    }

    #[test]
    fn stop_drains_queued_events_while_senders_remain() {
        let (etx, erx) = bounded(100);
        let (ctx, crx) = bounded(4);
        let cfg = WriterConfig::new("K", stamp());
        let stats = WriterStats::default();
        for _ in 0..50 {
            etx.send(Box::new(Event::at(Timestamp::from_unix(1, 0))))
                .unwrap();
        }
        ctx.send(Control::Stop).unwrap();
        let mut store = VecStore::default();
        run_writer(&mut store, erx, crx, &cfg, &stats).unwrap();
        assert_eq!(store.records.len(), 50);
        assert_eq!(store.flushes, 1);
        drop((etx, ctx));
    }

    #[test]
    fn events_and_lines_are_stamped_routed_and_ordered() {
        let (etx, erx) = bounded(16);
        let (ctx, crx) = bounded(16);
        let cfg = WriterConfig::new("EVKEY", stamp());
        let stats = WriterStats::default();
        let handle = std::thread::scope(|s| {
            let h = s.spawn(|| {
                let mut store = VecStore::default();
                run_writer(&mut store, erx, crx, &cfg, &stats).map(|()| store)
            });
            for pid in 0..3u32 {
                let p = Process {
                    pid: Some(pid),
                    ..Process::default()
                };
                etx.send(Box::new(Event::process_created(
                    Timestamp::from_unix(1, 0),
                    p,
                )))
                .unwrap();
            }
            let (dtx, drx) = bounded(1);
            ctx.send(Control::Lines {
                lines: vec![OwnedLine {
                    intake_key: "LOGKEY".into(),
                    bytes: b"raw \xff line\r".to_vec(),
                }],
                done: dtx,
            })
            .unwrap();
            assert_eq!(drx.recv().unwrap(), Ok(()));
            drop(etx);
            drop(ctx);
            h.join().unwrap()
        });
        let store = handle.unwrap();
        assert_eq!(store.records.len(), 4);
        assert_eq!(store.flushes, 1, "final flush on exit");
        // Events keep their order among themselves; lines arrive on another channel, so
        // their place relative to events is not defined.
        let decoded: Vec<_> = store
            .records
            .iter()
            .map(|r| RoutedRecord::decode(r).unwrap())
            .collect();
        let events: Vec<_> = decoded
            .iter()
            .filter(|r| r.kind == RecordKind::Event)
            .collect();
        assert_eq!(events.len(), 3);
        for (i, r) in events.iter().enumerate() {
            assert_eq!(r.kind, RecordKind::Event);
            assert_eq!(r.intake_key, "EVKEY");
            let e = Event::from_slice(r.payload).unwrap();
            assert_eq!(e.process.pid, Some(i as u32));
            assert_eq!(e.agent.id, "a".repeat(64));
            assert_eq!(e.host.hostname, "h1");
            assert_eq!(e.host.os.os_type, "linux");
        }
        let line = decoded
            .iter()
            .find(|r| r.kind == RecordKind::LogLine)
            .unwrap();
        assert_eq!(line.intake_key, "LOGKEY");
        assert_eq!(line.payload, b"raw \xff line\r");
        assert_eq!(stats.events.load(Ordering::Relaxed), 3);
        assert_eq!(stats.lines.load(Ordering::Relaxed), 1);
    }
}
