//! Acceptance tests with other processes: a writer process feeding a tailer, and a tailer
//! process killed with SIGKILL and restarted while a writer process keeps appending.
//!
//! Child processes are this test binary re-run with `child_process_entry` selected and a
//! role in the environment, so no extra binary has to be built or installed.

mod common;

use std::convert::Infallible;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use agent_logfile::{LineSink, LogLine, Options, Tailer, WatchSpec};
use common::{line, lines_bytes, number, wait_until};

const ROLE: &str = "AGENT_LOGFILE_TEST_ROLE";

/// Not a test of its own: the entry point of child processes spawned by the tests below.
/// Without the role variable (a normal test run) it returns at once.
#[test]
fn child_process_entry() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} not set"));
    match role.as_str() {
        "writer" => write_lines(
            Path::new(&var("LF_PATH")),
            var("LF_FROM").parse().unwrap(),
            var("LF_TO").parse().unwrap(),
            var("LF_CHUNK").parse().unwrap(),
            Duration::from_micros(var("LF_PAUSE_US").parse().unwrap()),
        )
        .unwrap(),
        "tailer" => tail_to_file(
            &var("LF_PATTERN"),
            Path::new(&var("LF_STATE")),
            Path::new(&var("LF_OUT")),
        ),
        other => panic!("unknown child role {other}"),
    }
}

fn spawn_role(role: &str, env: &[(&str, String)]) -> Child {
    let exe = std::env::current_exe().expect("test binary path");
    Command::new(exe)
        .args([
            "--exact",
            "child_process_entry",
            "--test-threads=1",
            "--quiet",
        ])
        .env(ROLE, role)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .spawn()
        .expect("spawning child process")
}

