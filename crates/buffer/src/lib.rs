//! A segmented-file ring of opaque records that survives crashes and network outages.
//!
//! Records (byte strings) are appended to fixed-size segment files in one directory and
//! read back oldest first. When the total size would exceed the capacity, the oldest
//! segment is deleted, read or not, and its unacknowledged records are counted as dropped:
//! the writer never blocks on a full ring. The reader acknowledges what it has delivered;
//! the acknowledgement is persisted atomically, so after a restart reading resumes right
//! after it (records read but not acknowledged may be delivered again, never skipped).
//!
//! ```
//! # fn main() -> Result<(), agent_buffer::RingError> {
//! # let dir = tempfile::tempdir().map_err(|e| agent_buffer::RingError::Io { path: "tmp".into(), source: e })?;
//! use agent_buffer::{Ring, RingOptions};
//!
//! let (mut writer, mut reader) = Ring::open(dir.path(), RingOptions::default())?;
//! writer.append_batch(&[b"first".as_slice(), b"second".as_slice()])?;
//! let batch = reader.read_batch(250, 1 << 20)?;
//! assert_eq!(batch.len(), 2);
//! if let Some((last, _)) = batch.last() {
//!     reader.ack(*last)?; // only after the records were delivered
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # On disk
//!
//! `<dir>/<20-digit segment number>.seg` holds records framed with a 20-byte header
//! (length, sequence number, CRC32C of the payload, CRC32C of the header); records never
//! span segments, so a record is at most `segment_size - 20` bytes. `<dir>/ack` holds the
//! acknowledged position; `<dir>/lock` keeps a second instance out.
//!
//! # Durability and recovery
//!
//! The writer buffers appends in memory and hands them to the OS when
//! [`RingOptions::write_buffer`] bytes are buffered, at the end of each
//! [`RingWriter::append_batch`], at segment roll, in [`RingWriter::flush_if_due`] and on
//! flush; only then does the reader see them. Data is `fdatasync`ed at every segment roll
//! and every [`RingOptions::flush_interval`] by a background thread (so syncing overlaps
//! with appending instead of stalling it), and synchronously by [`RingWriter::flush`]:
//! a record is guaranteed to survive a crash or power loss once `flush` returned, and
//! records the OS received survive a crash of the process.
//! On open, every segment is read once and checked (so opening a full 100 MiB ring reads
//! 100 MiB); the newest segment is cut at the end of its last intact record (a torn tail),
//! and writing always continues in a fresh segment. Damaged records anywhere are detected
//! by checksum, skipped and counted ([`RingStats::corrupt_skipped`]); they are never
//! returned.
//!
//! # Faults
//!
//! - **Full disk or failing writes.** A write the disk refuses (ENOSPC, EIO, EROFS) is
//!   undone to the last record the reader was told about, and the records the writer
//!   took stay in memory with their sequence numbers: the call fails with
//!   [`RingError::Stalled`], saying how many records of the call were taken, and the
//!   next call writes the kept records first. Nothing new is taken while that fails, so
//!   the caller can apply backpressure (or drop, and count) until space returns; then
//!   writing resumes with no gap in the numbering.
//! - **Files that cannot be deleted** (immutable, read-only directory) leave the ring
//!   with a [`RingWarning::UndeletableSegment`] and are deleted later; acknowledging and
//!   appending never fail because of them.
//! - **Lost records.** Sequence numbers are consecutive, so the reader counts exactly
//!   the records missing between two it reads ([`RingStats::records_lost`], one
//!   [`RingWarning::RecordsLost`] per gap): damaged records, and segment files damaged,
//!   emptied or deleted behind the ring's back. Records the capacity limit deleted are
//!   counted as dropped instead, and only if the reader had not read them yet. What
//!   was lost before the oldest record on disk, or at the very end of the ring while it
//!   was closed, cannot be seen.
//! - **Crafted or stray files.** A segment file numbered beyond any reachable number is
//!   renamed aside (`*.seg.stray`) with a [`RingWarning::StraySegment`]; the numbering
//!   never wraps. A damaged acknowledgement falls back on its backup copy `ack.bak`
//!   (written at most every 2 s) with a [`RingWarning::DamagedAck`].
//! - **A failed consumer** can be replaced: [`RingReader::reopener`] opens a new reader
//!   after the old one is dropped, resuming after the acknowledgement.
//!
//! The ring does no logging: its owner takes the warnings with
//! [`RingWriter::take_warnings`] or [`RingReader::take_warnings`] and reports them.
//!
//! # Concurrency model
//!
//! [`Ring::open`] returns one [`RingWriter`] and one [`RingReader`]. Each is `Send` (the
//! writer also owns a small helper thread for background syncs) and meant to be owned by
//! one thread or task: typically the writer by a dedicated writer
//! thread and the reader by the shipper's async task. They share only a small mutex-guarded
//! state (segment list, positions, counters) taken briefly per published buffer, per
//! `read_batch` and per `ack`; file I/O happens outside it except for creating and
//! deleting segment files. All reader calls are non-blocking except
//! [`RingReader::wait_for_data`], which blocks the calling thread on a condition variable;
//! async code should instead install [`RingReader::set_notify`] (e.g. waking a
//! `tokio::sync::Notify`) and call `read_batch` when woken. Acknowledgement does an
//! fsync, so async callers may want to run it on a blocking thread. Only one process may
//! open a directory at a time ([`RingError::Locked`]; enforced with `flock` on Unix).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod ackfile;
mod error;
mod frame;
mod open;
mod options;
mod position;
mod reader;
mod segment;
mod shared;
mod syncer;
mod warning;
mod writer;

use std::path::Path;

pub use error::RingError;
pub use options::RingOptions;
pub use position::{Position, RingStats};
pub use reader::{RingReader, RingReopener};
pub use warning::RingWarning;
pub use writer::RingWriter;

/// Entry point: opens (or creates) a ring directory.
#[derive(Debug)]
pub struct Ring;

impl Ring {
    /// Opens the ring in `dir`, creating the directory if needed, recovering from any
    /// crash, and returns its writer and reader.
    pub fn open(
        dir: impl AsRef<Path>,
        opts: RingOptions,
    ) -> Result<(RingWriter, RingReader), RingError> {
        open::open(dir.as_ref(), opts)
    }
}

/// Size of the header framing each record on disk, in bytes.
pub const RECORD_HEADER_LEN: usize = frame::HEADER_LEN;
