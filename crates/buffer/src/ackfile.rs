//! The persisted acknowledgement: a 32-byte file replaced atomically.
//!
//! Layout (little endian): magic `RACK`, seq u64, segment u64, offset u64, CRC32C of the
//! first 28 bytes. Replaced with [`agent_os::replace_file`] (temporary file, fsync, rename,
//! directory fsync), so a crash leaves either the old or the new acknowledgement.
//!
//! A backup copy, `ack.bak`, is written the same way at most every
//! [`BACKUP_EVERY`] by the reader: if the main file is damaged (a bad disk block, a stray
//! edit), reading resumes from the backup, so only the records acknowledged in the last
//! few seconds are delivered again instead of the whole ring, and the caller is warned.

use std::fs;
use std::path::Path;

use crate::error::{io_at, RingError};
use crate::position::Position;
use crate::segment::MAX_SEGMENT_NUMBER;
use crate::warning::RingWarning;

const MAGIC: &[u8; 4] = b"RACK";
const LEN: usize = 32;
pub(crate) const ACK_FILE: &str = "ack";
/// The backup copy of the acknowledgement.
pub(crate) const ACK_BACKUP: &str = "ack.bak";
/// Least time between two writes of the backup copy.
pub(crate) const BACKUP_EVERY: std::time::Duration = std::time::Duration::from_secs(2);
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
    let pos = Position::new(word(4), word(12), word(20));
    // A checksum that holds over impossible numbers is a crafted file: as damaged.
    (pos.segment() <= MAX_SEGMENT_NUMBER).then_some(pos)
}

/// What one of the two files holds.
enum Found {
    Missing,
    Damaged,
    Intact(Position),
}

fn read_one(path: &Path) -> Result<Found, RingError> {
    match fs::read(path) {
        Ok(bytes) => Ok(decode(&bytes).map_or(Found::Damaged, Found::Intact)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Found::Missing),
        Err(err) => Err(io_at(path)(err)),
    }
}

/// Reads the acknowledgement. A missing file (with no backup) is a fresh ring. A
/// damaged main file (or a missing one beside a backup) falls back on the backup copy;
/// either way the caller gets a warning to log, since it means records are delivered
/// again. A missing or damaged acknowledgement can only cause re-delivery, never loss.
pub(crate) fn load(dir: &Path) -> Result<(Option<Position>, Option<RingWarning>), RingError> {
    let path = dir.join(ACK_FILE);
    let main = read_one(&path)?;
    if let Found::Intact(pos) = main {
        return Ok((Some(pos), None));
    }
    let backup = match read_one(&dir.join(ACK_BACKUP)) {
        Ok(Found::Intact(pos)) => Some(pos),
        // An unreadable backup is no worse than none.
        _ => None,
    };
    match (main, backup) {
        (Found::Missing, None) => Ok((None, None)),
        (_, recovered) => Ok((recovered, Some(RingWarning::DamagedAck { path, recovered }))),
    }
}

/// Persists `pos` as the backup copy.
pub(crate) fn store_backup(dir: &Path, pos: &Position) -> Result<(), RingError> {
    Ok(agent_os::replace_file(
        &dir.join(ACK_BACKUP),
        &encode(pos),
        ACK_MODE,
    )?)
}

/// Persists `pos` atomically and durably.
///
/// When the atomic replacement fails (a full disk cannot hold the temporary file), the
/// 32 bytes are written over the existing file in place: that needs no new disk block,
/// so acknowledging (which frees ring space) keeps working on a full disk. A torn
/// in-place write is caught by the checksum and falls back on the backup copy.
pub(crate) fn store(dir: &Path, pos: &Position) -> Result<(), RingError> {
    let path = dir.join(ACK_FILE);
    let bytes = encode(pos);
    match agent_os::replace_file(&path, &bytes, ACK_MODE) {
        Ok(()) => Ok(()),
        Err(err) => overwrite_in_place(&path, &bytes).map_err(|_| err.into()),
    }
}

/// Writes `bytes` over the start of an existing file of the same length, durably.
fn overwrite_in_place(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = fs::OpenOptions::new().write(true).open(path)?;
    if file.metadata()?.len() != bytes.len() as u64 {
        return Err(std::io::Error::other("not an acknowledgement file"));
    }
    file.write_all(bytes)?;
    file.sync_data()
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
    agent_os::atomic::remove_leftover_temps(&dir.join(ACK_BACKUP)).map_err(io_at(dir))?;
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
        assert_eq!(load(dir.path()).unwrap(), (None, None));
        let pos = Position::new(42, 3, 1000);
        store(dir.path(), &pos).unwrap();
        assert_eq!(load(dir.path()).unwrap(), (Some(pos), None));
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
        let (pos, warning) = load(dir.path()).unwrap();
        assert_eq!(pos, None);
        assert!(
            matches!(
                warning,
                Some(RingWarning::DamagedAck {
                    recovered: None,
                    ..
                })
            ),
            "{warning:?}"
        );
    }

    #[test]
    fn a_damaged_or_missing_ack_falls_back_on_the_backup_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let old = Position::new(10, 1, 200);
        store_backup(dir.path(), &old).unwrap();
        store(dir.path(), &Position::new(42, 3, 1000)).unwrap();
        fs::write(dir.path().join(ACK_FILE), b"garbage").unwrap();
        let (pos, warning) = load(dir.path()).unwrap();
        assert_eq!(pos, Some(old));
        assert!(matches!(
            warning,
            Some(RingWarning::DamagedAck { recovered: Some(p), .. }) if p == old
        ));
        fs::remove_file(dir.path().join(ACK_FILE)).unwrap();
        assert_eq!(load(dir.path()).unwrap().0, Some(old));

        // A checksum that holds over an impossible segment number is damage too.
        let crafted = Position::new(1, u64::MAX, 20);
        fs::write(dir.path().join(ACK_FILE), encode(&crafted)).unwrap();
        assert_eq!(load(dir.path()).unwrap().0, Some(old));
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
        assert_eq!(load(dir.path()).unwrap().0, Some(Position::new(1, 0, 20)));
    }
}
