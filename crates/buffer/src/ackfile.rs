//! The persisted acknowledgement: a 32-byte file replaced atomically.
//!
//! Layout (little endian): magic `RACK`, seq u64, segment u64, offset u64, CRC32C of the
//! first 28 bytes. Replaced with [`agent_os::replace_file`] (temporary file, fsync, rename,
//! directory fsync), so a crash leaves either the old or the new acknowledgement.

use std::fs;
use std::path::Path;

use crate::error::{io_at, RingError};
use crate::position::Position;

const MAGIC: &[u8; 4] = b"RACK";
const LEN: usize = 32;
pub(crate) const ACK_FILE: &str = "ack";
/// The fixed temporary name of versions before agent-os; removed at open like the new ones.
const LEGACY_ACK_TMP: &str = "ack.tmp";
/// Permission bits of the ack file: the agent's state is root's alone.
const ACK_MODE: u32 = 0o600;

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

/// Persists `pos` atomically and durably.
pub(crate) fn store(dir: &Path, pos: &Position) -> Result<(), RingError> {
    Ok(agent_os::replace_file(
        &dir.join(ACK_FILE),
        &encode(pos),
        ACK_MODE,
    )?)
}

/// Removes the temporary files an interrupted [`store`] may have left (the ring's lock is
/// held, so no other writer can be mid-replacement).
pub(crate) fn remove_leftovers(dir: &Path) -> Result<(), RingError> {
    let legacy = dir.join(LEGACY_ACK_TMP);
    match fs::remove_file(&legacy) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(io_at(&legacy)(err)),
        _ => {}
    }
    agent_os::atomic::remove_leftover_temps(&dir.join(ACK_FILE)).map_err(io_at(dir))?;
    Ok(())
}

/// Makes creations, renames and deletions in `dir` durable (a no-op where directories
/// cannot be opened for syncing).
pub(crate) fn sync_dir(dir: &Path) -> Result<(), RingError> {
    agent_os::atomic::sync_dir(dir).map_err(io_at(dir))
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
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "only the ack file"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(ACK_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, ACK_MODE);
        }

        let path = dir.path().join(ACK_FILE);
        let mut bytes = fs::read(&path).unwrap();
        bytes[13] ^= 0x80;
        fs::write(&path, &bytes).unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);
    }

    #[test]
    fn leftovers_of_an_interrupted_store_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        store(dir.path(), &Position::new(1, 0, 20)).unwrap();
        for name in [LEGACY_ACK_TMP, ".ack.4242-0.tmp"] {
            fs::write(dir.path().join(name), b"half").unwrap();
        }
        remove_leftovers(dir.path()).unwrap();
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "only the ack file"
        );
        assert_eq!(load(dir.path()).unwrap(), Some(Position::new(1, 0, 20)));
    }
}
