//! The two places the writer thread can put records: the on-disk ring (normal operation)
//! or stdout (`agent run --console`).

use std::io::{self, Write};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use agent_buffer::{RingError, RingStats, RingWriter};
use agent_pipeline::{RecordStore, RoutedRecord};

/// How often the ring's statistics are copied out for status and stats reporting.
const STATS_EVERY: Duration = Duration::from_millis(500);
/// First and longest wait between two attempts to write to a disk that refused.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Whether the ring takes writes, shared between the writer thread (which sets it), the
/// monitor (which reports it) and the shutdown (which stops the retrying).
#[derive(Debug, Default)]
pub struct RingHealth {
    /// The disk's refusal, and since when, while the ring cannot write.
    error: Mutex<Option<(String, Instant)>>,
    /// Shutting down: stop retrying a refused write.
    give_up: AtomicBool,
}

impl RingHealth {
    /// Why the ring cannot write right now (`None` when it can).
    pub fn write_error(&self) -> Option<String> {
        // What it is about comes before the first colon (the monitor logs changes of
        // that only), the details after.
        self.lock().as_ref().map(|(e, since)| {
            format!(
                "the ring cannot write: {e} (for {}s; records are kept and retried)",
                since.elapsed().as_secs()
            )
        })
    }

    /// Stops retrying refused writes (at shutdown): what is still refused is lost.
    pub fn give_up(&self) {
        self.give_up.store(true, Ordering::Relaxed);
    }

    fn giving_up(&self) -> bool {
        self.give_up.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(String, Instant)>> {
        self.error.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The ring's writer as the writer thread's store. It also publishes the ring's
/// statistics, since the writer and reader both live on threads of their own, and logs
/// the ring's warnings.
///
/// When the disk refuses writes (full, I/O errors) the store keeps retrying with
/// backoff instead of failing: the writer thread stays in `append_batch`, so log-file
/// tailers wait for their answer and collectors fed by the kernel count drops once the
/// event queue is full, and everything resumes by itself when the disk takes writes
/// again. [`RingHealth`] says so to `agent status` meanwhile.
#[derive(Debug)]
pub struct RingStore {
    writer: RingWriter,
    stats: Arc<Mutex<RingStats>>,
    health: Arc<RingHealth>,
    published: Instant,
}

impl RingStore {
    /// Wraps the writer; `stats` receives a fresh copy at least twice a second.
    pub fn new(writer: RingWriter, stats: Arc<Mutex<RingStats>>) -> Self {
        let store = RingStore {
            writer,
            stats,
            health: Arc::new(RingHealth::default()),
            published: Instant::now(),
        };
        store.publish();
        store
    }

    /// The store's health, for the monitor and the shutdown.
    pub fn health(&self) -> Arc<RingHealth> {
        self.health.clone()
    }

    fn publish(&self) {
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner) = self.writer.stats();
        for warning in self.writer.take_warnings() {
            tracing::warn!("ring: {warning}");
        }
    }

    fn refused(&self, err: &RingError) {
        // The disk's answer, without the ring's bookkeeping around it.
        let cause = match err {
            RingError::Stalled { source, .. } => source.to_string(),
            other => other.to_string(),
        };
        let mut error = self.health.lock();
        if error.is_none() {
            tracing::error!(
                error = %err,
                "the ring cannot write; what it took is kept and retried, log files wait and \
                 kernel-fed collectors count drops until the disk takes writes again"
            );
            *error = Some((cause, Instant::now()));
        } else if let Some((text, _)) = error.as_mut() {
            *text = cause;
        }
    }

    fn writes_again(&self) {
        if let Some((_, since)) = self.health.lock().take() {
            tracing::warn!(
                after_secs = since.elapsed().as_secs(),
                "the ring takes writes again"
            );
        }
    }

    /// Sleeps `delay` in short steps, returning early when shutting down.
    fn pause(&self, delay: Duration) {
        let until = Instant::now() + delay;
        while !self.health.giving_up() && Instant::now() < until {
            std::thread::sleep(RETRY_FIRST.min(until.saturating_duration_since(Instant::now())));
        }
    }
}

impl RecordStore for RingStore {
    type Error = RingError;

    fn append_batch(&mut self, records: &[Vec<u8>]) -> Result<(), RingError> {
        let mut rest = records;
        let mut delay = RETRY_FIRST;
        loop {
            match self.writer.append_batch(rest) {
                Ok(_) => {
                    self.writes_again();
                    return Ok(());
                }
                Err(err) => {
                    // Only a refused write is retried (records too large are not).
                    let Some(accepted) = err.accepted() else {
                        return Err(err);
                    };
                    rest = &rest[accepted.min(rest.len())..];
                    self.refused(&err);
                    if self.health.giving_up() {
                        return Err(err);
                    }
                    self.publish();
                    self.pause(delay);
                    delay = (delay * 2).min(RETRY_MAX);
                }
            }
        }
    }

    fn tick(&mut self) -> Result<(), RingError> {
        if self.published.elapsed() >= STATS_EVERY {
            self.published = Instant::now();
            self.publish();
        }
        // A failed background sync or write is reported and retried at the next tick;
        // it never ends the writer thread.
        match self.writer.flush_if_due() {
            Ok(()) if !self.writer.is_stalled() => self.writes_again(),
            Ok(()) => {}
            Err(err) => self.refused(&err),
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), RingError> {
        let r = self.writer.flush();
        self.publish();
        r
    }
}

/// Prints each record's payload as one line on stdout: events as JSON, log-file lines as
/// they were read.
#[derive(Debug)]
pub struct ConsoleStore<W: Write> {
    out: W,
}

impl<W: Write> ConsoleStore<W> {
    /// Writes to `out` (stdout in the agent, a buffer in tests).
    pub fn new(out: W) -> Self {
        ConsoleStore { out }
    }
}

impl<W: Write> RecordStore for ConsoleStore<W> {
    type Error = io::Error;

    fn append_batch(&mut self, records: &[Vec<u8>]) -> io::Result<()> {
        for rec in records {
            let routed = RoutedRecord::decode(rec)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            self.out.write_all(routed.payload)?;
            self.out.write_all(b"\n")?;
        }
        self.out.flush()
    }

    fn tick(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
