//! The record format stored in the ring: a payload tagged with its route.
//!
//! The ring stores opaque bytes; the writer thread tags each serialized event or raw log
//! line with the intake key it must be delivered under, so that the shipper can route it
//! without parsing the payload. Layout (version 1):
//!
//! ```text
//! [0]      version (1)
//! [1]      kind: 1 = dialect event (JSON object), 2 = raw log-file line (bytes as read)
//! [2..4]   intake key length, u16 little-endian
//! [4..4+n] intake key, UTF-8
//! [4+n..]  payload
//! ```

use thiserror::Error;

const VERSION: u8 = 1;
const HEADER: usize = 4;

/// What a routed record carries, which decides how the shipper frames it for the intake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// A serialized endpoint-dialect event (a JSON object).
    Event,
    /// A line from a watched log file, byte-for-byte as read (no terminator).
    LogLine,
}

impl RecordKind {
    fn to_byte(self) -> u8 {
        match self {
            RecordKind::Event => 1,
            RecordKind::LogLine => 2,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(RecordKind::Event),
            2 => Some(RecordKind::LogLine),
            _ => None,
        }
    }
}

/// A borrowed view of one routed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutedRecord<'a> {
    /// How the payload is to be framed.
    pub kind: RecordKind,
    /// The intake key the payload is delivered under.
    pub intake_key: &'a str,
    /// The serialized event or the raw line.
    pub payload: &'a [u8],
}

/// Why bytes read back from the ring are not a routed record.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RoutedError {
    /// Shorter than the fixed header or than the key length it announces.
    #[error("routed record truncated ({0} bytes)")]
    Truncated(usize),
    /// Written by an unknown format version.
    #[error("routed record has unsupported version {0}")]
    Version(u8),
    /// Unknown kind byte.
    #[error("routed record has unknown kind {0}")]
    Kind(u8),
    /// The intake key is not UTF-8.
    #[error("routed record intake key is not UTF-8")]
    KeyEncoding,
    /// An intake key longer than the format can carry.
    #[error("intake key of {0} bytes is too long")]
    KeyTooLong(usize),
}

impl<'a> RoutedRecord<'a> {
    /// Appends the encoded record to `out` (so callers can reuse one buffer).
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), RoutedError> {
        let key = self.intake_key.as_bytes();
        let len = u16::try_from(key.len()).map_err(|_| RoutedError::KeyTooLong(key.len()))?;
        out.reserve(HEADER + key.len() + self.payload.len());
        out.push(VERSION);
        out.push(self.kind.to_byte());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(self.payload);
        Ok(())
    }

    /// Encodes the record into a new buffer.
    pub fn encode(&self) -> Result<Vec<u8>, RoutedError> {
        let mut out = Vec::new();
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// Decodes a record previously produced by [`RoutedRecord::encode`].
    pub fn decode(bytes: &'a [u8]) -> Result<Self, RoutedError> {
        if bytes.len() < HEADER {
            return Err(RoutedError::Truncated(bytes.len()));
        }
        if bytes[0] != VERSION {
            return Err(RoutedError::Version(bytes[0]));
        }
        let kind = RecordKind::from_byte(bytes[1]).ok_or(RoutedError::Kind(bytes[1]))?;
        let len = usize::from(u16::from_le_bytes([bytes[2], bytes[3]]));
        let rest = &bytes[HEADER..];
        if rest.len() < len {
            return Err(RoutedError::Truncated(bytes.len()));
        }
        let (key, payload) = rest.split_at(len);
        let intake_key = std::str::from_utf8(key).map_err(|_| RoutedError::KeyEncoding)?;
        Ok(RoutedRecord {
            kind,
            intake_key,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips(key in "[ -~]{0,80}", payload in proptest::collection::vec(any::<u8>(), 0..512), line in any::<bool>()) {
            let kind = if line { RecordKind::LogLine } else { RecordKind::Event };
            let rec = RoutedRecord { kind, intake_key: &key, payload: &payload };
            let bytes = rec.encode().unwrap();
            prop_assert_eq!(RoutedRecord::decode(&bytes).unwrap(), rec);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = RoutedRecord::decode(&bytes);
        }
    }

    #[test]
    fn rejects_truncated_key() {
        let rec = RoutedRecord {
            kind: RecordKind::Event,
            intake_key: "abcd",
            payload: b"{}",
        };
        let bytes = rec.encode().unwrap();
        assert_eq!(
            RoutedRecord::decode(&bytes[..6]),
            Err(RoutedError::Truncated(6))
        );
        assert_eq!(
            RoutedRecord::decode(&[2, 1, 0, 0]),
            Err(RoutedError::Version(2))
        );
    }
}
