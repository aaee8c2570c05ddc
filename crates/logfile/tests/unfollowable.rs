//! Paths a pattern matches that cannot be followed are reported, once (issue 22, defect 7).
#![cfg(unix)]

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use agent_logfile::{unfollowable, SkipReason};
use common::{fast_options, spec, Running};

#[test]
fn a_fifo_a_directory_and_a_symlink_loop_are_reported_once_and_files_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("app.log"), b"").unwrap();
    let status = Command::new("mkfifo")
        .arg(d.join("pipe.log"))
        .status()
        .unwrap();
    assert!(status.success(), "mkfifo");
    fs::create_dir(d.join("archive.log")).unwrap();
    symlink(d.join("loop.log"), d.join("loop.log")).unwrap();
    // A dangling link is a file not there (yet): not reported.
    symlink(d.join("nowhere"), d.join("dangling.log")).unwrap();

    let pattern = d.join("*.log");
    let mut skipped = unfollowable(pattern.to_str().unwrap());
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    let got: Vec<(String, bool)> = skipped
        .iter()
        .map(|s| {
            let name = s.path.file_name().unwrap().to_string_lossy().into_owned();
            let ok = match name.as_str() {
                "archive.log" => s.reason == SkipReason::Directory,
                "pipe.log" => s.reason == SkipReason::Fifo,
                "loop.log" => {
                    matches!(&s.reason, SkipReason::Unresolvable(e) if e.contains("symbolic links"))
                }
                _ => false,
            };
            (name, ok)
        })
        .collect();
    assert_eq!(
        got,
        [
            ("archive.log".to_owned(), true),
            ("loop.log".to_owned(), true),
            ("pipe.log".to_owned(), true)
        ],
        "{skipped:?}"
    );
    assert!(skipped[2].to_string().contains("FIFO"), "{}", skipped[2]);

    let running = Running::start(vec![spec(&pattern, "k")], state.path(), fast_options());
    fs::write(d.join("app.log"), b"one\n").unwrap();
    running.wait_lines(1, Duration::from_secs(20));
    // Several scans (poll interval 100 ms): still one report per path.
    std::thread::sleep(Duration::from_millis(600));
    let stats = running.stats.clone();
    let got = running.finish();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].bytes, b"one");
    assert_eq!(stats.skipped_paths.load(Ordering::Relaxed), 3);
}
