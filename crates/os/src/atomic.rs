//! Atomic file replacement: after a crash or power loss the file holds either its old content
//! or the complete new one, never a mix, and never someone else's temporary file.
//!
//! The new content goes to a temporary file with a name unique to this call, created
//! exclusively in the same directory (a rename is atomic only within one file system), with
//! the final permission bits from the start. It is written, `fsync`ed, renamed over the target
//! and, on Unix, the directory is `fsync`ed so that the rename itself survives a power loss. On
//! Windows `std::fs::rename` replaces an existing file (`MoveFileEx` with
//! `MOVEFILE_REPLACE_EXISTING` semantics; retried briefly while another handle keeps the target
//! from being replaced) and directories cannot be synced; the file is still flushed
//! (`FlushFileBuffers`) before the rename. When anything fails before the rename, the
//! temporary file is removed and the target is untouched.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The step of [`replace_file`] that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplaceStep {
    /// Creating the temporary file beside the target (missing directory, no permission).
    CreateTemp,
    /// Setting the permission bits of the temporary file.
    SetPermissions,
    /// Writing the content (a full disk shows here).
    Write,
    /// Flushing the temporary file to stable storage.
    SyncFile,
    /// Renaming the temporary file over the target.
    Rename,
    /// Flushing the directory after the rename: the new content is in place but may not
    /// survive a power loss.
    SyncDir,
}

impl fmt::Display for ReplaceStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReplaceStep::CreateTemp => "creating the temporary file",
            ReplaceStep::SetPermissions => "setting permissions",
            ReplaceStep::Write => "writing",
            ReplaceStep::SyncFile => "syncing the file",
            ReplaceStep::Rename => "renaming the temporary file over it",
            ReplaceStep::SyncDir => "syncing its directory",
        })
    }
}

/// Why a file could not be replaced atomically: the target, the step and the OS error.
#[derive(Debug, thiserror::Error)]
#[error("cannot replace {path}: {step} failed: {source}")]
pub struct ReplaceError {
    path: PathBuf,
    step: ReplaceStep,
    #[source]
    source: io::Error,
}

impl ReplaceError {
    /// The file that was to be replaced.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The step that failed.
    pub fn step(&self) -> ReplaceStep {
        self.step
    }

    /// The underlying OS error.
    pub fn io_error(&self) -> &io::Error {
        &self.source
    }
}

/// Replaces `path` with `contents` atomically and durably (see the module documentation).
/// `mode` is the Unix permission bits of the new file, applied exactly (the umask does not
/// reduce them), e.g. `0o600` for files holding secrets; ignored on Windows.
pub fn replace_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), ReplaceError> {
    replace_file_with(path, mode, |file| file.write_all(contents))
}

/// Like [`replace_file`], but `write` produces the content into the temporary file (to copy a
/// large file without holding it in memory). An error from `write` leaves the target untouched
/// and is reported as [`ReplaceStep::Write`].
pub fn replace_file_with<F>(path: &Path, mode: u32, write: F) -> Result<(), ReplaceError>
where
    F: FnOnce(&mut File) -> io::Result<()>,
{
    replace(path, mode, Durability::Synced, write)
}

/// Like [`replace_file`], atomic against the death of the process (readers see the old or
/// the new content, never a mix) but without any `fsync`: after a power loss the file may
/// hold its old content, the new one or, on some file systems, nothing. For files that are
/// rewritten every few seconds and matter only while the process runs (the status file),
/// where two disk flushes per write would cost more than the file is worth.
pub fn replace_file_unsynced(path: &Path, contents: &[u8], mode: u32) -> Result<(), ReplaceError> {
    replace(path, mode, Durability::Unsynced, |file| {
        file.write_all(contents)
    })
}

/// Whether a replacement is flushed to stable storage.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Durability {
    Synced,
    Unsynced,
}

