//! Faults a fleet meets: a full disk, files that cannot be deleted, segment files
//! emptied or deleted behind the ring's back, stray segment files and a damaged
//! acknowledgement. The ring must keep what it has, count exactly what is lost, warn,
//! and keep working.
//!
//! The full-disk test mounts a small tmpfs and the immutable-file test uses `chattr`:
//! both need root (and `chattr` from e2fsprogs, on a file system that supports it).
//! Outside CI they are skipped with a message when that is missing; under `CI=true`
//! they fail instead.

#![cfg(target_os = "linux")]

mod common;

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use agent_buffer::{Position, Ring, RingError, RingOptions, RingReader, RingWarning, RingWriter};
use common::{check, payload};

fn opts(segment_size: u64, segments: u64) -> RingOptions {
    RingOptions {
        segment_size,
        capacity: segment_size * segments,
        flush_interval: Duration::from_secs(3600),
        write_buffer: 4096,
    }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Whether a test needing `what` can run; panics under CI when it cannot.
fn prerequisite(ok: bool, what: &str) -> bool {
    if !ok {
        assert!(!in_ci(), "this test needs {what} (CI=true: not skipping)");
        eprintln!("skipped: this test needs {what}");
    }
    ok
}

fn is_root() -> bool {
    // SAFETY: geteuid takes no arguments, touches no memory and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Holds an exclusive lock on a /tmp file, so that tests changing system state (mounts,
/// file attributes) in several test binaries never overlap.
struct SystemLock(#[allow(dead_code)] File);

impl SystemLock {
    fn take() -> SystemLock {
        use std::os::fd::AsRawFd;
        let file = File::create("/tmp/agent-buffer-faults.lock").expect("lock file");
        // SAFETY: flock only reads the descriptor number, valid while `file` lives.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
        SystemLock(file)
    }
}

/// A tmpfs of a few hundred KiB mounted on a temporary directory, unmounted on drop
/// (even when the test fails).
struct Tmpfs {
    dir: tempfile::TempDir,
    _lock: SystemLock,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        if !prerequisite(is_root(), "root (to mount a tmpfs)") {
            return None;
        }
        let lock = SystemLock::take();
        let dir = tempfile::tempdir().expect("tempdir");
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "mount -t tmpfs failed: {status}");
        Some(Tmpfs { dir, _lock: lock })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// `chattr +i` on a file, undone on drop (even when the test fails).
struct Immutable {
    path: PathBuf,
    _lock: SystemLock,
}

impl Immutable {
    fn set(path: &Path) -> Option<Immutable> {
        if !prerequisite(is_root(), "root (for chattr +i)") {
            return None;
        }
        let lock = SystemLock::take();
        let status = Command::new("chattr").arg("+i").arg(path).status();
        let ok = status.as_ref().is_ok_and(|s| s.success());
        if !prerequisite(ok, "chattr +i on the temporary directory's file system") {
            return None;
        }
        Some(Immutable {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.path).status();
    }
}

/// Writes to `path` until the file system is full.
fn fill(path: &Path) {
    let mut file = File::create(path).expect("create filler");
    let chunk = vec![0xa5u8; 4096];
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    let _ = file.sync_all();
}

/// Reads everything: (run, index) of each record, checked intact, and their positions.
fn drain(reader: &mut RingReader) -> (Vec<(u32, u64)>, Vec<Position>) {
    let mut ids = Vec::new();
    let mut positions = Vec::new();
    loop {
        let batch = reader.read_batch(1000, usize::MAX).expect("read_batch");
        if batch.is_empty() {
            return (ids, positions);
        }
        for (pos, data) in batch {
            ids.push(check(&data).expect("an intact record"));
            positions.push(pos);
        }
    }
}

fn segment_file(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}.seg"))
}

#[test]
fn a_full_disk_stalls_the_writer_which_keeps_its_records_and_resumes_when_space_returns() {
    let Some(fs) = Tmpfs::mount("1m") else { return };
    let dir = fs.path().join("ring");
    let (mut writer, mut reader) = Ring::open(&dir, opts(64 * 1024, 8)).expect("open");
    for i in 0..50 {
        writer.append(&payload(1, i, 100)).expect("append");
    }
    writer.flush().expect("flush");
    let first = reader.read_batch(1, usize::MAX).expect("read");
    reader.ack(first[0].0).expect("ack");
    let filler = fs.path().join("filler");
    fill(&filler);

    // Offer batches until the disk refuses; remember exactly what the ring took.
    let mut taken: Vec<u64> = Vec::new();
    let mut next = 0u64;
    let mut left: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut refusals = 0;
    for _ in 0..50 {
        if left.is_empty() {
            left = (next..next + 100)
                .map(|i| (i, payload(0, i, 200)))
                .collect();
            next += 100;
        }
        let records: Vec<&[u8]> = left.iter().map(|(_, p)| p.as_slice()).collect();
        let offered = records.len();
        let result = writer.append_batch(&records);
        drop(records);
        match result {
            Ok(_) => {
                taken.extend(left.iter().map(|(i, _)| *i));
                left.clear();
            }
            Err(err) => {
                let accepted = err
                    .accepted()
                    .unwrap_or_else(|| panic!("a disk refusal is a stall: {err}"));
                taken.extend(left.iter().take(accepted).map(|(i, _)| *i));
                left.drain(..accepted);
                refusals += 1;
                assert!(writer.is_stalled() || accepted < offered);
            }
        }
    }
    assert!(refusals > 0, "the full disk never refused a write");
    assert!(writer.is_stalled());
    // Nothing taken is lost meanwhile, and nothing new is taken while stalled.
    let stalled = writer.append_batch(&[payload(9, 0, 10)]).unwrap_err();
    assert_eq!(stalled.accepted(), Some(0));
    // The reader goes on, and acknowledging works on the full disk.
    let (mut ids, positions) = drain(&mut reader);
    let last = positions
        .last()
        .expect("records written before the disk filled");
    reader.ack(*last).expect("ack on a full disk");

    // Space returns: the kept records are written, then the refused ones.
    fs::remove_file(&filler).expect("remove filler");
    let records: Vec<&[u8]> = left.iter().map(|(_, p)| p.as_slice()).collect();
    writer.append_batch(&records).expect("resumes by itself");
    taken.extend(left.iter().map(|(i, _)| *i));
    assert!(!writer.is_stalled());
    writer.flush().expect("flush");

    let (rest, positions) = drain(&mut reader);
    ids.extend(rest);
    let expected: Vec<(u32, u64)> = (1..50)
        .map(|i| (1, i))
        .chain(taken.iter().map(|&i| (0, i)))
        .collect();
    assert_eq!(ids, expected, "every record the ring took, once, in order");
    let seqs: Vec<u64> = positions.iter().map(Position::seq).collect();
    let first = seqs.first().copied().unwrap_or(1);
    assert_eq!(seqs, (first..first + seqs.len() as u64).collect::<Vec<_>>());
    let stats = reader.stats();
    assert_eq!((stats.records_lost, stats.records_dropped), (0, 0));
    drop((writer, reader));
}

#[test]
fn a_segment_that_cannot_be_deleted_never_fails_ack_or_append() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut writer, mut reader) = Ring::open(dir.path(), opts(1024, 4)).expect("open");
    let mut written = Vec::new();
    for i in 0..30 {
        written.push(writer.append(&payload(0, i, 100)).expect("append"));
    }
    writer.flush().expect("flush");
    let middle = written[10].segment();
    assert!(middle > 0 && middle < written[29].segment());
    let Some(guard) = Immutable::set(&segment_file(dir.path(), middle)) else {
        return;
    };

    let (ids, positions) = drain(&mut reader);
    assert_eq!(ids.len(), 30);
    reader
        .ack(*positions.last().expect("records"))
        .expect("an undeletable segment must not fail the acknowledgement");
    let warnings = reader.take_warnings();
    assert!(
        warnings
            .iter()
            .any(|w| matches!(w, RingWarning::UndeletableSegment { .. })),
        "{warnings:?}"
    );
    assert_eq!(reader.stats().leftover_segments, 1);
    assert!(segment_file(dir.path(), middle).exists());

    // Writing on past the capacity (which deletes segments) keeps working.
    for i in 30..100 {
        writer.append(&payload(0, i, 100)).expect("append");
    }
    writer.flush().expect("flush");
    let (ids, positions) = drain(&mut reader);
    assert_eq!(ids.last(), Some(&(0, 99)));

    // Once the file can be deleted again, the next deletion removes it.
    drop(guard);
    reader
        .ack(*positions.last().expect("records"))
        .expect("ack");
    assert_eq!(reader.stats().leftover_segments, 0);
    assert!(!segment_file(dir.path(), middle).exists());
}

/// Opens the ring again after the previous handles were dropped. The directory lock is an
/// `flock` on a file description: a process another test forks in that instant (chattr,
/// mount) holds a copy of it until its exec, so a reopen may briefly see `Locked`.
fn reopen(dir: &Path, options: RingOptions) -> (RingWriter, RingReader) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match Ring::open(dir, options.clone()) {
            Err(RingError::Locked(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            result => return result.expect("reopen"),
        }
    }
}

/// Writes `count` records of 100 bytes over segments of 1 KiB (8 records each) and
/// returns their positions.
fn populate(dir: &Path, count: u64) -> Vec<Position> {
    let (mut writer, _reader) = Ring::open(dir, opts(1024, 64)).expect("open");
    let positions = (0..count)
        .map(|i| writer.append(&payload(0, i, 100)).expect("append"))
        .collect();
    writer.flush().expect("flush");
    positions
}

#[test]
fn segments_emptied_or_deleted_while_stopped_are_counted_exactly_and_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let positions = populate(dir.path(), 60);
    let in_segment = |n: u64| positions.iter().filter(|p| p.segment() == n).count() as u64;
    fs::remove_file(segment_file(dir.path(), 2)).expect("delete segment 2");
    File::create(segment_file(dir.path(), 4)).expect("empty segment 4");
    let lost = in_segment(2) + in_segment(4);

    let (_writer, mut reader) = reopen(dir.path(), opts(1024, 64));
    let (ids, _) = drain(&mut reader);
    assert_eq!(ids.len() as u64, 60 - lost);
    let stats = reader.stats();
    assert_eq!(stats.records_lost, lost, "{stats:?}");
    let reported: u64 = reader
        .take_warnings()
        .iter()
        .map(|w| match w {
            RingWarning::RecordsLost { count, .. } => *count,
            _ => 0,
        })
        .sum();
    assert_eq!(reported, lost);
}