/// Appends generated lines `from..to`, `chunk` lines per write, pausing between writes.
fn write_lines(path: &Path, from: u64, to: u64, chunk: u64, pause: Duration) -> io::Result<()> {
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    let mut i = from;
    while i < to {
        let end = (i + chunk).min(to);
        file.write_all(&lines_bytes(i, end))?;
        i = end;
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
    Ok(())
}

fn spawn_writer(path: &Path, from: u64, to: u64, chunk: u64, pause_us: u64) -> Child {
    spawn_role(
        "writer",
        &[
            ("LF_PATH", path.display().to_string()),
            ("LF_FROM", from.to_string()),
            ("LF_TO", to.to_string()),
            ("LF_CHUNK", chunk.to_string()),
            ("LF_PAUSE_US", pause_us.to_string()),
        ],
    )
}

/// Options of the killed tailer: the duplicate bound comes from the line count alone.
fn kill_test_options() -> Options {
    Options {
        poll_interval: Duration::from_millis(100),
        checkpoint_max_lines: 2000,
        max_batch_lines: 256,
        checkpoint_interval: Duration::from_secs(3600),
        ..Options::default()
    }
}

/// Appends each line plus `\n` to a file and fsyncs before acknowledging the batch.
struct FileSink(File);

impl LineSink for FileSink {
    type Error = io::Error;

    fn deliver(&mut self, lines: &[LogLine<'_>]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(lines.len() * 64);
        for l in lines {
            buf.extend_from_slice(l.bytes);
            buf.push(b'\n');
        }
        self.0.write_all(&buf)?;
        self.0.sync_data()
    }
}

fn tail_to_file(pattern: &str, state: &Path, out: &Path) {
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .unwrap();
    let spec = WatchSpec {
        pattern: pattern.to_owned(),
        intake_key: "k".to_owned(),
    };
    let mut tailer = Tailer::new(vec![spec], state, kill_test_options()).unwrap();
    tailer.run(&mut FileSink(out)).unwrap();
}

/// Kills the child on drop, so a failing test leaves no process behind.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Collects all lines into one buffer, `\n`-terminated, as cheaply as possible.
#[derive(Clone, Default)]
struct ByteSink {
    bytes: Arc<Mutex<Vec<u8>>>,
    lines: Arc<AtomicU64>,
    incomplete: Arc<AtomicU64>,
}

impl LineSink for ByteSink {
    type Error = Infallible;

    fn deliver(&mut self, lines: &[LogLine<'_>]) -> Result<(), Infallible> {
        let mut bytes = self.bytes.lock().unwrap();
        for l in lines {
            bytes.extend_from_slice(l.bytes);
            bytes.push(b'\n');
        }
        let incomplete = lines.iter().filter(|l| !l.complete).count() as u64;
        self.incomplete.fetch_add(incomplete, Ordering::Relaxed);
        self.lines.fetch_add(lines.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

#[test]
fn one_million_lines_from_a_writer_process_arrive_exactly_once_in_order() {
    const N: u64 = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let spec = WatchSpec {
        pattern: dir.path().join("*.log").display().to_string(),
        intake_key: "k".into(),
    };
    let options = Options {
        poll_interval: Duration::from_millis(200),
        ..Options::default()
    };
    let mut tailer = Tailer::new(vec![spec], state.path(), options).unwrap();
    let stop = tailer.stop_handle();
    let sink = ByteSink::default();
    let tailer_thread = {
        let mut sink = sink.clone();
        std::thread::spawn(move || tailer.run(&mut sink))
    };
    wait_until(Duration::from_secs(10), || {
        state.path().join("logfile-checkpoints").exists()
    });

    // The file appears after the tailer started, so it is read from its beginning.
    let started = Instant::now();
    let mut writer = Reap(spawn_writer(&dir.path().join("app.log"), 0, N, 1000, 0));
    assert!(writer.0.wait().unwrap().success(), "writer process failed");
    wait_until(Duration::from_secs(120), || {
        sink.lines.load(Ordering::Relaxed) >= N
    });
    let elapsed = started.elapsed();
    std::thread::sleep(Duration::from_millis(300)); // room for stray extra lines to show
    stop.stop();
    tailer_thread.join().unwrap().unwrap();

    assert_eq!(sink.lines.load(Ordering::Relaxed), N);
    assert_eq!(sink.incomplete.load(Ordering::Relaxed), 0);
    let got = sink.bytes.lock().unwrap();
    let expected = lines_bytes(0, N);
    assert_eq!(got.len(), expected.len());
    if *got != expected {
        let at = got.iter().zip(&expected).position(|(a, b)| a != b);
        panic!("output differs from what was written, first at byte {at:?}");
    }
    eprintln!("1M lines written and tailed in {elapsed:?}");
}

/// What one run of the tailer process wrote: the acknowledged-or-not lines it finished.
fn read_run(path: &Path) -> Vec<u64> {
    let bytes = fs::read(path).unwrap_or_default();
    let mut numbers = Vec::new();
    let mut parts = bytes.split(|&b| b == b'\n').collect::<Vec<_>>();
    parts.pop(); // after the last `\n`: empty, or a line cut short by SIGKILL
    for l in parts {
        let n = number(l);
        assert_eq!(l, line(n).as_slice(), "line {n} not byte-identical");
        numbers.push(n);
    }
    numbers
}

/// A small xorshift: kill points vary per run, the seed is printed to replay one.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn sigkilled_tailer_restarted_ten_times_loses_nothing_and_duplicates_within_bound() {
    const TOTAL: u64 = 200_000;
    const KILLS: usize = 10;
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let outs = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let seed = std::env::var("LF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("kill test seed (LF_SEED): {seed}");
    let mut rng = XorShift(seed);

    let out_path = |run: usize| -> PathBuf { outs.path().join(format!("run-{run:02}.out")) };
    let spawn_tailer = |run: usize| {
        Reap(spawn_role(
            "tailer",
            &[
                ("LF_PATTERN", dir.path().join("*.log").display().to_string()),
                ("LF_STATE", state.path().display().to_string()),
                ("LF_OUT", out_path(run).display().to_string()),
            ],
        ))
    };

    // First start: wait for the initial scan, then the log file appears (read from 0).
    let mut tailer = spawn_tailer(0);
    wait_until(Duration::from_secs(30), || {
        state.path().join("logfile-checkpoints").exists()
    });
    // ~200 lines every 5 ms: the writer runs for several seconds.
    let mut writer = Reap(spawn_writer(&log, 0, TOTAL, 200, 5000));
    for run in 0..KILLS {
        std::thread::sleep(Duration::from_millis(100 + rng.below(250)));
        assert!(
            writer.0.try_wait().unwrap().is_none(),
            "the writer finished before kill {run}; the test must kill while writing"
        );
        tailer.0.kill().unwrap(); // SIGKILL
        tailer.0.wait().unwrap();
        tailer = spawn_tailer(run + 1);
    }
    assert!(writer.0.wait().unwrap().success(), "writer process failed");
    let last = out_path(KILLS);
    let deadline = Instant::now() + Duration::from_secs(60);
    while read_run(&last).last() != Some(&(TOTAL - 1)) {
        if Instant::now() > deadline {
            for run in 0..=KILLS {
                let n = read_run(&out_path(run));
                eprintln!(
                    "run {run}: {} lines {:?}..{:?}",
                    n.len(),
                    n.first(),
                    n.last()
                );
            }
            let cp = fs::read_to_string(state.path().join("logfile-checkpoints"));
            eprintln!(
                "checkpoints: {cp:?}; log size {:?}",
                fs::metadata(&log).map(|m| m.len())
            );
            eprintln!("final tailer exited: {:?}", tailer.0.try_wait());
            panic!("the restarted tailer did not deliver the last line within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(tailer);

    let bound = kill_test_options().duplicate_bound();
    // A batch the sink was writing when killed may be partly on disk without having been
    // acknowledged; it is sent again too. That is the sink's in-flight data, not lines
    // the tailer had been told were accepted.
    let in_flight = kill_test_options().max_batch_lines as u64;
    let mut next = 0u64;
    let mut duplicates = 0u64;
    let mut worst = 0u64;
    for run in 0..=KILLS {
        let numbers = read_run(&out_path(run));
        let (Some(&first), Some(&last)) = (numbers.first(), numbers.last()) else {
            continue;
        };
        for pair in numbers.windows(2) {
            assert_eq!(
                pair[1],
                pair[0] + 1,
                "run {run}: lines out of order or missing"
            );
        }
        assert!(first <= next, "run {run}: lines {next}..{first} were lost");
        let dup = next - first;
        assert!(
            dup <= bound + in_flight,
            "run {run}: {dup} duplicates exceed the bound {bound} (+{in_flight} in flight)"
        );
        duplicates += dup;
        worst = worst.max(dup);
        next = next.max(last + 1);
    }
    assert_eq!(next, TOTAL, "the union of all runs must hold every line");
    eprintln!(
        "{KILLS} kills: {duplicates} duplicate lines in total, at most {worst} per kill, bound {bound}"
    );
}
