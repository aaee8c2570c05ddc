//! Ring configuration.

use std::time::Duration;

use crate::error::RingError;
use crate::frame::HEADER_LEN;

/// How a ring is sized and how often it syncs to disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingOptions {
    /// Maximum size of one segment file in bytes (frames included). Default 8 MiB.
    pub segment_size: u64,
    /// Maximum total size of all segment files. When a new segment would push the ring past
    /// this, the oldest segments are deleted, read or not. Must be at least twice
    /// `segment_size`. Default 100 MiB.
    pub capacity: u64,
    /// Bound on how long appended data stays unsynced: when this much time has passed
    /// since the last sync (checked on every append and in
    /// [`crate::RingWriter::flush_if_due`]), the active segment is `fdatasync`ed in the
    /// background. Sealed segments are synced in the background at every roll, and
    /// [`crate::RingWriter::flush`] syncs and waits for all of it. Default 1 s.
    pub flush_interval: Duration,
    /// Appended records are collected in memory and handed to the OS (which makes them
    /// visible to the reader) when this many bytes are buffered, at the end of every
    /// `append_batch`, at a roll and on flush. Default 256 KiB.
    pub write_buffer: usize,
}

impl Default for RingOptions {
    fn default() -> Self {
        Self {
            segment_size: 8 * 1024 * 1024,
            capacity: 100 * 1024 * 1024,
            flush_interval: Duration::from_secs(1),
            write_buffer: 256 * 1024,
        }
    }
}

impl RingOptions {
    /// Largest payload a single record may have with these options.
    pub fn max_record_len(&self) -> usize {
        usize::try_from(self.segment_size)
            .unwrap_or(usize::MAX)
            .saturating_sub(HEADER_LEN)
    }

    pub(crate) fn validate(&self) -> Result<(), RingError> {
        if self.segment_size <= HEADER_LEN as u64 {
            return Err(RingError::InvalidOptions(
                "segment_size must be larger than one record header (20 bytes)",
            ));
        }
        if self.segment_size > u64::from(u32::MAX) {
            return Err(RingError::InvalidOptions(
                "segment_size must be below 4 GiB",
            ));
        }
        if self.capacity < self.segment_size.saturating_mul(2) {
            return Err(RingError::InvalidOptions(
                "capacity must be at least twice segment_size",
            ));
        }
        Ok(())
    }
}
