//! The tailing loop: expand patterns, read new bytes, hand lines to the sink, checkpoint.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::checkpoint::{Journal, Saved, Store};
use crate::discover::{expand, Match};
use crate::identity::{current_path, read_at, spare, FileKey, KnownHead};
use crate::lines::next_piece;
use crate::spec::{literal_dir, validate_pattern};
use crate::wait::Waiter;
use crate::{Error, LineSink, LogLine, Options, WatchSpec};

/// Bytes read from a file per `read` call.
const CHUNK: usize = 256 * 1024;
/// Bytes read from one file before the others get a turn.
const FILE_BUDGET: usize = 8 * 1024 * 1024;
/// Longest sleep, so a stop request is noticed quickly.
const MAX_WAIT: Duration = Duration::from_millis(250);

/// Asks a running [`Tailer::run`] to write its checkpoints and return.
#[derive(Debug, Clone, Default)]
pub struct StopHandle(Arc<AtomicBool>);

impl StopHandle {
    /// Requests the stop; `run` returns within about 250 ms plus one sink call.
    pub fn stop(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether a stop was requested.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Counters for the agent's self-monitoring; updated while the tailer runs.
#[derive(Debug, Default)]
pub struct Stats {
    /// Line pieces accepted by the sink.
    pub lines: AtomicU64,
    /// Bytes of those lines (terminators excluded).
    pub bytes: AtomicU64,
    /// Pieces cut at `max_line_len` rather than at a `\n`.
    pub split_lines: AtomicU64,
    /// Files currently held open.
    pub files_open: AtomicU64,
    /// Matching files waiting because `max_open_files` is reached.
    pub files_waiting: AtomicU64,
    /// Files whose path stopped leading to them (renamed away or deleted).
    pub rotations: AtomicU64,
    /// Files that shrank or whose head changed (copytruncate) and were restarted at 0.
    pub truncations: AtomicU64,
    /// Checkpoint files written.
    pub checkpoints: AtomicU64,
    /// Files renamed while the tailer was not running, found again at start under their
    /// new name (same device and inode, or same head fingerprint) and finished.
    pub found_again: AtomicU64,
    /// Files with a checkpoint that were gone at start and not found again: lines written
    /// to them after the checkpoint, if any, could not be sent.
    pub lost_files: AtomicU64,
    /// Paths matched by a pattern that cannot be followed (a directory, a FIFO, a socket,
    /// a device, a symbolic link loop), each counted and logged once.
    pub skipped_paths: AtomicU64,
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// Watches glob patterns and ships every line of matching files to a [`LineSink`].
#[derive(Debug)]
pub struct Tailer {
    specs: Vec<WatchSpec>,
    options: Options,
    state_dir: PathBuf,
    stop: StopHandle,
    stats: Arc<Stats>,
}

impl Tailer {
    /// Validates patterns and options; nothing is opened until [`Tailer::run`].
    /// `state_dir` holds the checkpoint file and is created if missing.
    pub fn new(
        specs: Vec<WatchSpec>,
        state_dir: impl Into<PathBuf>,
        options: Options,
    ) -> Result<Self, Error> {
        for spec in &specs {
            validate_pattern(&spec.pattern)?;
        }
        options.validate()?;
        Ok(Self {
            specs,
            options,
            state_dir: state_dir.into(),
            stop: StopHandle::default(),
            stats: Arc::default(),
        })
    }

    /// A handle that stops [`Tailer::run`] from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Shared counters.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// Tails until stopped, calling `sink` on this thread. Checkpoints are written after
    /// the initial scan, whenever `checkpoint_max_lines` lines or `checkpoint_interval`
    /// passed since the last write, and on return (also on a sink error: they only
    /// ever cover accepted lines).
    pub fn run<S: LineSink>(&mut self, sink: &mut S) -> Result<(), Error> {
        let mut run = Run::start(&self.specs, &self.options, &self.stats, &self.state_dir)?;
        let result = run.main_loop(sink, &self.stop);
        let saved = run.save();
        result.and(saved)
    }
}

/// One open file being followed.
#[derive(Debug)]
struct Tracked {
    key: FileKey,
    path: PathBuf,
    intake_key: String,
    file: File,
    /// The file's first bytes as last read, and their fingerprint for the checkpoint.
    head: KnownHead,
    /// Modification time of the file when `head` was last found to still be its head
    /// (`None`: not known); see [`service`] for when the check is skipped.
    head_checked: Option<SystemTime>,
    /// File offset just past the last line the sink accepted.
    offset: u64,
    /// Bytes after `offset` already read: the start of a line not yet complete.
    pending: Vec<u8>,
    /// Order in which files were opened: older files are read first.
    seq: u64,
    /// When the path was first seen not to lead to this file any more, or when it last
    /// grew after that; the file is closed `rotated_grace` later.
    gone_since: Option<Instant>,
}

impl Tracked {
    fn read_pos(&self) -> u64 {
        self.offset + self.pending.len() as u64
    }

    /// The checkpoint record; the path is where the file is now if that can be
    /// learnt, so a file renamed away can still be finished after a restart.
    fn saved(&self) -> Saved {
        Saved {
            key: self.key,
            head: *self.head.head(),
            offset: self.offset,
            path: current_path(&self.file).unwrap_or_else(|| self.path.clone()),
            intake_key: self.intake_key.clone(),
            order: 0,
        }
    }
}

/// What servicing one file achieved.
#[derive(Debug, Default)]
struct Step {
    /// New bytes were read.
    progressed: bool,
    /// Stopped early (budget or checkpoint due): call again.
    more: bool,
    /// Stopped because this file had its share for this round: serve the others first.
    budget_spent: bool,
    /// The file is finished (rotated away and drained, or unreadable).
    close: bool,
}

/// The state of one [`Tailer::run`].
pub(crate) struct Run<'a> {
    specs: &'a [WatchSpec],
    options: &'a Options,
    stats: &'a Stats,
    store: Store,
    first_start: bool,
    /// Checkpoints of files not open (yet): consumed when a file with that identity opens.
    resume: HashMap<FileKey, Saved>,
    tracked: HashMap<FileKey, Tracked>,
    waiter: Waiter,
    /// Shared read buffer: a file's pending bytes followed by freshly read ones. Its
    /// length stays at its high-water mark (see [`spare`]): only growth is zero-filled.
    scratch: Vec<u8>,
    unsaved_lines: u64,
    /// Matched paths that cannot be followed and were warned about already.
    warned: HashSet<PathBuf>,
    dirty: bool,
    last_save: Instant,
    next_seq: u64,
}

impl<'a> Run<'a> {
    /// Loads the checkpoints, does the initial scan and persists its result at once, so a
    /// crash right after the very first start is not mistaken for another first start.
    pub(crate) fn start(
        specs: &'a [WatchSpec],
        options: &'a Options,
        stats: &'a Stats,
        state_dir: &Path,
    ) -> Result<Self, Error> {
        fs::create_dir_all(state_dir).map_err(|source| Error::State {
            path: state_dir.to_owned(),
            source,
        })?;
        let mut store = Store::new(state_dir);
        let loaded = store.load()?;
        let mut run = Run {
            specs,
            options,
            stats,
            store,
            first_start: loaded.is_none(),
            resume: loaded.unwrap_or_default(),
            tracked: HashMap::new(),
            waiter: Waiter::new(),
            scratch: Vec::new(),
            unsaved_lines: 0,
            warned: HashSet::new(),
            dirty: true,
            last_save: Instant::now(),
            next_seq: 0,
        };
        run.rescan(true);
        run.save()?;
        Ok(run)
    }

    fn main_loop<S: LineSink>(&mut self, sink: &mut S, stop: &StopHandle) -> Result<(), Error> {
        let mut next_scan = Instant::now() + self.options.poll_interval;
        let mut rescan_now = false;
        while !stop.is_stopped() {
            let mut busy = self.service_all(sink)?;
            let now = Instant::now();
            if rescan_now || now >= next_scan {
                // Newly opened files may hold data already: read it before sleeping.
                busy |= self.rescan(false);
                next_scan = now + self.options.poll_interval;
            }
            if self.dirty && self.last_save.elapsed() >= self.options.checkpoint_interval {
                self.save()?;
            }
            let timeout = if busy {
                Duration::ZERO
            } else {
                next_scan.saturating_duration_since(now).min(MAX_WAIT)
            };
            rescan_now = self.waiter.wait(timeout).rescan;
        }
        Ok(())
    }

    /// Reads every open file up to its end (or budget); true if any new bytes came in.
    /// Files rotated away go first, then by age, so an old file's last lines precede
    /// the first lines of its successor.
    pub(crate) fn service_all<S: LineSink>(&mut self, sink: &mut S) -> Result<bool, Error> {
        let mut busy = false;
        let mut order: Vec<(bool, u64, FileKey)> = self
            .tracked
            .values()
            .map(|t| (t.gone_since.is_none(), t.seq, t.key))
            .collect();
        order.sort_unstable_by_key(|&(in_place, seq, _)| (in_place, seq));
        let keys = order.into_iter().map(|(_, _, key)| key);
        for key in keys {
            while let Some(tracked) = self.tracked.get_mut(&key) {
                let step = service(
                    tracked,
                    self.options,
                    self.stats,
                    &mut self.scratch,
                    &mut self.unsaved_lines,
                    self.store.journal(),
                    sink,
                )?;
                busy |= step.progressed;
                self.dirty |= step.progressed;
                if step.close {
                    self.close(key);
                }
                if self.unsaved_lines >= self.options.checkpoint_max_lines {
                    self.save()?;
                }
                if !step.more || step.budget_spent {
                    break;
                }
            }
        }
        Ok(busy)
    }

    fn close(&mut self, key: FileKey) {
        if let Some(tracked) = self.tracked.remove(&key) {
            tracing::debug!(path = %tracked.path.display(), "released log file");
            if tracked.gone_since.is_none() {
                // Closed for an error while still in place: resume it from here later.
                self.resume.insert(key, tracked.saved());
            }
            self.dirty = true;
            self.stats
                .files_open
                .store(self.tracked.len() as u64, Ordering::Relaxed);
        }
    }

    /// Expands the patterns: picks up new files, notices files that were renamed away or
    /// deleted, and watches the directories involved. True if it opened a file.
    pub(crate) fn rescan(&mut self, initial: bool) -> bool {
        let now = Instant::now();
        let mut found: HashMap<FileKey, (PathBuf, usize)> = HashMap::new();
        for (index, spec) in self.specs.iter().enumerate() {
            self.waiter.watch_dir(&literal_dir(&spec.pattern));
            for matched in expand(&spec.pattern) {
                match matched {
                    Match::File(path, meta) => {
                        let key = FileKey::of(&meta, &path);
                        // A file matched by two specs goes to the first one.
                        found.entry(key).or_insert((path, index));
                    }
                    Match::Skip(skipped) => {
                        // Once per path: a scan runs every poll interval.
                        if self.warned.insert(skipped.path.clone()) {
                            tracing::warn!(
                                pattern = spec.pattern,
                                "log file pattern matches a path that is not followed: {skipped}"
                            );
                            bump(&self.stats.skipped_paths, 1);
                        }
                    }
                }
            }
        }

        for tracked in self.tracked.values_mut() {
            match found.get(&tracked.key) {
                Some((path, _)) => {
                    if *path != tracked.path {
                        tracked.path.clone_from(path);
                        self.dirty = true;
                    }
                    tracked.gone_since = None;
                }
                None if tracked.gone_since.is_none() => {
                    tracing::debug!(path = %tracked.path.display(), "log file rotated away or deleted; draining it");
                    tracked.gone_since = Some(now);
                    bump(&self.stats.rotations, 1);
                }
                None => {}
            }
        }

        if initial {
            // Before the new files, so they count as older than those.
            self.reopen_rotated(&found);
        }
        let mut new: Vec<(FileKey, PathBuf, usize)> = found
            .iter()
            .filter(|(key, _)| !self.tracked.contains_key(key))
            .map(|(key, (path, spec))| (*key, path.clone(), *spec))
            .collect();
        new.sort_by(|a, b| a.1.cmp(&b.1));
        let mut waiting = 0u64;
        let open_before = self.tracked.len();
        for (key, path, spec) in new {
            if self.tracked.len() >= self.options.max_open_files {
                waiting += 1;
                continue;
            }
            let intake_key = self.specs.get(spec).map(|s| s.intake_key.clone());
            if let Err(e) = self.open(key, &path, intake_key.unwrap_or_default(), initial) {
                tracing::warn!(path = %path.display(), error = %e, "cannot open log file");
            }
        }
        for tracked in self.tracked.values() {
            if let Some(dir) = tracked.path.parent() {
                self.waiter.watch_dir(dir);
            }
        }
        // Checkpoints of files that no longer exist under any pattern are dropped.
        let before = self.resume.len();
        self.resume.retain(|key, _| found.contains_key(key));
        self.dirty |= before != self.resume.len();
        self.stats.files_waiting.store(waiting, Ordering::Relaxed);
        self.stats
            .files_open
            .store(self.tracked.len() as u64, Ordering::Relaxed);
        self.tracked.len() > open_before
    }

    /// After a restart: files with a checkpoint that no pattern matches any more (renamed
    /// away by rotation, before the previous run finished them or while the agent was
    /// stopped) are found again and drained, so their last lines are not lost.
    ///
    /// A checkpoint's file is looked for where the checkpoint says, then in that
    /// directory under any name (the same device and inode, or else the same head
    /// fingerprint and at least the checkpointed size), since rotation may have renamed it
    /// to a name no pattern matches while the agent was not running.
    fn reopen_rotated(&mut self, found: &HashMap<FileKey, (PathBuf, usize)>) {
        // Not matched by a pattern, or matched but on an inode that now holds another
        // file (the old one was copied away and removed, and the new file got its inode).
        let mut candidates: Vec<Saved> = self
            .resume
            .values()
            .filter(|saved| match found.get(&saved.key) {
                None => true,
                Some((path, _)) => !same_file(saved, path),
            })
            .cloned()
            .collect();
        candidates.sort_unstable_by_key(|saved| saved.order);
        // Files already spoken for: followed under a pattern, or found for another record.
        let mut claimed: HashSet<FileKey> = found.keys().copied().collect();
        claimed.extend(self.tracked.keys().copied());
        for saved in candidates {
            if self.tracked.len() >= self.options.max_open_files {
                break;
            }
            let Some((key, path, how)) = locate(&saved, &claimed) else {
                tracing::warn!(
                    path = %saved.path.display(),
                    offset = saved.offset,
                    "a log file with a checkpoint is gone (rotated and removed, or compressed, while the agent was stopped) and was not found again in its directory: lines written to it after that offset, if any, were not sent"
                );
                bump(&self.stats.lost_files, 1);
                continue;
            };
            claimed.insert(key);
            if key != saved.key {
                // Same content under a new inode (copied, moved across file systems):
                // resume under the identity it has now.
                if let Some(mut record) = self.resume.remove(&saved.key) {
                    record.key = key;
                    self.resume.insert(key, record);
                }
            }
            match self.open(key, &path, saved.intake_key.clone(), false) {
                Ok(()) => {
                    if let Some(tracked) = self.tracked.get_mut(&key) {
                        if path == saved.path {
                            tracing::debug!(path = %path.display(), "finishing a file rotated away before the restart");
                        } else {
                            tracing::info!(
                                was = %saved.path.display(),
                                now = %path.display(),
                                matched_by = how,
                                offset = saved.offset,
                                "log file renamed while the agent was stopped; finishing it from its checkpoint before its successor"
                            );
                            bump(&self.stats.found_again, 1);
                        }
                        tracked.gone_since = Some(Instant::now());
                        bump(&self.stats.rotations, 1);
                    }
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot reopen rotated log file");
                }
            }
        }
    }

    /// Opens a newly matched file and decides where reading starts.
    fn open(
        &mut self,
        key: FileKey,
        path: &Path,
        intake_key: String,
        initial: bool,
    ) -> io::Result<()> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        if FileKey::of(&meta, path) != key {
            return Ok(()); // replaced between scan and open; the next scan sees the new one
        }
        let size = meta.len();
        let head = KnownHead::read(&file, &mut self.scratch)?;
        let offset = match self.resume.remove(&key) {
            // Checked by hash, once: from here on the bytes read are compared.
            Some(saved) if head.started_with(&saved.head) && saved.offset <= size => saved.offset,
            Some(_) => {
                tracing::info!(path = %path.display(), "log file changed while not followed (new file on a reused inode, or truncated); reading it from its beginning");
                0
            }
            None if initial && self.first_start && self.options.start_at_end => size,
            None => 0,
        };
        tracing::debug!(path = %path.display(), offset, "following log file");
        // Journalled at once: should the process die before the next checkpoint and the
        // file be rotated away meanwhile, the restart still knows to look for it.
        self.store
            .journal()
            .record(key, head.head(), offset, path, &intake_key);
        self.tracked.insert(
            key,
            Tracked {
                key,
                path: path.to_owned(),
                intake_key,
                file,
                head,
                head_checked: meta.modified().ok(),
                offset,
                pending: Vec::new(),
                seq: self.next_seq,
                gone_since: None,
            },
        );
        self.next_seq += 1;
        self.dirty = true;
        Ok(())
    }

    pub(crate) fn save(&mut self) -> Result<(), Error> {
        // Oldest first (rotated away, then by age, then not yet opened), which is the
        // order a restart finishes rotated files in.
        let mut tracked: Vec<&Tracked> = self.tracked.values().collect();
        tracked.sort_unstable_by_key(|t| (t.gone_since.is_none(), t.seq));
        let mut waiting: Vec<&Saved> = self.resume.values().collect();
        waiting.sort_unstable_by_key(|s| s.order);
        let records: Vec<Saved> = tracked
            .into_iter()
            .map(Tracked::saved)
            .chain(waiting.into_iter().cloned())
            .collect();
        self.store.save(records.iter())?;
        self.unsaved_lines = 0;
        self.dirty = false;
        self.last_save = Instant::now();
        bump(&self.stats.checkpoints, 1);
        Ok(())
    }
}

/// Reads what is new in one file and delivers its complete lines; after each accepted
/// delivery the file's new position goes to the checkpoint journal.
fn service<S: LineSink>(
    t: &mut Tracked,
    options: &Options,
    stats: &Stats,
    scratch: &mut Vec<u8>,
    unsaved: &mut u64,
    journal: &mut Journal,
    sink: &mut S,
) -> Result<Step, Error> {
    let mut step = Step::default();
    let (size, mtime) = match t.file.metadata() {
        Ok(meta) => (meta.len(), meta.modified().ok()),
        Err(e) => {
            tracing::warn!(path = %t.path.display(), error = %e, "cannot stat log file");
            step.close = true;
            return Ok(step);
        }
    };

    // Was the file rewritten in place (copytruncate, or truncated and written again)?
    // Shrunk below what was read: certainly. Grown: its head is read again and compared.
    // Neither grown nor shrunk and not modified since the last check (same mtime): not
    // looked at, since nothing new can be read. This is most wake-ups (the one after a
    // read finds nothing more; timeouts). A rewrite that leaves the size as it was is
    // still seen on the next wake-up through its new mtime, unless it happened within the
    // file system's timestamp granularity (a clock tick for many Linux file systems) of
    // the last check; then it is seen when the file next grows or is modified. Either way
    // it is read from 0 before anything past its old size is read, so nothing is read
    // at a position of the old content that belongs to the new one.
    let replaced = if size < t.read_pos() {
        true
    } else if size == t.read_pos() && mtime.is_some() && mtime == t.head_checked {
        false
    } else {
        match t.head.check(&t.file, scratch) {
            Ok(same) => {
                t.head_checked = if same { mtime } else { None };
                !same
            }
            // A failed head read is not evidence of replacement: starting over would duplicate.
            Err(_) => false,
        }
    };
    if replaced {
        // copytruncate (or rewritten in place): what was read stays delivered, the
        // unfinished line goes out as it is, and the new content is read from 0.
        tracing::debug!(path = %t.path.display(), "log file truncated; reading from its beginning");
        let pending = std::mem::take(&mut t.pending);
        deliver_rest(t, &pending, stats, unsaved, journal, sink)?;
        t.offset = 0;
        t.head = KnownHead::empty();
        // Else a crash now would resume the new content at the old offset.
        journal.record(t.key, t.head.head(), t.offset, &t.path, &t.intake_key);
        bump(&stats.truncations, 1);
        // The head of the new content: an empty head matches anything, so this only reads.
        t.head_checked = t.head.check(&t.file, scratch).ok().and(mtime);
    }

    let max = options.max_line_len;
    let mut read_total = 0usize;
    loop {
        if read_total >= FILE_BUDGET {
            step.more = true;
            step.budget_spent = true;
            break;
        }
        let have = t.pending.len();
        // The first read is sized by what fstat saw, so small appends need no 256 KiB
        // buffer; once a read comes back full the file is growing fast: full chunks.
        let avail = usize::try_from(size.saturating_sub(t.read_pos())).unwrap_or(CHUNK);
        let want = if read_total == 0 {
            avail.clamp(4096, CHUNK)
        } else {
            CHUNK
        };
        let window = spare(scratch, have + want);
        window[..have].copy_from_slice(&t.pending);
        let n = match read_at(&t.file, &mut window[have..], t.read_pos()) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => {
                tracing::warn!(path = %t.path.display(), error = %e, "cannot read log file");
                step.close = true;
                break;
            }
        };
        // Past `have + n` the buffer holds stale bytes of earlier reads.
        let filled = &scratch[..have + n];
        if n > 0 {
            read_total += n;
            step.progressed = true;
            if t.gone_since.is_some() {
                t.gone_since = Some(Instant::now());
            }
        }
        if filled.is_empty() {
            break;
        }
        // Even without new bytes, `pending` may hold complete lines left over when a
        // checkpoint interrupted the previous call: split it every time.

        let base = t.offset;
        let mut pos = 0;
        let mut batch: Vec<LogLine<'_>> = Vec::with_capacity(options.max_batch_lines);
        let mut due = false;
        loop {
            let piece = next_piece(filled, pos, max);
            if let Some(p) = piece {
                batch.push(LogLine {
                    intake_key: &t.intake_key,
                    path: &t.path,
                    bytes: &filled[p.start..p.end],
                    complete: p.complete,
                });
                pos = p.next;
            }
            if batch.len() >= options.max_batch_lines || (piece.is_none() && !batch.is_empty()) {
                deliver(sink, &batch, stats)?;
                *unsaved += batch.len() as u64;
                // `filled` starts with the old pending bytes, which start at `base`.
                t.offset = base + pos as u64;
                batch.clear();
                journal.record(t.key, t.head.head(), t.offset, &t.path, &t.intake_key);
                if *unsaved >= options.checkpoint_max_lines {
                    due = true;
                    break;
                }
            }
            if piece.is_none() {
                break;
            }
        }
        t.pending.clear();
        t.pending.extend_from_slice(&filled[pos..]);
        if due {
            step.more = true;
            break;
        }
        // A short read reached the end; later appends come with a new wake-up.
        if n < want {
            break;
        }
    }

