//! The Linux audit collector the agent starts: rules loaded, a reader thread turning audit
//! events into dialect events on a channel, counters, and an orderly stop.
//!
//! - Rules: `rules/default.rules` compiled into the binary, or a user file. Each rule is
//!   compiled for the running machine on its own; a rule that does not compile, or a watch
//!   (`-w`, `-F path=`, `-F dir=`) whose parent directory is missing on this host, is
//!   skipped and reported in [`Collector::skipped_rules`] instead of failing the start.
//!   Control lines (`-D`, `-b`, `-e` ...) are skipped too: the session owns that state.
//!   If the kernel still refuses a rule at start, each rule is tried alone (added and at
//!   once deleted), the refused ones are skipped, and the session starts with the rest. A
//!   rule refused for its `saddr_fam` field (kernels before 5.3) is loaded without it
//!   instead ([`Collector::degraded_rules`]).
//! - Beside another audit daemon (auditd registered for the unicast stream), the collector
//!   joins the multicast group instead of failing ([`Collector::mode`] is then
//!   `multicast beside auditd`, also set as the collector report's mode): its rules are
//!   added beside the daemon's and removed at stop, the daemon's registration, backlog and
//!   rate limits are left alone, and no `never` rule hides the agent from the daemon's log.
//! - The agent's own activity: in unicast mode the session loads
//!   `-a never,exit -F pid=<own pid>` before every other rule (`SessionConfig::exclude_self`
//!   is forced on), so neither the hashing reads nor the agent's network traffic produce
//!   events; the normalizer also drops any event of our pid (all of them in multicast mode).
//! - The reader thread never blocks on anything but the netlink socket: events go out with
//!   `try_send` (a full channel counts a drop), files are hashed by an
//!   [`agent_host::HashWorker`] thread; a file event waits for its hash result at most
//!   [`CollectorConfig::hash_wait`] (then goes out without hashes), other events are not
//!   held back, so file events may come out slightly after later events.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use agent_event::Event;
use agent_host::{FileHasher, HashOutcome, HashPolicy, HashResult, HashWorker};
use agent_pipeline::Sink;
use crossbeam_channel::Receiver;

use crate::netlink::NetlinkError;
use crate::normalize::{apply_hashes, Normalized, Normalizer, Skip};
use crate::proctable::{Limits, ProcTable};
use crate::rule::{compile, split_args, Arch, RuleData};
use crate::session::{AuditSession, SessionConfig};
use crate::AuditEvent;

/// The default rule set (see `docs/linux-audit-rules.md`).
pub const DEFAULT_RULES: &str = include_str!("../rules/default.rules");

/// Where the rules come from.
#[derive(Debug, Clone, Default)]
pub enum RulesSource {
    /// [`DEFAULT_RULES`].
    #[default]
    Default,
    /// A rule file of the user's, replacing the default set.
    File(PathBuf),
    /// Rule text (tests, or a config that embeds rules).
    Text(String),
}

/// Collector settings.
#[derive(Debug, Clone)]
pub struct CollectorConfig {
    /// The rules.
    pub rules: RulesSource,
    /// Session settings (`exclude_self` is always turned on).
    pub session: SessionConfig,
    /// Which files are hashed (excluded paths, size limit).
    pub hash_policy: HashPolicy,
    /// Hash cache entries.
    pub hash_cache: usize,
    /// Hash jobs that may wait; beyond that file events go out without hashes.
    pub hash_queue: usize,
    /// How long a file event waits for its hashes.
    pub hash_wait: Duration,
    /// Process table bounds.
    pub proc_limits: Limits,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            rules: RulesSource::Default,
            session: SessionConfig::default(),
            hash_policy: HashPolicy::new(Vec::<PathBuf>::new(), 64 * 1024 * 1024),
            hash_cache: 4096,
            hash_queue: 256,
            hash_wait: Duration::from_secs(2),
            proc_limits: Limits::default(),
        }
    }
}

