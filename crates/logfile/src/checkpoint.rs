//! Persisted read positions, one per file identity, written atomically, and the journal
//! that carries them forward between two checkpoint writes.
//!
//! Format (text, one record per line, so a human can read it during an incident):
//! `agent-logfile-checkpoints v1`, then `generation N` (absent in files of older
//! versions), then `dev ino head_len head_hash_hex offset path_hex intake_key_hex`.
//!
//! # Why a journal (issue 22: after SIGKILL, duplicates only from unacknowledged batches)
//!
//! The checkpoint file is rewritten durably (temporary file, fsync, rename, directory
//! fsync) every `checkpoint_interval`; doing that after every delivery would cost
//! milliseconds per batch. Between two such writes, the lines the sink accepted (already
//! in the agent's ring) were read again after a SIGKILL and shipped twice. So after every
//! accepted delivery the tailer appends that file's new record to
//! `logfile-checkpoints.journal` with one `write(2)`, no fsync: the page cache survives
//! the death of the process, so after a SIGKILL the checkpoint plus the journal say
//! exactly what the sink holds, except for the delivery the process died in (stored by
//! the sink, not yet journalled: at most `max_batch_lines` lines read again). The
//! journal never runs ahead of the sink (it is written after `deliver` returned), so it
//! cannot lose lines.
//!
//! Considered instead: carrying the offsets inside the ring (a control record beside the
//! lines, the maximum taken at start) closes even that window, but the ring deletes
//! acknowledged segments, so the tailer would still need a file of its own for offsets
//! whose records were shipped, and the shipper, the ring and the writer would all learn
//! a new record kind; and rewriting the checkpoint file (write + rename, no fsync) after
//! each delivery costs four syscalls plus a /proc lookup per followed file, where the
//! journal costs one `write` of one record.
//!
//! The journal starts with `agent-logfile-journal v1 GENERATION BOOT_ID`. It extends
//! only the checkpoint of the same generation (a journal left over from before the last
//! checkpoint write is stale: the checkpoint already covers it), and only within the
//! same boot: after a power loss or reboot the unsynced journal may hold records of
//! lines the sink had not made durable yet, so there the fsynced checkpoint alone counts
//! (as before the journal). A torn or damaged record ends the replay.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use crate::identity::{FileKey, Head};
use crate::Error;

const MAGIC: &str = "agent-logfile-checkpoints v1";
const FILE_NAME: &str = "logfile-checkpoints";
const GENERATION: &str = "generation ";
const JOURNAL_MAGIC: &str = "agent-logfile-journal v1";
const JOURNAL_NAME: &str = "logfile-checkpoints.journal";
/// The records name the files read and their intake keys: root's alone.
const FILE_MODE: u32 = 0o600;

/// Where one file was left: its identity and the offset just past the last accepted line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Saved {
    pub(crate) key: FileKey,
    pub(crate) head: Head,
    pub(crate) offset: u64,
    /// Where the file was last seen; for a file renamed away, its new name if known.
    pub(crate) path: PathBuf,
    /// Intake its lines go to, so a renamed-away file can be finished after a restart.
    pub(crate) intake_key: String,
    /// Position in the checkpoint file: files are written oldest first, so files rotated
    /// away can be finished in the order they were written.
    pub(crate) order: u64,
}

/// The checkpoint file in the state directory.
#[derive(Debug)]
pub(crate) struct Store {
    path: PathBuf,
    /// Generation of the checkpoint file last loaded or written.
    generation: u64,
    journal: Journal,
}

impl Store {
    pub(crate) fn new(state_dir: &Path) -> Self {
        Self {
            path: state_dir.join(FILE_NAME),
            generation: 0,
            journal: Journal::new(state_dir.join(JOURNAL_NAME)),
        }
    }

    /// The journal that carries positions forward between two [`Store::save`]s.
    pub(crate) fn journal(&mut self) -> &mut Journal {
        &mut self.journal
    }