    if !step.more {
        if let Some(since) = t.gone_since {
            if since.elapsed() >= options.rotated_grace {
                let pending = std::mem::take(&mut t.pending);
                deliver_rest(t, &pending, stats, unsaved, journal, sink)?;
                step.close = true;
            }
        }
    }
    Ok(step)
}

/// Hands one batch to the sink and counts it.
fn deliver<S: LineSink>(sink: &mut S, batch: &[LogLine<'_>], stats: &Stats) -> Result<(), Error> {
    sink.deliver(batch).map_err(|e| Error::Sink(Box::new(e)))?;
    let bytes: usize = batch.iter().map(|l| l.bytes.len()).sum();
    let split = batch.iter().filter(|l| !l.complete).count();
    bump(&stats.lines, batch.len() as u64);
    bump(&stats.bytes, bytes as u64);
    bump(&stats.split_lines, split as u64);
    Ok(())
}

/// Sends an unfinished last line of a file that will not grow any more (rotated away,
/// truncated): the bytes are never dropped, they go out marked incomplete.
fn deliver_rest<S: LineSink>(
    t: &mut Tracked,
    rest: &[u8],
    stats: &Stats,
    unsaved: &mut u64,
    journal: &mut Journal,
    sink: &mut S,
) -> Result<(), Error> {
    if rest.is_empty() {
        return Ok(());
    }
    let line = LogLine {
        intake_key: &t.intake_key,
        path: &t.path,
        bytes: rest,
        complete: false,
    };
    sink.deliver(&[line])
        .map_err(|e| Error::Sink(Box::new(e)))?;
    bump(&stats.lines, 1);
    bump(&stats.bytes, rest.len() as u64);
    *unsaved += 1;
    t.offset += rest.len() as u64;
    journal.record(t.key, t.head.head(), t.offset, &t.path, &t.intake_key);
    Ok(())
}

/// Whether `path` holds the file of `saved`: the same device and inode, still starting
/// with the bytes the checkpoint fingerprinted (else the inode was reused).
fn same_file(saved: &Saved, path: &Path) -> bool {
    File::open(path).is_ok_and(|file| {
        file.metadata()
            .is_ok_and(|meta| FileKey::of(&meta, path) == saved.key)
            && saved.head.matches(&file).unwrap_or(false)
    })
}

/// Where the file of a checkpoint is now, and how it was recognised: at its recorded path
/// with the same identity, else in that directory under another name with the same device
/// and inode (and head), else (only when exactly one file qualifies) with the same head fingerprint
/// and at least the checkpointed size. Files in `claimed` are someone else's.
fn locate(saved: &Saved, claimed: &HashSet<FileKey>) -> Option<(FileKey, PathBuf, &'static str)> {
    if !claimed.contains(&saved.key) && same_file(saved, &saved.path) {
        return Some((saved.key, saved.path.clone(), "path"));
    }
    let dir = saved.path.parent()?;
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::debug!(dir = %dir.display(), error = %e, "cannot list the directory of a checkpointed log file");
            return None;
        }
    };
    let mut by_head: Vec<(FileKey, PathBuf)> = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        // Not following symbolic links: a rotated file is a regular file of its own.
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let key = FileKey::of(&meta, &path);
        if key == saved.key && !claimed.contains(&key) && same_file(saved, &path) {
            return Some((key, path, "inode"));
        }
        // A fingerprint of nothing matches everything: only a real head identifies.
        if claimed.contains(&key) || saved.head.len == 0 || meta.len() < saved.offset {
            continue;
        }
        let same_head = File::open(&path)
            .and_then(|file| saved.head.matches(&file))
            .unwrap_or(false);
        if same_head {
            by_head.push((key, path));
        }
    }
    if by_head.len() > 1 {
        tracing::warn!(
            path = %saved.path.display(),
            candidates = by_head.len(),
            "several files start like a checkpointed log file that was renamed while the agent was stopped; not guessing which one to finish"
        );
        return None;
    }
    by_head
        .pop()
        .map(|(key, path)| (key, path, "head fingerprint"))
}

