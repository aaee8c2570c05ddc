//! Where the shipper reads records from and acknowledges them: the ring in the agent,
//! an in-memory queue in tests and benchmarks.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

/// One record read from a source: its position and its bytes (a routed record, see
/// [`agent_pipeline::RoutedRecord`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRecord {
    /// Totally ordered position; later records have larger positions.
    pub position: u64,
    /// The encoded routed record.
    pub bytes: Vec<u8>,
}

/// A queue of records with positional acknowledgement (the agent adapts its ring to it).
///
/// `read` hands out records after those already handed out, in position order, and never
/// blocks. `ack(p)` means every record at a position `<= p` is delivered (or dropped for
/// good) and its space may be reused.
pub trait RecordSource {
    /// The source's failure type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Up to `max` next records; empty when none is available now.
    fn read(&mut self, max: usize) -> Result<Vec<SourceRecord>, Self::Error>;

    /// Everything at or before `upto` is done.
    fn ack(&mut self, upto: u64) -> Result<(), Self::Error>;

    /// Resolves when new records may be available, or after `timeout` at the latest.
    fn wait(&mut self, timeout: Duration) -> impl Future<Output = ()>;

    /// Appends copies of `records` at the tail, so that the positions they held can be
    /// acknowledged. The shipper uses it to move records of a key the intake refuses
    /// (401/403) out of the way of other keys once its memory budget is full, without
    /// losing them. Returns `false` when the source cannot do it (the default): the
    /// shipper then keeps holding them and stops reading until the key is accepted again.
    fn requeue(&mut self, records: &[&[u8]]) -> Result<bool, Self::Error> {
        let _ = records;
        Ok(false)
    }
}

#[derive(Debug, Default)]
struct MemoryInner {
    records: VecDeque<SourceRecord>,
    next_position: u64,
    cursor: u64,
    acked: Option<u64>,
}

/// An in-memory [`RecordSource`], for tests and benchmarks. Clones share the queue, so
/// one clone can feed or inspect while the shipper owns another.
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    inner: Arc<Mutex<MemoryInner>>,
    notify: Arc<Notify>,
}

impl MemorySource {
    /// An empty queue; positions start at 0.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends a record and returns its position.
    pub fn push(&self, bytes: Vec<u8>) -> u64 {
        let pos = {
            let mut inner = self.lock();
            let pos = inner.next_position;
            inner.next_position += 1;
            inner.records.push_back(SourceRecord {
                position: pos,
                bytes,
            });
            pos
        };
        self.notify.notify_one();
        pos
    }

    /// The last acknowledged position.
    pub fn acked(&self) -> Option<u64> {
        self.lock().acked
    }

    /// Records not acknowledged yet.
    pub fn unacked(&self) -> Vec<SourceRecord> {
        self.lock().records.iter().cloned().collect()
    }
}

impl RecordSource for MemorySource {
    type Error = Infallible;

    fn read(&mut self, max: usize) -> Result<Vec<SourceRecord>, Infallible> {
        let mut inner = self.lock();
        let cursor = inner.cursor;
        // Positions in the queue are contiguous, so the cursor maps to an index.
        let first = inner.records.front().map_or(cursor, |r| r.position);
        let start = usize::try_from(cursor.saturating_sub(first)).unwrap_or(usize::MAX);
        let out: Vec<SourceRecord> = inner
            .records
            .iter()
            .skip(start)
            .take(max)
            .cloned()
            .collect();
        if let Some(last) = out.last() {
            inner.cursor = last.position + 1;
        }
        Ok(out)
    }

    fn ack(&mut self, upto: u64) -> Result<(), Infallible> {
        let mut inner = self.lock();
        while inner.records.front().is_some_and(|r| r.position <= upto) {
            inner.records.pop_front();
        }
        inner.acked = Some(inner.acked.map_or(upto, |a| a.max(upto)));
        Ok(())
    }

    async fn wait(&mut self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.notify.notified()).await;
    }

    fn requeue(&mut self, records: &[&[u8]]) -> Result<bool, Infallible> {
        for r in records {
            self.push(r.to_vec());
        }
        Ok(true)
    }
}
