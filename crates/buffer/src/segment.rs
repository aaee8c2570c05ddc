//! Segment files: naming, listing, scanning and drop accounting.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{io_at, RingError};
use crate::frame::{self, Decoded};
use crate::position::Position;

const SUFFIX: &str = ".seg";

/// Highest segment number the ring uses. Numbers grow by one per segment, so even tiny
/// segments written at disk speed for centuries stay far below it; a file numbered above
/// it is a stray (copied or crafted) and is left out, so that the numbering never wraps
/// and overwrites live segments.
pub(crate) const MAX_SEGMENT_NUMBER: u64 = 1_000_000_000_000_000;

/// Path of segment `number` in `dir`. Zero-padded so names sort like numbers.
pub(crate) fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}{SUFFIX}"))
}

/// Segment numbers present in `dir`, ascending, and the stray ones (numbered above
/// [`MAX_SEGMENT_NUMBER`]). Other files are ignored.
pub(crate) fn list_segments(dir: &Path) -> Result<(Vec<u64>, Vec<u64>), RingError> {
    let mut numbers = Vec::new();
    let mut strays = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_at(dir))? {
        let entry = entry.map_err(io_at(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(SUFFIX) else {
            continue;
        };
        if stem.len() == 20 {
            match stem.parse::<u64>() {
                Ok(number) if number <= MAX_SEGMENT_NUMBER => numbers.push(number),
                Ok(number) => strays.push(number),
                Err(_) => {}
            }
        }
    }
    numbers.sort_unstable();
    Ok((numbers, strays))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(seqs: std::ops::Range<u64>) -> Vec<u8> {
        let mut buf = Vec::new();
        for seq in seqs {
            frame::encode(&mut buf, seq, &[seq as u8; 10]);
        }
        buf
    }

    #[test]
    fn scan_stops_at_a_torn_tail_and_skips_damage_in_the_middle() {
        let whole = frames(3..8);
        let frame_len = whole.len() / 5;
        let torn = &whole[..whole.len() - 4];
        let found = scan(torn);
        assert_eq!(found.valid_len, (4 * frame_len) as u64);
        assert_eq!(
            (found.first_seq, found.last_seq, found.records),
            (Some(3), Some(6), 4)
        );

        let mut damaged = whole.clone();
        damaged[frame_len + 2] ^= 1; // header of seq 4
        damaged[2 * frame_len + 25] ^= 1; // payload of seq 5
        let found = scan(&damaged);
        assert_eq!(found.valid_len, whole.len() as u64);
        assert_eq!(
            (found.first_seq, found.last_seq, found.records),
            (Some(3), Some(7), 3)
        );
    }

    #[test]
    fn unacked_counts_follow_the_ack() {
        let seg = SegMeta {
            number: 5,
            len: 300,
            first_seq: Some(10),
            last_seq: Some(19),
            records: 10,
        };
        assert_eq!(seg.unacked_records(None), 10);
        assert_eq!(seg.unacked_bytes(None), 300);
        let inside = Position::new(13, 5, 120);
        assert_eq!(seg.unacked_records(Some(&inside)), 6);
        assert_eq!(seg.unacked_bytes(Some(&inside)), 180);
        let before = Position::new(9, 4, 50);
        assert_eq!(seg.unacked_records(Some(&before)), 10);
        assert_eq!(seg.unacked_bytes(Some(&before)), 300);
        let after = Position::new(20, 6, 30);
        assert_eq!(seg.unacked_records(Some(&after)), 0);
        assert_eq!(seg.unacked_bytes(Some(&after)), 0);
    }
}
