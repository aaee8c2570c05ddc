//! Positions in the ring and the statistics snapshot.

/// Identifies one record in the ring; survives restarts.
///
/// Positions are totally ordered by the record's sequence number, which increases with
/// every append (and agrees with the on-disk order of segment number then offset).
/// Passing a position to [`crate::RingReader::ack`] acknowledges that record and all
/// records before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    seq: u64,
    segment: u64,
    offset: u64,
}

impl Position {
    pub(crate) fn new(seq: u64, segment: u64, offset: u64) -> Self {
        Self {
            seq,
            segment,
            offset,
        }
    }

    /// Sequence number of the record.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Number of the segment file holding the record.
    pub fn segment(&self) -> u64 {
        self.segment
    }

    /// Byte offset in the segment just past the end of the record.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

/// A snapshot of the ring's size and counters, for status reports.
///
/// Counters (`records_dropped`, `bytes_dropped`, `corrupt_skipped`, `records_lost`) count
/// since the ring was opened. Byte counts include the 20-byte frame header of each record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RingStats {
    /// Bytes in segment files that the OS has received (excludes the writer's buffer).
    pub bytes_on_disk: u64,
    /// Number of segment files.
    pub segments: usize,
    /// Records handed to the OS and not yet acknowledged.
    pub records_pending: u64,
    /// Bytes of those records.
    pub bytes_pending: u64,
    /// Records deleted because the ring was full before the reader had them (records
    /// read and not yet acknowledged are still delivered, so they do not count).
    pub records_dropped: u64,
    /// Bytes of those records.
    pub bytes_dropped: u64,
    /// Damaged places the reader skipped (a damaged record, or a damaged region holding
    /// any number of records): how often damage was met, not how much was lost.
    pub corrupt_skipped: u64,
    /// Records missing from the ring, counted exactly from the gaps in the sequence
    /// numbers the reader met: damaged records, and segment files damaged, emptied or
    /// deleted behind the ring's back. Drops by the capacity limit are not included.
    /// Each gap is also reported as a [`crate::RingWarning::RecordsLost`].
    pub records_lost: u64,
    /// Segment files that left the ring but could not be deleted (see
    /// [`crate::RingWarning::UndeletableSegment`]).
    pub leftover_segments: usize,
    /// The newest record handed to the OS.
    pub write_position: Option<Position>,
    /// The newest acknowledged record.
    pub ack_position: Option<Position>,
}
