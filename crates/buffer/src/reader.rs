//! The consuming side of the ring.

use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ackfile;
use crate::error::{io_at, RingError};
use crate::frame::{self, Decoded, HEADER_LEN};
use crate::position::{Position, RingStats};
use crate::segment::segment_path;
use crate::shared::Shared;
use crate::warning::RingWarning;

/// Bytes read from a segment file per system call (at least). The read buffer is kept
/// between calls, so this is also about what a reader holds in memory when idle.
const READ_CHUNK: u64 = 256 * 1024;

/// Reads records oldest first and acknowledges them. Owned by one task or thread.
#[derive(Debug)]
pub struct RingReader {
    shared: Arc<Shared>,
    /// Segment and offset of the next record to read.
    segment: u64,
    offset: u64,
    /// Sequence number of the last record delivered (or acknowledged before open).
    last_seq: Option<u64>,
    /// `published_next_seq` when the reader last caught up with the writer.
    seen_next_seq: u64,
    file: Option<(u64, File)>,
    /// Bytes of `file` starting at file offset `buf_start`.
    buf: Vec<u8>,
    buf_start: u64,
    /// Gaps in the sequence numbers met by the current `read_batch`: (first missing,
    /// first present after the gap, its segment).
    gaps: Vec<(u64, u64, u64)>,
    /// When the backup copy of the acknowledgement was last written.
    last_backup: Option<Instant>,
}

/// Opens a new reader on the same ring once the previous one is gone, e.g. to restart
/// a consumer that failed. Cheap to clone; keeps the ring directory locked while alive.
#[derive(Debug, Clone)]
pub struct RingReopener {
    shared: Arc<Shared>,
}

impl RingReopener {
    /// A new reader that resumes right after the acknowledged record: records the
    /// previous reader returned without acknowledging them are returned again. Fails
    /// with [`RingError::ReaderBusy`] while another reader of this ring is alive.
    pub fn reopen(&self) -> Result<RingReader, RingError> {
        if self.shared.reader_alive.swap(true, Ordering::AcqRel) {
            return Err(RingError::ReaderBusy(self.shared.dir.clone()));
        }
        let ack = {
            let mut state = self.shared.lock();
            state.read = state.ack;
            state.ack
        };
        Ok(RingReader::build(Arc::clone(&self.shared), ack))
    }
}

/// The segment the reader is in, as the shared state saw it.
struct SegView {
    number: u64,
    visible: u64,
    sealed: bool,
}

impl RingReader {
    pub(crate) fn new(shared: Arc<Shared>, ack: Option<Position>) -> Self {
        shared.reader_alive.store(true, Ordering::Release);
        Self::build(shared, ack)
    }

    fn build(shared: Arc<Shared>, ack: Option<Position>) -> Self {
        Self {
            shared,
            segment: ack.map_or(0, |a| a.segment()),
            offset: ack.map_or(0, |a| a.offset()),
            last_seq: ack.map(|a| a.seq()),
            seen_next_seq: ack.map_or(0, |a| a.seq().saturating_add(1)),
            file: None,
            buf: Vec::new(),
            buf_start: 0,
            gaps: Vec::new(),
            last_backup: None,
        }
    }

