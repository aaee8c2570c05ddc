//! Hashing off the hot path: one worker thread, a bounded request queue, results on a channel.
//!
//! Collectors call [`HashWorker::submit`], which never blocks: when the queue is full the
//! request is refused ([`SubmitError::Full`]) and the caller emits its event without hashes
//! rather than slowing event collection. The worker owns the [`FileHasher`] (and so the
//! cache), hashes requests in order and sends each [`HashResult`] on the results channel,
//! carrying the caller's `id` so it can match the result to its pending event.
//!
//! Dropping the worker stops it: queued jobs are abandoned, a result the owner no longer
//! reads is not waited for, and `drop` joins the thread after at most the file being hashed
//! (bounded by the policy's size limit).

use std::path::PathBuf;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, select, Receiver, Sender, TrySendError};

use crate::hash::{FileHasher, HashOutcome};

/// A request to hash one file.
#[derive(Debug, Clone)]
pub struct HashJob {
    /// Caller's correlation id, returned in the result.
    pub id: u64,
    /// The file to hash.
    pub path: PathBuf,
}

/// The answer to one [`HashJob`].
#[derive(Debug, Clone)]
pub struct HashResult {
    /// The job's id.
    pub id: u64,
    /// The job's path.
    pub path: PathBuf,
    /// Digests or the reason for skipping.
    pub outcome: HashOutcome,
}

/// Why a job was not queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The queue is full: hashing is behind; emit the event without hashes.
    #[error("hash queue full")]
    Full,
    /// The worker thread is gone.
    #[error("hash worker stopped")]
    Stopped,
}

/// A hashing thread with a bounded queue. See the module documentation.
#[derive(Debug)]
pub struct HashWorker {
    jobs: Option<Sender<HashJob>>,
    /// Never sent on: dropping it tells the thread to stop.
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl HashWorker {
    /// Starts the thread. At most `queue` jobs wait; at most `queue` results wait unread
    /// (beyond that the worker waits for the reader, and submissions start being refused).
    pub fn spawn(
        mut hasher: FileHasher,
        queue: usize,
    ) -> std::io::Result<(HashWorker, Receiver<HashResult>)> {
        let (jobs_tx, jobs_rx) = bounded::<HashJob>(queue.max(1));
        let (res_tx, res_rx) = bounded::<HashResult>(queue.max(1));
        let (stop_tx, stop_rx) = bounded::<()>(0);
        let thread = std::thread::Builder::new()
            .name("file-hasher".into())
            .spawn(move || run(&mut hasher, &jobs_rx, &res_tx, &stop_rx))?;
        Ok((
            HashWorker {
                jobs: Some(jobs_tx),
                stop: Some(stop_tx),
                thread: Some(thread),
            },
            res_rx,
        ))
    }

    /// Queues a job without blocking.
    pub fn submit(&self, id: u64, path: PathBuf) -> Result<(), SubmitError> {
        let Some(tx) = &self.jobs else {
            return Err(SubmitError::Stopped);
        };
        tx.try_send(HashJob { id, path }).map_err(|e| match e {
            TrySendError::Full(_) => SubmitError::Full,
            TrySendError::Disconnected(_) => SubmitError::Stopped,
        })
    }
}

/// The worker loop: until stopped or the queue is closed, hash one job and deliver its result.
fn run(
    hasher: &mut FileHasher,
    jobs: &Receiver<HashJob>,
    results: &Sender<HashResult>,
    stop: &Receiver<()>,
) {
    loop {
        let job = select! {
            recv(jobs) -> job => match job {
                Ok(job) => job,
                Err(_) => return, // queue closed
            },
            recv(stop) -> _ => return,
        };
        let outcome = hasher.hash_path(&job.path);
        let result = HashResult {
            id: job.id,
            path: job.path,
            outcome,
        };
        select! {
            send(results, result) -> sent => if sent.is_err() {
                return; // nobody listens any more
            },
            recv(stop) -> _ => return,
        }
    }
}

impl Drop for HashWorker {
    fn drop(&mut self) {
        self.stop.take();
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::HashPolicy;
    use std::time::Duration;

    #[test]
    fn results_arrive_with_their_ids_and_cache_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        let hasher = FileHasher::new(HashPolicy::new(Vec::<PathBuf>::new(), 1 << 20), 8);
        let (w, rx) = HashWorker::spawn(hasher, 4).unwrap();
        w.submit(7, p.clone()).unwrap();
        let r = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(r.id, 7);
        assert_eq!(r.path, p);
        match r.outcome {
            HashOutcome::Hashed { hashes, cached } => {
                assert!(!cached);
                assert_eq!(hashes.md5, "900150983cd24fb0d6963f7d28e17f72");
            }
            other => panic!("{other:?}"),
        }
        w.submit(8, p).unwrap();
        let r = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(matches!(
            r.outcome,
            HashOutcome::Hashed { cached: true, .. }
        ));
        drop(w);
        assert!(
            rx.recv_timeout(Duration::from_secs(10)).is_err(),
            "channel closes after drop"
        );
    }

    #[test]
    fn full_queue_refuses_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        let hasher = FileHasher::new(HashPolicy::new(Vec::<PathBuf>::new(), 1 << 20), 8);
        // Results are never read: the worker blocks after 1 result; the queue then fills.
        let (w, rx) = HashWorker::spawn(hasher, 1).unwrap();
        let mut refused = 0;
        for i in 0..50 {
            if w.submit(i, p.clone()) == Err(SubmitError::Full) {
                refused += 1;
            }
        }
        assert!(refused >= 40, "only {refused} refused");
        drop(rx);
        drop(w);
    }

    #[test]
    fn drop_returns_while_the_owner_still_holds_unread_results() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        let hasher = FileHasher::new(HashPolicy::new(Vec::<PathBuf>::new(), 1 << 20), 8);
        let (w, rx) = HashWorker::spawn(hasher, 1).unwrap();
        for i in 0..10 {
            let _ = w.submit(i, p.clone());
        }
        // The worker is blocked delivering a result nobody reads; dropping must not hang.
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            drop(w);
            let _ = done_tx.send(());
        });
        assert!(
            done_rx.recv_timeout(Duration::from_secs(10)).is_ok(),
            "drop hung"
        );
        drop(rx);
    }
}