#[cfg(test)]
mod tests {
    //! The head check of a followed file, stepped synchronously on real files.

    use std::convert::Infallible;
    use std::fs::OpenOptions;
    use std::io::Write;
    use std::sync::atomic::Ordering;
    use std::time::{Duration, SystemTime};

    use super::Run;
    use crate::{LineSink, LogLine, Options, Stats, WatchSpec};

    #[derive(Default)]
    struct Collect(Vec<Vec<u8>>);

    impl LineSink for Collect {
        type Error = Infallible;
        fn deliver(&mut self, lines: &[LogLine<'_>]) -> Result<(), Infallible> {
            self.0.extend(lines.iter().map(|l| l.bytes.to_vec()));
            Ok(())
        }
    }

    impl Collect {
        fn take(&mut self) -> Vec<String> {
            self.0
                .drain(..)
                .map(|l| String::from_utf8_lossy(&l).into_owned())
                .collect()
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        state: tempfile::TempDir,
        log: std::path::PathBuf,
        specs: Vec<WatchSpec>,
        options: Options,
    }

    impl Fixture {
        fn new(content: &[u8]) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let log = dir.path().join("a.log");
            std::fs::write(&log, content).unwrap();
            Self {
                specs: vec![WatchSpec {
                    pattern: dir.path().join("*.log").display().to_string(),
                    intake_key: "k".into(),
                }],
                options: Options {
                    start_at_end: false,
                    checkpoint_interval: Duration::from_secs(3600),
                    ..Options::default()
                },
                state: tempfile::tempdir().unwrap(),
                log,
                _dir: dir,
            }
        }

