//! The appending side of the ring.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::error::{io_at, RingError};
use crate::frame::{self, HEADER_LEN};
use crate::position::{Position, RingStats};
use crate::segment::{segment_path, SegMeta, MAX_SEGMENT_NUMBER};
use crate::shared::Shared;
use crate::syncer::{Job, Syncer};
use crate::warning::RingWarning;

/// Appends records to the ring. Owned by one thread; never blocks on a full ring.
#[derive(Debug)]
pub struct RingWriter {
    shared: Arc<Shared>,
    file: File,
    path: PathBuf,
    /// Number of the segment being appended to.
    active: u64,
    /// Length of the active segment including buffered bytes.
    active_len: u64,
    /// Length of the active segment the OS has received.
    published_len: u64,
    buf: Vec<u8>,
    buf_first_seq: Option<u64>,
    buf_records: u64,
    buf_last: Option<Position>,
    next_seq: u64,
    published_next_seq: u64,
    last_sync: Instant,
    /// Data was written to `file` since its last fdatasync was started.
    dirty: bool,
    syncer: Syncer,
    /// Appends since the clock was last read for the flush interval.
    unchecked_appends: u32,
    /// The last write to `file` failed: the buffer is kept and written again from
    /// `published_len` by the next publish.
    write_failed: bool,
}

/// Reading the clock costs about as much as framing a small record, so `append` checks
/// the flush interval only every this many appends (and whenever it writes to the OS).
const CLOCK_CHECK_EVERY: u32 = 32;

/// Creates segment `number` after making room for it under the capacity. The caller
/// makes the directory entry durable.
pub(crate) fn create_segment(shared: &Shared, number: u64) -> Result<(File, PathBuf), RingError> {
    let path = segment_path(&shared.dir, number);
    if number > MAX_SEGMENT_NUMBER {
        return Err(RingError::InvalidOptions(
            "segment numbers are exhausted (a stray segment file with a huge number?)",
        ));
    }
    let mut state = shared.lock();
    state.make_room(&shared.dir, &shared.opts);
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)
        .map_err(io_at(&path))?;
    state.segments.push_back(SegMeta::empty(number));
    Ok((file, path))
}

impl RingWriter {
    pub(crate) fn new(
        shared: Arc<Shared>,
        active: u64,
        file: File,
        path: PathBuf,
        next_seq: u64,
    ) -> Self {
        let write_buffer = shared.opts.write_buffer;
        Self {
            shared,
            file,
            path,
            active,
            active_len: 0,
            published_len: 0,
            buf: Vec::with_capacity(write_buffer.min(16 * 1024 * 1024)),
            buf_first_seq: None,
            buf_records: 0,
            buf_last: None,
            next_seq,
            published_next_seq: next_seq,
            last_sync: Instant::now(),
            dirty: false,
            syncer: Syncer::start(),
            unchecked_appends: 0,
            write_failed: false,
        }
    }

    fn check_len(&self, len: usize) -> Result<(), RingError> {
        let max = self.shared.opts.max_record_len();
        if len > max {
            return Err(RingError::RecordTooLarge { len, max });
        }
        Ok(())
    }

    /// Appends one record and returns its position.
    ///
    /// The record becomes visible to the reader once handed to the OS (see
    /// [`crate::RingOptions::write_buffer`]) and durable at the next sync. Fails with
    /// [`RingError::RecordTooLarge`] if it cannot fit in one segment, and with
    /// [`RingError::Stalled`] when the disk refuses writes: `accepted` 1 means the
    /// record was kept (and is written when the disk takes writes again), 0 that it was
    /// not taken.
    pub fn append(&mut self, record: &[u8]) -> Result<Position, RingError> {
        self.check_len(record.len())?;
        self.retry_failed_write().map_err(|e| stalled(0, e))?;
        let pos = self.push(record).map_err(|e| stalled(0, e))?;
        self.unchecked_appends += 1;
        let result = if self.buf.len() >= self.shared.opts.write_buffer {
            self.publish().and_then(|()| self.sync_if_due())
        } else if self.unchecked_appends >= CLOCK_CHECK_EVERY {
            self.sync_if_due()
        } else {
            Ok(())
        };
        result.map_err(|e| stalled(1, e))?;
        Ok(pos)
    }

