//! Recovery and drain of the real agent binary against a real HTTPS intake on 127.0.0.1
//! (agent-testkit), each test in its own temporary root:
//!
//! - after an outage of the intake, shipping resumes within 15 s of its return, with the
//!   default retry settings;
//! - a backlog in the ring drains with several requests in flight, measured against the
//!   same backlog with one request in flight, and with the shipper's memory sized to the
//!   batch rather than the backlog (peak RSS while draining).
//!
//! The drain measurement is a benchmark too: `DRAIN_MB` sets the backlog (default 8 MB
//! here; 100 for the full ring), `DRAIN_WIDTH` the line length (default 500 bytes)
//! and `TEST_AGENT_BIN` another agent binary to run
//! instead of the test build (a release build, or an older agent for comparison), e.g.
//! `DRAIN_MB=100 TEST_AGENT_BIN=target/release/agent cargo test -p endpoint-agent --test recovery_drain -- --nocapture drain`.

#![cfg(target_os = "linux")]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agent_testkit::Intake;
use serde_json::Value;

const AGENT_KEY: &str = "agent-key-recovery";
const LINES_KEY: &str = "lines-key-recovery";

/// A temporary installation shipping `watched/app-*.log` under [`LINES_KEY`], without the
/// audit collector (several tests run at once; only one process can own audit).
struct Install {
    dir: tempfile::TempDir,
    config: PathBuf,
    state: PathBuf,
    logs: PathBuf,
    watched: PathBuf,
}

impl Install {
    fn new(intake: &Intake) -> Install {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let (config, state, logs, watched) = (
            root.join("config.yaml"),
            root.join("state"),
            root.join("log"),
            root.join("watched"),
        );
        for d in [&state, &logs, &watched] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(watched.join("app-1.log"), b"").unwrap();
        std::fs::write(
            &config,
            format!(
                "IntakeKey: {AGENT_KEY}\nIntakeURL: {}\nAutoUpdate: false\nroles: [compliance-collector]\nlogfiles:\n  - filepath: {}/app-*.log\n    intakekey: {LINES_KEY}\n",
                intake.url(),
                watched.display()
            ),
        )
        .unwrap();
        Install {
            dir,
            config,
            state,
            logs,
            watched,
        }
    }

    fn log_path(&self) -> PathBuf {
        self.watched.join("app-1.log")
    }

    fn spawn(&self, bin: &Path, intake: &Intake, env: &[(&str, String)]) -> Agent {
        let out = self.dir.path().join("agent.out");
        let mut cmd = Command::new(bin);
        cmd.arg("run")
            .arg("--config")
            .arg(&self.config)
            .arg("--stats-interval")
            .arg("3600")
            .arg("--extra-ca")
            .arg(intake.ca_file())
            .env("ENDPOINT_AGENT_ROOT", self.dir.path())
            .env("ENDPOINT_AGENT_STATE_DIR", &self.state)
            .env("ENDPOINT_AGENT_LOG_DIR", &self.logs)
            .env("ENDPOINT_AGENT_CONFIG", &self.config)
            .env("ENDPOINT_AGENT_BATCH_DELAY_MS", "200")
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .env_remove("ALL_PROXY")
            .env_remove("all_proxy")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(out.with_extension("err")).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let agent = Agent {
            child: cmd.spawn().expect("spawn the agent binary"),
            agent_log: self.logs.join("agent.log"),
        };
        // Ready once the status file says the tailer runs and made its first scan.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.status();
            if s["collectors"]["logfile"]["state"] == "running" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the agent did not start: {s:#}\n{}",
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(500));
        agent
    }

    fn status(&self) -> Value {
        let bytes = std::fs::read(self.state.join("status.json")).unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    }
}

struct Agent {
    child: Child,
    agent_log: PathBuf,
}

