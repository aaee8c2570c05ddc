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
    /// Appending stopped part-way because the disk refused a write (full, read-only, I/O
    /// error). The writer kept the first `accepted` records of the call in memory, with
    /// their positions: they reach the disk when it takes writes again (the next append,
    /// [`crate::RingWriter::flush_if_due`] or [`crate::RingWriter::flush`] retries them).
    /// The records from `accepted` on were not taken and must be offered again.
    #[error("the ring cannot write ({accepted} record(s) of this call kept in memory): {source}")]
    Stalled {
        /// Records of the call the writer took (they keep their positions).
        accepted: usize,
        /// What the disk answered.
        #[source]
        source: Box<RingError>,
    },
    /// A second reader was asked for while one is alive (see
    /// [`crate::RingReader::reopener`]).
    #[error("ring directory {0} already has a live reader")]
    ReaderBusy(PathBuf),
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

impl RingError {
    /// For [`RingError::Stalled`]: how many records of the call the writer kept.
    pub fn accepted(&self) -> Option<usize> {
        match self {
            RingError::Stalled { accepted, .. } => Some(*accepted),
            _ => None,
        }
    }
}

/// Builds a closure that wraps an `io::Error` with the path it concerns.
pub(crate) fn io_at(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> RingError + '_ {
    move |source| RingError::Io {
        path: path.to_path_buf(),
        source,
    }
}
