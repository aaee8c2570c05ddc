//! What a pattern matches: regular files to follow, and paths that cannot be followed
//! (a directory, a FIFO, a socket, a device, a symbolic link loop), which are reported
//! rather than silently ignored.

use std::fmt;
use std::fs::{self, Metadata};
use std::io;
use std::path::PathBuf;

use crate::spec::match_options;

/// Why a path matched by a pattern is not followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// A directory (patterns match files, one directory level per `*`).
    Directory,
    /// A named pipe: reading it would take the data from its real reader.
    Fifo,
    /// A Unix socket.
    Socket,
    /// A block or character device.
    Device,
    /// A symbolic link that cannot be resolved other than by being absent (a loop,
    /// a permission problem); the OS error text says which.
    Unresolvable(String),
    /// The directory holding matches could not be read.
    Unreadable(String),
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Directory => f.write_str("is a directory, not a file"),
            SkipReason::Fifo => {
                f.write_str("is a FIFO (named pipe); only regular files are followed")
            }
            SkipReason::Socket => f.write_str("is a socket; only regular files are followed"),
            SkipReason::Device => f.write_str("is a device; only regular files are followed"),
            SkipReason::Unresolvable(e) => write!(f, "cannot be resolved: {e}"),
            SkipReason::Unreadable(e) => write!(f, "cannot be read: {e}"),
        }
    }
}

/// A path matched by a pattern that the tailer does not follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The matched path.
    pub path: PathBuf,
    /// Why it is not followed.
    pub reason: SkipReason,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}; not followed", self.path.display(), self.reason)
    }
}

/// One match of a pattern, as the tailer sees it.
pub(crate) enum Match {
    /// A regular file (symbolic links followed) and its metadata.
    File(PathBuf, Metadata),
    /// Something that cannot be followed.
    Skip(Skipped),
}

/// Expands `pattern` now. A path that disappears between listing and inspection is
/// neither (rotation races the scan). An invalid pattern yields nothing: it is refused
/// by [`crate::validate_pattern`] before.
pub(crate) fn expand(pattern: &str) -> impl Iterator<Item = Match> {
    let paths = glob::glob_with(pattern, match_options())
        .ok()
        .into_iter()
        .flatten();
    paths.filter_map(|entry| match entry {
        Ok(path) => classify(path),
        Err(e) => Some(Match::Skip(Skipped {
            path: e.path().to_owned(),
            reason: SkipReason::Unreadable(e.error().to_string()),
        })),
    })
}

fn classify(path: PathBuf) -> Option<Match> {
    let meta = match fs::metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            return Some(Match::Skip(Skipped {
                path,
                reason: SkipReason::Unresolvable(e.to_string()),
            }))
        }
    };
    if meta.is_file() {
        return Some(Match::File(path, meta));
    }
    let reason = if meta.is_dir() {
        SkipReason::Directory
    } else {
        special_kind(&meta)
    };
    Some(Match::Skip(Skipped { path, reason }))
}

#[cfg(unix)]
fn special_kind(meta: &Metadata) -> SkipReason {
    use std::os::unix::fs::FileTypeExt;
    let kind = meta.file_type();
    if kind.is_fifo() {
        SkipReason::Fifo
    } else if kind.is_socket() {
        SkipReason::Socket
    } else {
        SkipReason::Device
    }
}

#[cfg(not(unix))]
fn special_kind(_meta: &Metadata) -> SkipReason {
    SkipReason::Device
}

/// The paths `pattern` matches now that the tailer would not follow, with the reason:
/// what `agent config check` warns about. The tailer logs the same, once per path.
pub fn unfollowable(pattern: &str) -> Vec<Skipped> {
    expand(pattern)
        .filter_map(|m| match m {
            Match::Skip(s) => Some(s),
            Match::File(..) => None,
        })
        .collect()
}