impl Agent {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.agent_log).unwrap_or_default()
    }

    /// Resident set size now and at its peak (VmRSS, VmHWM), in KiB.
    fn rss_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid with SIGTERM has no memory effects.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Appends lines `range` of about `width` bytes each: `line <n> <padding>`.
fn write_lines(path: &Path, range: std::ops::Range<u64>, width: usize) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    let mut buf = Vec::with_capacity(1 << 20);
    for n in range {
        let start = buf.len();
        write!(buf, "line {n} ").unwrap();
        while buf.len() - start < width.saturating_sub(1) {
            buf.push(b'x');
        }
        buf.push(b'\n');
        if buf.len() >= (1 << 20) - width {
            f.write_all(&buf).unwrap();
            buf.clear();
        }
    }
    f.write_all(&buf).unwrap();
}

/// The agent binary under test: `TEST_AGENT_BIN`, or this build's.
fn agent_bin() -> PathBuf {
    std::env::var_os("TEST_AGENT_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_agent")), PathBuf::from)
}

fn wait_for(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Every line 0..total arrived exactly once (duplicates are counted as a failure here:
/// the agent is not killed in these tests).
fn assert_each_line_once(intake: &Intake, total: u64) {
    let mut seen = vec![0u32; total as usize];
    for r in intake.records_for(LINES_KEY) {
        let text = String::from_utf8_lossy(&r.payload);
        let n: u64 = text
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(u64::MAX);
        assert!(n < total, "unexpected line {text:?}");
        seen[n as usize] += 1;
    }
    let missing = seen.iter().filter(|c| **c == 0).count();
    let twice = seen.iter().filter(|c| **c > 1).count();
    assert_eq!((missing, twice), (0, 0), "lines missing / duplicated");
}

#[test]
fn shipping_resumes_within_15_s_after_the_intake_comes_back() {
    let mut intake = Intake::start().unwrap();
    let install = Install::new(&intake);
    let agent = install.spawn(&agent_bin(), &intake, &[]);
    write_lines(&install.log_path(), 0..100, 100);
    assert!(
        wait_for(Duration::from_secs(30), || intake
            .records_for(LINES_KEY)
            .len()
            == 100),
        "first lines not delivered\n{}",
        agent.log()
    );

    // The intake goes away for 35 s (connections refused) while lines keep coming.
    intake.stop();
    let outage = Duration::from_secs(35);
    let down = Instant::now();
    write_lines(&install.log_path(), 100..200, 100);
    std::thread::sleep(outage.saturating_sub(down.elapsed()));
    let during = install.status();
    assert!(
        during["shipper"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot connect")),
        "the outage shows in the status: {during:#}"
    );
    intake.restart().unwrap();
    let back = Instant::now();
    assert!(
        wait_for(Duration::from_secs(60), || intake
            .records_for(LINES_KEY)
            .len()
            >= 200),
        "lines written during the outage not delivered\n{}",
        agent.log()
    );
    let first = intake
        .requests()
        .iter()
        .filter(|r| r.at >= back && r.status == 200)
        .map(|r| r.at)
        .min()
        .unwrap();
    let recovery = first - back;
    println!("recovery after a {outage:?} outage: {recovery:?} (target < 15 s)");
    assert!(
        recovery < Duration::from_secs(15),
        "shipping resumed {recovery:?} after the intake came back\n{}",
        agent.log()
    );
    assert_each_line_once(&intake, 200);
    // `agent status` shows the outage's error only while it lasts (status.json is
    // rewritten every 2 s).
    assert!(
        wait_for(Duration::from_secs(10), || install.status()["shipper"]
            ["last_error"]
            .is_null()),
        "the last error is still shown after recovery: {:#}",
        install.status()
    );
    // The agent log is written by a background writer: give it a moment.
    assert!(
        wait_for(Duration::from_secs(10), || agent
            .log()
            .contains("the intake accepts requests again")),
        "recovery is logged\n{}",
        agent.log()
    );
}

/// One drain: the intake is down while `lines` lines go into the ring, then comes back;
/// returns the drain time and the agent's peak RSS during the drain (KiB).
fn drain(bin: &Path, lines: u64, width: usize, env: &[(&str, String)]) -> (Duration, u64, u64) {
    let mut intake = Intake::start().unwrap();
    let install = Install::new(&intake);
    intake.stop();
    let agent = install.spawn(bin, &intake, env);
    write_lines(&install.log_path(), 0..lines, width);
    assert!(
        wait_for(Duration::from_secs(600), || install.status()
            ["written_lines"]
            .as_u64()
            .unwrap_or(0)
            >= lines),
        "the backlog did not reach the ring: {:#}\n{}",
        install.status(),
        agent.log()
    );
    let (_, hwm_before) = agent.rss_kib();
    intake.restart().unwrap();
    let start = Instant::now();
    let mut peak = 0;
    let done = wait_for(Duration::from_secs(900), || {
        peak = peak.max(agent.rss_kib().0);
        intake.records_for(LINES_KEY).len() as u64 >= lines
    });
    let took = start.elapsed();
    assert!(done, "the backlog did not drain\n{}", agent.log());
    assert_each_line_once(&intake, lines);
    let (_, hwm) = agent.rss_kib();
    println!(
        "  {env:?}: drained {lines} lines in {took:.2?} ({:.0} lines/s), RSS peak while draining {} KiB (VmHWM before {} KiB, after {} KiB)",
        lines as f64 / took.as_secs_f64(),
        peak,
        hwm_before,
        hwm
    );
    (took, peak, hwm)
}

#[test]
fn a_backlog_drains_faster_with_requests_in_flight_in_bounded_memory() {
    let mb: u64 = std::env::var("DRAIN_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let width: usize = std::env::var("DRAIN_WIDTH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let lines = mb * 1_000_000 / width as u64;
    let bin = agent_bin();
    println!(
        "drain of {lines} lines of {width} bytes ({mb} MB) with {}:",
        bin.display()
    );
    let one = [("ENDPOINT_AGENT_MAX_IN_FLIGHT", "1".to_owned())];
    let four = [("ENDPOINT_AGENT_MAX_IN_FLIGHT", "4".to_owned())];
    // The shipper's memory budget before it was sized to the batch (5 000 records,
    // 4 MiB), one request in flight: the baseline for memory.
    let old_budget = [
        ("ENDPOINT_AGENT_MAX_IN_FLIGHT", "1".to_owned()),
        ("ENDPOINT_AGENT_PENDING_RECORDS", "5000".to_owned()),
        ("ENDPOINT_AGENT_PENDING_BYTES", (4u64 << 20).to_string()),
    ];
    let (t_old, peak_old, _) = drain(&bin, lines, width, &old_budget);
    let (t_one, peak_one, _) = drain(&bin, lines, width, &one);
    let (t_four, peak_four, _) = drain(&bin, lines, width, &four);
    println!(
        "drain time 1 in flight / 4 in flight: {:.2} ({:.0} vs {:.0} lines/s); old budget {:.2?}",
        t_one.as_secs_f64() / t_four.as_secs_f64(),
        lines as f64 / t_one.as_secs_f64(),
        lines as f64 / t_four.as_secs_f64(),
        t_old
    );
    println!(
        "peak RSS while draining: old budget {peak_old} KiB, batch-sized 1 in flight {peak_one} KiB, 4 in flight {peak_four} KiB"
    );
    // Loose bounds: the machine may be shared. Several in flight is never slower, and
    // the batch-sized budget never costs more memory than the old one.
    assert!(
        t_four.as_secs_f64() <= t_one.as_secs_f64() * 1.2,
        "4 in flight {t_four:?} vs 1 in flight {t_one:?}"
    );
    assert!(
        peak_four <= peak_old + 2048,
        "4 in flight {peak_four} KiB vs old budget {peak_old} KiB"
    );
}
