//! Behaviour of the tailer on real files in temp dirs, tailer on a thread.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{fast_options, line, lines_bytes, spec, Running};
// Used only by the tests that run on Unix alone.
#[cfg(unix)]
use common::{number, wait_until};

const T: Duration = Duration::from_secs(20);

fn append(path: &std::path::Path, bytes: &[u8]) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn letter_class_glob_matches_access_log_not_dated_one() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let logs = dir.path();
    append(&logs.join("access.log"), b"");
    append(&logs.join("access.2023-02-14.log"), b"");
    let running = Running::start(
        vec![spec(&logs.join("*[a-z].log"), "nginx-key")],
        state.path(),
        fast_options(),
    );
    append(&logs.join("access.2023-02-14.log"), b"dated\n");
    append(&logs.join("access.log"), b"current\n");
    running.wait_lines(1, T);
    std::thread::sleep(Duration::from_millis(500));
    let got = running.finish();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].bytes, b"current");
    assert_eq!(got[0].intake_key, "nginx-key");
    assert_eq!(got[0].path, logs.join("access.log"));
    assert!(got[0].complete);
}

#[test]
fn first_start_skips_existing_content_but_new_files_are_read_from_beginning() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.log");
    append(&old, b"history 1\nhistory 2\n");
    let running = Running::start(
        vec![spec(&dir.path().join("*.log"), "k")],
        state.path(),
        fast_options(),
    );
    append(&old, b"after start\n");
    // Created after start, with content written before the tailer notices it.
    let new = dir.path().join("new.log");
    append(&new, b"new 1\nnew 2\n");
    running.wait_lines(3, T);
    std::thread::sleep(Duration::from_millis(300));
    let mut got = running.bytes();
    got.sort();
    assert_eq!(
        got,
        vec![
            b"after start".to_vec(),
            b"new 1".to_vec(),
            b"new 2".to_vec()
        ]
    );
}

#[test]
fn restart_resumes_where_the_checkpoint_left_off() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let pattern = dir.path().join("*.log");
    let a = dir.path().join("a.log");
    let opts = || common::Options {
        start_at_end: false,
        ..fast_options()
    };
    append(&a, &lines_bytes(0, 100));
    let running = Running::start(vec![spec(&pattern, "k")], state.path(), opts());
    running.wait_lines(100, T);
    let first = running.finish();
    assert_eq!(first.len(), 100);

    // While stopped: more lines, a partial line, and a new file.
    append(&a, &lines_bytes(100, 150));
    append(&a, b"partial");
    append(&dir.path().join("b.log"), b"b only\n");
    let running = Running::start(vec![spec(&pattern, "k")], state.path(), opts());
    running.wait_lines(51, T);
    append(&a, b" completed\n");
    running.wait_lines(52, T);
    std::thread::sleep(Duration::from_millis(300));
    let second = running.finish();
    let mut from_a: Vec<Vec<u8>> = second
        .iter()
        .filter(|g| g.path == a)
        .map(|g| g.bytes.clone())
        .collect();
    let last = from_a.pop().unwrap();
    assert_eq!(last, b"partial completed");
    let expected: Vec<Vec<u8>> = (100..150).map(line).collect();
    assert_eq!(
        from_a, expected,
        "no duplicates and no loss across a clean restart"
    );
    assert_eq!(second.len(), 52);
}

#[test]
fn rewritten_file_on_same_inode_is_not_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let pattern = dir.path().join("*.log");
    let a = dir.path().join("a.log");
    append(&a, b"original line one\noriginal line two\n");
    let opts = || common::Options {
        start_at_end: false,
        ..fast_options()
    };
    let running = Running::start(vec![spec(&pattern, "k")], state.path(), opts());
    running.wait_lines(2, T);
    running.finish();
    // Same inode, different head, longer than the old checkpoint offset.
    fs::write(
        &a,
        b"replacement content that is longer than before\nsecond\n",
    )
    .unwrap();
    let running = Running::start(vec![spec(&pattern, "k")], state.path(), opts());
    running.wait_lines(2, T);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        running.bytes(),
        vec![
            b"replacement content that is longer than before".to_vec(),
            b"second".to_vec()
        ]
    );
}