        fn start<'a>(&'a self, stats: &'a Stats) -> Run<'a> {
            Run::start(&self.specs, &self.options, stats, self.state.path()).unwrap()
        }

        fn append(&self, bytes: &[u8]) {
            let mut f = OpenOptions::new().append(true).open(&self.log).unwrap();
            f.write_all(bytes).unwrap();
        }

        fn mtime(&self) -> SystemTime {
            std::fs::metadata(&self.log).unwrap().modified().unwrap()
        }

        /// Truncates and writes `content` on the same inode, then sets the mtime.
        fn rewrite(&self, content: &[u8], mtime: SystemTime) {
            let mut f = OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&self.log)
                .unwrap();
            f.write_all(content).unwrap();
            f.set_modified(mtime).unwrap();
        }
    }

    fn step(run: &mut Run<'_>, sink: &mut Collect) {
        while run.service_all(sink).unwrap() {}
    }

    fn lines(prefix: &str, count: usize) -> Vec<String> {
        (0..count).map(|i| format!("{prefix} {i:04}")).collect()
    }

    fn text(lines: &[String]) -> Vec<u8> {
        lines
            .iter()
            .flat_map(|l| format!("{l}\n").into_bytes())
            .collect()
    }

    /// Over 1 KiB, so the head covers a full HEAD_MAX; shorter files are covered too.
    const LONG: usize = 100;