#[test]
fn a_segment_deleted_while_running_is_counted_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut writer, mut reader) = Ring::open(dir.path(), opts(1024, 64)).expect("open");
    let positions: Vec<Position> = (0..40)
        .map(|i| writer.append(&payload(0, i, 100)).expect("append"))
        .collect();
    writer.flush().expect("flush");
    let first = reader.read_batch(3, usize::MAX).expect("read");
    assert_eq!(first.len(), 3);
    fs::remove_file(segment_file(dir.path(), 2)).expect("delete segment 2");
    let lost = positions.iter().filter(|p| p.segment() == 2).count() as u64;
    let (ids, _) = drain(&mut reader);
    assert_eq!(ids.len() as u64, 37 - lost);
    assert_eq!(reader.stats().records_lost, lost);
}

#[test]
fn a_damaged_region_counts_the_records_it_held_not_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    populate(dir.path(), 8);
    let path = segment_file(dir.path(), 0);
    let mut bytes = fs::read(&path).expect("read");
    // Records are 120 bytes on disk: wipe the headers of records 2, 3 and 4.
    for b in &mut bytes[240..(240 + 3 * 120)] {
        *b = 0;
    }
    fs::write(&path, bytes).expect("write");
    let (_writer, mut reader) = reopen(dir.path(), opts(1024, 64));
    let (ids, _) = drain(&mut reader);
    assert_eq!(ids, vec![(0, 0), (0, 1), (0, 5), (0, 6), (0, 7)]);
    assert_eq!(reader.stats().records_lost, 3);
}

