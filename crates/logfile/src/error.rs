//! Typed errors of the tailer.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while configuring or running a [`crate::Tailer`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `**` would need a recursive directory walk on every scan; the product refuses it.
    #[error("log file pattern {pattern:?}: `**` (recursive match) is not supported")]
    RecursiveGlob {
        /// The pattern as configured.
        pattern: String,
    },
    /// The pattern is empty.
    #[error("log file pattern is empty")]
    EmptyPattern,
    /// The pattern is not valid glob syntax (e.g. an unclosed `[`).
    #[error("log file pattern {pattern:?} is invalid: {source}")]
    InvalidPattern {
        /// The pattern as configured.
        pattern: String,
        /// What the glob parser objected to.
        #[source]
        source: glob::PatternError,
    },
    /// An option is out of its valid range.
    #[error("invalid tailer option: {0}")]
    InvalidOption(&'static str),
    /// Reading or writing the checkpoint state failed.
    #[error("checkpoint state {path}: {source}")]
    State {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying failure.
        #[source]
        source: io::Error,
    },
    /// Saving the checkpoint state failed (the step and the OS error are inside).
    #[error("saving checkpoints: {0}")]
    SaveState(#[source] agent_os::ReplaceError),
    /// The [`crate::LineSink`] refused a batch; nothing of that batch is checkpointed.
    #[error("line sink failed: {0}")]
    Sink(#[source] Box<dyn std::error::Error + Send + Sync>),
}
