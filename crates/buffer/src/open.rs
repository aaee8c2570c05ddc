//! Opening a ring directory: locking, crash recovery and the first segment.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use crate::ackfile;
use crate::error::{io_at, RingError};
use crate::options::RingOptions;
use crate::position::Position;
use crate::reader::RingReader;
use crate::segment::{list_segments, scan, segment_path, SegMeta};
use crate::shared::{Shared, State};
use crate::warning::RingWarning;
use crate::writer::{create_segment, RingWriter};

const LOCK_FILE: &str = "lock";

/// Takes an exclusive lock on `<dir>/lock`, held as long as the returned file is open (the
/// kernel releases it when the process dies, even by SIGKILL): an advisory `flock` on Unix;
/// on Windows the file is opened without sharing, so a second open fails.
fn lock_dir(dir: &Path) -> Result<File, RingError> {
    let path = dir.join(LOCK_FILE);
    let mut options = OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(windows)]
    {
        use std::os::windows::fs::OpenOptionsExt;
        options.share_mode(0);
    }
    let file = match options.open(&path) {
        Ok(file) => file,
        // ERROR_SHARING_VIOLATION: another handle, in this process or another, holds it.
        #[cfg(windows)]
        Err(e) if e.raw_os_error() == Some(32) => return Err(RingError::Locked(dir.to_path_buf())),
        Err(e) => return Err(io_at(&path)(e)),
    };
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: flock only reads the descriptor number, which is valid because `file`
        // is alive for the whole call; it touches no memory of ours.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::WouldBlock {
                return Err(RingError::Locked(dir.to_path_buf()));
            }
            return Err(io_at(&path)(err));
        }
    }
    Ok(file)
}

pub(crate) fn open(dir: &Path, opts: RingOptions) -> Result<(RingWriter, RingReader), RingError> {
    opts.validate()?;
    fs::create_dir_all(dir).map_err(io_at(dir))?;
    let lock = lock_dir(dir)?;
    ackfile::remove_leftovers(dir)?;
    let (ack, ack_warning) = ackfile::load(dir)?;
    let mut warnings: Vec<RingWarning> = ack_warning.into_iter().collect();

    let (numbers, strays) = list_segments(dir)?;
    for number in strays {
        let path = segment_path(dir, number);
        let aside = path.with_extension("seg.stray");
        let moved_to = fs::rename(&path, &aside).ok().map(|()| aside);
        warnings.push(RingWarning::StraySegment { path, moved_to });
    }
    let mut segments = VecDeque::with_capacity(numbers.len() + 1);
    let mut last_published = None;
    let mut bytes = Vec::new();
    for (idx, &number) in numbers.iter().enumerate() {
        let path = segment_path(dir, number);
        bytes.clear();
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(io_at(&path))?;
        let found = scan(&bytes);
        let mut len = bytes.len() as u64;
        if idx + 1 == numbers.len() {
            // The newest segment may end in a torn write: cut it at the last intact record.
            if found.valid_len == 0 {
                fs::remove_file(&path).map_err(io_at(&path))?;
                continue;
            }
            if found.valid_len < len {
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_at(&path))?;
                file.set_len(found.valid_len).map_err(io_at(&path))?;
                file.sync_all().map_err(io_at(&path))?;
                len = found.valid_len;
            }
        }
        if let Some(seq) = found.last_seq {
            last_published = Some(Position::new(seq, number, found.valid_len));
        }
        segments.push_back(SegMeta {
            number,
            len,
            first_seq: found.first_seq,
            last_seq: found.last_seq,
            records: found.records,
        });
    }

    let next_seq = segments
        .iter()
        .filter_map(|s| s.last_seq)
        .chain(ack.map(|a| a.seq()))
        .max()
        .map_or(0, |seq| seq.saturating_add(1));
    // Always start a fresh segment, so new records can never land behind an
    // acknowledgement that points past a truncated tail.
    let first_new = numbers
        .last()
        .copied()
        .into_iter()
        .chain(ack.map(|a| a.segment()))
        .max()
        .map_or(0, |n| n.saturating_add(1));

    // Records older than the oldest one on disk were acknowledged or dropped before
    // this open (and counted then): a reader gap before it is not a loss.
    let dropped_through = segments
        .iter()
        .find_map(|s| s.first_seq)
        .and_then(|first| first.checked_sub(1));
    let state = State {
        segments,
        ack,
        published_next_seq: next_seq,
        last_published,
        read: ack,
        dropped_through,
        records_dropped: 0,
        bytes_dropped: 0,
        corrupt_skipped: 0,
        records_lost: 0,
        leftovers: Vec::new(),
        warnings,
    };
    let shared = Arc::new(Shared::new(dir.to_path_buf(), opts, state, lock));
    let (file, path) = create_segment(&shared, first_new)?;
    ackfile::sync_dir(dir)?;
    let writer = RingWriter::new(Arc::clone(&shared), first_new, file, path, next_seq);
    let reader = RingReader::new(shared, ack);
    Ok((writer, reader))
}
