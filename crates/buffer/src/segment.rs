//! Segment files: naming, listing, scanning and drop accounting.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{io_at, RingError};
use crate::frame::{self, Decoded};
use crate::position::Position;

const SUFFIX: &str = ".seg";

/// Path of segment `number` in `dir`. Zero-padded so names sort like numbers.
pub(crate) fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}{SUFFIX}"))
}

/// Segment numbers present in `dir`, ascending. Other files are ignored.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<u64>, RingError> {
    let mut numbers = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_at(dir))? {
        let entry = entry.map_err(io_at(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(SUFFIX) else {
            continue;
        };
        if stem.len() == 20 {
            if let Ok(number) = stem.parse::<u64>() {
                numbers.push(number);
            }
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// What the ring knows about one segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegMeta {
    pub(crate) number: u64,
    /// Bytes handed to the OS (for sealed segments: the final length).
    pub(crate) len: u64,
    pub(crate) first_seq: Option<u64>,
    pub(crate) last_seq: Option<u64>,
    /// Intact records in the segment.
    pub(crate) records: u64,
}

impl SegMeta {
    pub(crate) fn empty(number: u64) -> Self {
        Self {
            number,
            len: 0,
            first_seq: None,
            last_seq: None,
            records: 0,
        }
    }

    /// Records in this segment after the acknowledged one.
    pub(crate) fn unacked_records(&self, ack: Option<&Position>) -> u64 {
        match (ack, self.first_seq, self.last_seq) {
            (_, None, _) | (_, _, None) => 0,
            (None, _, _) => self.records,
            (Some(ack), Some(first), Some(last)) => {
                if ack.seq() < first {
                    self.records
                } else if ack.seq() >= last {
                    0
                } else {
                    (last - ack.seq()).min(self.records)
                }
            }
        }
    }

    /// Bytes in this segment after the acknowledged record.
    pub(crate) fn unacked_bytes(&self, ack: Option<&Position>) -> u64 {
        match ack {
            None => self.len,
            Some(ack) if ack.segment() < self.number => self.len,
            Some(ack) if ack.segment() == self.number => self.len.saturating_sub(ack.offset()),
            Some(_) => 0,
        }
    }
}

/// Result of scanning the bytes of one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scan {
    /// Offset just past the last intact record (where a torn tail starts).
    pub(crate) valid_len: u64,
    pub(crate) first_seq: Option<u64>,
    pub(crate) last_seq: Option<u64>,
    pub(crate) records: u64,
}

/// Walks every frame in `bytes`, skipping damaged records and resynchronising after
/// damaged headers.
pub(crate) fn scan(bytes: &[u8]) -> Scan {
    let mut result = Scan {
        valid_len: 0,
        first_seq: None,
        last_seq: None,
        records: 0,
    };
    let mut at = 0usize;
    while at < bytes.len() {
        match frame::decode(&bytes[at..]) {
            Decoded::Record { seq, frame_len, .. } => {
                at += frame_len;
                result.valid_len = at as u64;
                result.first_seq.get_or_insert(seq);
                result.last_seq = Some(seq);
                result.records += 1;
            }
            Decoded::BadPayload { frame_len } => at += frame_len,
            Decoded::BadHeader | Decoded::Incomplete { .. } => match frame::resync(bytes, at + 1) {
                Some(next) => at = next,
                None => break,
            },
        }
    }
    result
}
