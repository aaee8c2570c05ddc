//! The persisted acknowledgement: a 32-byte file replaced atomically.
//!
//! Layout (little endian): magic `RACK`, seq u64, segment u64, offset u64, CRC32C of the
//! first 28 bytes. Written to `ack.tmp`, synced, renamed over `ack`, then the directory is
//! synced, so a crash leaves either the old or the new acknowledgement.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::{io_at, RingError};
use crate::position::Position;

const MAGIC: &[u8; 4] = b"RACK";
const LEN: usize = 32;
pub(crate) const ACK_FILE: &str = "ack";
pub(crate) const ACK_TMP: &str = "ack.tmp";

fn encode(pos: &Position) -> [u8; LEN] {
    let mut bytes = [0u8; LEN];
    bytes[0..4].copy_from_slice(MAGIC);
    bytes[4..12].copy_from_slice(&pos.seq().to_le_bytes());
    bytes[12..20].copy_from_slice(&pos.segment().to_le_bytes());
    bytes[20..28].copy_from_slice(&pos.offset().to_le_bytes());
    let crc = crc32c::crc32c(&bytes[0..28]);
    bytes[28..32].copy_from_slice(&crc.to_le_bytes());
    bytes
}

fn decode(bytes: &[u8]) -> Option<Position> {
    if bytes.len() != LEN || &bytes[0..4] != MAGIC {
        return None;
    }
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(w)
    };
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&bytes[28..32]);
    if crc32c::crc32c(&bytes[0..28]) != u32::from_le_bytes(crc) {
        return None;
    }
    Some(Position::new(word(4), word(12), word(20)))
}

/// Reads the acknowledgement; a missing or damaged file means "nothing acknowledged",
/// which can only cause re-delivery, never loss.
pub(crate) fn load(dir: &Path) -> Result<Option<Position>, RingError> {
    let path = dir.join(ACK_FILE);
    match fs::read(&path) {
        Ok(bytes) => Ok(decode(&bytes)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(io_at(&path)(err)),
    }
}

/// Persists `pos` atomically (temp file, fdatasync, rename, directory sync).
pub(crate) fn store(dir: &Path, pos: &Position) -> Result<(), RingError> {
    let tmp = dir.join(ACK_TMP);
    let mut file = fs::File::create(&tmp).map_err(io_at(&tmp))?;
    file.write_all(&encode(pos)).map_err(io_at(&tmp))?;
    file.sync_data().map_err(io_at(&tmp))?;
    drop(file);
    let path = dir.join(ACK_FILE);
    fs::rename(&tmp, &path).map_err(io_at(&path))?;
    sync_dir(dir)
}

/// Makes creations, renames and deletions in `dir` durable (a no-op where directories
/// cannot be opened for syncing).
pub(crate) fn sync_dir(dir: &Path) -> Result<(), RingError> {
    #[cfg(unix)]
    {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_at(dir))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_then_load_and_reject_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);
        let pos = Position::new(42, 3, 1000);
        store(dir.path(), &pos).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(pos));
        assert!(!dir.path().join(ACK_TMP).exists());

        let path = dir.path().join(ACK_FILE);
        let mut bytes = fs::read(&path).unwrap();
        bytes[13] ^= 0x80;
        fs::write(&path, &bytes).unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);
    }
}