    /// Appends several records and hands them to the OS, so the reader sees them at once.
    ///
    /// All lengths are checked first: if one record is too large, nothing is appended.
    /// Returns the position of the last record, or `None` for an empty batch.
    ///
    /// When the disk refuses a write (full, read-only, I/O error) this fails with
    /// [`RingError::Stalled`]: the records before `accepted` are kept in memory and the
    /// rest were not taken. While a write is pending, nothing new is taken until the
    /// kept records are written, so memory stays bounded by about
    /// [`crate::RingOptions::write_buffer`].
    pub fn append_batch<R: AsRef<[u8]>>(
        &mut self,
        records: &[R],
    ) -> Result<Option<Position>, RingError> {
        for record in records {
            self.check_len(record.as_ref().len())?;
        }
        self.retry_failed_write().map_err(|e| stalled(0, e))?;
        let mut last = None;
        for (taken, record) in records.iter().enumerate() {
            last = Some(self.push(record.as_ref()).map_err(|e| stalled(taken, e))?);
            if self.buf.len() >= self.shared.opts.write_buffer {
                self.publish().map_err(|e| stalled(taken + 1, e))?;
            }
        }
        self.publish()
            .and_then(|()| self.sync_if_due())
            .map_err(|e| stalled(records.len(), e))?;
        Ok(last)
    }

    /// Whether records are kept in memory because the disk refused their write.
    pub fn is_stalled(&self) -> bool {
        self.write_failed
    }

    /// Takes the warnings the ring collected (stray files, damaged acknowledgement,
    /// undeletable segments, lost records) so that the owner can log them.
    pub fn take_warnings(&self) -> Vec<RingWarning> {
        std::mem::take(&mut self.shared.lock().warnings)
    }

    /// Writes the records kept after a failed write before anything new is taken.
    fn retry_failed_write(&mut self) -> Result<(), RingError> {
        if self.write_failed {
            self.publish()?;
        }
        Ok(())
    }

    /// Hands buffered records to the OS and fdatasyncs (waiting for background syncs of
    /// earlier segments too): everything appended so far survives a crash or power loss
    /// once this returns.
    pub fn flush(&mut self) -> Result<(), RingError> {
        self.publish()?;
        if self.dirty {
            self.file.sync_data().map_err(io_at(&self.path))?;
            self.dirty = false;
        }
        self.last_sync = Instant::now();
        self.syncer.wait()
    }

    /// Hands buffered records to the OS and starts a background sync if
    /// `flush_interval` has passed since the last one. Call this when the writer thread is
    /// idle (e.g. on a channel receive timeout) so buffered records do not wait for the
    /// next append to become visible and durable.
    pub fn flush_if_due(&mut self) -> Result<(), RingError> {
        self.publish()?;
        self.sync_if_due()
    }

    /// Current sizes, counters and positions.
    pub fn stats(&self) -> RingStats {
        self.shared.lock().stats()
    }

    /// Starts a background fdatasync of the active segment when `flush_interval` has
    /// passed, and reports any failure of an earlier background sync.
    fn sync_if_due(&mut self) -> Result<(), RingError> {
        self.unchecked_appends = 0;
        self.syncer.take_error()?;
        if self.last_sync.elapsed() >= self.shared.opts.flush_interval {
            self.publish()?;
            if self.dirty {
                let clone = self.file.try_clone().map_err(io_at(&self.path))?;
                self.syncer.submit(Job::Data(clone, self.path.clone()))?;
                self.dirty = false;
            }
            self.last_sync = Instant::now();
        }
        Ok(())
    }

