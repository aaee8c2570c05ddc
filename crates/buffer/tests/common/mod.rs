//! Helpers shared by the integration tests: self-describing payloads.

#![allow(dead_code)]

/// A payload that names itself: `run` and `index` followed by bytes derived from both, so
/// a reader can check that a record is exactly the one written.
pub fn payload(run: u32, index: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len.max(16));
    out.extend_from_slice(&run.to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(&(len as u32).to_le_bytes());
    let mut x = u64::from(run).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ index.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    while out.len() < len.max(16) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(x as u8);
    }
    out
}

/// Parses and verifies a payload built by [`payload`]; `None` if it is not intact.
pub fn check(data: &[u8]) -> Option<(u32, u64)> {
    if data.len() < 16 {
        return None;
    }
    let run = u32::from_le_bytes(data[0..4].try_into().ok()?);
    let index = u64::from_le_bytes(data[4..12].try_into().ok()?);
    let len = u32::from_le_bytes(data[12..16].try_into().ok()?) as usize;
    (payload(run, index, len) == data).then_some((run, index))
}

/// Deterministic record length in `16..max` for record `index`.
pub fn len_for(index: u64, max: usize) -> usize {
    16 + (index.wrapping_mul(2_654_435_761) % (max as u64 - 16)) as usize
}

/// Total size of the segment files in `dir`.
pub fn segment_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("read ring dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .map(|e| e.metadata().expect("metadata").len())
        .sum()
}