#[test]
fn partial_line_waits_and_long_lines_are_split_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    append(&a, b"");
    let running = Running::start(
        vec![spec(&dir.path().join("a.log"), "k")],
        state.path(),
        common::Options {
            max_line_len: 10,
            ..fast_options()
        },
    );
    append(&a, b"abc");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(running.count(), 0, "an unfinished line must wait");
    append(&a, b"def\r\n0123456789abcdefghijKLMNO\n0123456789\n");
    running.wait_lines(5, T);
    std::thread::sleep(Duration::from_millis(200));
    let stats = running.stats.clone();
    let got = running.finish();
    let pieces: Vec<(&[u8], bool)> = got
        .iter()
        .map(|g| (g.bytes.as_slice(), g.complete))
        .collect();
    assert_eq!(
        pieces,
        vec![
            (&b"abcdef\r"[..], true),
            (&b"0123456789"[..], false),
            (&b"abcdefghij"[..], false),
            (&b"KLMNO"[..], true),
            (&b"0123456789"[..], true),
        ]
    );
    assert_eq!(stats.split_lines.load(Ordering::Relaxed), 2);
}

/// logrotate `create`: rename, create a new file, the writer keeps writing to the old
/// descriptor for a moment (until it reopens), then to the new file.
// Unix only: the tailer tells the renamed file from the new one by inode; on Windows a
// file's identity is its path (std has no stable file index), so a rename reads as delete +
// create (see docs/testing-windows.md).
#[cfg(unix)]
#[test]
fn rename_and_create_rotation_mid_stream_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, b"");
    let running = Running::start(
        vec![spec(&dir.path().join("*.log"), "k")],
        state.path(),
        fast_options(),
    );
    const N: u64 = 20_000;
    let mut old = OpenOptions::new().append(true).open(&log).unwrap();
    for i in 0..N / 2 {
        old.write_all(&lines_bytes(i, i + 1)).unwrap();
    }
    fs::rename(&log, dir.path().join("access.log.1")).unwrap();
    append(&log, b"");
    // Late writes through the old descriptor, including a line never terminated.
    old.write_all(&lines_bytes(N / 2, N / 2 + 100)).unwrap();
    old.write_all(b"unterminated tail").unwrap();
    drop(old);
    let mut new = OpenOptions::new().append(true).open(&log).unwrap();
    for i in N / 2 + 100..N {
        new.write_all(&lines_bytes(i, i + 1)).unwrap();
    }
    running.wait_lines(N as usize + 1, T);
    wait_until(T, || running.stats.files_open.load(Ordering::Relaxed) == 1);
    std::thread::sleep(Duration::from_millis(300));
    let got = running.finish();
    assert_eq!(got.len(), N as usize + 1);
    // The old file keeps the path it was found under; tell the files apart by content.
    let from_old =
        |g: &&common::Got| g.bytes == b"unterminated tail" || number(&g.bytes) < N / 2 + 100;
    let (old_lines, new_lines): (Vec<_>, Vec<_>) = got.iter().partition(from_old);
    let old_bytes: Vec<Vec<u8>> = old_lines.iter().map(|g| g.bytes.clone()).collect();
    let mut expect_old: Vec<Vec<u8>> = (0..N / 2 + 100).map(line).collect();
    expect_old.push(b"unterminated tail".to_vec());
    assert!(
        old_bytes == expect_old,
        "old file must be read to its end, in order"
    );
    assert!(!old_lines.last().unwrap().complete);
    assert!(old_lines.iter().all(|g| g.path == log));
    let new_bytes: Vec<Vec<u8>> = new_lines.iter().map(|g| g.bytes.clone()).collect();
    let expect_new: Vec<Vec<u8>> = (N / 2 + 100..N).map(line).collect();
    assert!(
        new_bytes == expect_new,
        "new file must be read from its beginning, in order"
    );
}