    /// Frames one record into the buffer, rolling to a new segment if it does not fit.
    fn push(&mut self, record: &[u8]) -> Result<Position, RingError> {
        let frame_len = (HEADER_LEN + record.len()) as u64;
        if self.active_len + frame_len > self.shared.opts.segment_size {
            self.roll()?;
        }
        let seq = self.next_seq;
        frame::encode(&mut self.buf, seq, record);
        self.active_len += frame_len;
        self.next_seq += 1;
        let pos = Position::new(seq, self.active, self.active_len);
        self.buf_first_seq.get_or_insert(seq);
        self.buf_records += 1;
        self.buf_last = Some(pos);
        Ok(pos)
    }

    /// Seals the active segment and starts the next one. The sealed segment and the
    /// directory are synced by the background syncer.
    fn roll(&mut self) -> Result<(), RingError> {
        self.publish()?;
        self.syncer.take_error()?;
        // Never wrap: a wrapped number would sort before live segments and overwrite them.
        let next = self
            .active
            .checked_add(1)
            .ok_or(RingError::InvalidOptions("segment numbers are exhausted"))?;
        let (file, path) = create_segment(&self.shared, next)?;
        let sealed = std::mem::replace(&mut self.file, file);
        let sealed_path = std::mem::replace(&mut self.path, path);
        if self.dirty {
            self.syncer.submit(Job::Data(sealed, sealed_path))?;
        }
        self.syncer.submit(Job::Dir(self.shared.dir.clone()))?;
        self.dirty = false;
        self.last_sync = Instant::now();
        self.active = next;
        self.active_len = 0;
        self.published_len = 0;
        Ok(())
    }

    /// Writes the buffer to the segment file and makes it visible to the reader.
    fn publish(&mut self) -> Result<(), RingError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if self.write_failed {
            self.file
                .seek(SeekFrom::Start(self.published_len))
                .map_err(io_at(&self.path))?;
        }
        if let Err(err) = self.file.write_all(&self.buf) {
            // Put the file back to what the reader has been told, so a partial write
            // never leaves a torn record in the middle of the segment. The buffered
            // records are kept, with their sequence numbers, and written again from the
            // same offset by the next publish (a full disk must not lose them).
            let _ = self.file.set_len(self.published_len);
            self.write_failed = true;
            return Err(io_at(&self.path)(err));
        }
        self.write_failed = false;
        {
            let mut state = self.shared.lock();
            if let Some(seg) = state
                .segments
                .iter_mut()
                .rev()
                .find(|s| s.number == self.active)
            {
                seg.len = self.active_len;
                seg.records += self.buf_records;
                if seg.first_seq.is_none() {
                    seg.first_seq = self.buf_first_seq;
                }
                seg.last_seq = self.buf_last.map(|p| p.seq());
            }
            state.published_next_seq = self.next_seq;
            state.last_published = self.buf_last;
        }
        self.published_len = self.active_len;
        self.published_next_seq = self.next_seq;
        self.dirty = true;
        self.clear_buffer();
        self.shared.wake();
        Ok(())
    }

    fn clear_buffer(&mut self) {
        self.buf.clear();
        self.buf_first_seq = None;
        self.buf_records = 0;
        self.buf_last = None;
    }
}

/// Wraps a failure of an append in [`RingError::Stalled`] with how many records were
/// taken; a failure that already says so keeps the smaller count.
fn stalled(accepted: usize, err: RingError) -> RingError {
    match err {
        RingError::Stalled { .. } => err,
        other => RingError::Stalled {
            accepted,
            source: Box::new(other),
        },
    }
}

impl Drop for RingWriter {
    /// Hands buffered records to the OS and syncs; errors cannot be reported here, so
    /// call [`RingWriter::flush`] first when they matter.
    fn drop(&mut self) {
        let _ = self.flush();
    }
}
