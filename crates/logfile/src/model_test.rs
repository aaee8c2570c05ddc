//! Model test: random appends, rotations, truncations and restarts against a real tailer
//! on real files, stepped synchronously; what comes out must equal what the model says.

use std::convert::Infallible;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use crate::tailer::Run;
use crate::{LineSink, LogLine, Options, WatchSpec};

const MAX: usize = 8;

#[derive(Debug, Clone)]
enum Op {
    /// Bytes drawn from `a`, `\r`, `\xff` and `\n`.
    Append(Vec<u8>),
    /// Let the tailer catch up.
    Step,
    /// logrotate `create`: rename away (to a name the pattern misses), new empty file;
    /// what was appended and not read yet must still come out.
    Rename,
    /// logrotate `copytruncate`, after the tailer caught up.
    CopyTruncate,
    /// Clean stop and start again from the checkpoint.
    Restart,
    /// Clean stop, logrotate `create` while the tailer is not running (the file goes to
    /// a name the pattern misses), start again: the old file's unread lines come first.
    RenameWhileStopped,
    /// The process dies between two deliveries (SIGKILL): no checkpoint is written, the
    /// journal stays as it is. The invariant checked: the checkpoint plus its journal say
    /// exactly what the sink holds, so after the restart nothing comes twice and nothing
    /// is missing.
    Crash,
    /// Like `RenameWhileStopped`, but the stop is a crash.
    RenameAfterCrash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec(prop::sample::select(vec![b'a', b'\r', 0xff, b'\n', b'\n']), 0..40)
            .prop_map(Op::Append),
        3 => Just(Op::Step),
        1 => Just(Op::Rename),
        1 => Just(Op::CopyTruncate),
        1 => Just(Op::Restart),
        1 => Just(Op::RenameWhileStopped),
        2 => Just(Op::Crash),
        1 => Just(Op::RenameAfterCrash),
    ]
}

#[derive(Default)]
struct Collect(Vec<(Vec<u8>, bool)>);

impl LineSink for Collect {
    type Error = Infallible;
    fn deliver(&mut self, lines: &[LogLine<'_>]) -> Result<(), Infallible> {
        self.0
            .extend(lines.iter().map(|l| (l.bytes.to_vec(), l.complete)));
        Ok(())
    }
}

/// Pieces a line of the model turns into; `terminated` is false for a flushed tail.
fn pieces(mut line: &[u8], terminated: bool, out: &mut Vec<(Vec<u8>, bool)>) {
    while line.len() > MAX {
        out.push((line[..MAX].to_vec(), false));
        line = &line[MAX..];
    }
    if terminated {
        out.push((line.to_vec(), true));
    } else if !line.is_empty() {
        out.push((line.to_vec(), false));
    }
}

/// Everything a finished (rotated away or truncated) logical file yields.
fn finished(content: &[u8], out: &mut Vec<(Vec<u8>, bool)>) {
    let mut parts: Vec<&[u8]> = content.split(|&b| b == b'\n').collect();
    let tail = parts.pop().unwrap_or_default();
    for p in parts {
        pieces(p, true, out);
    }
    pieces(tail, false, out);
}

/// What the still-growing file yields: its complete lines, and pieces of an over-long tail.
fn current(content: &[u8], out: &mut Vec<(Vec<u8>, bool)>) {
    let mut parts: Vec<&[u8]> = content.split(|&b| b == b'\n').collect();
    let mut tail = parts.pop().unwrap_or_default();
    for p in parts {
        pieces(p, true, out);
    }
    while tail.len() > MAX {
        out.push((tail[..MAX].to_vec(), false));
        tail = &tail[MAX..];
    }
}

fn step(run: &mut Run<'_>, sink: &mut Collect) {
    // Each service/rescan pair can move one file one state further; a few rounds settle.
    for _ in 0..4 {
        while run.service_all(sink).unwrap() {}
        run.rescan(false);
    }
}

fn append(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn delivered_lines_equal_the_model(
        ops in prop::collection::vec(op(), 1..40),
        // Rare durable checkpoints: positions then live in the journal across crashes.
        rare_checkpoints in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let log: PathBuf = dir.path().join("a.log");
        append(&log, b"");
        let specs = vec![WatchSpec {
            pattern: dir.path().join("*.log").display().to_string(),
            intake_key: "k".into(),
        }];
        let options = Options {
            start_at_end: false,
            max_line_len: MAX,
            max_batch_lines: 2,
            checkpoint_max_lines: if rare_checkpoints { 1_000 } else { 3 },
            checkpoint_interval: std::time::Duration::from_secs(3600),
            rotated_grace: std::time::Duration::ZERO,
            ..Options::default()
        };
        let stats = crate::Stats::default();
        let mut sink = Collect::default();
        let mut expected = Vec::new();
        let mut content: Vec<u8> = Vec::new();
        let mut rotations = 0;
        let mut run = Run::start(&specs, &options, &stats, state.path()).unwrap();
        for op in ops {
            match op {
                Op::Append(bytes) => {
                    append(&log, &bytes);
                    content.extend_from_slice(&bytes);
                }
                Op::Step => step(&mut run, &mut sink),
                Op::Rename => {
                    // The tailer must have seen the file once (a scan, not a read):
                    // a file created and renamed away between two scans is never seen.
                    run.rescan(false);
                    rotations += 1;
                    fs::rename(&log, dir.path().join(format!("a.log.{rotations}"))).unwrap();
                    append(&log, b"");
                    finished(&content, &mut expected);
                    content.clear();
                }
                Op::CopyTruncate => {
                    step(&mut run, &mut sink);
                    fs::copy(&log, dir.path().join("copy")).unwrap();
                    OpenOptions::new().write(true).open(&log).unwrap().set_len(0).unwrap();
                    // The tailer looks before the writer continues (see the crate docs).
                    step(&mut run, &mut sink);
                    if content.is_empty() {
                        continue;
                    }
                    finished(&content, &mut expected);
                    content.clear();
                }
                Op::Restart => {
                    run.save().unwrap();
                    drop(run);
                    run = Run::start(&specs, &options, &stats, state.path()).unwrap();
                }
                Op::Crash => {
                    drop(run);
                    run = Run::start(&specs, &options, &stats, state.path()).unwrap();
                }
                // Stopped cleanly (checkpoint saved) or killed (journal only), then rotated.
                Op::RenameWhileStopped | Op::RenameAfterCrash => {
                    run.rescan(false);
                    if matches!(op, Op::RenameWhileStopped) {
                        run.save().unwrap();
                    }
                    drop(run);
                    rotations += 1;
                    fs::rename(&log, dir.path().join(format!("a.log.{rotations}"))).unwrap();
                    append(&log, b"");
                    finished(&content, &mut expected);
                    content.clear();
                    run = Run::start(&specs, &options, &stats, state.path()).unwrap();
                }
            }
        }
        step(&mut run, &mut sink);
        current(&content, &mut expected);
        prop_assert_eq!(sink.0, expected);
    }
}
