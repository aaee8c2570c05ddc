//! State shared by the writer and the reader, guarded by one mutex.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use crate::error::{io_at, RingError};
use crate::options::RingOptions;
use crate::position::{Position, RingStats};
use crate::segment::{segment_path, SegMeta};

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
    pub(crate) records_dropped: u64,
    pub(crate) bytes_dropped: u64,
    pub(crate) corrupt_skipped: u64,
}

impl State {
    /// Deletes the oldest segments, read or not, until a new full segment fits in the
    /// capacity. Unacknowledged records deleted this way are counted as dropped.
    pub(crate) fn make_room(&mut self, dir: &Path, opts: &RingOptions) -> Result<(), RingError> {
        let mut total: u64 = self.segments.iter().map(|s| s.len).sum();
        while total.saturating_add(opts.segment_size) > opts.capacity {
            let Some(oldest) = self.segments.pop_front() else {
                break;
            };
            total -= oldest.len;
            self.records_dropped += oldest.unacked_records(self.ack.as_ref());
            self.bytes_dropped += oldest.unacked_bytes(self.ack.as_ref());
            remove_segment(dir, oldest.number)?;
        }
        Ok(())
    }

    /// Deletes segments that lie entirely before the acknowledged record.
    pub(crate) fn delete_acked(&mut self, dir: &Path) -> Result<(), RingError> {
        let Some(ack) = self.ack else { return Ok(()) };
        while self.segments.len() > 1
            && self
                .segments
                .front()
                .is_some_and(|s| s.number < ack.segment())
        {
            if let Some(seg) = self.segments.pop_front() {
                remove_segment(dir, seg.number)?;
            }
        }
        Ok(())
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
