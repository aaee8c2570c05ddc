//! File identity: device + inode, confirmed by a fingerprint of the file's head.

use std::fs::{File, Metadata};
use std::io;
use std::path::Path;

/// Bytes of the file head covered by the fingerprint.
pub(crate) const HEAD_MAX: u64 = 1024;

/// Device and inode of a file. On systems without a stable inode API in std (Windows)
/// the "inode" is a hash of the path, so a rename there looks like delete + create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FileKey {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
}

impl FileKey {
    #[cfg(unix)]
    pub(crate) fn of(meta: &Metadata, _path: &Path) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    #[cfg(not(unix))]
    pub(crate) fn of(_meta: &Metadata, path: &Path) -> Self {
        let digest = blake3::hash(path.to_string_lossy().as_bytes());
        let mut ino = [0u8; 8];
        ino.copy_from_slice(&digest.as_bytes()[..8]);
        Self {
            dev: 0,
            ino: u64::from_le_bytes(ino),
        }
    }
}

/// blake3 of the first `len` bytes of a file (`len` ≤ [`HEAD_MAX`]). Tells a reused
/// inode, or a file rewritten in place, apart from the file a checkpoint was taken of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) len: u64,
    pub(crate) hash: [u8; 32],
}

impl Head {
    /// Fingerprints up to [`HEAD_MAX`] bytes of what the file holds now.
    pub(crate) fn read(file: &File) -> io::Result<Self> {
        let mut buf = [0u8; HEAD_MAX as usize];
        let n = read_full_at(file, &mut buf, 0)?;
        Ok(Self::of_bytes(&buf[..n]))
    }

    pub(crate) fn of_bytes(bytes: &[u8]) -> Self {
        Self {
            len: bytes.len() as u64,
            hash: *blake3::hash(bytes).as_bytes(),
        }
    }

    /// Whether the file still starts with the bytes this fingerprint was taken of.
    pub(crate) fn matches(&self, file: &File) -> io::Result<bool> {
        let mut buf = [0u8; HEAD_MAX as usize];
        let want = self.len.min(HEAD_MAX) as usize;
        let n = read_full_at(file, &mut buf[..want], 0)?;
        Ok(n == want && blake3::hash(&buf[..n]).as_bytes() == &self.hash)
    }
}

/// Where an open file is now, even after a rename; `None` if deleted or unknown.
/// Only Linux can tell (through /proc); elsewhere the last known path is kept.
#[cfg(target_os = "linux")]
pub(crate) fn current_path(file: &File) -> Option<std::path::PathBuf> {
    use std::os::fd::AsRawFd;
    let path = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()?;
    let deleted = path.as_os_str().to_string_lossy().ends_with(" (deleted)");
    (!deleted && path.is_absolute()).then_some(path)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn current_path(_file: &File) -> Option<std::path::PathBuf> {
    None
}

/// Reads at `pos` until `buf` is full or end of file; returns the byte count.
pub(crate) fn read_full_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match read_at(file, &mut buf[done..], pos + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Positional read that leaves no cursor state behind.
#[cfg(unix)]
pub(crate) fn read_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, pos)
}

/// Positional read; Windows moves the cursor too, which no caller relies on.
#[cfg(windows)]
pub(crate) fn read_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, pos)
}

#[cfg(not(any(unix, windows)))]
pub(crate) fn read_at(mut file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::Start(pos))?;
    file.read(buf)
}
