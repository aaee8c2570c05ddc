//! Shared helpers: a collecting sink, a tailer on a thread, the line generator.
#![allow(dead_code)]

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use agent_logfile::Options;
use agent_logfile::{Error, LineSink, LogLine, Stats, StopHandle, Tailer, WatchSpec};

/// One delivered line, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Got {
    pub intake_key: String,
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    pub complete: bool,
}

/// Keeps everything it is given in memory.
#[derive(Debug, Clone, Default)]
pub struct CollectSink(pub Arc<Mutex<Vec<Got>>>);

impl LineSink for CollectSink {
    type Error = Infallible;

    fn deliver(&mut self, lines: &[LogLine<'_>]) -> Result<(), Infallible> {
        let mut got = self.0.lock().unwrap();
        got.extend(lines.iter().map(|l| Got {
            intake_key: l.intake_key.to_owned(),
            path: l.path.to_owned(),
            bytes: l.bytes.to_owned(),
            complete: l.complete,
        }));
        Ok(())
    }
}

/// Options that react quickly, for tests.
pub fn fast_options() -> Options {
    Options {
        poll_interval: Duration::from_millis(100),
        checkpoint_interval: Duration::from_millis(100),
        rotated_grace: Duration::from_millis(400),
        ..Options::default()
    }
}

/// A tailer running on its own thread; stopped and joined on drop.
pub struct Running {
    pub lines: Arc<Mutex<Vec<Got>>>,
    pub stats: Arc<Stats>,
    stop: StopHandle,
    thread: Option<JoinHandle<Result<(), Error>>>,
}

impl Running {
    pub fn start(specs: Vec<WatchSpec>, state: &Path, options: Options) -> Self {
        let mut tailer = Tailer::new(specs, state, options).expect("valid tailer config");
        let sink = CollectSink::default();
        let lines = Arc::clone(&sink.0);
        let stop = tailer.stop_handle();
        let stats = tailer.stats();
        let thread = std::thread::spawn(move || {
            let mut sink = sink;
            tailer.run(&mut sink)
        });
        // The initial scan is done once the first checkpoint exists.
        wait_until(Duration::from_secs(10), || {
            state.join("logfile-checkpoints").exists()
        });
        Self {
            lines,
            stats,
            stop,
            thread: Some(thread),
        }
    }

    pub fn count(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    pub fn bytes(&self) -> Vec<Vec<u8>> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|g| g.bytes.clone())
            .collect()
    }

    /// Waits until at least `n` lines arrived (panics after `timeout`).
    pub fn wait_lines(&self, n: usize, timeout: Duration) {
        wait_until(timeout, || self.count() >= n);
    }

    /// Stops the tailer, joins it and returns what it delivered.
    pub fn finish(mut self) -> Vec<Got> {
        self.stop.stop();
        let result = self.thread.take().unwrap().join().unwrap();
        result.expect("tailer run failed");
        std::mem::take(&mut *self.lines.lock().unwrap())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub fn spec(pattern: &Path, intake_key: &str) -> WatchSpec {
    WatchSpec {
        pattern: pattern.to_str().unwrap().to_owned(),
        intake_key: intake_key.to_owned(),
    }
}

/// Polls `cond` every 10 ms; panics with a clear message after `timeout`.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "condition not met within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Line `i` of the generated logs: a sortable number, then a payload that sometimes
/// ends in `\r` and sometimes holds invalid UTF-8, so byte-exactness is tested.
pub fn line(i: u64) -> Vec<u8> {
    let mut l = format!(
        "{i:09} GET /index.html?q={} 200",
        i.wrapping_mul(2654435761) % 9973
    )
    .into_bytes();
    if i % 7 == 0 {
        l.extend_from_slice(b" \xff\xfe\x80 bad utf8 \xc3");
    }
    if i % 5 == 0 {
        l.push(b'\r');
    }
    l
}

/// The number a generated line starts with.
pub fn number(line: &[u8]) -> u64 {
    std::str::from_utf8(&line[..9]).unwrap().parse().unwrap()
}

/// Lines `from..to`, each with its `\n`.
pub fn lines_bytes(from: u64, to: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for i in from..to {
        out.extend_from_slice(&line(i));
        out.push(b'\n');
    }
    out
}