    /// `None` when no checkpoint was ever written (the very first start).
    /// Unreadable records are skipped with a warning: their files are then read from the
    /// beginning, trading duplicates for no loss. The journal of the same generation and
    /// boot is replayed over the records (see the module documentation).
    pub(crate) fn load(&mut self) -> Result<Option<HashMap<FileKey, Saved>>, Error> {
        // One tailer owns the state directory: a temporary file there is a crash's leftover.
        if let Err(e) = agent_os::atomic::remove_leftover_temps(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove leftover temporary checkpoint files");
        }
        let text = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(Error::State {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let text = String::from_utf8_lossy(&text);
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            tracing::warn!(path = %self.path.display(), "checkpoint file has an unknown format; reading all files from their beginning");
            return Ok(Some(HashMap::new()));
        }
        let mut saved = HashMap::new();
        let mut generation = None;
        let mut lines = lines.peekable();
        if let Some(g) = lines.peek().and_then(|l| l.strip_prefix(GENERATION)) {
            generation = g.parse::<u64>().ok();
            lines.next();
        }
        self.generation = generation.unwrap_or(0);
        let mut next_order = 0u64;
        for (order, line) in (0u64..).zip(lines) {
            next_order = order + 1;
            match parse_record(line, order) {
                Some(record) => {
                    saved.insert(record.key, record);
                }
                None => {
                    tracing::warn!(path = %self.path.display(), record = line, "skipping unreadable checkpoint record")
                }
            }
        }
        if let Some(generation) = generation {
            let replayed = self.journal.replay(generation, next_order, &mut saved);
            if replayed > 0 {
                tracing::debug!(records = replayed, "checkpoint journal replayed");
            }
        }
        Ok(Some(saved))
    }

    /// Replaces the checkpoint file atomically and durably ([`agent_os::replace_file`])
    /// under the next generation, then starts the journal of that generation afresh.
    pub(crate) fn save<'a>(
        &mut self,
        records: impl Iterator<Item = &'a Saved>,
    ) -> Result<(), Error> {
        let generation = self.generation.wrapping_add(1);
        let mut text = String::with_capacity(4096);
        text.push_str(MAGIC);
        text.push('\n');
        let _ = writeln!(text, "{GENERATION}{generation}");
        for r in records {
            write_record(&mut text, r.key, &r.head, r.offset, &r.path, &r.intake_key);
        }
        agent_os::replace_file(&self.path, text.as_bytes(), FILE_MODE).map_err(Error::SaveState)?;
        self.generation = generation;
        // A crash before the journal is restarted leaves the previous generation's
        // journal, which the next load ignores: this checkpoint covers all of it.
        self.journal.restart(generation);
        Ok(())
    }
}

/// One checkpoint record, as a line.
fn write_record(
    text: &mut String,
    key: FileKey,
    head: &Head,
    offset: u64,
    path: &Path,
    intake_key: &str,
) {
    let _ = write!(text, "{} {} {} ", key.dev, key.ino, head.len);
    push_hex(text, &head.hash);
    let _ = write!(text, " {offset} ");
    push_hex(text, path_bytes(path).as_ref());
    text.push(' ');
    push_hex(text, intake_key.as_bytes());
    text.push('\n');
}

/// Identity of this boot: a journal written in another boot is not trusted (it was never
/// synced). `-` where the OS does not tell.
fn boot_id() -> String {
    #[cfg(target_os = "linux")]
    {
        if let Ok(id) = fs::read_to_string("/proc/sys/kernel/random/boot_id") {
            let id = id.trim();
            if !id.is_empty() && !id.contains(char::is_whitespace) {
                return id.to_owned();
            }
        }
    }
    "-".to_owned()
}

/// The append-only journal of positions accepted since the last checkpoint write (see
/// the module documentation). Failures to write it only cost duplicates after a crash,
/// never lines: they are logged once and the tailer goes on.
#[derive(Debug)]
pub(crate) struct Journal {
    path: PathBuf,
    boot: String,
    /// Open while the journal of the current generation is being written.
    file: Option<File>,
    /// Reused for each record, so a delivery costs no allocation.
    line: String,
    /// A write failed: warned once, nothing written until the next restart.
    failed: bool,
}

impl Journal {
    fn new(path: PathBuf) -> Self {
        Journal {
            path,
            boot: boot_id(),
            file: None,
            line: String::with_capacity(512),
            failed: false,
        }
    }

