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
/// Counters (`records_dropped`, `bytes_dropped`, `corrupt_skipped`) count since the ring
/// was opened. Byte counts include the 20-byte frame header of each record.
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
    /// Unacknowledged records deleted because the ring was full.
    pub records_dropped: u64,
    /// Bytes of those records.
    pub bytes_dropped: u64,
    /// Damaged records or regions the reader skipped.
    pub corrupt_skipped: u64,
    /// The newest record handed to the OS.
    pub write_position: Option<Position>,
    /// The newest acknowledged record.
    pub ack_position: Option<Position>,
}