fn replace<F>(path: &Path, mode: u32, durability: Durability, write: F) -> Result<(), ReplaceError>
where
    F: FnOnce(&mut File) -> io::Result<()>,
{
    let synced = durability == Durability::Synced;
    let fail = |step| {
        let path = path.to_path_buf();
        move |source| ReplaceError { path, step, source }
    };
    let (mut file, tmp) = create_temp(path, mode).map_err(fail(ReplaceStep::CreateTemp))?;
    let written = set_mode(&file, mode)
        .map_err(fail(ReplaceStep::SetPermissions))
        .and_then(|()| write(&mut file).map_err(fail(ReplaceStep::Write)))
        .and_then(|()| {
            if synced {
                file.sync_all().map_err(fail(ReplaceStep::SyncFile))
            } else {
                Ok(())
            }
        });
    drop(file);
    if let Err(e) =
        written.and_then(|()| rename_over(&tmp, path).map_err(fail(ReplaceStep::Rename)))
    {
        // Best effort: the error that matters is the one above.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    if synced {
        sync_dir(parent_dir(path)).map_err(fail(ReplaceStep::SyncDir))?;
    }
    Ok(())
}

/// Makes creations, renames and deletions of entries of `dir` durable (`fsync` of the
/// directory). A no-op where directories cannot be synced (Windows).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Removes the temporary files a crashed [`replace_file`] of `path` may have left beside it;
/// returns how many it removed. Call it only where no other process or thread can be
/// replacing `path` at the same time (at start, under the owner's lock): it would remove that
/// writer's temporary file and make its rename fail.
pub fn remove_leftover_temps(path: &Path) -> io::Result<usize> {
    let Some(name) = path.file_name() else {
        return Ok(0);
    };
    let prefix = temp_prefix(name);
    let entries = match fs::read_dir(parent_dir(path)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        if is_temp_name(&entry.file_name(), &prefix) {
            match fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

/// `.NAME.` — temporary files are `.NAME.PID-N.tmp`: hidden, and unique per process and call.
fn temp_prefix(name: &std::ffi::OsStr) -> OsString {
    let mut prefix = OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    prefix
}

fn is_temp_name(candidate: &std::ffi::OsStr, prefix: &OsString) -> bool {
    let (Some(candidate), Some(prefix)) = (candidate.to_str(), prefix.to_str()) else {
        return false;
    };
    candidate
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(".tmp"))
        .and_then(|middle| middle.split_once('-'))
        .is_some_and(|(pid, n)| {
            [pid, n]
                .iter()
                .all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        })
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Creates a new temporary file beside `path`. `create_new` (O_EXCL) guarantees the file is
/// ours alone, even if a name is somehow taken (a leftover of an earlier process with the same
/// pid): then the next counter value is tried.
fn create_temp(path: &Path, mode: u32) -> io::Result<(File, PathBuf)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut attempts = 0;
    loop {
        let mut tmp_name = temp_prefix(name);
        tmp_name.push(format!(
            "{}-{}.tmp",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let tmp = path.with_file_name(tmp_name);
        match open_new(&tmp, mode) {
            Ok(file) => return Ok((file, tmp)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 100 => attempts += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Renames `tmp` over `path`.
#[cfg(not(windows))]
fn rename_over(tmp: &Path, path: &Path) -> io::Result<()> {
    fs::rename(tmp, path)
}

/// Renames `tmp` over `path`. Windows refuses to replace a file while another handle has it
/// open without delete sharing (a concurrent replacement of the same file, a virus scanner or
/// indexer looking at the new file): the error is "access denied" and goes away within
/// milliseconds, so it is retried for up to about a second.
#[cfg(windows)]
fn rename_over(tmp: &Path, path: &Path) -> io::Result<()> {
    let mut delay_ms = 1;
    let mut waited_ms = 0;
    loop {
        match fs::rename(tmp, path) {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied && waited_ms < 1000 => {
                std::thread::sleep(std::time::Duration::from_millis(delay_ms));
                waited_ms += delay_ms;
                delay_ms = (delay_ms * 2).min(50);
            }
            result => return result,
        }
    }
}

#[cfg(unix)]
fn open_new(path: &Path, mode: u32) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    // Created with the final bits (minus the umask) so that a secret is never readable by
    // others, not even between creation and the chmod below.
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
}

#[cfg(not(unix))]
fn open_new(path: &Path, _mode: u32) -> io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}

#[cfg(unix)]
fn set_mode(file: &File, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // The umask may have cleared bits at creation; set them exactly.
    file.set_permissions(fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_file: &File, _mode: u32) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn creates_then_replaces_and_leaves_only_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        replace_file(&path, b"first", 0o644).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"first");
        replace_file(&path, b"second, longer", 0o644).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second, longer");
        replace_file(&path, b"", 0o644).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"");
        assert_eq!(names(dir.path()), vec!["state"]);
    }

    #[test]
    fn unsynced_replacement_is_atomic_with_exact_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        replace_file_unsynced(&path, b"{\"a\":1}", 0o644).unwrap();
        replace_file_unsynced(&path, b"{\"a\":2, \"b\":3}", 0o644).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"{\"a\":2, \"b\":3}");
        assert_eq!(names(dir.path()), vec!["status.json"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o644);
        }
        let err = replace_file_unsynced(&dir.path().join("missing/x"), b"x", 0o644).unwrap_err();
        assert_eq!(err.step(), ReplaceStep::CreateTemp);
    }

    #[test]
    fn failing_writer_leaves_old_content_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        replace_file(&path, b"old", 0o644).unwrap();
        let err = replace_file_with(&path, 0o644, |f| {
            f.write_all(b"half")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(err.step(), ReplaceStep::Write);
        assert_eq!(err.path(), path);
        assert!(err.to_string().contains("disk full"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(names(dir.path()), vec!["state"]);
    }

    #[test]
    fn failing_rename_leaves_no_temporary() {
        // A directory in the way: everything up to the rename succeeds, the rename fails.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in-the-way");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("keep"), b"x").unwrap();
        let err = replace_file(&path, b"new", 0o644).unwrap_err();
        assert_eq!(err.step(), ReplaceStep::Rename);
        assert_eq!(names(dir.path()), vec!["in-the-way"]);
        assert_eq!(fs::read(path.join("keep")).unwrap(), b"x");
    }

    #[test]
    fn missing_directory_is_a_create_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = replace_file(&dir.path().join("no/such/file"), b"x", 0o644).unwrap_err();
        assert_eq!(err.step(), ReplaceStep::CreateTemp);
        assert_eq!(err.io_error().kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn leftovers_of_a_crash_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ack");
        for name in [
            ".ack.123-0.tmp",
            ".ack.9-17.tmp",
            "ack",
            ".ack.tmp",
            ".ack.x-1.tmp",
            ".ackx.1-1.tmp",
            ".other.1-1.tmp",
        ] {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        assert_eq!(remove_leftover_temps(&path).unwrap(), 2);
        assert_eq!(
            names(dir.path()),
            vec![
                ".ack.tmp",
                ".ack.x-1.tmp",
                ".ackx.1-1.tmp",
                ".other.1-1.tmp",
                "ack"
            ]
        );
        assert_eq!(
            remove_leftover_temps(&dir.path().join("gone/ack")).unwrap(),
            0
        );
    }

    #[test]
    fn concurrent_replacements_never_share_a_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared");
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..50 {
                        replace_file(path, &[t; 64], 0o644).unwrap();
                    }
                });
            }
        });
        let content = fs::read(&path).unwrap();
        assert_eq!(content.len(), 64);
        assert!(content.iter().all(|&b| b == content[0]));
        assert_eq!(names(dir.path()), vec!["shared"]);
    }

    #[cfg(unix)]
    #[test]
    fn permissions_are_exact_whatever_the_umask_and_the_old_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.yaml");
        let mode_of = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        fs::write(&path, b"old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        replace_file(&path, b"IntakeKey: x\n", 0o600).unwrap();
        assert_eq!(mode_of(&path), 0o600);
        // 0o664 has a group write bit that the usual umask (022) would clear.
        replace_file(&path, b"status", 0o664).unwrap();
        assert_eq!(mode_of(&path), 0o664);
        replace_file(&path, b"status", 0o644).unwrap();
        assert_eq!(mode_of(&path), 0o644);
    }

    #[test]
    fn relative_path_in_the_current_directory_has_a_parent() {
        assert_eq!(parent_dir(Path::new("file")), Path::new("."));
        assert_eq!(parent_dir(Path::new("a/file")), Path::new("a"));
    }
}
