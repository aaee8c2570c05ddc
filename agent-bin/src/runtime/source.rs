//! The ring's reader as the shipper's record source.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use agent_buffer::{Position, RingError, RingReader};
use agent_pipeline::Control;
use agent_transport::{RecordSource, SourceRecord};
use crossbeam_channel::Sender;
use tokio::sync::Notify;

/// Most payload bytes one read takes from the ring: about one batch. The shipper reads
/// again until its budget is full, so this bounds the reader's buffer, not what is read;
/// at 4 MiB a moment of backlog grew that buffer to 4 MiB for the rest of the process.
const MAX_READ_BYTES: usize = 256 << 10;

/// How long the shipper lets newly published records gather before reading them.
const DATA_COALESCE: Duration = Duration::from_millis(100);

/// Adapts [`RingReader`] (positions are segment + offset + sequence number) to the
/// shipper's [`RecordSource`] (positions are plain ordered integers: the sequence number).
#[derive(Debug)]
pub struct RingSource {
    reader: RingReader,
    notify: Arc<Notify>,
    /// Positions handed out and not yet acknowledged, oldest first.
    in_flight: VecDeque<Position>,
    /// The writer thread, which owns the ring's writing end (for requeues).
    writer: Sender<Control>,
}

impl RingSource {
    /// Wraps a reader; the ring wakes [`RecordSource::wait`] when the writer publishes.
    pub fn new(reader: RingReader, writer: Sender<Control>) -> Self {
        let notify = Arc::new(Notify::new());
        let waker = notify.clone();
        reader.set_notify(move || waker.notify_one());
        RingSource {
            reader,
            notify,
            in_flight: VecDeque::new(),
            writer,
        }
    }
}

impl RecordSource for RingSource {
    type Error = RingError;

    fn read(&mut self, max: usize) -> Result<Vec<SourceRecord>, RingError> {
        let batch = self.reader.read_batch(max, MAX_READ_BYTES)?;
        let mut out = Vec::with_capacity(batch.len());
        for (pos, bytes) in batch {
            self.in_flight.push_back(pos);
            out.push(SourceRecord {
                position: pos.seq(),
                bytes,
            });
        }
        Ok(out)
    }

    fn ack(&mut self, upto: u64) -> Result<(), RingError> {
        let mut last = None;
        while let Some(pos) = self.in_flight.front() {
            if pos.seq() > upto {
                break;
            }
            last = self.in_flight.pop_front();
        }
        match last {
            Some(pos) => self.reader.ack(pos),
            None => Ok(()),
        }
    }

    fn requeue(&mut self, records: &[&[u8]]) -> Result<bool, RingError> {
        let (done, answer) = crossbeam_channel::bounded(1);
        let msg = Control::Requeue {
            records: records.iter().map(|r| r.to_vec()).collect(),
            done,
        };
        if self.writer.send(msg).is_err() {
            return Ok(false);
        }
        // The writer answers as soon as the records are appended (no fsync); blocking the
        // shipper's single-threaded runtime for that long is harmless.
        Ok(matches!(
            answer.recv_timeout(Duration::from_secs(10)),
            Ok(Ok(()))
        ))
    }

    fn wait(&mut self, timeout: Duration) -> impl Future<Output = ()> {
        let notify = self.notify.clone();
        async move {
            let start = tokio::time::Instant::now();
            if tokio::time::timeout(timeout, notify.notified())
                .await
                .is_ok()
            {
                // New records: let more of them gather before the shipper reads, unless
                // its own deadline comes first. The writer publishes after every pass of
                // a collector, and a batch waits for 250 records or 5 s anyway, so waking
                // the shipper for each publish cost a wake-up and a ring read per pass
                // for nothing. A finished request still wakes the shipper at once (it
                // waits on this future and its requests together).
                let deadline = (start + timeout).min(tokio::time::Instant::now() + DATA_COALESCE);
                tokio::time::sleep_until(deadline).await;
            }
        }
    }
}