    /// Applies the records of the journal of `generation` (and this boot) to `saved`:
    /// a later record of a file replaces its position and head; a file the checkpoint
    /// does not know yet gets order `next_order` onwards. Returns how many applied.
    fn replay(
        &self,
        generation: u64,
        mut next_order: u64,
        saved: &mut HashMap<FileKey, Saved>,
    ) -> usize {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot read the checkpoint journal; resuming from the checkpoint alone");
                }
                return 0;
            }
        };
        let text = String::from_utf8_lossy(&bytes);
        let expected = format!("{JOURNAL_MAGIC} {generation} {}", self.boot);
        let mut lines = text.split_inclusive('\n');
        if lines.next().map(|l| l.trim_end_matches('\n')) != Some(expected.as_str()) {
            return 0; // another generation (stale), another boot, or no header yet
        }
        let mut applied = 0;
        for line in lines {
            // A record without its terminator was torn: it and anything after are ignored.
            let Some(line) = line.strip_suffix('\n') else {
                break;
            };
            let Some(record) = parse_record(line, next_order) else {
                tracing::warn!(path = %self.path.display(), "damaged checkpoint journal record; the rest of the journal is ignored");
                break;
            };
            match saved.get_mut(&record.key) {
                Some(known) => {
                    // Path and order stay: the checkpoint's path may be where a rotated
                    // file went, which the journal does not look up.
                    known.head = record.head;
                    known.offset = record.offset;
                }
                None => {
                    saved.insert(record.key, record);
                    next_order += 1;
                }
            }
            applied += 1;
        }
        applied
    }

    /// Empties the journal and starts it for `generation`.
    fn restart(&mut self, generation: u64) {
        let header = format!("{JOURNAL_MAGIC} {generation} {}\n", self.boot);
        let result = (|| {
            let mut file = match self.file.take() {
                Some(file) => file,
                None => open_journal(&self.path)?,
            };
            file.set_len(0)?;
            // O_APPEND: after the truncation this lands at offset 0.
            file.write_all(header.as_bytes())?;
            Ok::<_, io::Error>(file)
        })();
        match result {
            Ok(file) => {
                self.file = Some(file);
                self.failed = false;
            }
            Err(e) => self.fail(&e),
        }
    }

    /// Appends the position of one file after a delivery the sink accepted: `offset` is
    /// just past the last accepted line of the file `key` (head `head`) found at `path`.
    pub(crate) fn record(
        &mut self,
        key: FileKey,
        head: &Head,
        offset: u64,
        path: &Path,
        intake_key: &str,
    ) {
        let Some(file) = self.file.as_mut() else {
            return;
        };
        self.line.clear();
        write_record(&mut self.line, key, head, offset, path, intake_key);
        // One write(2) of one short line: a SIGKILL does not tear it.
        if let Err(e) = file.write_all(self.line.as_bytes()) {
            self.file = None;
            self.fail(&e);
        }
    }

    fn fail(&mut self, e: &io::Error) {
        if !self.failed {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot write the checkpoint journal; after a crash, lines accepted since the last checkpoint will be sent again");
        }
        self.failed = true;
    }
}

fn open_journal(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(FILE_MODE);
    }
    options.open(path)
}

fn parse_record(line: &str, order: u64) -> Option<Saved> {
    let mut fields = line.split(' ');
    let dev = fields.next()?.parse().ok()?;
    let ino = fields.next()?.parse().ok()?;
    let len = fields.next()?.parse().ok()?;
    let hash: [u8; 32] = unhex(fields.next()?)?.try_into().ok()?;
    let offset = fields.next()?.parse().ok()?;
    let path = path_from_bytes(unhex(fields.next()?)?);
    let intake_key = String::from_utf8(unhex(fields.next()?)?).ok()?;
    if fields.next().is_some() {
        return None;
    }
    Some(Saved {
        key: FileKey { dev, ino },
        head: Head { len, hash },
        offset,
        path,
        intake_key,
        order,
    })
}

/// Appends `bytes` as lower-case hex (no formatting machinery: it runs per delivery).
fn push_hex(s: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    s.reserve(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(unix)]
fn path_bytes(path: &Path) -> std::borrow::Cow<'_, [u8]> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes().into()
}

#[cfg(not(unix))]
fn path_bytes(path: &Path) -> std::borrow::Cow<'_, [u8]> {
    match path.to_string_lossy() {
        std::borrow::Cow::Borrowed(s) => s.as_bytes().into(),
        std::borrow::Cow::Owned(s) => s.into_bytes().into(),
    }
}

#[cfg(unix)]
fn path_from_bytes(bytes: Vec<u8>) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    std::ffi::OsString::from_vec(bytes).into()
}

