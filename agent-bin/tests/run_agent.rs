//! Acceptance tests of `agent run`: the real agent binary as a child process, shipping to
//! a real HTTPS intake on 127.0.0.1 (agent-testkit), each test in its own temporary root.
//!
//! The log-file tests set `roles: [compliance-collector]` so that the agent does not start
//! the (event-collector) audit collector: several of them run in parallel, and only one
//! process at a time can own the kernel audit socket. The audit test takes the
//! cross-process audit lock and runs with the default roles.

#![cfg(target_os = "linux")]

use std::io::Write as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use agent_linux_audit::netlink::{AuditSocket, SavedState};
use agent_testkit::{Fault, Intake, Record};
use serde_json::Value;

const AGENT_KEY: &str = "agent-key-1";
const LINES_KEY: &str = "lines-key-1";

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

/// A temporary installation: config, state dir, log dir, and the watched log directory.
struct Install {
    dir: tempfile::TempDir,
    config: PathBuf,
    state: PathBuf,
    logs: PathBuf,
    watched: PathBuf,
}

impl Install {
    /// `audit`: run with the default roles (event-collector, hence audit as root).
    fn new(intake: &Intake, audit: bool) -> Install {
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
        // The watched file exists, empty, before the first start: the tailer starts
        // files found at its very first start at their end, so nothing is skipped.
        std::fs::write(watched.join("app-1.log"), b"").unwrap();
        let roles = if audit {
            ""
        } else {
            "roles: [compliance-collector]\n"
        };
        std::fs::write(
            &config,
            format!(
                "IntakeKey: {AGENT_KEY}\nIntakeURL: {}\nAutoUpdate: false\n{roles}logfiles:\n  - filepath: {}/app-*.log\n    intakekey: {LINES_KEY}\n",
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

    fn env(&self, cmd: &mut Command) {
        cmd.env("ENDPOINT_AGENT_ROOT", self.dir.path())
            .env("ENDPOINT_AGENT_STATE_DIR", &self.state)
            .env("ENDPOINT_AGENT_LOG_DIR", &self.logs)
            .env("ENDPOINT_AGENT_CONFIG", &self.config)
            // Never a proxy from the test environment.
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .env_remove("ALL_PROXY")
            .env_remove("all_proxy");
    }

    /// Starts `agent run` (stats every `stats_interval` s); stdout/stderr go to files in
    /// the temporary root, shown when a test fails.
    fn spawn(&self, intake: &Intake, stats_interval: u64) -> Agent {
        let n = std::fs::read_dir(self.dir.path()).unwrap().count();
        let out = self.dir.path().join(format!("agent-{n}.out"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_agent"));
        cmd.arg("run")
            .arg("--config")
            .arg(&self.config)
            .arg("--stats-interval")
            .arg(stats_interval.to_string())
            .arg("--extra-ca")
            .arg(intake.ca_file())
            .env("ENDPOINT_AGENT_BATCH_DELAY_MS", "100")
            .env("ENDPOINT_AGENT_BACKOFF_MAX_MS", "1000")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(out.with_extension("err")).unwrap());
        self.env(&mut cmd);
        Agent {
            child: cmd.spawn().expect("spawn the agent binary"),
            out,
            agent_log: self.logs.join("agent.log"),
        }
    }

    /// `agent status --json`: exit code and the parsed status.
    fn status(&self) -> (i32, Value) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_agent"));
        cmd.args(["status", "--json"]);
        self.env(&mut cmd);
        let out = cmd.output().unwrap();
        let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.code().unwrap_or(-1), v)
    }

    /// The status file as the agent last wrote it.
    fn status_file(&self) -> Value {
        let bytes = std::fs::read(self.state.join("status.json")).unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    }

    fn wait_status(&self, timeout: Duration, mut ok: impl FnMut(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.status_file();
            if ok(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "status.json never satisfied the condition in {timeout:?}: {s:#}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the agent runs and its tailer has made its first scan: files found
    /// by the very first scan start at their end, so lines written before it are skipped.
    fn wait_ready(&self) {
        self.wait_status(Duration::from_secs(20), |s| {
            s["collectors"]["logfile"].is_object()
        });
        std::thread::sleep(Duration::from_millis(1_500));
    }

    fn log_path(&self) -> PathBuf {
        self.watched.join("app-1.log")
    }
}

/// The agent child process; killed (SIGKILL) and reaped on drop.
struct Agent {
    child: Child,
    out: PathBuf,
    agent_log: PathBuf,
}

impl Agent {
    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid; it has not been reaped (we hold Child).
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
    }

    /// Waits for the exit; `None` after `timeout`.
    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        let s = self.wait_exit(Duration::from_secs(10)).expect("reap");
        assert_eq!(s.signal(), Some(libc::SIGKILL));
    }

    /// What the agent printed and logged, for failure messages.
    fn diagnostics(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let tail = |s: String| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        format!(
            "--- agent stderr ---\n{}\n--- agent.log (tail) ---\n{}",
            tail(read(&self.out.with_extension("err"))),
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

/// Line number `seq` of the watched file: mixed bytes (non-ASCII, quotes, a tab, an
/// invalid UTF-8 byte) so that "byte for byte" means something.
fn line(seq: u64) -> Vec<u8> {
    let mut l = format!("L{seq:08} caf\u{e9} \"quoted\"\tfield=").into_bytes();
    if seq % 7 == 0 {
        l.push(0xff);
    }
    l.extend_from_slice(b" end");
    l
}

fn seq_of(payload: &[u8]) -> Option<u64> {
    std::str::from_utf8(payload.get(1..9)?).ok()?.parse().ok()
}

/// Appends numbered lines to a file at a steady rate from a thread of its own.
struct Generator {
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Generator {
    /// Writes lines `first..` at `per_sec` lines per second.
    fn start(path: &Path, first: u64, per_sec: u64) -> Generator {
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(first));
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        let (s, w) = (stop.clone(), written.clone());
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut next = first;
            while !s.load(Ordering::Relaxed) {
                let due = first + (start.elapsed().as_secs_f64() * per_sec as f64) as u64;
                let mut buf = Vec::new();
                while next < due {
                    buf.extend_from_slice(&line(next));
                    buf.push(b'\n');
                    next += 1;
                }
                if !buf.is_empty() {
                    file.write_all(&buf).unwrap();
                    w.store(next, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Generator {
            stop,
            written,
            thread: Some(thread),
        }
    }

    fn written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }

    /// Stops and returns the number of the next line (all before it are written).
    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.written()
    }
}

impl Drop for Generator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
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

/// What the intake received of lines `0..total`.
#[derive(Debug)]
struct Delivery {
    /// Lines never received.
    missing: Vec<u64>,
    /// Extra copies received (count of duplicates).
    duplicates: usize,
    /// Sequence numbers received more than once.
    duplicated: Vec<u64>,
    /// Payloads that are not one of our lines byte for byte.
    foreign: Vec<String>,
    /// Whether first arrivals are in file order, up to the batches in flight (requests
    /// sent together may be answered in any order).
    oldest_first: bool,
}

fn delivery(records: &[Record], total: u64) -> Delivery {
    let mut count = vec![0usize; total as usize];
    let mut foreign = Vec::new();
    let mut newest_first_seen: Option<u64> = None;
    let mut oldest_first = true;
    for r in records.iter().filter(|r| r.key == LINES_KEY) {
        match seq_of(&r.payload).filter(|&s| s < total && r.payload == line(s)) {
            Some(s) => {
                if count[s as usize] == 0 {
                    if newest_first_seen.is_some_and(|n| n > s + batch_bound() as u64) {
                        oldest_first = false;
                    }
                    newest_first_seen = newest_first_seen.max(Some(s));
                }
                count[s as usize] += 1;
            }
            None => foreign.push(String::from_utf8_lossy(&r.payload).into_owned()),
        }
    }
    Delivery {
        missing: (0..total).filter(|&s| count[s as usize] == 0).collect(),
        duplicates: count.iter().map(|&c| c.saturating_sub(1)).sum(),
        duplicated: (0..total).filter(|&s| count[s as usize] > 1).collect(),
        foreign,
        oldest_first,
    }
}

fn all_lines_arrived(intake: &Intake, total: u64, timeout: Duration) -> bool {
    intake.wait_until(timeout, |recs| {
        let mut seen = vec![false; total as usize];
        for r in recs.iter().filter(|r| r.key == LINES_KEY) {
            if let Some(s) = seq_of(&r.payload).filter(|&s| s < total) {
                seen[s as usize] = true;
            }
        }
        seen.iter().all(|&b| b)
    })
}

/// Most records the shipper has in flight: the "last unacked batch" of each of the
/// requests it sends at once (acknowledged in order, answered in any order).
fn batch_bound() -> usize {
    let c = agent_transport::TransportConfig::new("https://127.0.0.1:1".parse().unwrap());
    c.batch_max_events * c.max_in_flight.max(1)
}

/// Most lines the log-file collector delivers again after a crash.
fn logfile_crash_bound() -> usize {
    usize::try_from(agent_logfile::Options::default().duplicate_bound()).unwrap()
}

/// `v` at a dotted path, nested objects or flat dotted keys.
fn field<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(f) = v.get(path) {
        return Some(f);
    }
    let mut cur = v;
    for part in path.split('.') {
        cur = cur.get(part)?;
    }
    Some(cur)
}

fn field_str<'a>(v: &'a Value, path: &str) -> &'a str {
    field(v, path).and_then(Value::as_str).unwrap_or("")
}

fn pending(status: &Value) -> u64 {
    status["ring"]["records_pending"].as_u64().unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// (1) End to end: log-file lines and the stats event
// ---------------------------------------------------------------------------------------

#[test]
fn end_to_end_log_lines_and_stats_reach_the_intake() {
    let intake = Intake::start().unwrap();
    let install = Install::new(&intake, false);
    // Lines already in the file at the very first start are history: not shipped.
    std::fs::write(install.log_path(), b"OLD history line\n").unwrap();
    let agent = install.spawn(&intake, 1);
    install.wait_ready();
    write_lines(&install.log_path(), 0..200);
    std::thread::sleep(Duration::from_millis(300));
    write_lines(&install.log_path(), 200..500);

    assert!(
        all_lines_arrived(&intake, 500, Duration::from_secs(30)),
        "not every line arrived: {:?}\n{}",
        delivery(&intake.records(), 500).missing.len(),
        agent.diagnostics()
    );
    let d = delivery(&intake.records(), 500);
    assert!(
        d.foreign.is_empty(),
        "lines not byte for byte (or history shipped): {:?}",
        d.foreign
    );
    assert_eq!(d.duplicates, 0, "{d:?}");
    assert!(d.oldest_first, "{d:?}");
    for r in intake.records_for(LINES_KEY) {
        assert_eq!(r.path, "/plain/batch", "raw lines go to /plain/batch");
    }

    // The stats event, under the agent's own key, with the dialect's fields filled.
    let stats = |recs: &[Record]| -> Option<Value> {
        recs.iter()
            .filter(|r| r.key == AGENT_KEY)
            .filter_map(Record::json)
            .find(|j| field_str(j, "event.action") == "stats")
    };
    assert!(
        intake.wait_until(Duration::from_secs(15), |r| stats(r).is_some()),
        "no stats event at the intake\n{}",
        agent.diagnostics()
    );
    let s = stats(&intake.records()).unwrap();
    let id = field_str(&s, "agent.id");
    assert!(
        id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "agent.id {id:?} in {s:#}"
    );
    let saved = std::fs::read_dir(&install.state)
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
        .any(|text| text.trim() == id);
    assert!(saved, "agent.id is persisted in the state dir");
    assert!(field_str(&s, "agent.version").starts_with('v'), "{s:#}");
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(field_str(&s, "host.hostname"), hostname.trim(), "{s:#}");
    assert_eq!(field_str(&s, "host.os.type"), "linux", "{s:#}");
    assert!(field(&s, "@timestamp").is_some() || field(&s, "timestamp").is_some());
    assert!(intake.violations().is_empty(), "{:?}", intake.violations());

    // `agent status` sees a running agent with a running log-file collector.
    install.wait_status(Duration::from_secs(10), |s| {
        s["collectors"]["logfile"]["produced"].as_u64() >= Some(500)
    });
    let (code, st) = install.status();
    assert_eq!(code, 0, "{st:#}");
    assert_eq!(st["collectors"]["logfile"]["state"], "running", "{st:#}");
    assert!(
        st["shipper"]["last_success_unix"].as_u64().is_some(),
        "{st:#}"
    );
}

// ---------------------------------------------------------------------------------------
// (2) Outage: the intake down for 60 s while lines keep coming
// ---------------------------------------------------------------------------------------

#[test]
fn outage_of_60s_loses_nothing_and_delivers_oldest_first() {
    let mut intake = Intake::start().unwrap();
    let install = Install::new(&intake, false);
    let agent = install.spawn(&intake, 300);
    install.wait_ready();
    let gen = Generator::start(&install.log_path(), 0, 50);

    // Flowing before the outage.
    assert!(
        intake.wait_until(Duration::from_secs(20), |r| r.len() >= 50),
        "nothing delivered before the outage\n{}",
        agent.diagnostics()
    );
    intake.stop();
    let outage = Instant::now();

    // During the outage the ring fills, and `agent status` shows it.
    std::thread::sleep(Duration::from_secs(10));
    let (code1, s1) = install.status();
    std::thread::sleep(Duration::from_secs(40));
    let (code2, s2) = install.status();
    assert_eq!((code1, code2), (0, 0), "agent status during the outage");
    assert!(
        pending(&s1) > 0 && pending(&s2) > pending(&s1) + 1_000,
        "records_pending should grow during the outage: {} then {}",
        pending(&s1),
        pending(&s2)
    );
    assert!(s2["shipper"]["last_error"].is_string(), "{s2:#}");
    let sleep = Duration::from_secs(60).saturating_sub(outage.elapsed());
    std::thread::sleep(sleep);

    intake.restart().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let total = gen.finish();
    assert!(total > 3_000, "{total} lines written");
    assert!(
        all_lines_arrived(&intake, total, Duration::from_secs(60)),
        "lines missing after the outage: {:?}\n{}",
        delivery(&intake.records(), total).missing,
        agent.diagnostics()
    );
    let d = delivery(&intake.records(), total);
    assert!(d.foreign.is_empty(), "{:?}", d.foreign);
    assert!(d.oldest_first, "first arrivals out of order");
    eprintln!(
        "outage: {total} lines, pending {} after 10 s and {} after 50 s, {} duplicates",
        pending(&s1),
        pending(&s2),
        d.duplicates
    );
    // Duplicates only within the batches that were in flight when the intake went away.
    assert!(
        d.duplicates <= batch_bound(),
        "{} duplicates (bound {})",
        d.duplicates,
        batch_bound()
    );
    if let (Some(first), Some(last)) = (d.duplicated.first(), d.duplicated.last()) {
        assert!(
            (last - first) < batch_bound() as u64,
            "duplicates span more than one batch: {:?}",
            d.duplicated
        );
    }
    assert!(intake.violations().is_empty(), "{:?}", intake.violations());
    let after = install.wait_status(Duration::from_secs(10), |s| pending(s) == 0);
    assert_eq!(after["ring"]["records_dropped"], 0, "{after:#}");
}

// ---------------------------------------------------------------------------------------
// (3) SIGKILL under load, then restart with the same state dir
// ---------------------------------------------------------------------------------------

#[test]
fn sigkill_under_load_then_restart_loses_no_line() {
    let intake = Intake::start().unwrap();
    let install = Install::new(&intake, false);
    let mut agent = install.spawn(&intake, 300);
    install.wait_ready();
    let gen = Generator::start(&install.log_path(), 0, 500);
    assert!(
        intake.wait_until(Duration::from_secs(20), |r| r.len() >= 200),
        "nothing delivered\n{}",
        agent.diagnostics()
    );
    // The intake refuses for a while: what the tailer reads piles up in the ring only.
    intake.set_fault(Fault::Status(503));
    let delivered_before = intake.record_count();
    install.wait_status(Duration::from_secs(20), |s| pending(s) >= 500);
    let in_ring = install.status_file()["written_lines"].as_u64().unwrap();
    agent.kill9();
    assert!(
        in_ring > delivered_before as u64,
        "lines were in the ring, unsent, when killed"
    );
    // Lines keep coming while the agent is down.
    std::thread::sleep(Duration::from_secs(1));
    let total = gen.finish();
    intake.set_fault(Fault::None);

    let agent = install.spawn(&intake, 300);
    assert!(
        all_lines_arrived(&intake, total, Duration::from_secs(60)),
        "lines lost across SIGKILL: {:?}\n{}",
        delivery(&intake.records(), total).missing,
        agent.diagnostics()
    );
    let d = delivery(&intake.records(), total);
    assert!(d.foreign.is_empty(), "{:?}", d.foreign);
    let bound = logfile_crash_bound() + batch_bound();
    assert!(
        d.duplicates <= bound,
        "{} duplicates after one crash (bound {bound})",
        d.duplicates
    );
    eprintln!(
        "sigkill: {total} lines, {in_ring} in the ring at the kill, {} duplicates",
        d.duplicates
    );
}

// ---------------------------------------------------------------------------------------
// (4) SIGTERM under load: orderly stop, checkpoints saved
// ---------------------------------------------------------------------------------------

#[test]
fn sigterm_under_load_exits_0_within_10s_with_checkpoints_saved() {
    let intake = Intake::start().unwrap();
    let install = Install::new(&intake, false);
    let mut agent = install.spawn(&intake, 300);
    install.wait_ready();
    let gen = Generator::start(&install.log_path(), 0, 1_000);
    assert!(
        intake.wait_until(Duration::from_secs(20), |r| r.len() >= 1_000),
        "nothing delivered\n{}",
        agent.diagnostics()
    );
    agent.signal(libc::SIGTERM);
    let t = Instant::now();
    let status = agent.wait_exit(Duration::from_secs(10));
    let took = t.elapsed();
    let Some(status) = status else {
        panic!("no exit within 10 s of SIGTERM\n{}", agent.diagnostics());
    };
    assert!(
        status.success(),
        "exit status {status:?}\n{}",
        agent.diagnostics()
    );
    std::thread::sleep(Duration::from_millis(300));
    let total = gen.finish();
    let st = install.status_file();
    assert_eq!(st["collectors"]["logfile"]["state"], "stopped", "{st:#}");
    let checkpoints = install.state.join("logfile");
    assert!(
        std::fs::read_dir(&checkpoints).is_ok_and(|mut d| d.next().is_some()),
        "no log-file checkpoint in {}",
        checkpoints.display()
    );
    let (code, st) = install.status();
    assert_eq!(st["collectors"]["logfile"]["state"], "stopped", "{st:#}");
    assert_eq!(
        code, 3,
        "`agent status` right after an orderly stop: {st:#}"
    );
    eprintln!("sigterm: exited in {took:?}");

    // A restart delivers the rest, and nothing twice beyond the last batch.
    let agent = install.spawn(&intake, 300);
    assert!(
        all_lines_arrived(&intake, total, Duration::from_secs(60)),
        "lines missing after SIGTERM + restart: {:?}\n{}",
        delivery(&intake.records(), total).missing,
        agent.diagnostics()
    );
    let d = delivery(&intake.records(), total);
    assert!(d.foreign.is_empty(), "{:?}", d.foreign);
    assert!(d.oldest_first);
    eprintln!(
        "sigterm: {total} lines, {} duplicates after the restart",
        d.duplicates
    );
    assert!(
        d.duplicates <= batch_bound(),
        "{} lines delivered twice after an orderly stop (bound {})",
        d.duplicates,
        batch_bound()
    );
}

// ---------------------------------------------------------------------------------------
// (1) and (4), audit part: real commands → process-created events; rules removed
// ---------------------------------------------------------------------------------------

/// The kernel's audit state that must be the same before and after the agent.
#[derive(Debug, PartialEq, Eq)]
struct AuditState {
    rules: String,
    status: Vec<(String, String)>,
}

fn auditctl(args: &[&str]) -> String {
    let out = Command::new("auditctl")
        .args(args)
        .output()
        .expect("auditctl (package auditd) is needed for the audit acceptance test");
    assert!(out.status.success(), "auditctl {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn audit_state() -> AuditState {
    let keep = [
        "enabled",
        "failure",
        "pid",
        "rate_limit",
        "backlog_limit",
        "backlog_wait_time",
    ];
    let status = auditctl(&["-s"])
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(k, _)| keep.contains(k))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect();
    AuditState {
        rules: auditctl(&["-l"]),
        status,
    }
}

/// Holds the cross-process audit lock (shared with the linux-audit kernel tests) and
/// puts the kernel's audit rules and status back as found on drop, also when the agent
/// left them changed and an assertion failed.
struct AuditGuard {
    _file: std::fs::File,
    /// What `auditctl` showed before: what the test expects the agent to leave behind.
    before: AuditState,
    saved: SavedState,
}

impl AuditGuard {
    fn take() -> AuditGuard {
        use std::os::fd::AsRawFd as _;
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "the audit acceptance test needs root (CI runs the tests as root)"
        );
        let file = std::fs::File::create("/tmp/agent-linux-audit-kernel-tests.lock").unwrap();
        // SAFETY: flock on a descriptor we own; blocks until other processes release it.
        assert_eq!(unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) }, 0);
        let before = audit_state();
        let pid = before
            .status
            .iter()
            .find(|(k, _)| k == "pid")
            .map_or("0", |(_, v)| v.as_str());
        assert_eq!(
            pid, "0",
            "an audit daemon is registered (pid {pid}): stop auditd before the tests"
        );
        let mut sock = AuditSocket::open().expect("open NETLINK_AUDIT (kernel built with audit?)");
        AuditGuard {
            _file: file,
            before,
            saved: SavedState::capture(&mut sock).unwrap(),
        }
    }
}

impl Drop for AuditGuard {
    fn drop(&mut self) {
        // Best effort: a drop during a panic must not panic again.
        if let Ok(mut s) = AuditSocket::open() {
            let _ = self.saved.restore(&mut s);
        }
    }
}

#[test]
fn audit_exec_events_reach_the_intake_and_rules_go_on_sigterm() {
    let guard = AuditGuard::take();
    let intake = Intake::start().unwrap();
    let install = Install::new(&intake, true);
    let mut agent = install.spawn(&intake, 300);

    let st = install.wait_status(Duration::from_secs(20), |s| {
        s["collectors"].as_object().is_some_and(|c| !c.is_empty())
    });
    let audit = st["collectors"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(name, _)| name.contains("audit"))
        .map(|(_, c)| c.clone());
    let Some(audit) = audit else {
        panic!(
            "no audit collector in the status (is it wired at AUDIT-COLLECTOR-HOOK?): {st:#}\n{}",
            agent.diagnostics()
        );
    };
    assert_eq!(audit["state"], "running", "{st:#}");
    assert_ne!(
        audit_state().rules,
        guard.before.rules,
        "the agent installed no audit rule"
    );

    // Real commands, with a marker in their command line.
    let marker = format!("agent-e2e-{}", std::process::id());
    let created = |recs: &[Record]| -> Option<Value> {
        recs.iter()
            .filter(|r| r.key == AGENT_KEY)
            .filter_map(Record::json)
            .find(|j| {
                field_str(j, "event.action") == "process-created"
                    && field_str(j, "process.executable") == "/usr/bin/id"
                    && field_str(j, "process.command_line").contains(&marker)
            })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while created(&intake.records()).is_none() && Instant::now() < deadline {
        // `id` of a user that does not exist: it fails, but it was executed.
        let _ = Command::new("/usr/bin/id")
            .arg(&marker)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        std::thread::sleep(Duration::from_millis(500));
    }
    let Some(e) = created(&intake.records()) else {
        panic!(
            "no process-created event for /usr/bin/id {marker}\n{}",
            agent.diagnostics()
        );
    };
    assert_eq!(
        field_str(&e, "process.command_line"),
        format!("/usr/bin/id {marker}"),
        "{e:#}"
    );
    assert!(
        field(&e, "process.pid").and_then(Value::as_u64).is_some(),
        "{e:#}"
    );
    assert_eq!(field_str(&e, "host.os.type"), "linux", "{e:#}");
    assert_eq!(field_str(&e, "agent.id").len(), 64, "{e:#}");

    // SIGTERM: exit 0 within 10 s, the kernel's audit state as it was before.
    agent.signal(libc::SIGTERM);
    let status = agent.wait_exit(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGTERM: {status:?}\n{}",
        agent.diagnostics()
    );
    assert_eq!(audit_state(), guard.before, "audit state not restored");
    let st = install.status_file();
    for (name, c) in st["collectors"].as_object().unwrap() {
        assert_eq!(c["state"], "stopped", "collector {name}: {st:#}");
    }
}
