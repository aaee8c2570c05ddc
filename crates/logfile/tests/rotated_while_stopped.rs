//! A file rotated while the tailer is not running is found again at start, under a name
//! no pattern matches, and finished before its successor (issue 22, defect 1).

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{fast_options, line, lines_bytes, number, spec, Running};

const T: Duration = Duration::from_secs(20);

fn append(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

fn opts() -> common::Options {
    common::Options {
        start_at_end: false,
        ..fast_options()
    }
}

fn numbers(got: &[common::Got]) -> Vec<u64> {
    got.iter().map(|g| number(&g.bytes)).collect()
}

/// Runs the first life of the agent: lines 0..1000 of app.log shipped, then a clean stop.
fn first_life(dir: &Path, state: &Path) {
    let log = dir.join("app.log");
    append(&log, &lines_bytes(0, 1000));
    let running = Running::start(vec![spec(&dir.join("*.log"), "k")], state, opts());
    running.wait_lines(1000, T);
    let got = running.finish();
    assert_eq!(numbers(&got), (0..1000).collect::<Vec<_>>());
}

/// The reproduction: append 500 lines while stopped, `mv app.log app.log.1`,
/// 500 lines in a new app.log, start: 1000..2000 arrive once, the old file's first.
#[test]
fn file_renamed_out_of_the_glob_while_stopped_is_finished_first() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    first_life(dir.path(), state.path());

    append(&log, &lines_bytes(1000, 1500));
    fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    append(&log, &lines_bytes(1500, 2000));

    let running = Running::start(
        vec![spec(&dir.path().join("*.log"), "k")],
        state.path(),
        opts(),
    );
    running.wait_lines(1000, T);
    std::thread::sleep(Duration::from_millis(800));
    let stats = running.stats.clone();
    let got = running.finish();
    assert_eq!(
        numbers(&got),
        (1000..2000).collect::<Vec<_>>(),
        "every line once, the rotated file's tail before its successor"
    );
    assert!(got[..500]
        .iter()
        .all(|g| g.path == dir.path().join("app.log.1")));
    assert!(got[500..]
        .iter()
        .all(|g| g.path == log && g.intake_key == "k"));
    assert_eq!(got[0].bytes, line(1000));
    assert_eq!(stats.found_again.load(Ordering::Relaxed), 1);
    assert_eq!(stats.lost_files.load(Ordering::Relaxed), 0);
}

/// Rotation by copy (a new inode, the same content) while stopped: recognised by its
/// head fingerprint.
#[test]
fn file_copied_away_while_stopped_is_found_by_its_head() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    first_life(dir.path(), state.path());

    append(&log, &lines_bytes(1000, 1500));
    fs::copy(&log, dir.path().join("app.log-20260101")).unwrap();
    fs::remove_file(&log).unwrap();
    append(&log, &lines_bytes(1500, 2000));

    let running = Running::start(
        vec![spec(&dir.path().join("*.log"), "k")],
        state.path(),
        opts(),
    );
    running.wait_lines(1000, T);
    std::thread::sleep(Duration::from_millis(800));
    let stats = running.stats.clone();
    let got = running.finish();
    assert_eq!(numbers(&got), (1000..2000).collect::<Vec<_>>());
    assert_eq!(stats.found_again.load(Ordering::Relaxed), 1);
}

/// Two copies with the same head: the tailer does not guess, it reads the new file and
/// counts the old one as not found.
#[test]
fn ambiguous_copies_are_not_guessed() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    first_life(dir.path(), state.path());

    append(&log, &lines_bytes(1000, 1100));
    fs::copy(&log, dir.path().join("app.log.1")).unwrap();
    fs::copy(&log, dir.path().join("app.log.bak")).unwrap();
    fs::remove_file(&log).unwrap();
    append(&log, &lines_bytes(1500, 1600));

    let running = Running::start(
        vec![spec(&dir.path().join("*.log"), "k")],
        state.path(),
        opts(),
    );
    running.wait_lines(100, T);
    std::thread::sleep(Duration::from_millis(500));
    let stats = running.stats.clone();
    let got = running.finish();
    assert_eq!(numbers(&got), (1500..1600).collect::<Vec<_>>());
    assert_eq!(stats.lost_files.load(Ordering::Relaxed), 1);
}

/// Rotated and deleted while stopped: nothing to finish; counted, and the new file is read.
#[test]
fn file_deleted_while_stopped_is_counted_and_its_successor_read() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    first_life(dir.path(), state.path());

    // Replaced by a new file (a new inode, so this is not the reused-inode case).
    let new = dir.path().join("app.log.tmp");
    append(&new, &lines_bytes(1500, 1600));
    fs::rename(&new, &log).unwrap();
    let running = Running::start(
        vec![spec(&dir.path().join("*.log"), "k")],
        state.path(),
        opts(),
    );
    running.wait_lines(100, T);
    std::thread::sleep(Duration::from_millis(300));
    let stats = running.stats.clone();
    let got = running.finish();
    assert_eq!(numbers(&got), (1500..1600).collect::<Vec<_>>());
    assert_eq!(stats.lost_files.load(Ordering::Relaxed), 1);
    assert_eq!(stats.found_again.load(Ordering::Relaxed), 0);
}

/// The rotated file, once finished, is not reopened by the next start.
#[test]
fn a_finished_rotated_file_is_not_read_again_by_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    first_life(dir.path(), state.path());
    append(&log, &lines_bytes(1000, 1500));
    fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    append(&log, &lines_bytes(1500, 2000));
    let running = Running::start(
        vec![spec(&dir.path().join("*.log"), "k")],
        state.path(),
        opts(),
    );
    running.wait_lines(1000, T);
    // Longer than rotated_grace: the rotated file is closed and forgotten.
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(running.finish().len(), 1000);

    append(&log, &lines_bytes(2000, 2010));
    let running = Running::start(
        vec![spec(&dir.path().join("*.log"), "k")],
        state.path(),
        opts(),
    );
    running.wait_lines(10, T);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(numbers(&running.finish()), (2000..2010).collect::<Vec<_>>());
}

/// copytruncate while stopped: the inode stays at the path with new content; the copy
/// holds the checkpointed file and is finished from the checkpoint first.
#[test]
fn copytruncate_while_stopped_finishes_the_copy_then_reads_the_new_content() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    first_life(dir.path(), state.path());

    append(&log, &lines_bytes(1000, 1500));
    fs::copy(&log, dir.path().join("app.log.1")).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, &lines_bytes(1500, 2000));

    let running = Running::start(
        vec![spec(&dir.path().join("*.log"), "k")],
        state.path(),
        opts(),
    );
    running.wait_lines(1000, T);
    std::thread::sleep(Duration::from_millis(800));
    let stats = running.stats.clone();
    let got = running.finish();
    assert_eq!(numbers(&got), (1000..2000).collect::<Vec<_>>());
    assert!(got[..500]
        .iter()
        .all(|g| g.path == dir.path().join("app.log.1")));
    assert_eq!(stats.found_again.load(Ordering::Relaxed), 1);
}
