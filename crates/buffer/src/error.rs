//! Typed errors returned by the ring.

use std::path::PathBuf;

use crate::Position;

/// Everything that can go wrong while opening, writing or reading a ring.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RingError {
    /// The record cannot fit in one segment (records never span segments).
    #[error("record of {len} bytes exceeds the maximum record size of {max} bytes")]
    RecordTooLarge {
        /// Payload length that was rejected.
        len: usize,
        /// Largest payload a segment can hold.
        max: usize,
    },
    /// The options cannot describe a working ring.
    #[error("invalid ring options: {0}")]
    InvalidOptions(&'static str),
    /// Another `Ring` (in this or another process) has the directory open.
    #[error("ring directory {0} is already open elsewhere")]
    Locked(PathBuf),
    /// `ack` was given a position the reader has not delivered yet.
    #[error("cannot acknowledge {ack:?}: the reader has only delivered up to seq {read_seq:?}")]
    AckBeyondRead {
        /// The rejected position.
        ack: Position,
        /// Sequence number of the last record the reader returned, if any.
        read_seq: Option<u64>,
    },
    /// The acknowledgement could not be persisted (the step and the OS error are inside).
    #[error(transparent)]
    Persist(#[from] agent_os::ReplaceError),
    /// An operating-system I/O call failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// File or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Builds a closure that wraps an `io::Error` with the path it concerns.
pub(crate) fn io_at(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> RingError + '_ {
    move |source| RingError::Io {
        path: path.to_path_buf(),
        source,
    }
}