/// Why the collector could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    /// The rule file could not be read.
    #[error("reading audit rules {path}: {source}")]
    RulesFile {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// This machine's architecture has no syscall table.
    #[error("unsupported architecture {0} for audit rules")]
    UnsupportedArch(&'static str),
    /// The audit session failed (netlink, conflict with auditd, ...).
    #[error("audit session: {0}")]
    Session(#[from] NetlinkError),
    /// A thread could not be started.
    #[error("starting a collector thread: {0}")]
    Thread(std::io::Error),
    /// The reader thread panicked.
    #[error("the audit reader thread panicked")]
    ReaderPanicked,
}

/// A rule that was not loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRule {
    /// 1-based line in the rule text.
    pub line: usize,
    /// The rule text.
    pub text: String,
    /// Why.
    pub reason: String,
}

/// Counters of a running collector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CollectorStats {
    /// Records received from the kernel.
    pub records: u64,
    /// Reassembled audit events.
    pub audit_events: u64,
    /// Dialect events sent on the channel.
    pub emitted: u64,
    /// Dialect events dropped because the channel was full.
    pub dropped: u64,
    /// Audit events that map to no dialect event (or are the agent's own).
    pub unmapped: u64,
    /// File events sent without hashes because hashing was refused, skipped or too slow.
    pub unhashed: u64,
    /// Records the kernel lost since the start.
    pub kernel_lost: u64,
    /// Serial gaps seen by reassembly (records lost before reaching us).
    pub serial_gaps: u64,
    /// Records that did not parse.
    pub parse_errors: u64,
}

#[derive(Debug, Default)]
struct Shared {
    records: AtomicU64,
    audit_events: AtomicU64,
    unmapped: AtomicU64,
    unhashed: AtomicU64,
    kernel_lost: AtomicU64,
    serial_gaps: AtomicU64,
    parse_errors: AtomicU64,
}

impl Shared {
    fn snapshot(&self, report: &agent_pipeline::Report) -> CollectorStats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CollectorStats {
            records: l(&self.records),
            audit_events: l(&self.audit_events),
            emitted: report.produced(),
            dropped: report.dropped(),
            unmapped: l(&self.unmapped),
            unhashed: l(&self.unhashed),
            kernel_lost: l(&self.kernel_lost),
            serial_gaps: l(&self.serial_gaps),
            parse_errors: l(&self.parse_errors),
        }
    }
}

/// A running collector; see the module documentation.
#[derive(Debug)]
pub struct Collector {
    mode: String,
    beside: Option<agent_os::audit_consumers::AuditConsumer>,
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    report: Arc<agent_pipeline::Report>,
    thread: Option<JoinHandle<Result<(), NetlinkError>>>,
    skipped: Vec<SkippedRule>,
    degraded: Vec<SkippedRule>,
    loaded: usize,
}

/// Compiles rule text for `arch`, one line at a time, skipping what cannot load here.
pub fn compile_rules(text: &str, arch: Arch) -> (Vec<RuleData>, Vec<SkippedRule>) {
    let (rules, skipped) = compile_lines(text, arch);
    (rules.into_iter().map(|(_, data)| data).collect(), skipped)
}

/// [`compile_rules`], keeping each rule's line and text for later reports (the reason of a
/// compiled rule is empty).
pub fn compile_lines(text: &str, arch: Arch) -> (Vec<(SkippedRule, RuleData)>, Vec<SkippedRule>) {
    let mut rules = Vec::new();
    let mut skipped = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let skip = |reason: String| SkippedRule {
            line: i + 1,
            text: t.to_owned(),
            reason,
        };
        let tokens = match split_args(t) {
            Ok(tokens) => tokens,
            Err(e) => {
                skipped.push(skip(e.to_string()));
                continue;
            }
        };
        if !matches!(tokens.first().map(String::as_str), Some("-a" | "-A" | "-w")) {
            skipped.push(skip(
                "control line: the collector manages audit status".into(),
            ));
            continue;
        }
        if let Some(dir) = missing_watch_parent(&tokens) {
            skipped.push(skip(format!(
                "directory {} does not exist on this host",
                dir.display()
            )));
            continue;
        }
        match compile(t, arch) {
            Ok(r) => rules.push((skip(String::new()), r)),
            Err(e) => skipped.push(skip(e.to_string())),
        }
    }
    (rules, skipped)
}

