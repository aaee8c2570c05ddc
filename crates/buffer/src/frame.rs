//! Record framing: every record on disk is a 20-byte header followed by the payload.
//!
//! Header layout (little endian):
//!
//! | bytes  | field                                             |
//! |--------|---------------------------------------------------|
//! | 0..4   | payload length                                    |
//! | 4..12  | sequence number (global, increasing)              |
//! | 12..16 | CRC32C of the payload                             |
//! | 16..20 | CRC32C of bytes 0..16                             |
//!
//! The header has its own checksum so that a damaged payload can be skipped (the length
//! is still trusted) and so that, after a damaged header, the next record boundary can be
//! found again by scanning for a header whose checksum holds.

/// Size of the frame header in bytes.
pub(crate) const HEADER_LEN: usize = 20;

/// Appends one framed record to `out`. The caller guarantees `payload.len() <= u32::MAX`.
pub(crate) fn encode(out: &mut Vec<u8>, seq: u64, payload: &[u8]) {
    let mut header = [0u8; HEADER_LEN];
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    header[0..4].copy_from_slice(&len.to_le_bytes());
    header[4..12].copy_from_slice(&seq.to_le_bytes());
    header[12..16].copy_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    let header_crc = crc32c::crc32c(&header[0..16]);
    header[16..20].copy_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
}

/// What [`decode`] found at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded<'a> {
    /// A complete record whose checksums hold.
    Record {
        seq: u64,
        payload: &'a [u8],
        frame_len: usize,
    },
    /// The header is intact but the payload checksum fails: skip `frame_len` bytes.
    BadPayload { frame_len: usize },
    /// The header checksum fails: the record boundary is lost.
    BadHeader,
    /// More bytes are needed; `needed` is the full frame length when the header is known.
    Incomplete { needed: Option<usize> },
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Decodes the frame at the start of `buf`.
pub(crate) fn decode(buf: &[u8]) -> Decoded<'_> {
    if buf.len() < HEADER_LEN {
        return Decoded::Incomplete { needed: None };
    }
    if crc32c::crc32c(&buf[0..16]) != read_u32(buf, 16) {
        return Decoded::BadHeader;
    }
    let len = read_u32(buf, 0) as usize;
    let frame_len = HEADER_LEN + len;
    if buf.len() < frame_len {
        return Decoded::Incomplete {
            needed: Some(frame_len),
        };
    }
    let payload = &buf[HEADER_LEN..frame_len];
    if crc32c::crc32c(payload) != read_u32(buf, 12) {
        return Decoded::BadPayload { frame_len };
    }
    Decoded::Record {
        seq: read_u64(buf, 4),
        payload,
        frame_len,
    }
}

/// Finds the first offset at or after `from` where a complete, intact record starts.
pub(crate) fn resync(buf: &[u8], from: usize) -> Option<usize> {
    (from..buf.len().saturating_sub(HEADER_LEN - 1))
        .find(|&at| matches!(decode(&buf[at..]), Decoded::Record { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage_detection() {
        let mut buf = Vec::new();
        encode(&mut buf, 7, b"hello");
        encode(&mut buf, 8, b"");
        assert_eq!(buf.len(), 2 * HEADER_LEN + 5);
        assert_eq!(
            decode(&buf),
            Decoded::Record {
                seq: 7,
                payload: b"hello",
                frame_len: HEADER_LEN + 5
            }
        );
        assert_eq!(
            decode(&buf[HEADER_LEN + 5..]),
            Decoded::Record {
                seq: 8,
                payload: b"",
                frame_len: HEADER_LEN
            }
        );
        assert_eq!(
            decode(&buf[..HEADER_LEN + 2]),
            Decoded::Incomplete {
                needed: Some(HEADER_LEN + 5)
            }
        );

        let mut payload_flip = buf.clone();
        payload_flip[HEADER_LEN + 1] ^= 0x10;
        assert_eq!(
            decode(&payload_flip),
            Decoded::BadPayload {
                frame_len: HEADER_LEN + 5
            }
        );

        let mut header_flip = buf.clone();
        header_flip[0] ^= 0x01;
        assert_eq!(decode(&header_flip), Decoded::BadHeader);
        assert_eq!(resync(&header_flip, 1), Some(HEADER_LEN + 5));
    }
}