/// logrotate `copytruncate`: copy the file, truncate it in place; the writer (O_APPEND)
/// continues at offset 0. The tailer has caught up before the truncation, as it has to
/// for copytruncate to be lossless at all.
#[test]
fn copytruncate_mid_stream_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, b"");
    let running = Running::start(vec![spec(&log, "k")], state.path(), fast_options());
    const N: u64 = 20_000;
    let mut w = OpenOptions::new().append(true).open(&log).unwrap();
    for round in 0..3u64 {
        let (from, to) = (round * N / 3, (round + 1) * N / 3);
        for i in from..to {
            w.write_all(&lines_bytes(i, i + 1)).unwrap();
        }
        running.wait_lines(to as usize, T);
        fs::copy(&log, dir.path().join(format!("app.log.{round}"))).unwrap();
        w.set_len(0).unwrap();
    }
    // The file now restarts with short content: size shrinks below the old offset.
    w.write_all(&lines_bytes(N, N + 3)).unwrap();
    running.wait_lines(N as usize + 3, T);
    std::thread::sleep(Duration::from_millis(300));
    let stats = running.stats.clone();
    let got = running.bytes();
    drop(running);
    let expected: Vec<Vec<u8>> = (0..N + 3).map(line).collect();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "lines differ from what was written");
    assert!(stats.truncations.load(Ordering::Relaxed) >= 3);
}

// Unix only: a file deleted while the tailer holds it open must vanish from its directory;
// on Windows (and under Wine) it stays there, delete-pending, until the last handle closes
// (see docs/testing-windows.md).
#[cfg(unix)]
#[test]
fn deleted_file_is_drained_flushed_and_released() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let log = dir.path().join("gone.log");
    append(&log, b"");
    let running = Running::start(
        vec![spec(&dir.path().join("*.log"), "k")],
        state.path(),
        fast_options(),
    );
    wait_until(T, || running.stats.files_open.load(Ordering::Relaxed) == 1);
    append(&log, b"one\ntwo\nthree without end");
    fs::remove_file(&log).unwrap();
    wait_until(T, || running.stats.files_open.load(Ordering::Relaxed) == 0);
    let got = running.finish();
    let pieces: Vec<(&[u8], bool)> = got
        .iter()
        .map(|g| (g.bytes.as_slice(), g.complete))
        .collect();
    assert_eq!(
        pieces,
        vec![
            (&b"one"[..], true),
            (&b"two"[..], true),
            (&b"three without end"[..], false)
        ]
    );
}

#[test]
fn recursive_glob_is_refused_with_a_typed_error() {
    let err = agent_logfile::Tailer::new(
        vec![agent_logfile::WatchSpec {
            pattern: "/var/log/**/*.log".into(),
            intake_key: "k".into(),
        }],
        "/nonexistent",
        common::Options::default(),
    )
    .unwrap_err();
    assert!(matches!(err, agent_logfile::Error::RecursiveGlob { .. }));
}

/// A checkpoint due in the middle of a read leaves complete lines in the buffer; they
/// must go out even if the file never grows again.
#[test]
fn lines_left_over_by_a_checkpoint_go_out_without_further_writes() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    append(&log, b"");
    let running = Running::start(
        vec![spec(&log, "k")],
        state.path(),
        common::Options {
            checkpoint_max_lines: 3,
            max_batch_lines: 2,
            ..fast_options()
        },
    );
    append(&log, &lines_bytes(0, 101));
    running.wait_lines(101, T);
    let checkpoints = running.stats.checkpoints.load(Ordering::Relaxed);
    let got = running.finish();
    assert!(got.iter().map(|g| g.bytes.clone()).eq((0..101).map(line)));
    assert!(checkpoints >= 101 / 4, "a checkpoint every 3-4 lines");
}

// Unix only: a file deleted while the tailer holds it open must vanish from its directory;
// on Windows (and under Wine) it stays there, delete-pending, until the last handle closes
// (see docs/testing-windows.md).
#[cfg(unix)]
#[test]
fn files_beyond_max_open_wait_for_a_free_slot() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let running = Running::start(
        vec![spec(&dir.path().join("*.log"), "k")],
        state.path(),
        common::Options {
            max_open_files: 1,
            ..fast_options()
        },
    );
    let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    append(&a, b"a1\n");
    running.wait_lines(1, T);
    append(&b, b"b1\n");
    wait_until(T, || {
        running.stats.files_waiting.load(Ordering::Relaxed) == 1
    });
    assert_eq!(running.stats.files_open.load(Ordering::Relaxed), 1);
    assert_eq!(
        running.count(),
        1,
        "b.log must wait while a.log holds the only slot"
    );
    fs::remove_file(&a).unwrap();
    running.wait_lines(2, T);
    assert_eq!(running.bytes(), vec![b"a1".to_vec(), b"b1".to_vec()]);
    assert_eq!(running.stats.files_waiting.load(Ordering::Relaxed), 0);
}
