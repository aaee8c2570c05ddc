//! Things the ring noticed and worked around, handed to the caller to log.

use std::fmt;
use std::path::PathBuf;

use crate::position::Position;

/// A problem the ring repaired or worked around without failing the call that met it.
///
/// The ring does no logging of its own: the owner takes these with
/// [`crate::RingWriter::take_warnings`] (or the reader's) and reports them. At most
/// 256 are kept between two takes; the oldest are discarded beyond that.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RingWarning {
    /// A file named like a segment but numbered beyond anything the ring can reach (a
    /// stray or crafted file) was left out of the ring, and renamed aside when possible,
    /// instead of making the numbering wrap and overwrite live segments.
    StraySegment {
        /// The file found.
        path: PathBuf,
        /// Where it was moved, if the rename worked.
        moved_to: Option<PathBuf>,
    },
    /// The acknowledgement file was damaged. Reading resumes from the backup copy when
    /// one is intact (records acknowledged after it are delivered again), or from the
    /// oldest record in the ring otherwise.
    DamagedAck {
        /// The damaged file.
        path: PathBuf,
        /// The position recovered from the backup copy, if any.
        recovered: Option<Position>,
    },
    /// A segment file could not be deleted (e.g. made immutable). It no longer counts as
    /// part of the ring; deleting it is retried later.
    UndeletableSegment {
        /// The file.
        path: PathBuf,
        /// What the OS answered.
        error: String,
    },
    /// Records are missing from the ring (a damaged, emptied or deleted segment file):
    /// the reader found a gap in the sequence numbers that the capacity limit does not
    /// explain. Counted in [`crate::RingStats::records_lost`].
    RecordsLost {
        /// Sequence number of the first missing record.
        first_seq: u64,
        /// Number of missing records.
        count: u64,
        /// Segment holding the first record read after the gap.
        segment: u64,
    },
}

/// Most warnings kept until the owner takes them.
pub(crate) const MAX_KEPT: usize = 256;

impl fmt::Display for RingWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RingWarning::StraySegment { path, moved_to } => {
                write!(
                    f,
                    "stray segment file {} ignored: its number is beyond what the ring can reach",
                    path.display()
                )?;
                if let Some(to) = moved_to {
                    write!(f, " (moved to {})", to.display())?;
                }
                Ok(())
            }
            RingWarning::DamagedAck { path, recovered } => match recovered {
                Some(pos) => write!(
                    f,
                    "the acknowledgement file {} is damaged: resuming from its backup copy (seq {}); records acknowledged after it will be delivered again",
                    path.display(),
                    pos.seq()
                ),
                None => write!(
                    f,
                    "the acknowledgement file {} is damaged and no backup copy is intact: every record still in the ring will be delivered again",
                    path.display()
                ),
            },
            RingWarning::UndeletableSegment { path, error } => write!(
                f,
                "cannot delete segment file {} ({error}); it is left out of the ring and deleting it is retried",
                path.display()
            ),
            RingWarning::RecordsLost {
                first_seq,
                count,
                segment,
            } => write!(
                f,
                "{count} record(s) lost from the ring (seq {first_seq} to {}): a segment file was damaged, emptied or deleted (gap found before segment {segment})",
                first_seq.saturating_add(count.saturating_sub(1))
            ),
        }
    }
}
