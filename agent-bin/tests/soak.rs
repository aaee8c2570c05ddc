//! Soak test (issue 22): the real agent binary tails a log file written at a steady rate
//! and rotated (rename + create) now and then, and collects kernel audit events of
//! commands run at a steady rate, while the test intake on 127.0.0.1 answers 503 and
//! 429, drops connections, answers slowly (a relay holds its responses back), goes away
//! (connections closed at once) and comes back, and the agent is SIGKILLed and
//! restarted, all at random from a printed seed.
//!
//! Accounting at the end:
//! - every log line arrived; extra copies are counted per kill and may only come from
//!   what a crash leaves unacknowledged: the requests in flight (up to `max_in_flight`
//!   batches, resent after the restart) and the one tailer delivery the agent may die in
//!   before journalling it (the tailer's journal makes its position follow the ring).
//! - every audit event of a command run while the agent was up (registered with the
//!   kernel, its rule loaded, until shortly before a kill) arrived. Commands run while
//!   the agent was down or dying may be lost: the kernel hands records to a registered
//!   daemon's socket and they die with it, or holds them for the next daemon (up to its
//!   backlog) or drops them, and only the last is sure to show in its lost counter; so
//!   they are counted and printed (delivered / not), with the kernel's lost counter, not
//!   asserted. Their extra copies count with the lines'.
//!
//! `SOAK_SECS` (default 100) sets the length of the fault phase, `SOAK_SEED` replays a
//! run. The audit part needs root and takes the kernel audit test lock (only one process
//! may own the kernel audit stream); it restores the kernel's audit rules and status
//! found before, also on failure. Without root it is left out, except under `CI=true`,
//! where that is a failure.

#![cfg(target_os = "linux")]

mod support;

use std::fs::OpenOptions;
use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use agent_linux_audit::netlink::{AuditSocket, SavedState};
use agent_linux_audit::rule::{compile, Arch, RuleData};
use agent_testkit::{Fault, Intake};
use support::{all_lines_arrived, delivery, line, Agent, Install};

/// Commands per second the audit generator runs.
const EXEC_RATE: u64 = 10;
/// The one audit rule the agent loads: execs of the marker binary only.
const EXEC_BIN: &str = "/usr/bin/id";
/// A command that started this long before a kill is not required to arrive: its
/// records may still be on their way through the kernel, the agent's socket and its
/// writer when the agent dies.
const KILL_MARGIN: Duration = Duration::from_millis(1_500);

/// Lines per second the generator writes.
const RATE: u64 = 400;
/// The generator rotates the file after this many lines (about every 6 s).
const ROTATE_EVERY: u64 = 2_500;

