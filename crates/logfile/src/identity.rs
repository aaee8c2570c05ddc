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
    pub(crate) fn of_bytes(bytes: &[u8]) -> Self {
        Self {
            len: bytes.len() as u64,
            hash: *blake3::hash(bytes).as_bytes(),
        }
    }

    /// Whether the file still starts with the bytes this fingerprint was taken of.
    /// Hashes: for checkpoints (of files not open yet); an open file keeps its head
    /// bytes in a [`KnownHead`] and compares them instead.
    pub(crate) fn matches(&self, file: &File) -> io::Result<bool> {
        let mut buf = [0u8; HEAD_MAX as usize];
        let want = self.len.min(HEAD_MAX) as usize;
        let n = read_full_at(file, &mut buf[..want], 0)?;
        Ok(self.matches_bytes(&buf[..n]))
    }

    /// Whether `bytes` (a file's head, at least this fingerprint's length of it, or less
    /// if the file is shorter) start with the bytes this fingerprint was taken of.
    pub(crate) fn matches_bytes(&self, bytes: &[u8]) -> bool {
        usize::try_from(self.len)
            .ok()
            .and_then(|len| bytes.get(..len))
            .is_some_and(|prefix| blake3::hash(prefix).as_bytes() == &self.hash)
    }
}

/// The head of a followed file as bytes (≤ [`HEAD_MAX`]), with their fingerprint.
///
/// Why the bytes: every wake-up of the tailer checks that the file still starts with
/// what it started with when it was read (a file rewritten in place, copytruncate).
/// Comparing up to 1 KiB costs a few hundred instructions where hashing it cost about
/// 7 000, twice per line at low rates. The fingerprint is still what the checkpoint and
/// the journal persist, so it is computed only when the bytes change: at open, and while
/// the file's first KiB is still being written.
#[derive(Debug, Clone)]
pub(crate) struct KnownHead {
    bytes: Vec<u8>,
    head: Head,
}

impl KnownHead {
    /// The head of an empty file (of a file read again from 0): matches every file.
    pub(crate) fn empty() -> Self {
        Self {
            bytes: Vec::new(),
            head: Head::of_bytes(&[]),
        }
    }

    /// Reads up to [`HEAD_MAX`] bytes of what the file holds now; `buf` is working space
    /// whose length is kept (see [`spare`]).
    pub(crate) fn read(file: &File, buf: &mut Vec<u8>) -> io::Result<Self> {
        let mut known = Self::empty();
        let window = spare(buf, HEAD_MAX as usize);
        let n = read_full_at(file, window, 0)?;
        known.adopt(&window[..n]);
        Ok(known)
    }

    /// The fingerprint to persist.
    pub(crate) fn head(&self) -> &Head {
        &self.head
    }

    /// Whether these bytes, when read, started with the bytes `saved` (a checkpoint's
    /// fingerprint) was taken of. Hashes at most once.
    pub(crate) fn started_with(&self, saved: &Head) -> bool {
        if saved.len == self.head.len {
            return saved.hash == self.head.hash;
        }
        saved.matches_bytes(&self.bytes)
    }

    /// Reads the file's head again. `Ok(false)`: it no longer starts with the known bytes
    /// (rewritten in place, or truncated below them), and nothing was changed. `Ok(true)`:
    /// it does, and bytes written since past the known ones (up to [`HEAD_MAX`]) are
    /// taken in, so the fingerprint covers as much as it can.
    pub(crate) fn check(&mut self, file: &File, buf: &mut Vec<u8>) -> io::Result<bool> {
        let window = spare(buf, HEAD_MAX as usize);
        let n = read_full_at(file, window, 0)?;
        let now = &window[..n];
        if !now.starts_with(&self.bytes) {
            return Ok(false);
        }
        if now.len() > self.bytes.len() {
            self.adopt(now);
        }
        Ok(true)
    }

    /// Takes `bytes` (a file's first ≤ [`HEAD_MAX`] bytes) as the known head.
    fn adopt(&mut self, bytes: &[u8]) {
        self.bytes.clear();
        self.bytes.extend_from_slice(bytes);
        self.head = Head::of_bytes(bytes);
    }
}

/// The first `len` bytes of `buf` as a slice to read into, growing `buf` if it is shorter.
///
/// Why: `Vec::resize` before each read zero-filled the whole read window (4 KiB or more,
/// per read) just for the kernel to overwrite it. The length of `buf` is kept at its
/// high-water mark instead, so only growth is ever zero-filled; what the slice holds on
/// return is stale bytes of earlier reads, which the caller overwrites and bounds by the
/// count the read returns.
pub(crate) fn spare(buf: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if buf.len() < len {
        buf.resize(len, 0);
    }
    &mut buf[..len]
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

#[cfg(test)]
mod tests {
    use std::io::{Seek, SeekFrom, Write};

    use super::*;

    fn file_with(bytes: &[u8]) -> (tempfile::NamedTempFile, File) {
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        tmp.write_all(bytes).unwrap();
        let file = File::open(tmp.path()).unwrap();
        (tmp, file)
    }

    #[test]
    fn known_head_takes_in_growth_up_to_head_max_and_detects_a_changed_head() {
        let mut buf = Vec::new();
        let (mut tmp, file) = file_with(b"abc");
        let mut known = KnownHead::read(&file, &mut buf).unwrap();
        assert_eq!(*known.head(), Head::of_bytes(b"abc"));

        let more = vec![b'x'; 2 * HEAD_MAX as usize];
        tmp.write_all(&more).unwrap();
        assert!(known.check(&file, &mut buf).unwrap());
        let mut head = b"abc".to_vec();
        head.extend_from_slice(&more[..HEAD_MAX as usize - 3]);
        assert_eq!(*known.head(), Head::of_bytes(&head));
        assert!(known.started_with(&Head::of_bytes(b"ab")));
        assert!(known.started_with(&Head::of_bytes(&head)));
        assert!(!known.started_with(&Head::of_bytes(b"abd")));

        // Changed inside the head: not the same, and the known head stays.
        let mut writer = tmp.as_file();
        writer.seek(SeekFrom::Start(500)).unwrap();
        writer.write_all(b"Z").unwrap();
        assert!(!known.check(&file, &mut buf).unwrap());
        assert_eq!(*known.head(), Head::of_bytes(&head));
        // Cut to a prefix of the known head: not the same either.
        writer.set_len(10).unwrap();
        assert!(!known.check(&file, &mut buf).unwrap());
        // A fingerprint of a longer head than the file has does not match.
        assert!(!Head::of_bytes(&head).matches_bytes(&head[..10]));
    }

    #[test]
    fn spare_keeps_the_buffer_length_and_grows_it_when_asked_for_more() {
        let mut buf = Vec::new();
        spare(&mut buf, 8).copy_from_slice(b"12345678");
        assert_eq!(spare(&mut buf, 4), b"1234");
        assert_eq!(buf.len(), 8, "the length stays at its high-water mark");
        assert_eq!(spare(&mut buf, 10), b"12345678\0\0");
    }
}
