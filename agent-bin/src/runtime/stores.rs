//! The two places the writer thread can put records: the on-disk ring (normal operation)
//! or stdout (`agent run --console`).

use std::io::{self, Write};

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use agent_buffer::{RingError, RingStats, RingWriter};
use agent_pipeline::{RecordStore, RoutedRecord};

/// How often the ring's statistics are copied out for status and stats reporting.
const STATS_EVERY: Duration = Duration::from_millis(500);

/// The ring's writer as the writer thread's store. It also publishes the ring's
/// statistics, since the writer and reader both live on threads of their own.
#[derive(Debug)]
pub struct RingStore {
    writer: RingWriter,
    stats: Arc<Mutex<RingStats>>,
    published: Instant,
}

impl RingStore {
    /// Wraps the writer; `stats` receives a fresh copy at least twice a second.
    pub fn new(writer: RingWriter, stats: Arc<Mutex<RingStats>>) -> Self {
        let store = RingStore {
            writer,
            stats,
            published: Instant::now(),
        };
        store.publish();
        store
    }

    fn publish(&self) {
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner) = self.writer.stats();
    }
}

impl RecordStore for RingStore {
    type Error = RingError;

    fn append_batch(&mut self, records: &[Vec<u8>]) -> Result<(), RingError> {
        self.writer.append_batch(records).map(|_| ())
    }

    fn tick(&mut self) -> Result<(), RingError> {
        if self.published.elapsed() >= STATS_EVERY {
            self.published = Instant::now();
            self.publish();
        }
        self.writer.flush_if_due()
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