#[test]
fn a_stray_segment_with_a_huge_number_is_set_aside_and_never_wraps_the_numbering() {
    let dir = tempfile::tempdir().expect("tempdir");
    populate(dir.path(), 20);
    // A copy of a live segment under the largest name there is.
    let stray = dir.path().join(format!("{}.seg", u64::MAX));
    fs::copy(segment_file(dir.path(), 1), &stray).expect("copy");

    let (mut writer, mut reader) = reopen(dir.path(), opts(1024, 64));
    let warnings = writer.take_warnings();
    assert!(
        warnings.iter().any(|w| matches!(
            w,
            RingWarning::StraySegment {
                moved_to: Some(_),
                ..
            }
        )),
        "{warnings:?}"
    );
    assert!(!stray.exists());
    // Writing goes on over several segment rolls, after the live segments.
    for i in 20..60 {
        writer.append(&payload(0, i, 100)).expect("append");
    }
    writer.flush().expect("flush");
    let (ids, positions) = drain(&mut reader);
    assert_eq!(ids, (0..60).map(|i| (0, i)).collect::<Vec<_>>());
    assert!(positions
        .windows(2)
        .all(|w| w[0].segment() <= w[1].segment()));
    assert!(positions.iter().all(|p| p.segment() < 1000));
}

