//! Persisted read positions, one per file identity, written atomically.
//!
//! Format (text, one record per line, so a human can read it during an incident):
//! `agent-logfile-checkpoints v1` then
//! `dev ino head_len head_hash_hex offset path_hex intake_key_hex`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::identity::{FileKey, Head};
use crate::Error;

const MAGIC: &str = "agent-logfile-checkpoints v1";
const FILE_NAME: &str = "logfile-checkpoints";
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
}

impl Store {
    pub(crate) fn new(state_dir: &Path) -> Self {
        Self {
            path: state_dir.join(FILE_NAME),
        }
    }

    /// `None` when no checkpoint was ever written (the very first start).
    /// Unreadable records are skipped with a warning: their files are then read from the
    /// beginning, trading duplicates for no loss.
    pub(crate) fn load(&self) -> Result<Option<HashMap<FileKey, Saved>>, Error> {
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
        for (order, line) in (0u64..).zip(lines) {
            match parse_record(line, order) {
                Some(record) => {
                    saved.insert(record.key, record);
                }
                None => {
                    tracing::warn!(path = %self.path.display(), record = line, "skipping unreadable checkpoint record")
                }
            }
        }
        Ok(Some(saved))
    }

    /// Replaces the checkpoint file atomically and durably ([`agent_os::replace_file`]).
    pub(crate) fn save<'a>(&self, records: impl Iterator<Item = &'a Saved>) -> Result<(), Error> {
        let mut text = String::with_capacity(4096);
        text.push_str(MAGIC);
        text.push('\n');
        for r in records {
            let _ = writeln!(
                text,
                "{} {} {} {} {} {} {}",
                r.key.dev,
                r.key.ino,
                r.head.len,
                hex(&r.head.hash),
                r.offset,
                hex(path_bytes(&r.path).as_ref()),
                hex(r.intake_key.as_bytes())
            );
        }
        agent_os::replace_file(&self.path, text.as_bytes(), FILE_MODE).map_err(Error::SaveState)
    }
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

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
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
        let store = Store::new(dir.path());
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
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "only the checkpoint file"
        );
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