#[cfg(not(unix))]
fn path_from_bytes(bytes: Vec<u8>) -> PathBuf {
    String::from_utf8_lossy(&bytes).into_owned().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_records_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::new(dir.path());
        assert_eq!(store.load().unwrap(), None);
        let records = vec![
            Saved {
                key: FileKey { dev: 2049, ino: 77 },
                head: Head::of_bytes(b"first line\n"),
                offset: 11,
                path: dir.path().join("a b.log"),
                intake_key: "nginx key".into(),
                order: 0,
            },
            Saved {
                key: FileKey {
                    dev: 1,
                    ino: u64::MAX,
                },
                head: Head::of_bytes(b""),
                offset: 0,
                path: PathBuf::from("/x/\u{e9}.log"),
                intake_key: String::new(),
                order: 1,
            },
        ];
        store.save(records.iter()).unwrap();
        let loaded = store.load().unwrap().unwrap();
        assert_eq!(loaded.len(), 2);
        for r in &records {
            assert_eq!(loaded.get(&r.key), Some(r));
        }
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [FILE_NAME, JOURNAL_NAME],
            "only the checkpoint file and its journal"
        );
    }

    fn record(ino: u64, offset: u64, dir: &Path) -> Saved {
        Saved {
            key: FileKey { dev: 1, ino },
            head: Head::of_bytes(b"head"),
            offset,
            path: dir.join(format!("{ino}.log")),
            intake_key: "k".into(),
            order: 0,
        }
    }

    fn journal(store: &mut Store, r: &Saved) {
        store
            .journal()
            .record(r.key, &r.head, r.offset, &r.path, &r.intake_key);
    }

    #[test]
    fn the_journal_carries_positions_past_the_checkpoint_until_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::new(dir.path());
        store.save([record(1, 10, dir.path())].iter()).unwrap();
        // Accepted after the checkpoint: a known file moves on, a new file appears.
        journal(&mut store, &record(1, 20, dir.path()));
        journal(&mut store, &record(1, 30, dir.path()));
        journal(&mut store, &record(2, 5, dir.path()));
        // The process dies here (no save): the next start sees all of it.
        let loaded = Store::new(dir.path()).load().unwrap().unwrap();
        assert_eq!(loaded[&FileKey { dev: 1, ino: 1 }].offset, 30);
        assert_eq!(loaded[&FileKey { dev: 1, ino: 2 }].offset, 5);
        assert!(
            loaded[&FileKey { dev: 1, ino: 2 }].order > 0,
            "newer than the checkpoint's"
        );

        // A checkpoint empties the journal: an older record cannot come back.
        store.save([record(1, 40, dir.path())].iter()).unwrap();
        let loaded = Store::new(dir.path()).load().unwrap().unwrap();
        assert_eq!(loaded[&FileKey { dev: 1, ino: 1 }].offset, 40);
        assert_eq!(loaded.len(), 1);
    }

    #[test]
    fn a_stale_foreign_or_torn_journal_is_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::new(dir.path());
        store.save([record(1, 10, dir.path())].iter()).unwrap();
        journal(&mut store, &record(1, 20, dir.path()));
        let journal_path = dir.path().join(JOURNAL_NAME);
        let text = fs::read_to_string(&journal_path).unwrap();
        let offset_of = |dir: &Path| {
            Store::new(dir).load().unwrap().unwrap()[&FileKey { dev: 1, ino: 1 }].offset
        };

        // A torn last record (no terminator) is ignored, the ones before it count.
        fs::write(&journal_path, format!("{text}1 1 4 00")).unwrap();
        assert_eq!(offset_of(dir.path()), 20);
        // A damaged record ends the replay.
        let (header, rest) = text.split_once('\n').unwrap();
        fs::write(&journal_path, format!("{header}\ngarbage\n{rest}")).unwrap();
        assert_eq!(offset_of(dir.path()), 10);
        // Another boot: the unsynced journal is not trusted.
        let other_boot = text.replacen(&store.journal().boot, "another-boot", 1);
        fs::write(&journal_path, other_boot).unwrap();
        assert_eq!(offset_of(dir.path()), 10);
        // A journal of an older generation (the crash came between the checkpoint's
        // rename and the journal's restart): the checkpoint already covers it.
        fs::write(&journal_path, &text).unwrap();
        store.save([record(1, 15, dir.path())].iter()).unwrap();
        fs::write(&journal_path, &text).unwrap();
        assert_eq!(offset_of(dir.path()), 15);
    }

    #[test]
    fn damaged_records_are_skipped_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(FILE_NAME),
            format!("{MAGIC}\n1 2 3 zz 5 00 00\ngarbage\n"),
        )
        .unwrap();
        let loaded = Store::new(dir.path()).load().unwrap().unwrap();
        assert!(loaded.is_empty());
    }
}