    #[test]
    fn rewritten_in_place_same_size_new_mtime_is_read_from_zero_without_growth() {
        for count in [2, LONG] {
            let old = lines("old", count);
            let fx = Fixture::new(&text(&old));
            let stats = Stats::default();
            let mut run = fx.start(&stats);
            let mut sink = Collect::default();
            step(&mut run, &mut sink);
            assert_eq!(sink.take(), old);

            let new = lines("new", count);
            let later = fx.mtime() + Duration::from_secs(1);
            fx.rewrite(&text(&new), later);
            step(&mut run, &mut sink);
            assert_eq!(sink.take(), new, "{count} lines");
            assert_eq!(stats.truncations.load(Ordering::Relaxed), 1);
        }
    }

    #[test]
    fn rewritten_in_place_same_size_same_mtime_is_read_from_zero_when_it_grows() {
        for count in [2, LONG] {
            let old = lines("old", count);
            let fx = Fixture::new(&text(&old));
            let stats = Stats::default();
            let mut run = fx.start(&stats);
            let mut sink = Collect::default();
            step(&mut run, &mut sink);
            assert_eq!(sink.take(), old);

            // As if rewritten within the timestamp granularity of the last check: not
            // looked at while the size stays (see `service`), but before anything past
            // the old size is read.
            let new = lines("new", count);
            fx.rewrite(&text(&new), fx.mtime());
            step(&mut run, &mut sink);
            fx.append(b"appended\n");
            step(&mut run, &mut sink);
            let mut want = new.clone();
            want.push("appended".into());
            assert_eq!(sink.take(), want, "{count} lines");
            assert_eq!(stats.truncations.load(Ordering::Relaxed), 1);
        }
    }

