//! Glob-based log file tailing with checkpoints and rotation handling.
//!
//! A [`Tailer`] follows every file matching the [`WatchSpec`] patterns and hands each line
//! to a [`LineSink`] exactly as it is in the file: the raw bytes without the `\n`
//! terminator (a `\r` before it is kept, invalid UTF-8 is passed through untouched).
//! Lines longer than [`Options::max_line_len`] are cut into pieces.
//!
//! Exactly-once across restarts: a checkpoint per file (device, inode, blake3 of the first
//! ≤ 1 KiB, offset past the last accepted line) is written atomically and durably, and
//! only ever covers lines the sink accepted; between two such writes, every accepted
//! delivery appends the file's new position to a journal (one `write(2)`, no fsync).
//! After the process is killed, only the delivery it died in may be delivered again: at
//! most [`Options::duplicate_bound`] lines per crash, never lost ones. After a power loss
//! the journal is not trusted and the lines accepted since the last durable checkpoint
//! come again ([`Options::power_loss_duplicate_bound`]).
//!
//! Rotation: a file renamed away or deleted is read to its end (until it stopped growing
//! for [`Options::rotated_grace`]) while the new file at the path is read from 0; a file
//! that shrinks or whose head changes (copytruncate) is read again from 0.
//!
//! A file renamed away to a name no pattern matches is still finished after a restart:
//! on Linux the checkpoint records where the open file is now (via /proc), and the next
//! start reopens it there if its identity still matches. A file rotated while the tailer
//! was not running (stopped, crashed) is looked for at start in the directory of its
//! checkpoint, under any name: the same device and inode, or else a single file with the
//! same head fingerprint and at least the checkpointed size. It is finished from its
//! checkpoint before its successor, and logged; a checkpointed file that cannot be found
//! again is logged and counted ([`Stats::lost_files`]).
//!
//! Known limits: a file must be seen by one scan (within `poll_interval`, at once on
//! inotify events) before it is rotated away, or it is never read. A file renamed into
//! another directory while the tailer is stopped, or compressed, is not found again
//! (outside Linux this also holds for a file renamed away while running and not finished
//! before a stop). Copytruncate
//! loses what the writer appended between the copy and the truncation unless the tailer
//! had read it already, and a truncated file that regrows past the old offset with
//! the same first bytes (≤ 1 KiB) is taken for the old one (both inherent to
//! copytruncate and head fingerprints). A file rewritten in place to exactly the size
//! already read, within the file system's timestamp granularity of the tailer's last look
//! at it (same size, same mtime), is noticed only when it next grows or is modified: a
//! wake-up that can read nothing new does not reread the head (then read from 0, as
//! any rewrite). On Windows std exposes no file index, so the
//! identity there is the path: after a rename rotation the old handle keeps being
//! followed and the new file at that path is not opened. Rename rotation is not supported
//! there yet (copytruncate is).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod checkpoint;
mod collector;
mod discover;
mod error;
mod identity;
mod lines;
mod sink;
mod spec;
mod tailer;
mod wait;

/// Needs Linux: finishing a renamed file after a restart relies on /proc.
#[cfg(all(test, target_os = "linux"))]
mod model_test;

pub use collector::LogfileCollector;
pub use discover::{unfollowable, SkipReason, Skipped};
pub use error::Error;
pub use sink::{LineSink, LogLine};
pub use spec::{validate_pattern, Options, WatchSpec};
pub use tailer::{Stats, StopHandle, Tailer};
