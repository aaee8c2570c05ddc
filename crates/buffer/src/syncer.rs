//! Background fdatasync, so segment rolls and interval syncs do not stall appends.
//!
//! The writer hands a file (or the directory) to one helper thread, which syncs it while
//! the writer keeps filling the page cache, the way a plain sequential write lets the
//! kernel write back in the background. [`Syncer::wait`] (used by `RingWriter::flush`)
//! blocks until every handed-over sync has completed and reports the first failure.

use std::fs::File;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use crate::ackfile::sync_dir;
use crate::error::{io_at, RingError};

/// One thing to make durable.
#[derive(Debug)]
pub(crate) enum Job {
    /// fdatasync a segment file.
    Data(File, PathBuf),
    /// Sync a directory so a newly created segment's name is durable.
    Dir(PathBuf),
}

impl Job {
    fn run(self) -> Result<(), RingError> {
        match self {
            Job::Data(file, path) => file.sync_data().map_err(io_at(&path)),
            Job::Dir(dir) => sync_dir(&dir),
        }
    }
}

#[derive(Debug, Default)]
struct Progress {
    pending: usize,
    error: Option<RingError>,
}

#[derive(Debug, Default)]
struct Tracker {
    progress: Mutex<Progress>,
    done: Condvar,
}

/// Owner of the helper thread.
#[derive(Debug)]
pub(crate) struct Syncer {
    tx: Option<Sender<Job>>,
    tracker: Arc<Tracker>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    /// Starts the helper thread; if the OS refuses a thread, syncs run inline instead.
    pub(crate) fn start() -> Self {
        let tracker = Arc::new(Tracker::default());
        let (tx, rx) = channel::<Job>();
        let worker = Arc::clone(&tracker);
        let thread = std::thread::Builder::new()
            .name("agent-buffer-sync".into())
            .spawn(move || {
                for job in rx {
                    let result = job.run();
                    let mut progress = worker
                        .progress
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    progress.pending -= 1;
                    if let Err(err) = result {
                        progress.error.get_or_insert(err);
                    }
                    worker.done.notify_all();
                }
            })
            .ok();
        Self {
            tx: thread.as_ref().map(|_| tx),
            tracker,
            thread,
        }
    }

    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.tracker
            .progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `job`; runs it inline if there is no helper thread.
    pub(crate) fn submit(&self, job: Job) -> Result<(), RingError> {
        let Some(tx) = &self.tx else {
            return job.run();
        };
        self.progress().pending += 1;
        if let Err(returned) = tx.send(job) {
            self.progress().pending -= 1;
            return returned.0.run();
        }
        Ok(())
    }

    /// Returns (and clears) the first error of a completed background sync.
    pub(crate) fn take_error(&self) -> Result<(), RingError> {
        match self.progress().error.take() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// Blocks until every queued sync has completed.
    pub(crate) fn wait(&self) -> Result<(), RingError> {
        let mut progress = self.progress();
        while progress.pending > 0 {
            progress = self
                .tracker
                .done
                .wait(progress)
                .unwrap_or_else(PoisonError::into_inner);
        }
        match progress.error.take() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        // Closing the channel ends the thread once the queue is drained.
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