    /// A handle that can open a new reader on this ring after this one is dropped.
    pub fn reopener(&self) -> RingReopener {
        RingReopener {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Takes the warnings the ring collected (see [`crate::RingWriter::take_warnings`]).
    pub fn take_warnings(&self) -> Vec<RingWarning> {
        std::mem::take(&mut self.shared.lock().warnings)
    }

    /// Returns up to `max_records` records, oldest first, whose payloads add up to at most
    /// `max_bytes` (but always at least one record if any is pending). Never blocks;
    /// returns an empty vector when nothing is pending.
    ///
    /// Damaged records are skipped and counted in [`RingStats::corrupt_skipped`]; they are
    /// never returned. Records deleted by the capacity limit are skipped. Records found
    /// missing (a gap in the sequence numbers the capacity limit does not explain) are
    /// counted in [`RingStats::records_lost`] and reported as
    /// [`RingWarning::RecordsLost`].
    pub fn read_batch(
        &mut self,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<(Position, Vec<u8>)>, RingError> {
        let mut out = Vec::new();
        let mut corrupt = 0u64;
        let result = self.fill(&mut out, &mut corrupt, max_records, max_bytes);
        {
            let mut state = self.shared.lock();
            state.corrupt_skipped += corrupt;
            for (from, to, segment) in self.gaps.drain(..) {
                state.count_gap(from, to, segment);
            }
            // The writer may have deleted a segment while we were reading it; its records
            // were counted as dropped, so they must not also be delivered.
            let oldest = state.segments.front().map_or(u64::MAX, |s| s.number);
            out.retain(|(pos, _)| pos.segment() >= oldest);
            // From now on the capacity limit does not count these as dropped: they are
            // on their way.
            if let Some((pos, _)) = out.last() {
                state.read = state.read.max(Some(*pos));
            }
            // A batch that stopped at `max_records` or `max_bytes` right on the last
            // published record has still caught up: say so, or the next `wait_for_data`
            // would report data that is not there.
            if self
                .last_seq
                .is_some_and(|last| last.saturating_add(1) >= state.published_next_seq)
            {
                self.seen_next_seq = self.seen_next_seq.max(state.published_next_seq);
            }
        }
        match result {
            Err(err) if out.is_empty() => Err(err),
            _ => Ok(out),
        }
    }

    /// Acknowledges `pos` and everything before it. The acknowledgement is persisted
    /// atomically before this returns; segments it covers entirely are deleted.
    /// Acknowledging an older position than the current one is a no-op.
    pub fn ack(&mut self, pos: Position) -> Result<(), RingError> {
        if self.last_seq.is_none_or(|last| pos.seq() > last) {
            return Err(RingError::AckBeyondRead {
                ack: pos,
                read_seq: self.last_seq,
            });
        }
        if self.shared.lock().ack.is_some_and(|current| current >= pos) {
            return Ok(());
        }
        ackfile::store(&self.shared.dir, &pos)?;
        if self
            .last_backup
            .is_none_or(|at| at.elapsed() >= ackfile::BACKUP_EVERY)
        {
            // Only a help for recovering from a damaged main file: a failure here
            // costs nothing until then.
            let _ = ackfile::store_backup(&self.shared.dir, &pos);
            self.last_backup = Some(Instant::now());
        }
        let mut state = self.shared.lock();
        state.ack = Some(pos);
        state.read = state.read.max(Some(pos));
        // A segment file that cannot be deleted is left behind with a warning; it
        // never fails the acknowledgement.
        state.delete_acked(&self.shared.dir);
        Ok(())
    }

    /// Blocks the calling thread until records the reader has not seen are published, or
    /// `timeout` passes. Returns whether data may be pending. Async callers should use
    /// [`RingReader::set_notify`] (or call this from a blocking-capable thread) instead.
    pub fn wait_for_data(&self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let mut state = self.shared.lock();
        loop {
            if state.published_next_seq > self.seen_next_seq {
                return true;
            }
            let left = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                return false;
            }
            state = self.shared.wait(state, left);
        }
    }

    /// Installs a callback the writer runs (on its thread, with no ring lock held) each
    /// time new records become visible, e.g. to wake an async task with
    /// `Notify::notify_one`. It delays the writer, so keep it cheap.
    pub fn set_notify<F>(&self, hook: F)
    where
        F: Fn() + Send + Sync + 'static,
    {
        self.shared.set_notify(Some(Arc::new(hook)));
    }

    /// Removes the callback installed by [`RingReader::set_notify`].
    pub fn clear_notify(&self) {
        self.shared.set_notify(None);
    }

    /// Current sizes, counters and positions.
    pub fn stats(&self) -> RingStats {
        self.shared.lock().stats()
    }

    /// Finds the segment to read from, skipping segments deleted since the last call.
    /// Returns `None` when the reader is past the last segment.
    fn view(&mut self) -> (Option<SegView>, u64) {
        let state = self.shared.lock();
        let published_next = state.published_next_seq;
        let idx = state.segments.partition_point(|s| s.number < self.segment);
        let Some(seg) = state.segments.get(idx) else {
            return (None, published_next);
        };
        if seg.number != self.segment {
            self.segment = seg.number;
            self.offset = 0;
        }
        let view = SegView {
            number: seg.number,
            visible: seg.len,
            sealed: idx + 1 < state.segments.len(),
        };
        (Some(view), published_next)
    }

    fn fill(
        &mut self,
        out: &mut Vec<(Position, Vec<u8>)>,
        corrupt: &mut u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<(), RingError> {
        let mut bytes = 0usize;
        let mut want = HEADER_LEN as u64;
        while out.len() < max_records {
            let (view, published_next) = self.view();
            let Some(view) = view else {
                self.seen_next_seq = published_next;
                break;
            };
            if self.offset >= view.visible {
                if view.sealed {
                    self.segment = view.number + 1;
                    self.offset = 0;
                    continue;
                }
                self.seen_next_seq = published_next;
                break;
            }
            let Some(limit) = self.load(&view, want)? else {
                // The file vanished (deleted for capacity): move on.
                self.segment = view.number + 1;
                self.offset = 0;
                continue;
            };
            // Decode as many frames as the buffer holds before looking at the shared
            // state again.
            loop {
                if out.len() >= max_records {
                    return Ok(());
                }
                let start = (self.offset - self.buf_start) as usize;
                let end = ((limit - self.buf_start) as usize).min(self.buf.len());
                let at_end = self.buf_start + end as u64 >= limit;
                match frame::decode(&self.buf[start.min(end)..end]) {
                    Decoded::Record {
                        seq,
                        payload,
                        frame_len,
                    } => {
                        if !out.is_empty() && bytes + payload.len() > max_bytes {
                            return Ok(());
                        }
                        self.offset += frame_len as u64;
                        want = HEADER_LEN as u64;
                        // Sequence numbers only grow; anything else is stale and skipped.
                        if self.last_seq.is_none_or(|last| seq > last) {
                            if let Some(expected) = self.last_seq.map(|l| l.saturating_add(1)) {
                                if seq > expected {
                                    self.gaps.push((expected, seq, view.number));
                                }
                            }
                            bytes += payload.len();
                            out.push((
                                Position::new(seq, view.number, self.offset),
                                payload.to_vec(),
                            ));
                            self.last_seq = Some(seq);
                        }
                    }
                    Decoded::BadPayload { frame_len } => {
                        *corrupt += 1;
                        self.offset += frame_len as u64;
                        want = HEADER_LEN as u64;
                    }
                    // Clean end of the visible data: look at the shared state again.
                    Decoded::Incomplete { .. } if self.offset >= limit && limit == view.visible => {
                        break;
                    }
                    Decoded::Incomplete { needed } if !at_end => {
                        want = needed.map_or(want.saturating_mul(2), |n| n as u64);
                        break;
                    }
                    Decoded::BadHeader if !at_end => {
                        // Resynchronising needs the rest of the segment.
                        want = view.visible - self.offset;
                        break;
                    }
                    Decoded::Incomplete { .. } if !view.sealed => {
                        // Cannot happen for data the writer published; wait for more.
                        self.seen_next_seq = published_next;
                        return Ok(());
                    }
                    Decoded::Incomplete { .. } => {
                        // Torn tail of a sealed segment.
                        *corrupt += 1;
                        self.offset = view.visible;
                        break;
                    }
                    Decoded::BadHeader => {
                        *corrupt += 1;
                        self.offset = match frame::resync(&self.buf[start..end], 1) {
                            Some(skip) => self.offset + skip as u64,
                            None => view.visible,
                        };
                        want = HEADER_LEN as u64;
                    }
                }
            }
        }
        Ok(())
    }

    /// Makes `buf` hold the segment from `offset` to at least `offset + want` (bounded by
    /// the visible length). Returns where readable data ends (the visible length, or less
    /// if the file was cut short), or `None` if the segment file no longer exists.
    fn load(&mut self, view: &SegView, want: u64) -> Result<Option<u64>, RingError> {
        if self.file.as_ref().map(|(n, _)| *n) != Some(view.number) {
            let path = segment_path(&self.shared.dir, view.number);
            match File::open(&path) {
                Ok(file) => self.file = Some((view.number, file)),
                Err(err) if err.kind() == ErrorKind::NotFound => return Ok(None),
                Err(err) => return Err(io_at(&path)(err)),
            }
            self.buf.clear();
            self.buf_start = self.offset;
        }
        if self.offset < self.buf_start || self.offset > self.buf_start + self.buf.len() as u64 {
            self.buf.clear();
            self.buf_start = self.offset;
        }
        let need_end = view.visible.min(self.offset.saturating_add(want));
        if self.buf_start + (self.buf.len() as u64) >= need_end {
            return Ok(Some(view.visible));
        }
        self.buf.drain(..(self.offset - self.buf_start) as usize);
        // A large record or read once must not keep its buffer for the life of the reader.
        self.buf.shrink_to(self.buf.len().max(READ_CHUNK as usize));
        self.buf_start = self.offset;
        let from = self.buf_start + self.buf.len() as u64;
        let read_end = view
            .visible
            .min(need_end.max(self.offset.saturating_add(READ_CHUNK)));
        let old = self.buf.len();
        self.buf.resize(old + (read_end - from) as usize, 0);
        let path = segment_path(&self.shared.dir, view.number);
        let Some((_, file)) = self.file.as_mut() else {
            return Ok(None);
        };
        file.seek(SeekFrom::Start(from)).map_err(io_at(&path))?;
        // The file may be shorter than the writer said if it was damaged externally;
        // keep what is there.
        let mut filled = old;
        while filled < self.buf.len() {
            match file.read(&mut self.buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => return Err(io_at(&path)(err)),
            }
        }
        let short = filled < self.buf.len();
        self.buf.truncate(filled);
        if short {
            Ok(Some(self.buf_start + filled as u64))
        } else {
            Ok(Some(view.visible))
        }
    }
}

impl Drop for RingReader {
    fn drop(&mut self) {
        self.shared.reader_alive.store(false, Ordering::Release);
    }
}