    #[test]
    fn rewritten_in_place_larger_is_read_from_zero() {
        for count in [2, LONG] {
            let old = lines("old", count);
            let fx = Fixture::new(&text(&old));
            let stats = Stats::default();
            let mut run = fx.start(&stats);
            let mut sink = Collect::default();
            step(&mut run, &mut sink);
            assert_eq!(sink.take(), old);

            // Same mtime even: growth alone makes the head be compared.
            let new = lines("replacement", count + 3);
            fx.rewrite(&text(&new), fx.mtime());
            step(&mut run, &mut sink);
            assert_eq!(sink.take(), new, "{count} lines");
            assert_eq!(stats.truncations.load(Ordering::Relaxed), 1);
        }
    }

    #[test]
    fn appends_after_the_head_filled_up_are_not_taken_for_a_rewrite() {
        // The head grows a line at a time past 1 KiB, then stays.
        let fx = Fixture::new(b"");
        let stats = Stats::default();
        let mut run = fx.start(&stats);
        let mut sink = Collect::default();
        let all = lines("line", LONG);
        for l in &all {
            fx.append(format!("{l}\n").as_bytes());
            step(&mut run, &mut sink);
        }
        assert_eq!(sink.take(), all);
        assert_eq!(stats.truncations.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn resumed_file_is_checked_by_hash_then_by_its_bytes() {
        // Head at the checkpoint shorter than at the restart (prefix hashed), or as
        // long (full 1 KiB: the fingerprints compared).
        for (count, grown_while_stopped) in [(2, LONG), (LONG, 2)] {
            let old = lines("old", count);
            let fx = Fixture::new(&text(&old));
            let stats = Stats::default();
            let mut sink = Collect::default();
            {
                let mut run = fx.start(&stats);
                step(&mut run, &mut sink);
                run.save().unwrap();
            }
            assert_eq!(sink.take(), old);

            let more = lines("more", grown_while_stopped);
            fx.append(&text(&more));
            let mut run = fx.start(&stats);
            step(&mut run, &mut sink);
            assert_eq!(sink.take(), more, "resumed where the checkpoint left off");

            // The head bytes kept at the restart's open detect a rewrite in place.
            let new = lines("new", count + grown_while_stopped);
            let later = fx.mtime() + Duration::from_secs(1);
            fx.rewrite(&text(&new), later);
            step(&mut run, &mut sink);
            assert_eq!(sink.take(), new);
            assert_eq!(stats.truncations.load(Ordering::Relaxed), 1);
        }
    }

    #[test]
    fn rewritten_while_stopped_fails_the_hash_check_and_is_read_from_zero() {
        for count in [2, LONG] {
            let old = lines("old", count);
            let fx = Fixture::new(&text(&old));
            let stats = Stats::default();
            let mut sink = Collect::default();
            {
                let mut run = fx.start(&stats);
                step(&mut run, &mut sink);
                run.save().unwrap();
            }
            assert_eq!(sink.take(), old);

            let new = lines("new", count + 1);
            fx.rewrite(&text(&new), fx.mtime());
            let mut run = fx.start(&stats);
            step(&mut run, &mut sink);
            assert_eq!(sink.take(), new, "{count} lines");
        }
    }
}
