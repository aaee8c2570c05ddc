//! The real agent binary against a full disk: its state directory on a small tmpfs,
//! shipping to a real HTTPS intake on 127.0.0.1 (agent-testkit).
//!
//! Filling the tmpfs while lines are written must not stop the pipeline for good: the
//! ring keeps what it took and retries, `agent status` exits non-zero (2, degraded)
//! meanwhile, and once space returns every line arrives, with no restart of the agent.
//!
//! Needs root (mount). Outside CI it is skipped with a message without root; under
//! `CI=true` it fails instead.

#![cfg(target_os = "linux")]

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agent_testkit::Intake;
use serde_json::Value;

const AGENT_KEY: &str = "agent-key-1";
const LINES_KEY: &str = "lines-key-1";

fn is_root() -> bool {
    // SAFETY: geteuid takes no arguments, touches no memory and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Holds an exclusive lock on a /tmp file while the test changes system state (mounts).
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

/// A tmpfs mounted on `path`, unmounted on drop (even when the test fails).
struct Tmpfs {
    path: PathBuf,
    _lock: SystemLock,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        let lock = SystemLock::take();
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(path)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount -t tmpfs failed: {status}");
        Tmpfs {
            path: path.to_path_buf(),
            _lock: lock,
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// The agent child process; killed and reaped on drop (before the tmpfs is unmounted).
struct Agent {
    child: Child,
    err: PathBuf,
    agent_log: PathBuf,
}

impl Agent {
    fn diagnostics(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let tail = |s: String| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        format!(
            "--- agent stderr ---\n{}\n--- agent.log (tail) ---\n{}",
            tail(read(&self.err)),
            tail(read(&self.agent_log))
        )
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn line(seq: u64) -> Vec<u8> {
    format!("L{seq:08} a line of a log file with some padding to make it longer").into_bytes()
}

fn seq_of(payload: &[u8]) -> Option<u64> {
    std::str::from_utf8(payload.get(1..9)?).ok()?.parse().ok()
}

fn write_lines(path: &Path, range: std::ops::Range<u64>) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let mut buf = Vec::new();
    for seq in range {
        buf.extend_from_slice(&line(seq));
        buf.push(b'\n');
    }
    f.write_all(&buf).unwrap();
}

/// Writes to `path` until the file system is full.
fn fill(path: &Path) {
    let mut file = File::create(path).expect("create filler");
    let chunk = vec![0xa5u8; 64 * 1024];
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

/// Distinct line numbers the intake received.
fn received(intake: &Intake) -> std::collections::BTreeSet<u64> {
    intake
        .records_for(LINES_KEY)
        .iter()
        .filter_map(|r| seq_of(&r.payload))
        .collect()
}

#[test]
fn a_full_disk_degrades_the_agent_which_resumes_by_itself_when_space_returns() {
    if !is_root() {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(!ci, "this test needs root to mount a tmpfs (CI=true: not skipping)");
        eprintln!("skipped: this test needs root to mount a tmpfs");
        return;
    }
    let intake = Intake::start().unwrap();
    let root = tempfile::tempdir().unwrap();
    let (config, state, logs, watched) = (
        root.path().join("config.yaml"),
        root.path().join("state"),
        root.path().join("log"),
        root.path().join("watched"),
    );
    let tmpfs = Tmpfs::mount(&state, "8m");
    for d in [&logs, &watched] {
        std::fs::create_dir_all(d).unwrap();
    }
    let log_file = watched.join("app-1.log");
    std::fs::write(&log_file, b"").unwrap();
    std::fs::write(
        &config,
        format!(
            "IntakeKey: {AGENT_KEY}\nIntakeURL: {}\nAutoUpdate: false\nroles: [compliance-collector]\nlogfiles:\n  - filepath: {}/app-*.log\n    intakekey: {LINES_KEY}\n",
            intake.url(),
            watched.display()
        ),
    )
    .unwrap();
    let env = |cmd: &mut Command| {
        cmd.env("ENDPOINT_AGENT_ROOT", root.path())
            .env("ENDPOINT_AGENT_STATE_DIR", &state)
            .env("ENDPOINT_AGENT_LOG_DIR", &logs)
            .env("ENDPOINT_AGENT_CONFIG", &config)
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .env_remove("ALL_PROXY")
            .env_remove("all_proxy");
    };
    let status = || -> (i32, Value) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_agent"));
        cmd.args(["status", "--json"]);
        env(&mut cmd);
        let out = cmd.output().unwrap();
        let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.code().unwrap_or(-1), v)
    };

    let err = root.path().join("agent.err");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_agent"));
    cmd.arg("run")
        .arg("--config")
        .arg(&config)
        .arg("--stats-interval")
        .arg("60")
        .arg("--extra-ca")
        .arg(intake.ca_file())
        .env("ENDPOINT_AGENT_BATCH_DELAY_MS", "100")
        .env("ENDPOINT_AGENT_BACKOFF_MAX_MS", "1000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&err).unwrap());
    env(&mut cmd);
    let mut agent = Agent {
        child: cmd.spawn().expect("spawn the agent binary"),
        err,
        agent_log: logs.join("agent.log"),
    };
    let wait = |what: &str, timeout: Duration, agent: &Agent, mut ok: Box<dyn FnMut() -> bool>| {
        let deadline = Instant::now() + timeout;
        while !ok() {
            assert!(
                Instant::now() < deadline,
                "{what}: not within {timeout:?}\n{}",
                agent.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };

    // Running and shipping.
    wait(
        "the agent runs its log-file collector",
        Duration::from_secs(20),
        &agent,
        Box::new(|| status().1["collectors"]["logfile"].is_object()),
    );
    std::thread::sleep(Duration::from_millis(1_500));
    write_lines(&log_file, 0..1_000);
    wait(
        "the first lines arrive",
        Duration::from_secs(30),
        &agent,
        Box::new(|| received(&intake).len() == 1_000),
    );
    assert_eq!(status().0, 0, "healthy before the disk fills");

    // The disk fills up; lines keep coming.
    let filler = state.join("filler");
    fill(&filler);
    write_lines(&log_file, 1_000..21_000);
    wait(
        "agent status exits 2 and says the ring cannot write",
        Duration::from_secs(30),
        &agent,
        Box::new(|| {
            let (code, s) = status();
            code == 2
                && s["degraded"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(|r| r.to_string().contains("ring cannot write")))
        }),
    );
    assert!(
        agent.child.try_wait().unwrap().is_none(),
        "the agent keeps running on a full disk\n{}",
        agent.diagnostics()
    );

    // Space returns: everything arrives, with no restart.
    std::fs::remove_file(&filler).unwrap();
    write_lines(&log_file, 21_000..22_000);
    wait(
        "every line arrives after space returns",
        Duration::from_secs(60),
        &agent,
        Box::new(|| received(&intake).len() == 22_000),
    );
    wait(
        "agent status exits 0 again",
        Duration::from_secs(20),
        &agent,
        Box::new(|| status().0 == 0),
    );
    let (_, s) = status();
    assert_eq!(s["pid"].as_u64(), Some(u64::from(agent.child.id())), "the same process");
    assert_eq!(s["ring"]["records_lost"].as_u64(), Some(0));
    let log = std::fs::read_to_string(&agent.agent_log).unwrap_or_default();
    assert!(log.contains("the ring cannot write"), "{}", agent.diagnostics());
    assert!(log.contains("the ring takes writes again"), "{}", agent.diagnostics());
    assert!(!log.contains("the writer thread stopped"), "{}", agent.diagnostics());
    assert!(intake.violations().is_empty(), "{:?}", intake.violations());

    // An orderly stop still works.
    // SAFETY: kill(2) on our own child's pid; it has not been reaped (we hold Child).
    assert_eq!(
        unsafe { libc::kill(i32::try_from(agent.child.id()).unwrap(), libc::SIGTERM) },
        0
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(s) = agent.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}\n{}", agent.diagnostics());
    drop(agent);
    drop(tmpfs);
}
