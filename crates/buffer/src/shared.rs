//! State shared by the writer and the reader, guarded by one mutex.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use crate::error::{io_at, RingError};
use crate::options::RingOptions;
use crate::position::{Position, RingStats};
use crate::segment::{segment_path, SegMeta};
use crate::warning::{RingWarning, MAX_KEPT};

/// Callback run after new records become visible to the reader.
pub(crate) type NotifyHook = Arc<dyn Fn() + Send + Sync>;

/// Segment list, acknowledgement and counters.
#[derive(Debug)]
pub(crate) struct State {
    /// Oldest first; the last one is the segment the writer appends to.
    pub(crate) segments: VecDeque<SegMeta>,
    pub(crate) ack: Option<Position>,
    /// Sequence number the next published record will have.
    pub(crate) published_next_seq: u64,
    pub(crate) last_published: Option<Position>,
    /// The last record the reader delivered (records up to it are not counted as
    /// dropped when the capacity limit deletes them: the reader has them).
    pub(crate) read: Option<Position>,
    /// Highest sequence number the capacity limit deleted (or that was gone before the
    /// ring was opened): gaps up to it are drops, not losses.
    pub(crate) dropped_through: Option<u64>,
    pub(crate) records_dropped: u64,
    pub(crate) bytes_dropped: u64,
    pub(crate) corrupt_skipped: u64,
    pub(crate) records_lost: u64,
    /// Segment files that could not be deleted; retried at every deletion.
    pub(crate) leftovers: Vec<u64>,
    pub(crate) warnings: Vec<RingWarning>,
}

impl State {
    /// Deletes the oldest segments, read or not, until a new full segment fits in the
    /// capacity. Unacknowledged records deleted this way are counted as dropped.
    /// Deletes the oldest segments, read or not, until a new full segment fits in the
    /// capacity. Records deleted this way that were neither acknowledged nor read are
    /// counted as dropped (records the reader holds are still delivered).
    pub(crate) fn make_room(&mut self, dir: &Path, opts: &RingOptions) {
        self.retry_leftovers(dir);
        let mut total: u64 = self.segments.iter().map(|s| s.len).sum();
        let floor = self.ack.max(self.read);
        while total.saturating_add(opts.segment_size) > opts.capacity {
            let Some(oldest) = self.segments.pop_front() else {
                break;
            };
            total -= oldest.len;
            self.records_dropped += oldest.unacked_records(floor.as_ref());
            self.bytes_dropped += oldest.unacked_bytes(floor.as_ref());
            if oldest.last_seq.is_some() {
                self.dropped_through = self.dropped_through.max(oldest.last_seq);
            }
            self.remove_or_keep(dir, oldest.number);
        }
    }

    /// Deletes segments that lie entirely before the acknowledged record.
    pub(crate) fn delete_acked(&mut self, dir: &Path) {
        self.retry_leftovers(dir);
        let Some(ack) = self.ack else { return };
        while self.segments.len() > 1
            && self
                .segments
                .front()
                .is_some_and(|s| s.number < ack.segment())
        {
            if let Some(seg) = self.segments.pop_front() {
                self.remove_or_keep(dir, seg.number);
            }
        }
    }

    /// Deletes a segment file that left the ring; one that cannot be deleted (an
    /// immutable file, a read-only directory) is remembered, warned about once and
    /// retried, so that an unremovable file never stops reading, acknowledging or
    /// writing.
    fn remove_or_keep(&mut self, dir: &Path, number: u64) {
        if let Err(err) = remove_segment(dir, number) {
            self.leftovers.push(number);
            self.warn(RingWarning::UndeletableSegment {
                path: segment_path(dir, number),
                error: err.to_string(),
            });
        }
    }

    fn retry_leftovers(&mut self, dir: &Path) {
        if !self.leftovers.is_empty() {
            self.leftovers
                .retain(|&number| remove_segment(dir, number).is_err());
        }
    }

    /// Keeps a warning for the owner, discarding the oldest beyond [`MAX_KEPT`].
    pub(crate) fn warn(&mut self, warning: RingWarning) {
        if self.warnings.len() >= MAX_KEPT {
            self.warnings.remove(0);
        }
        self.warnings.push(warning);
    }

    /// Counts the records with sequence numbers in `from..to` that a reader found
    /// missing, except those the capacity limit deleted (already counted as dropped).
    pub(crate) fn count_gap(&mut self, from: u64, to: u64, segment: u64) {
        let from = match self.dropped_through {
            Some(dropped) => from.max(dropped.saturating_add(1)),
            None => from,
        };
        if to > from {
            self.records_lost += to - from;
            self.warn(RingWarning::RecordsLost {
                first_seq: from,
                count: to - from,
                segment,
            });
        }
    }

    pub(crate) fn stats(&self) -> RingStats {
        let ack = self.ack.as_ref();
        RingStats {
            bytes_on_disk: self.segments.iter().map(|s| s.len).sum(),
            segments: self.segments.len(),
            records_pending: self.segments.iter().map(|s| s.unacked_records(ack)).sum(),
            bytes_pending: self.segments.iter().map(|s| s.unacked_bytes(ack)).sum(),
            records_dropped: self.records_dropped,
            bytes_dropped: self.bytes_dropped,
            corrupt_skipped: self.corrupt_skipped,
            records_lost: self.records_lost,
            leftover_segments: self.leftovers.len(),
            write_position: self.last_published,
            ack_position: self.ack,
        }
    }
}

fn remove_segment(dir: &Path, number: u64) -> Result<(), RingError> {
    let path = segment_path(dir, number);
    match fs::remove_file(&path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(io_at(&path)(err)),
        _ => Ok(()),
    }
}

/// Everything the writer and reader share. Holds the directory lock until both are gone.
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) opts: RingOptions,
    state: Mutex<State>,
    data: Condvar,
    notify: Mutex<Option<NotifyHook>>,
    /// A [`crate::RingReader`] is alive (there is at most one).
    pub(crate) reader_alive: AtomicBool,
    _lock: File,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("dir", &self.dir)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn new(dir: PathBuf, opts: RingOptions, state: State, lock: File) -> Self {
        Self {
            dir,
            opts,
            state: Mutex::new(state),
            data: Condvar::new(),
            notify: Mutex::new(None),
            reader_alive: AtomicBool::new(false),
            _lock: lock,
        }
    }

    /// Locks the state. A panic elsewhere cannot leave it half-updated in a way that
    /// matters (it is counters and a list), so poisoning is ignored.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Blocks on the data condition variable for at most `timeout`.
    pub(crate) fn wait<'a>(
        &self,
        guard: MutexGuard<'a, State>,
        timeout: std::time::Duration,
    ) -> MutexGuard<'a, State> {
        match self.data.wait_timeout(guard, timeout) {
            Ok((guard, _)) => guard,
            Err(poisoned) => poisoned.into_inner().0,
        }
    }

    pub(crate) fn set_notify(&self, hook: Option<NotifyHook>) {
        *self.notify.lock().unwrap_or_else(PoisonError::into_inner) = hook;
    }

    /// Wakes a reader blocked in `wait_for_data` and runs the notify hook.
    pub(crate) fn wake(&self) {
        self.data.notify_all();
        let hook = self
            .notify
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(hook) = hook {
            hook();
        }
    }
}
