//! Glob-based log file tailing with checkpoints and rotation handling.
//!
//! A [`Tailer`] follows every file matching the [`WatchSpec`] patterns and hands each line
//! to a [`LineSink`] exactly as it is in the file: the raw bytes without the `\n`
//! terminator (a `\r` before it is kept, invalid UTF-8 is passed through untouched).
//! Lines longer than [`Options::max_line_len`] are cut into pieces.
//!
//! Exactly-once across restarts: a checkpoint per file (device, inode, blake3 of the first
//! ≤ 1 KiB, offset past the last accepted line) is written atomically, and only ever covers
//! lines the sink accepted. After a crash the lines accepted since the last checkpoint are
//! delivered again: fewer than [`Options::duplicate_bound`] lines, never lost ones.
//!
//! Rotation: a file renamed away or deleted is read to its end (until it stopped growing
//! for [`Options::rotated_grace`]) while the new file at the path is read from 0; a file
//! that shrinks or whose head changes (copytruncate) is read again from 0.
//!
//! Known limits: if the agent dies while draining a file that was renamed to a name no
//! pattern matches, that file's unread tail is not found again after the restart.
//! Copytruncate loses what the writer appended between the copy and the truncation
//! unless the tailer had read it already (inherent to copytruncate).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod checkpoint;
mod error;
mod identity;
mod lines;
mod sink;
mod spec;
mod tailer;
mod wait;

pub use error::Error;
pub use sink::{LineSink, LogLine};
pub use spec::{validate_pattern, Options, WatchSpec};
pub use tailer::{Stats, StopHandle, Tailer};