/// The parent directory of a watched path that the kernel would refuse because it is
/// missing (`-w /x/y`, `-F path=/x/y`, `-F dir=/x/y`).
fn missing_watch_parent(tokens: &[String]) -> Option<PathBuf> {
    let mut watched = Vec::new();
    let mut it = tokens.iter();
    while let Some(t) = it.next() {
        match t.as_str() {
            "-w" => watched.extend(it.next().cloned()),
            "-F" => {
                if let Some(f) = it.next() {
                    if let Some(p) = f.strip_prefix("path=").or_else(|| f.strip_prefix("dir=")) {
                        watched.push(p.to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    watched.into_iter().find_map(|p| {
        let parent = Path::new(&p).parent()?.to_path_buf();
        (!parent.as_os_str().is_empty() && !parent.is_dir()).then_some(parent)
    })
}

/// The audit daemon registered for the unicast stream, if another live process is:
/// then the collector runs in multicast mode beside it.
fn daemon_beside() -> Result<Option<agent_os::audit_consumers::AuditConsumer>, CollectorError> {
    let mut ctl = crate::netlink::AuditSocket::open()?;
    let status = ctl.get_status()?;
    Ok(crate::netlink::detect_conflicts(&status)
        .into_iter()
        .find(|c| {
            c.kind == agent_os::audit_consumers::ConsumerKind::AuditDaemon
                && c.pid != Some(std::process::id())
        }))
}

/// `AUDIT_SADDR_FAM`: the socket address family field (Linux 5.3+, auditctl 3.0+).
const FIELD_SADDR_FAM: u32 = 113;

/// Adds and removes rules on the kernel; the real one is the audit socket, tests can
/// refuse what an old kernel would.
pub trait RuleLoader {
    /// Adds a rule.
    fn add_rule(&mut self, rule: &RuleData) -> Result<(), NetlinkError>;
    /// Deletes a rule.
    fn delete_rule(&mut self, rule: &RuleData) -> Result<(), NetlinkError>;
}

impl RuleLoader for crate::netlink::AuditSocket {
    fn add_rule(&mut self, rule: &RuleData) -> Result<(), NetlinkError> {
        crate::netlink::AuditSocket::add_rule(self, rule)
    }
    fn delete_rule(&mut self, rule: &RuleData) -> Result<(), NetlinkError> {
        crate::netlink::AuditSocket::delete_rule(self, rule)
    }
}

/// `text` without its `-F saddr_fam=N` comparisons, compiled for `arch`.
fn without_saddr_fam(text: &str, arch: Arch) -> Option<RuleData> {
    let tokens = split_args(text).ok()?;
    let mut kept: Vec<String> = Vec::with_capacity(tokens.len());
    let mut it = tokens.into_iter().peekable();
    while let Some(t) = it.next() {
        if t == "-F" && it.peek().is_some_and(|f| f.starts_with("saddr_fam")) {
            it.next();
            continue;
        }
        kept.push(if t.contains(char::is_whitespace) {
            format!("\"{t}\"")
        } else {
            t
        });
    }
    compile(&kept.join(" "), arch).ok()
}

/// Tries each rule alone on the kernel (adding then at once deleting it) and removes from
/// `rules` those the kernel refuses, returned as skipped. A rule refused because of its
/// `saddr_fam` field (kernels before 5.3, such as RHEL/CentOS 7's 3.10) is retried without
/// it — more events (unix and netlink sockets too) rather than none — and the duplicate
/// that leaves (the IPv4 and IPv6 rules differ only by that field) is dropped. Only run
/// after a start failed, so the common path never adds a rule twice.
pub fn probe_rules(
    loader: &mut dyn RuleLoader,
    rules: &mut Vec<(SkippedRule, RuleData)>,
    arch: Arch,
) -> Result<Vec<SkippedRule>, CollectorError> {
    let mut refused = Vec::new();
    let mut kept: Vec<(SkippedRule, RuleData)> = Vec::new();
    for (mut info, data) in rules.drain(..) {
        let mut candidate = data;
        let mut degraded = false;
        loop {
            match loader.add_rule(&candidate) {
                Ok(()) => {
                    loader.delete_rule(&candidate)?;
                }
                // Already loaded by someone else: loadable, and not ours to delete.
                Err(NetlinkError::Kernel { errno, .. }) if errno == libc::EEXIST => {}
                Err(NetlinkError::Kernel { errno, .. }) => {
                    if !degraded && candidate.has_field(FIELD_SADDR_FAM) {
                        if let Some(d) = without_saddr_fam(&info.text, arch) {
                            candidate = d;
                            degraded = true;
                            continue;
                        }
                    }
                    info.reason = format!(
                        "refused by the kernel: {}",
                        std::io::Error::from_raw_os_error(errno)
                    );
                    refused.push(info);
                    break;
                }
                Err(e) => return Err(e.into()),
            }
            if degraded {
                info.reason = "loaded without saddr_fam (this kernel does not know the field): \
                               unix and netlink sockets are logged too"
                    .to_owned();
            }
            if !kept.iter().any(|(_, k)| *k == candidate) {
                kept.push((info, candidate));
            }
            break;
        }
    }
    *rules = kept;
    Ok(refused)
}

impl Collector {
    /// Loads the rules, starts the session and the reader thread sending to `sink`
    /// (which should drop rather than wait: a stalled reader makes the kernel lose records).
    pub fn start(cfg: CollectorConfig, sink: Sink) -> Result<Collector, CollectorError> {
        let arch = Arch::native().ok_or(CollectorError::UnsupportedArch(std::env::consts::ARCH))?;
        let text = match &cfg.rules {
            RulesSource::Default => DEFAULT_RULES.to_owned(),
            RulesSource::Text(t) => t.clone(),
            RulesSource::File(p) => {
                std::fs::read_to_string(p).map_err(|source| CollectorError::RulesFile {
                    path: p.clone(),
                    source,
                })?
            }
        };
        let (mut rules, mut skipped) = compile_lines(&text, arch);
        let mut degraded = Vec::new();
        let mut session_cfg = cfg.session.clone();
        session_cfg.exclude_self = true;
        // Another process (auditd, usually) owns the unicast stream: run beside it.
        let beside = match session_cfg.mode {
            crate::session::Mode::Unicast => daemon_beside()?,
            crate::session::Mode::Multicast => None,
        };
        if beside.is_some() {
            session_cfg.mode = crate::session::Mode::Multicast;
            // The daemon's settings rule: its backlog and rate limits stay as they are.
            session_cfg.backlog_limit = None;
            session_cfg.rate_limit = None;
            // No `never` rule for our pid: it would hide the agent from the daemon's log
            // too. The normalizer drops our own events instead.
            session_cfg.exclude_self = false;
        }
        let mode = match (&beside, session_cfg.mode) {
            (Some(d), _) => format!("multicast beside {}", d.what),
            (None, crate::session::Mode::Multicast) => "multicast".to_owned(),
            (None, crate::session::Mode::Unicast) => "unicast".to_owned(),
        };
        sink.report().set_mode(mode.clone());
        let (worker, hashes) = HashWorker::spawn(
            FileHasher::new(cfg.hash_policy.clone(), cfg.hash_cache),
            cfg.hash_queue,
        )
        .map_err(CollectorError::Thread)?;
        let mut procs = ProcTable::new(agent_host::boot_id().unwrap_or_default(), cfg.proc_limits);
        procs.scan();
        let normalizer = Normalizer::new(procs).exclude_pid(std::process::id());
        let data: Vec<RuleData> = rules.iter().map(|(_, d)| d.clone()).collect();
        let session = match AuditSession::start(&session_cfg, &data) {
            Ok(s) => s,
            // A rule this kernel refuses (the session undid everything): find which, skip
            // them, and start again with the rest.
            Err(NetlinkError::Kernel { .. }) => {
                let mut sock = crate::netlink::AuditSocket::open()?;
                skipped.extend(probe_rules(&mut sock, &mut rules, arch)?);
                degraded = rules
                    .iter()
                    .filter(|(info, _)| !info.reason.is_empty())
                    .map(|(info, _)| info.clone())
                    .collect();
                let data: Vec<RuleData> = rules.iter().map(|(_, d)| d.clone()).collect();
                AuditSession::start(&session_cfg, &data)?
            }
            Err(e) => return Err(e.into()),
        };
        let loaded = session.added_rules().len();
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared::default());
        let report = Arc::clone(sink.report());
        let mut reader = Reader {
            session: Some(session),
            normalizer,
            worker,
            hashes,
            sink,
            pending: HashMap::new(),
            next_id: 0,
            hash_wait: cfg.hash_wait,
            shared: Arc::clone(&shared),
        };
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("linux-audit".into())
            .spawn(move || {
                let result = reader.run(&stop2);
                if let Err(e) = &result {
                    reader
                        .sink
                        .report()
                        .fail(format_args!("the audit reader stopped: {e}"));
                }
                result
            })
            .map_err(CollectorError::Thread)?;
        Ok(Collector {
            mode,
            beside,
            stop,
            shared,
            report,
            thread: Some(thread),
            skipped,
            degraded,
            loaded,
        })
    }

    /// Rules that were not loaded, with the reason (to log as warnings).
    pub fn skipped_rules(&self) -> &[SkippedRule] {
        &self.skipped
    }

    /// How events are received: `unicast` (the agent is the audit daemon), or `multicast
    /// beside auditd` when another daemon owns the stream (also in the collector report).
    pub fn mode(&self) -> &str {
        &self.mode
    }

    /// The audit daemon the collector runs beside, if any.
    pub fn beside(&self) -> Option<&agent_os::audit_consumers::AuditConsumer> {
        self.beside.as_ref()
    }

    /// Rules loaded in a weaker form than written, with how (`saddr_fam` dropped on a
    /// kernel without the field), to log as warnings.
    pub fn degraded_rules(&self) -> &[SkippedRule] {
        &self.degraded
    }

    /// How many rules the session loaded (including the self-exclusion rule).
    pub fn loaded_rules(&self) -> usize {
        self.loaded
    }

    /// The counters now (the kernel's lost count is refreshed about once a second).
    pub fn stats(&self) -> CollectorStats {
        self.shared.snapshot(&self.report)
    }

    /// Whether the reader thread still runs (it ends on a netlink error).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops the reader, unloads our rules and restores the audit status found at start;
    /// returns the final counters.
    pub fn stop(mut self) -> Result<CollectorStats, CollectorError> {
        self.finish()?;
        Ok(self.shared.snapshot(&self.report))
    }

    fn finish(&mut self) -> Result<(), CollectorError> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(JoinHandle::join) {
            None => Ok(()),
            Some(Ok(r)) => r.map_err(CollectorError::from),
            Some(Err(_)) => Err(CollectorError::ReaderPanicked),
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// How long one `recv` waits while work is in flight (events being reassembled, file events
/// waiting for their hashes): bounds how late such an event leaves.
const RECV_SLICE: Duration = Duration::from_millis(50);
/// How long one `recv` waits when nothing is in flight: bounds the stop latency while
/// keeping an idle collector to two wake-ups a second.
const IDLE_RECV_SLICE: Duration = Duration::from_millis(500);
/// How often the kernel's lost counter is read.
const STATUS_EVERY: Duration = Duration::from_secs(1);

struct Reader {
    session: Option<AuditSession>,
    normalizer: Normalizer,
    worker: HashWorker,
    hashes: Receiver<HashResult>,
    sink: Sink,
    pending: HashMap<u64, (Instant, Event)>,
    next_id: u64,
    hash_wait: Duration,
    shared: Arc<Shared>,
}

impl Reader {
    fn run(&mut self, stop: &AtomicBool) -> Result<(), NetlinkError> {
        let result = self.pump(stop);
        let flushed = match self.session.take() {
            Some(s) => s.stop(),
            None => Ok(Vec::new()),
        };
        let flushed_ok = match flushed {
            Ok(evs) => {
                self.handle(&evs);
                Ok(())
            }
            Err(e) => Err(e),
        };
        // Give pending file events a last short chance at their hashes.
        let deadline = Instant::now() + Duration::from_millis(200).min(self.hash_wait);
        while !self.pending.is_empty() && Instant::now() < deadline {
            self.drain_hashes(Some(Duration::from_millis(20)));
        }
        let rest: Vec<_> = self.pending.drain().map(|(_, (_, e))| e).collect();
        for e in rest {
            self.shared.unhashed.fetch_add(1, Ordering::Relaxed);
            self.emit(e);
        }
        result.and(flushed_ok)
    }

    fn pump(&mut self, stop: &AtomicBool) -> Result<(), NetlinkError> {
        let mut last_status = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let Some(session) = self.session.as_mut() else {
                return Ok(());
            };
            let slice = if self.pending.is_empty() && session.in_flight() == 0 {
                IDLE_RECV_SLICE
            } else {
                RECV_SLICE
            };
            let evs = session.recv(slice)?;
            self.handle(&evs);
            self.drain_hashes(None);
            self.expire_pending();
            if last_status.elapsed() >= STATUS_EVERY {
                last_status = Instant::now();
                self.refresh_session_stats();
            }
        }
        self.refresh_session_stats();
        Ok(())
    }

    fn refresh_session_stats(&mut self) {
        if let Some(s) = self.session.as_mut() {
            let st = s.stats();
            self.shared
                .kernel_lost
                .store(u64::from(st.kernel_lost), Ordering::Relaxed);
            self.sink
                .report()
                .set_source_lost(u64::from(st.kernel_lost) + st.reassembly.lost);
            self.shared
                .serial_gaps
                .store(st.reassembly.lost, Ordering::Relaxed);
            self.shared
                .records
                .store(st.reassembly.records, Ordering::Relaxed);
            self.shared
                .parse_errors
                .store(st.parse_errors, Ordering::Relaxed);
        }
    }

    fn handle(&mut self, evs: &[AuditEvent]) {
        for ev in evs {
            self.shared.audit_events.fetch_add(1, Ordering::Relaxed);
            match self.normalizer.normalize(ev) {
                Ok(Normalized::Ready(e)) => self.emit(e),
                Ok(Normalized::NeedsHash { event, path }) => {
                    let id = self.next_id;
                    self.next_id += 1;
                    match self.worker.submit(id, path) {
                        Ok(()) => {
                            self.pending
                                .insert(id, (Instant::now() + self.hash_wait, event));
                        }
                        Err(_) => {
                            self.shared.unhashed.fetch_add(1, Ordering::Relaxed);
                            self.emit(event);
                        }
                    }
                }
                Err(Skip::Unmapped | Skip::OwnActivity | Skip::Context) => {
                    self.shared.unmapped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Attaches arrived hash results to their events and emits them.
    fn drain_hashes(&mut self, wait: Option<Duration>) {
        let first = match wait {
            Some(w) => self.hashes.recv_timeout(w).ok(),
            None => self.hashes.try_recv().ok(),
        };
        let mut next = first;
        while let Some(r) = next {
            if let Some((_, mut e)) = self.pending.remove(&r.id) {
                match &r.outcome {
                    HashOutcome::Hashed { hashes, .. } => apply_hashes(&mut e, hashes),
                    HashOutcome::Skipped(_) => {
                        self.shared.unhashed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                self.emit(e);
            }
            next = self.hashes.try_recv().ok();
        }
    }

    fn expire_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let now = Instant::now();
        let late: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, (deadline, _))| *deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            if let Some((_, e)) = self.pending.remove(&id) {
                self.shared.unhashed.fetch_add(1, Ordering::Relaxed);
                self.emit(e);
            }
        }
    }

    fn emit(&self, e: Event) {
        // The sink counts what it queues and drops; a closed sink (the agent is stopping)
        // counts as a drop too.
        let _ = self.sink.send(Box::new(e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rules_compile_and_missing_watch_parents_are_skipped() {
        let arch = Arch::native().unwrap();
        let (rules, skipped) = compile_rules(DEFAULT_RULES, arch);
        assert!(
            rules.len() >= 90,
            "{} rules, skipped {skipped:?}",
            rules.len()
        );
        for s in &skipped {
            assert!(s.reason.contains("does not exist"), "{s:?}");
        }
        let text = "# c\n-D\n-w /nonexistent-dir-xyz/file -p wa -k k\n-a always,exit -F arch=b64 -S nosuchcall -k k\n-a always,exit -F arch=b64 -S execve -k ok\n";
        let (rules, skipped) = compile_rules(text, arch);
        assert_eq!(rules.len(), 1);
        assert_eq!(
            skipped.iter().map(|s| s.line).collect::<Vec<_>>(),
            [2, 3, 4]
        );
    }

    /// The default file compiles unchanged for both architectures the agent ships for.
    #[test]
    fn default_rules_compile_for_x86_64_and_aarch64() {
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let (_, skipped) = compile_rules(DEFAULT_RULES, arch);
            for s in &skipped {
                assert!(s.reason.contains("does not exist"), "{arch:?}: {s:?}");
            }
        }
    }

    /// A kernel without `saddr_fam` (simulated): the network rules load without it, once.
    #[test]
    fn rules_with_saddr_fam_degrade_instead_of_vanishing() {
        struct OldKernel(Vec<RuleData>);
        impl RuleLoader for OldKernel {
            fn add_rule(&mut self, r: &RuleData) -> Result<(), NetlinkError> {
                if r.has_field(FIELD_SADDR_FAM) {
                    return Err(NetlinkError::Kernel {
                        errno: libc::EINVAL,
                        op: "add rule",
                    });
                }
                self.0.push(r.clone());
                Ok(())
            }
            fn delete_rule(&mut self, _: &RuleData) -> Result<(), NetlinkError> {
                Ok(())
            }
        }
        let arch = Arch::X86_64;
        let text = "-a always,exit -F arch=b64 -S connect -F saddr_fam=2 -F key=network-connect\n\
                    -a always,exit -F arch=b64 -S connect -F saddr_fam=10 -F key=network-connect\n\
                    -a always,exit -F arch=b64 -S execve -F key=exec\n";
        let (mut rules, _) = compile_lines(text, arch);
        let refused = probe_rules(&mut OldKernel(Vec::new()), &mut rules, arch).unwrap();
        assert!(refused.is_empty(), "{refused:?}");
        assert_eq!(rules.len(), 2, "the IPv4 and IPv6 rules collapse into one");
        let plain = compile(
            "-a always,exit -F arch=b64 -S connect -F key=network-connect",
            arch,
        )
        .unwrap();
        assert_eq!(rules[0].1, plain);
        assert!(rules[0].0.reason.contains("without saddr_fam"));
        assert_eq!(rules[1].0.reason, "");
    }
}