/// splitmix64: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` (milliseconds, counts).
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// Writes numbered lines at [`RATE`] to `dir/app.log`, renaming it to `app.log.N`
/// (outside the `*.log` glob) and creating a new one every [`ROTATE_EVERY`] lines.
struct Generator {
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
    rotations: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Generator {
    fn start(dir: PathBuf) -> Generator {
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let rotations = Arc::new(AtomicU64::new(0));
        let (s, w, r) = (stop.clone(), written.clone(), rotations.clone());
        let thread = std::thread::spawn(move || {
            let log = dir.join("app.log");
            let open = || {
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .unwrap()
            };
            let mut file = open();
            let start = Instant::now();
            let mut next = 0u64;
            while !s.load(Ordering::Relaxed) {
                let due = (start.elapsed().as_secs_f64() * RATE as f64) as u64;
                let mut buf = Vec::new();
                while next < due {
                    buf.extend_from_slice(&line(next));
                    buf.push(b'\n');
                    next += 1;
                    if next % ROTATE_EVERY == 0 {
                        file.write_all(&buf).unwrap();
                        buf.clear();
                        let n = r.fetch_add(1, Ordering::SeqCst) + 1;
                        std::fs::rename(&log, dir.join(format!("app.log.{n}"))).unwrap();
                        file = open();
                    }
                }
                if !buf.is_empty() {
                    file.write_all(&buf).unwrap();
                }
                w.store(next, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Generator {
            stop,
            written,
            rotations,
            thread: Some(thread),
        }
    }

    /// Stops; every line before the returned number is written.
    fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        (
            self.written.load(Ordering::SeqCst),
            self.rotations.load(Ordering::SeqCst),
        )
    }
}

impl Drop for Generator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A TCP relay between the agent and the intake (TLS passes through untouched): answers
/// can be slowed down, and a connection whose intake is gone is closed at once.
struct SlowLink {
    port: u16,
    delay_ms: Arc<AtomicU64>,
}

impl SlowLink {
    fn start(target: std::net::SocketAddr) -> SlowLink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let delay_ms = Arc::new(AtomicU64::new(0));
        let delay = delay_ms.clone();
        // The accept thread lives as long as the test process.
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(target) else {
                    continue; // dropping `client` closes it: the intake is away
                };
                let pump =
                    |mut from: TcpStream, mut to: TcpStream, delay: Option<Arc<AtomicU64>>| {
                        std::thread::spawn(move || {
                            let mut buf = [0u8; 16 * 1024];
                            loop {
                                let n = match from.read(&mut buf) {
                                    Ok(0) | Err(_) => break,
                                    Ok(n) => n,
                                };
                                if let Some(d) = &delay {
                                    let ms = d.load(Ordering::Relaxed);
                                    if ms > 0 {
                                        std::thread::sleep(Duration::from_millis(ms));
                                    }
                                }
                                if to.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                            let _ = to.shutdown(Shutdown::Both);
                            let _ = from.shutdown(Shutdown::Both);
                        });
                    };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                pump(client, server, None);
                pump(s2, c2, Some(delay.clone()));
            }
        });
        SlowLink { port, delay_ms }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    fn set_delay(&self, ms: u64) {
        self.delay_ms.store(ms, Ordering::Relaxed);
    }
}

/// Holds the kernel audit test lock (shared with the linux-audit kernel tests and the
/// other agent audit tests) and puts the kernel's audit rules and status back as found,
/// on drop: also when an assertion failed, and after killed agents left their rules (or
/// their registration).
struct AuditGuard {
    _file: std::fs::File,
    saved: SavedState,
}

impl AuditGuard {
    fn take() -> AuditGuard {
        use std::os::fd::AsRawFd as _;
        let file = std::fs::File::create("/tmp/agent-linux-audit-kernel-tests.lock").unwrap();
        // SAFETY: flock on a descriptor we own; blocks until other processes release it.
        assert_eq!(unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) }, 0);
        let mut s = AuditSocket::open().expect("open NETLINK_AUDIT (kernel built with audit?)");
        // A killed agent of an earlier run: let the kernel drop it.
        let status = s.clear_stale_daemon().unwrap();
        assert_eq!(
            status.pid, 0,
            "an audit daemon (pid {}) is registered: stop auditd before the soak test",
            status.pid
        );
        AuditGuard {
            _file: file,
            saved: SavedState::capture(&mut s).unwrap(),
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

/// When the agent could collect audit events: registered with the kernel as its audit
/// daemon with the soak rule loaded. Polled every 50 ms by a thread of its own.
struct AuditWatch {
    stop: Arc<AtomicBool>,
    /// (agent pid, first seen registered with the rule loaded)
    up: Arc<std::sync::Mutex<Vec<(u32, Instant)>>>,
    thread: Option<JoinHandle<()>>,
}

impl AuditWatch {
    fn start(rule: RuleData) -> AuditWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let up = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (s, u) = (stop.clone(), up.clone());
        let thread = std::thread::spawn(move || {
            let mut sock = AuditSocket::open().unwrap();
            let mut last = 0;
            while !s.load(Ordering::Relaxed) {
                let now = Instant::now();
                let pid = sock.get_status().map_or(0, |st| st.pid);
                if pid != 0
                    && pid != last
                    && sock.list_rules().is_ok_and(|rules| rules.contains(&rule))
                {
                    u.lock().unwrap().push((pid, now));
                    last = pid;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        AuditWatch {
            stop,
            up,
            thread: Some(thread),
        }
    }

    /// Since when `pid` was up, if it was seen up.
    fn up_since(&self, pid: u32) -> Option<Instant> {
        self.up
            .lock()
            .unwrap()
            .iter()
            .find(|(p, _)| *p == pid)
            .map(|(_, t)| *t)
    }
}

impl Drop for AuditWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs `EXEC_BIN <marker>-<n>` at [`EXEC_RATE`]; remembers when each one ran.
struct Execs {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<(Instant, Instant)>>>,
}

impl Execs {
    fn start(marker: String) -> Execs {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut ran = Vec::new();
            let start = Instant::now();
            while !s.load(Ordering::Relaxed) {
                let due = (start.elapsed().as_secs_f64() * EXEC_RATE as f64) as usize;
                while ran.len() < due {
                    let t0 = Instant::now();
                    // `id` of a user that does not exist: it fails, but it was executed.
                    let _ = std::process::Command::new(EXEC_BIN)
                        .arg(format!("{marker}-{}", ran.len()))
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .status();
                    ran.push((t0, Instant::now()));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            ran
        });
        Execs {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<(Instant, Instant)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Execs {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The command numbers of the process-created events of our marker, one per copy.
fn exec_numbers(records: &[agent_testkit::Record], marker: &str) -> Vec<(usize, usize)> {
    let prefix = format!("{EXEC_BIN} {marker}-");
    records
        .iter()
        .filter(|r| r.key == support::AGENT_KEY)
        .filter_map(|r| Some((r.request, r.json()?)))
        .filter(|(_, j)| j["event"]["action"] == "process-created")
        .filter_map(|(request, j)| {
            let cmd = j["process"]["command_line"].as_str()?;
            Some((request, cmd.strip_prefix(&prefix)?.parse().ok()?))
        })
        .collect()
}

/// A record of ours as the accounting knows it: (a log line?, line or command number).
type Key = (bool, u64);

/// What the killed agent's ring held unacknowledged: the records after the persisted
/// acknowledgement (`ack`: magic, seq, segment, offset, CRC; frames: length u32, seq u64,
/// payload CRC u32, header CRC u32, payload). Read from the files while the agent is
/// down, without opening the ring (which would recover and start a segment of its own).
/// Exactly the records that a restart sends again: those of unacknowledged batches and
/// those not sent yet.
fn unacked_in_ring(ring: &std::path::Path, marker: &str) -> std::collections::HashSet<Key> {
    let acked = std::fs::read(ring.join("ack"))
        .ok()
        .filter(|b| b.len() == 32 && &b[0..4] == b"RACK")
        .map(|b| u64::from_le_bytes(b[4..12].try_into().unwrap()));
    let mut segments: Vec<PathBuf> = std::fs::read_dir(ring)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "seg"))
                .collect()
        })
        .unwrap_or_default();
    segments.sort();
    let prefix = format!("{EXEC_BIN} {marker}-");
    let mut keys = std::collections::HashSet::new();
    for seg in segments {
        let bytes = std::fs::read(&seg).unwrap_or_default();
        let mut at = 0;
        while at + 20 <= bytes.len() {
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            let seq = u64::from_le_bytes(bytes[at + 4..at + 12].try_into().unwrap());
            if len == 0 && seq == 0 {
                break; // preallocated, never written
            }
            let Some(payload) = bytes.get(at + 20..at + 20 + len) else {
                break; // torn tail
            };
            at += 20 + len;
            if acked.is_some_and(|a| seq <= a) {
                continue;
            }
            let Ok(rec) = agent_pipeline::RoutedRecord::decode(payload) else {
                continue;
            };
            match rec.kind {
                agent_pipeline::RecordKind::LogLine => {
                    if let Some(n) = support::seq_of(rec.payload) {
                        keys.insert((true, n));
                    }
                }
                agent_pipeline::RecordKind::Event => {
                    let n = serde_json::from_slice::<serde_json::Value>(rec.payload)
                        .ok()
                        .and_then(|j| {
                            j["process"]["command_line"]
                                .as_str()?
                                .strip_prefix(&prefix)?
                                .parse()
                                .ok()
                        });
                    if let Some(n) = n {
                        keys.insert((false, n));
                    }
                }
            }
        }
    }
    keys
}

#[derive(Debug, Default)]
struct Injected {
    kills: u64,
    status_503: u64,
    status_429: u64,
    resets: u64,
    outages: u64,
    slow: u64,
}

#[test]
fn soak_lines_survive_random_intake_faults_kills_and_rotation() {
    let seed = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    println!("soak: seed {seed} (replay with SOAK_SEED={seed}), {secs} s of faults");
    let mut rng = Rng(seed);

    // SAFETY: geteuid has no preconditions.
    let audit = unsafe { libc::geteuid() } == 0;
    if !audit {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the soak test's audit part needs root (CI runs the tests as root)"
        );
        println!("soak: not root: no audit events in this run");
    }
    let rule_text = format!("-a always,exit -F arch=b64 -S execve -F exe={EXEC_BIN}");
    // Declared before the agents: dropped after them, so the agents are dead by then.
    let _audit_guard = audit.then(AuditGuard::take);
    let lost_before = audit.then(|| AuditSocket::open().unwrap().get_status().unwrap().lost);
    let watch = audit.then(|| {
        let arch = Arch::native().expect("x86_64 or aarch64");
        AuditWatch::start(compile(&rule_text, arch).unwrap())
    });
    let marker = format!("soak{}x{}", std::process::id(), seed % 100_000);

    let mut intake = Intake::start().unwrap();
    let link = SlowLink::start(intake.addr());
    let install = Install::with_audit(&link.url(), audit.then_some(rule_text.as_str()));
    let mut agent: Option<Agent> = Some(install.spawn(&intake));
    install.wait_ready(agent.as_ref().unwrap());
    // (agent pid, killed at)
    let mut lives: Vec<(u32, Option<Instant>)> = vec![(agent.as_ref().unwrap().child.id(), None)];
    let generator = Generator::start(install.watched.clone());
    let execs = audit.then(|| Execs::start(marker.clone()));

    let mut injected = Injected::default();
    // Per kill: what the ring held unacknowledged when the agent died.
    let mut unacked: Vec<std::collections::HashSet<Key>> = Vec::new();
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(rng.range(1_000, 4_000)));
        match rng.range(0, 10) {
            0..=2 => {
                // SIGKILL, down for a moment (the service manager's restart delay).
                if let Some(mut a) = agent.take() {
                    if let Some(life) = lives.last_mut() {
                        life.1 = Some(Instant::now());
                    }
                    a.kill9();
                    injected.kills += 1;
                    unacked.push(unacked_in_ring(&install.state.join("ring"), &marker));
                }
                std::thread::sleep(Duration::from_millis(rng.range(100, 2_500)));
                let a = install.spawn(&intake);
                lives.push((a.child.id(), None));
                agent = Some(a);
            }
            3 | 4 => {
                let (fault, counter) = if rng.range(0, 2) == 0 {
                    (Fault::Status(503), &mut injected.status_503)
                } else {
                    (Fault::Status(429), &mut injected.status_429)
                };
                *counter += 1;
                intake.set_fault(fault);
                std::thread::sleep(Duration::from_millis(rng.range(500, 4_000)));
                intake.set_fault(Fault::None);
            }
            5 => {
                injected.resets += 1;
                intake.set_fault(Fault::Reset);
                std::thread::sleep(Duration::from_millis(rng.range(500, 3_000)));
                intake.set_fault(Fault::None);
            }
            6 | 7 => {
                // Connection refused: the intake is gone for a while.
                injected.outages += 1;
                intake.stop();
                std::thread::sleep(Duration::from_millis(rng.range(1_000, 6_000)));
                intake.restart().unwrap();
            }
            8 => {
                // Slow answers: each chunk of the intake's response is held back.
                injected.slow += 1;
                link.set_delay(rng.range(200, 2_000));
                std::thread::sleep(Duration::from_millis(rng.range(1_000, 5_000)));
                link.set_delay(0);
            }
            _ => {} // a quiet spell
        }
    }

    // Calm: no fault, the agent running; every line written must arrive.
    intake.set_fault(Fault::None);
    link.set_delay(0);
    if !intake.is_running() {
        intake.restart().unwrap();
    }
    let (total, rotations) = generator.finish();
    let ran = execs.map(Execs::finish).unwrap_or_default();
    let mut agent = agent.unwrap_or_else(|| install.spawn(&intake));
    let arrived = all_lines_arrived(&intake, total, Duration::from_secs(60));

    // Audit: which commands ran while the agent was up (registered, rule loaded, not
    // about to be killed): those must arrive.
    let must: Vec<bool> = ran
        .iter()
        .map(|&(t0, t1)| {
            lives.iter().any(|&(pid, killed)| {
                let since = watch.as_ref().and_then(|w| w.up_since(pid));
                since.is_some_and(|since| {
                    since <= t0 && killed.is_none_or(|k| t1 + KILL_MARGIN <= k)
                })
            })
        })
        .collect();
    let events_arrived = intake.wait_until(Duration::from_secs(60), |recs| {
        let mut got = vec![false; ran.len()];
        for (_, n) in exec_numbers(recs, &marker) {
            if let Some(g) = got.get_mut(n) {
                *g = true;
            }
        }
        must.iter().zip(&got).all(|(&m, &g)| !m || g)
    });
    drop(watch);
    let records = intake.records();
    let d = delivery(&records, total);
    let exit = agent.stop();
    println!(
        "soak: {total} lines written ({} s of faults, {rotations} rotations), {injected:?}",
        secs
    );
    println!(
        "soak: {} received, {} missing, {} duplicates ({} lines repeated), {} requests",
        records.len(),
        d.missing.len(),
        d.duplicates,
        d.duplicated.len(),
        intake.requests().len()
    );
    // Where the duplicates are: runs of consecutive repeated lines, one per crash or so.
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for &s in &d.duplicated {
        match runs.last_mut() {
            Some((start, len)) if *start + *len == s => *len += 1,
            _ => runs.push((s, 1)),
        }
    }
    println!(
        "soak: duplicate runs (first line, length): {:?}{}",
        &runs[..runs.len().min(20)],
        if runs.len() > 20 { " ..." } else { "" }
    );
    assert!(intake.violations().is_empty(), "{:?}", intake.violations());
    assert!(
        d.foreign.is_empty(),
        "foreign payloads: {:?}",
        &d.foreign[..d.foreign.len().min(3)]
    );
    assert!(
        arrived && d.missing.is_empty(),
        "seed {seed}: {} lines LOST (first {:?})\n{}",
        d.missing.len(),
        &d.missing[..d.missing.len().min(20)],
        agent.diagnostics()
    );
    // Audit events: copies per command.
    let copies = exec_numbers(&records, &marker);
    let mut count = vec![0usize; ran.len()];
    for &(_, n) in &copies {
        if let Some(c) = count.get_mut(n) {
            *c += 1;
        }
    }
    let must_missing: Vec<usize> = (0..ran.len())
        .filter(|&n| must[n] && count[n] == 0)
        .collect();
    let window = must.iter().filter(|&&m| !m).count();
    let window_delivered = (0..ran.len()).filter(|&n| !must[n] && count[n] > 0).count();
    let event_dups: usize = count.iter().map(|&c| c.saturating_sub(1)).sum();
    let lost_after = audit.then(|| AuditSocket::open().unwrap().get_status().unwrap().lost);
    if audit {
        println!(
            "soak: audit: {} commands run, {} while the agent was up ({} of them missing), {window} around kills or before the first start ({window_delivered} delivered, {} not: may be lost), {event_dups} duplicate events; kernel lost counter {:?} -> {:?}",
            ran.len(),
            ran.len() - window,
            must_missing.len(),
            window - window_delivered,
            lost_before,
            lost_after
        );
    }

    // Duplicate copies (lines and events). A copy whose previous copy arrived before a
    // kill (and itself after it) was sent again after that kill: it must have been
    // unacknowledged in the ring when the agent died (the batches sent, not acknowledged).
    // A log line the tailer read again after the kill would not be: it was acknowledged.
    // Copies within one life are the tailer delivery a kill interrupted (read again after
    // the restart), or requests whose answer was lost to a slow spell or an outage.
    let transport = agent_transport::TransportConfig::new("https://127.0.0.1:1".parse().unwrap());
    let in_flight = transport.batch_max_events * transport.max_in_flight.max(1);
    let tailer = usize::try_from(agent_logfile::Options::default().duplicate_bound()).unwrap();
    let arrival: std::collections::HashMap<usize, Instant> =
        intake.requests().iter().map(|r| (r.index, r.at)).collect();
    let kills: Vec<Instant> = lives.iter().filter_map(|l| l.1).collect();
    let life_of = |req: usize| {
        arrival
            .get(&req)
            .map_or(0, |&at| kills.iter().filter(|&&k| k <= at).count())
    };
    let mut keyed: Vec<(usize, Key)> = records
        .iter()
        .filter(|r| r.key == support::LINES_KEY)
        .filter_map(|r| Some((r.request, (true, support::seq_of(&r.payload)?))))
        .chain(copies.iter().map(|&(req, n)| (req, (false, n as u64))))
        .collect();
    keyed.sort_by_key(|&(req, _)| req);
    let mut resent_per_kill = vec![0usize; kills.len()];
    let mut within_life = 0usize;
    let mut not_unacked: Vec<(Key, usize)> = Vec::new();
    let mut last_copy: std::collections::HashMap<Key, usize> = Default::default();
    for &(req, key) in &keyed {
        if let Some(prev) = last_copy.insert(key, req) {
            let (lp, lc) = (life_of(prev), life_of(req));
            if lp < lc {
                // Sent again after kill number `lp` (the first kill after the previous copy).
                resent_per_kill[lp] += 1;
                if !unacked[lp].contains(&key) {
                    not_unacked.push((key, lp));
                }
            } else {
                within_life += 1;
            }
        }
    }
    println!(
        "soak: duplicates sent again after each kill: {resent_per_kill:?} (records unacknowledged in the ring at each kill: {:?}); duplicates within one life: {within_life}",
        unacked.iter().map(|u| u.len()).collect::<Vec<_>>()
    );
    assert!(
        must_missing.is_empty() && events_arrived,
        "seed {seed}: {} audit events of commands run while the agent was up are LOST (first {:?})\n{}",
        must_missing.len(),
        &must_missing[..must_missing.len().min(20)],
        agent.diagnostics()
    );
    assert!(
        not_unacked.is_empty(),
        "seed {seed}: {} copies sent again after a kill that the ring had acknowledged before it ((log line?, number), kill): {:?}",
        not_unacked.len(),
        &not_unacked[..not_unacked.len().min(10)]
    );
    // What one kill may repeat: the requests in flight (sent, not acknowledged: up to
    // `max_in_flight` batches) and the one tailer delivery the agent may die in before
    // journalling it. A slow spell or an outage may repeat the requests in flight.
    let kills_n = usize::try_from(injected.kills).unwrap();
    let slow_n = usize::try_from(injected.slow + injected.outages).unwrap();
    let bound = kills_n * (in_flight + tailer) + slow_n * in_flight;
    let all_dups = d.duplicates + event_dups;
    println!(
        "soak: {all_dups} duplicates in all; bound {bound} ({kills_n} kills x ({in_flight} in flight + {tailer} tailer delivery) + {slow_n} slow spells and outages x {in_flight})"
    );
    assert!(
        within_life <= kills_n * tailer + slow_n * in_flight,
        "seed {seed}: {within_life} duplicates within one life of the agent (bound: {kills_n} kills x {tailer} + {slow_n} slow spells and outages x {in_flight})"
    );
    assert!(
        all_dups <= bound,
        "seed {seed}: {all_dups} duplicates for {} kills, {} slow spells and {} outages (bound {bound})",
        injected.kills,
        injected.slow,
        injected.outages
    );
    assert!(exit.success(), "{}", agent.diagnostics());
}