#[test]
fn a_damaged_ack_resumes_from_its_backup_copy_with_a_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    // One segment holds every record: only the acknowledgement says what was delivered.
    let opts = || opts(64 * 1024, 4);
    {
        let (mut writer, mut reader) = Ring::open(dir.path(), opts()).expect("open");
        for i in 0..40 {
            writer.append(&payload(0, i, 100)).expect("append");
        }
        writer.flush().expect("flush");
        let batch = reader.read_batch(10, usize::MAX).expect("read");
        reader.ack(batch[9].0).expect("ack 10"); // the first ack writes the backup
        let batch = reader.read_batch(20, usize::MAX).expect("read");
        reader.ack(batch[19].0).expect("ack 30");
    }
    fs::write(dir.path().join("ack"), b"not an ack at all").expect("damage the ack");

    let (_writer, mut reader) = reopen(dir.path(), opts());
    let warnings = reader.take_warnings();
    assert!(
        warnings.iter().any(|w| matches!(
            w,
            RingWarning::DamagedAck { recovered: Some(p), .. } if p.seq() == 9
        )),
        "{warnings:?}"
    );
    let (ids, _) = drain(&mut reader);
    assert_eq!(
        ids,
        (10..40).map(|i| (0, i)).collect::<Vec<_>>(),
        "resumes after the backup, not at the start of the ring"
    );
}

#[test]
fn records_read_before_the_capacity_deletes_them_are_not_counted_as_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut writer, mut reader) = Ring::open(dir.path(), opts(1024, 3)).expect("open");
    for i in 0..8 {
        writer.append(&payload(0, i, 100)).expect("append");
    }
    writer.flush().expect("flush");
    // The shipper holds these (read, in flight, not yet acknowledged)...
    let in_flight = reader.read_batch(8, usize::MAX).expect("read");
    assert_eq!(in_flight.len(), 8);
    // ...while the writer laps the ring and deletes their segment.
    for i in 8..40 {
        writer.append(&payload(0, i, 100)).expect("append");
    }
    writer.flush().expect("flush");
    // Segments hold 8 records and the ring at most 3 segments: writing segments 3 and 4
    // deleted segment 0 (records 0-7, read) and segment 1 (records 8-15, never read).
    let stats = reader.stats();
    assert_eq!(
        stats.records_dropped, 8,
        "only records nobody read are dropped: {stats:?}"
    );
    // They are delivered: acknowledging them works.
    reader
        .ack(in_flight[7].0)
        .expect("ack the delivered records");
    let (ids, _) = drain(&mut reader);
    assert_eq!(stats.records_dropped + ids.len() as u64, 32);
    assert_eq!(reader.stats().records_lost, 0);
}

#[test]
fn a_new_reader_resumes_after_the_acknowledgement() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut writer, mut reader) = Ring::open(dir.path(), opts(1024, 64)).expect("open");
    for i in 0..10 {
        writer.append(&payload(0, i, 100)).expect("append");
    }
    writer.flush().expect("flush");
    let batch = reader.read_batch(6, usize::MAX).expect("read");
    reader.ack(batch[3].0).expect("ack");
    let reopener = reader.reopener();
    assert!(matches!(reopener.reopen(), Err(RingError::ReaderBusy(_))));
    drop(reader);
    let mut reader = reopener.reopen().expect("reopen");
    let (ids, _) = drain(&mut reader);
    assert_eq!(ids, (4..10).map(|i| (0, i)).collect::<Vec<_>>());
}
