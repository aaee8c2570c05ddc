//! The process table: built from /proc at start and kept current from audit events.
//!
//! Audit records name a pid; analysts want the process behind it and its parent: executable,
//! arguments, working directory, users and a stable identity (`sekoiaio.process.guid`). The
//! table answers that without a /proc read per field, remembers processes that already
//! exited (short-lived commands are usually gone when their event is normalized), and detects
//! pid reuse through the process start time.
//!
//! # Process GUID
//!
//! `guid = UUIDv5(PROCESS_GUID_NAMESPACE, "<boot id>:<pid>:<start ticks>")` where the start
//! ticks are field 22 of `/proc/PID/stat` (clock ticks since boot). The triple identifies one
//! process instance on one host for one boot, so the same process gets the same guid after an
//! agent restart, and a reused pid gets a new one. `exec` keeps the pid and the start time, so
//! a process keeps its guid across `execve` (its image changes, the instance does not).
//!
//! # Bounds
//!
//! At most [`Limits::max_entries`] processes and about [`Limits::max_bytes`] of strings are
//! kept, of which at most [`Limits::max_exited`] exited ones; arguments are truncated to
//! [`MAX_ARGS_BYTES`]. When over a bound, exited processes are evicted first (least recently
//! used first), then the least recently used live ones, down to 7/8 of the bound (amortised
//! O(log n) per insert). The separate bound on exited processes keeps an exec storm (every
//! short-lived command leaves an exited entry) from filling the table, and the memory, up to
//! the total bound: exited entries are only needed for the events still in flight and for the
//! children that exec after their parent exited, seconds at most.
//!
//! Evicting a live process loses little: its next lookup reads it again from /proc, with the
//! same guid (pid and start time are unchanged). That matters because a process can die
//! unseen: with a rule set that reports no exits, a command still alive when its exec was
//! recorded stays a live entry until evicted. In an exec storm a third of the commands are in
//! that state, so the total bound is what holds them; it is sized for memory (a few MB at
//! most), not for every process of a large host. Entries are boxed so that the hash table
//! itself stays small (16 bytes a slot instead of the entry's ~170) and its growth never
//! copies whole entries.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use uuid::Uuid;

/// Namespace of process GUIDs: `UUIDv5(NAMESPACE_URL,
/// "https://github.com/endpoint-agent/endpoint-agent/process-guid")`. Never change it: the
/// guids of running processes would change with it.
pub const PROCESS_GUID_NAMESPACE: Uuid = Uuid::from_u128(0x8207_d261_248f_50ea_991a_4db7_9fa6_a1f7);

/// Clock ticks per second of `/proc` times (`USER_HZ`). The kernel ABI fixes it at 100 on
/// every architecture Linux supports in practice; only used to *estimate* the start time of a
/// process that exited before we could read it.
pub const USER_HZ: u64 = 100;

/// A live entry checked against /proc less than this long ago is trusted without a new
/// /proc read. A pid cannot be reused faster than the kernel cycles through `pid_max` pids,
/// which takes far longer on any real host.
pub const REVALIDATE_AFTER: Duration = Duration::from_secs(1);

/// Arguments beyond this many bytes (all arguments together) are dropped.
pub const MAX_ARGS_BYTES: usize = 64 * 1024;

/// The stable identity of a process instance; see the module documentation.
pub fn process_guid(boot_id: &str, pid: u32, start_ticks: u64) -> Uuid {
    // `"{boot_id}:{pid}:{start_ticks}"`, written without the formatting machinery (this
    // runs once or twice per exec).
    let mut name = Vec::with_capacity(boot_id.len() + 32);
    name.extend_from_slice(boot_id.as_bytes());
    name.push(b':');
    push_decimal(&mut name, u64::from(pid));
    name.push(b':');
    push_decimal(&mut name, start_ticks);
    Uuid::new_v5(&PROCESS_GUID_NAMESPACE, &name)
}

/// Appends `n` in decimal, as `to_string` writes it.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// What the table knows about one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Process id (thread group id).
    pub pid: u32,
    /// Parent pid at creation (not updated on reparenting: the parent is the creator).
    pub ppid: u32,
    /// Start time in clock ticks since boot (`/proc/PID/stat` field 22).
    pub start_ticks: u64,
    /// True when `start_ticks` was estimated from an event time because the process was gone
    /// before /proc could be read.
    pub start_estimated: bool,
    /// Executable path.
    pub exe: Option<String>,
    /// Arguments, `argv[0]` first.
    pub args: Vec<String>,
    /// Working directory.
    pub cwd: Option<String>,
    /// Real uid.
    pub uid: Option<u32>,
    /// Effective uid.
    pub euid: Option<u32>,
    /// Login (audit) uid; `None` when unset (4294967295).
    pub auid: Option<u32>,
    /// `sekoiaio.process.guid`.
    pub guid: Uuid,
    /// True once an exit was seen (or the process vanished from /proc).
    pub exited: bool,
    last_used: u64,
    /// When /proc last confirmed this instance (`None`: never, e.g. built from an event).
    checked_at: Option<Instant>,
}

impl ProcessInfo {
    /// The arguments joined by single spaces (`process.command_line`).
    pub fn command_line(&self) -> String {
        self.args.join(" ")
    }

    /// The executable's file name (`process.name`): from `exe`, else from `argv[0]`.
    pub fn name(&self) -> Option<&str> {
        let path = self
            .exe
            .as_deref()
            .or(self.args.first().map(String::as_str))?;
        let base = path.rsplit('/').next().unwrap_or(path);
        // A deleted executable reads as "/path/bin (deleted)".
        Some(base.strip_suffix(" (deleted)").unwrap_or(base))
    }

    fn approx_bytes(&self) -> usize {
        let s = |o: &Option<String>| o.as_ref().map_or(0, String::len);
        std::mem::size_of::<Self>()
            + s(&self.exe)
            + s(&self.cwd)
            + self.args.iter().map(|a| a.len() + 24).sum::<usize>()
    }
}

/// A process image change seen in an audit `EXECVE`/`SYSCALL` event.
#[derive(Debug, Clone, Default)]
pub struct ExecInfo {
    /// The process.
    pub pid: u32,
    /// Its parent.
    pub ppid: u32,
    /// New executable path.
    pub exe: Option<String>,
    /// New arguments.
    pub args: Vec<String>,
    /// Working directory (the `CWD` record).
    pub cwd: Option<String>,
    /// Real uid.
    pub uid: Option<u32>,
    /// Effective uid.
    pub euid: Option<u32>,
    /// Login uid (`None` when unset).
    pub auid: Option<u32>,
    /// Event time, used to estimate the start time if the process is already gone.
    pub time: Option<SystemTime>,
}

/// Size bounds of the table.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Maximum number of processes kept (at least 16).
    pub max_entries: usize,
    /// Approximate maximum bytes of process data kept (at least 4 × [`MAX_ARGS_BYTES`]).
    pub max_bytes: usize,
    /// Maximum number of exited processes kept (at least 16): at 1 000 execs a second the
    /// default keeps the last two seconds of them (the reader handles records within a
    /// tenth of a second). Processes already gone from /proc when first recorded (most
    /// commands of an exec storm) count towards it too, since with a rule set that reports
    /// no exits nothing else would ever bound them; exited entries are evicted before those.
    pub max_exited: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 8192,
            max_bytes: 4 * 1024 * 1024,
            max_exited: 2048,
        }
    }
}

/// The process table; see the module documentation.
#[derive(Debug)]
pub struct ProcTable {
    procs: HashMap<u32, Box<ProcessInfo>>,
    boot_id: String,
    boot_time: Option<u64>,
    proc_root: PathBuf,
    limits: Limits,
    bytes: usize,
    /// How many entries are marked exited.
    exited: usize,
    /// How many entries are [`unconfirmed`]: gone when first recorded, no exit seen.
    unconfirmed: usize,
    clock: u64,
}

impl ProcTable {
    /// An empty table for the live system: `/proc`, the given boot id (see
    /// `agent_host::boot_id`) and limits.
    pub fn new(boot_id: impl Into<String>, limits: Limits) -> Self {
        Self::with_proc_root(boot_id, limits, "/proc")
    }

    /// An empty table reading process data under `proc_root` instead of `/proc`.
    pub fn with_proc_root(
        boot_id: impl Into<String>,
        limits: Limits,
        proc_root: impl Into<PathBuf>,
    ) -> Self {
        let proc_root = proc_root.into();
        let limits = Limits {
            max_entries: limits.max_entries.max(16),
            max_bytes: limits.max_bytes.max(4 * MAX_ARGS_BYTES),
            max_exited: limits.max_exited.max(16),
        };
        ProcTable {
            procs: HashMap::new(),
            boot_id: boot_id.into(),
            boot_time: read_boot_time(&proc_root),
            proc_root,
            limits,
            bytes: 0,
            exited: 0,
            unconfirmed: 0,
            clock: 0,
        }
    }

    /// Fills the table with every process currently in /proc (up to the limits). Returns how
    /// many processes were read.
    pub fn scan(&mut self) -> usize {
        let mut n = 0;
        for pid in list_pids(&self.proc_root) {
            if let Some(p) = self.read_live(pid) {
                self.insert(p);
                n += 1;
            }
        }
        n
    }

    /// Number of processes in the table.
    pub fn len(&self) -> usize {
        self.procs.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    /// The process `pid`, checked against /proc: an unknown pid is read from /proc, and a pid
    /// whose /proc start time differs from the cached one (pid reuse) is re-read. A process
    /// gone from /proc is answered from the cache (and marked exited). A live entry confirmed
    /// less than [`REVALIDATE_AFTER`] ago is answered without touching /proc (a map lookup);
    /// otherwise this costs one small /proc read (a few microseconds).
    pub fn get(&mut self, pid: u32) -> Option<&ProcessInfo> {
        let now = Instant::now();
        if let Some(p) = self.procs.get_mut(&pid) {
            if is_fresh(p, now) {
                return self.touch(pid);
            }
            if is_known_gone(p, now) {
                // Not found in /proc a moment ago: gone, as a new read would say.
                if !p.exited {
                    self.unconfirmed -= usize::from(unconfirmed(p));
                    p.exited = true;
                    self.exited += 1;
                }
                return self.touch(pid);
            }
        }
        match read_start_ticks(&self.proc_root, pid) {
            Some(start) => {
                let same = self
                    .procs
                    .get(&pid)
                    .is_some_and(|p| p.start_ticks == start && !p.start_estimated);
                if same {
                    if let Some(p) = self.procs.get_mut(&pid) {
                        p.checked_at = Some(now);
                    }
                } else if let Some(p) = self.read_live(pid) {
                    self.insert(p);
                }
            }
            None => {
                if let Some(p) = self.procs.get_mut(&pid) {
                    if !p.exited {
                        self.unconfirmed -= usize::from(unconfirmed(p));
                        p.exited = true;
                        self.exited += 1;
                    }
                    p.checked_at = Some(now);
                }
            }
        }
        self.touch(pid)
    }

    /// The cached entry for `pid`, without any /proc access.
    pub fn get_cached(&self, pid: u32) -> Option<&ProcessInfo> {
        self.procs.get(&pid).map(Box::as_ref)
    }

    /// The parent (creator) of `pid`. A candidate that started after the child is a later
    /// process that reused the parent's pid, and is not returned.
    pub fn parent(&mut self, pid: u32) -> Option<&ProcessInfo> {
        let (ppid, child_start) = {
            let c = self.procs.get(&pid)?;
            (c.ppid, c.start_ticks)
        };
        if ppid == 0 {
            return None;
        }
        let now = Instant::now();
        if self
            .procs
            .get(&ppid)
            .is_some_and(|p| is_fresh(p, now) && p.start_ticks <= child_start)
        {
            return self.touch(ppid);
        }
        // Only trust /proc for the parent if that process is older than the child.
        let live_start = read_start_ticks(&self.proc_root, ppid);
        let cached_ok = self
            .procs
            .get(&ppid)
            .is_some_and(|p| p.start_ticks <= child_start);
        match live_start {
            Some(s) if s <= child_start => self.get(ppid),
            _ if cached_ok => self.touch(ppid),
            _ => None,
        }
    }

    /// Records an `execve`: the process now runs a new image. Keeps the guid of the same
    /// process instance; a new instance (unknown pid, or a different /proc start time)
    /// gets a new entry. Returns the updated entry.
    pub fn on_exec(&mut self, ev: ExecInfo) -> Option<&ProcessInfo> {
        let pid = ev.pid;
        let live_start = read_start_ticks(&self.proc_root, pid);
        let existing = self.procs.get(&pid);
        // Checked now either way: alive, or already gone (a short-lived process, such as
        // most execs, exits before its records are read; the next lookups need no /proc).
        let checked_at = Some(Instant::now());
        let (start_ticks, start_estimated) = match (live_start, existing) {
            (Some(s), _) => (s, false),
            // Gone already: the same instance if we knew it alive, else estimate.
            (None, Some(p)) if !p.exited => (p.start_ticks, p.start_estimated),
            (None, _) => (self.estimate_ticks(ev.time), true),
        };
        let mut args = ev.args;
        truncate_args(&mut args);
        let info = ProcessInfo {
            pid,
            ppid: ev.ppid,
            start_ticks,
            start_estimated,
            exe: ev.exe,
            args,
            cwd: ev.cwd,
            uid: ev.uid,
            euid: ev.euid,
            auid: ev.auid.filter(|&a| a != u32::MAX),
            guid: process_guid(&self.boot_id, pid, start_ticks),
            exited: false,
            last_used: 0,
            checked_at,
        };
        self.insert(info);
        self.touch(pid)
    }

    /// Records a fork/clone that created `child` from `parent`: the child inherits the
    /// parent's image, arguments, directory and users until it execs.
    pub fn on_fork(&mut self, parent: u32, child: u32, time: Option<SystemTime>) {
        let (start_ticks, start_estimated, checked_at) =
            match read_start_ticks(&self.proc_root, child) {
                Some(s) => (s, false, Some(Instant::now())),
                None => (self.estimate_ticks(time), true, None),
            };
        let mut info = match self.procs.get(&parent) {
            Some(p) => ProcessInfo::clone(p),
            None => match self.read_live(parent) {
                Some(p) => p,
                None => empty_info(parent),
            },
        };
        info.pid = child;
        info.ppid = parent;
        info.start_ticks = start_ticks;
        info.start_estimated = start_estimated;
        info.guid = process_guid(&self.boot_id, child, start_ticks);
        info.exited = false;
        info.checked_at = checked_at;
        self.insert(info);
    }

    /// Records the exit of `pid`. The entry stays (events of the process may still be in
    /// flight) and is the first to go when the table is full.
    pub fn on_exit(&mut self, pid: u32) {
        if let Some(p) = self.procs.get_mut(&pid) {
            if !p.exited {
                self.unconfirmed -= usize::from(unconfirmed(p));
                p.exited = true;
                self.exited += 1;
            }
        }
    }

    /// How many of the entries are exited processes.
    pub fn exited_len(&self) -> usize {
        self.exited
    }

    /// Inserts or replaces an entry, then enforces the limits.
    fn insert(&mut self, mut info: ProcessInfo) {
        self.clock += 1;
        info.last_used = self.clock;
        self.bytes += info.approx_bytes();
        self.exited += usize::from(info.exited);
        self.unconfirmed += usize::from(unconfirmed(&info));
        if let Some(old) = self.procs.insert(info.pid, Box::new(info)) {
            self.forget(&old);
        }
        if self.procs.len() > self.limits.max_entries
            || self.bytes > self.limits.max_bytes
            || self.exited + self.unconfirmed > self.limits.max_exited
        {
            self.evict();
        }
    }

    /// Takes a removed or replaced entry out of the accounting.
    fn forget(&mut self, old: &ProcessInfo) {
        self.bytes = self.bytes.saturating_sub(old.approx_bytes());
        self.exited = self.exited.saturating_sub(usize::from(old.exited));
        self.unconfirmed = self
            .unconfirmed
            .saturating_sub(usize::from(unconfirmed(old)));
    }

    fn touch(&mut self, pid: u32) -> Option<&ProcessInfo> {
        self.clock += 1;
        let clock = self.clock;
        let p = self.procs.get_mut(&pid)?;
        p.last_used = clock;
        Some(p)
    }

    /// Evicts exited entries first, then unconfirmed ones, then the least recently used,
    /// down to 7/8 of the limits.
    fn evict(&mut self) {
        if self.exited + self.unconfirmed > self.limits.max_exited {
            let target = self.limits.max_exited / 8 * 7;
            self.evict_exited(target.saturating_sub(self.unconfirmed));
            if self.exited + self.unconfirmed > target {
                self.evict_unconfirmed(target.saturating_sub(self.exited));
            }
        }
        if self.procs.len() <= self.limits.max_entries && self.bytes <= self.limits.max_bytes {
            return;
        }
        let target_n = self.limits.max_entries / 8 * 7;
        let target_b = self.limits.max_bytes / 8 * 7;
        let mut order: Vec<(bool, u64, u32)> = self
            .procs
            .values()
            .map(|p| (!p.exited, p.last_used, p.pid))
            .collect();
        order.sort_unstable();
        for (_, _, pid) in order {
            if self.procs.len() <= target_n && self.bytes <= target_b {
                break;
            }
            if let Some(old) = self.procs.remove(&pid) {
                self.forget(&old);
            }
        }
    }

    /// Evicts the least recently used exited entries down to `target` of them.
    fn evict_exited(&mut self, target: usize) {
        self.evict_lru(self.exited, target, |p| p.exited);
    }

    /// Evicts the least recently used [`unconfirmed`] entries down to `target` of them.
    fn evict_unconfirmed(&mut self, target: usize) {
        self.evict_lru(self.unconfirmed, target, unconfirmed);
    }

    /// Evicts the least recently used of the `count` entries matching `class` down to
    /// `target` of them. A selection, not a sort: this runs every `max_exited / 8` execs
    /// of a storm.
    fn evict_lru(&mut self, count: usize, target: usize, class: fn(&ProcessInfo) -> bool) {
        let Some(n) = count.checked_sub(target).filter(|&n| n > 0) else {
            return;
        };
        let mut gone: Vec<(u64, u32)> = self
            .procs
            .values()
            .filter(|p| class(p))
            .map(|p| (p.last_used, p.pid))
            .collect();
        if n < gone.len() {
            gone.select_nth_unstable(n);
            gone.truncate(n);
        }
        for (_, pid) in gone {
            if let Some(old) = self.procs.remove(&pid) {
                self.forget(&old);
            }
        }
    }

    /// Ticks since boot at `time`, from /proc/stat `btime` (1 s resolution); 0 if unknown.
    fn estimate_ticks(&self, time: Option<SystemTime>) -> u64 {
        let (Some(boot), Some(t)) = (self.boot_time, time) else {
            return 0;
        };
        let Ok(since_epoch) = t.duration_since(UNIX_EPOCH) else {
            return 0;
        };
        let secs = since_epoch.as_secs_f64() - boot as f64;
        if secs <= 0.0 {
            0
        } else {
            (secs * USER_HZ as f64) as u64
        }
    }

    fn read_live(&self, pid: u32) -> Option<ProcessInfo> {
        let mut p = read_process(&self.proc_root, pid)?;
        p.guid = process_guid(&self.boot_id, pid, p.start_ticks);
        p.checked_at = Some(Instant::now());
        Some(p)
    }
}

fn empty_info(pid: u32) -> ProcessInfo {
    ProcessInfo {
        pid,
        ppid: 0,
        start_ticks: 0,
        start_estimated: true,
        exe: None,
        args: Vec::new(),
        cwd: None,
        uid: None,
        euid: None,
        auid: None,
        guid: Uuid::nil(),
        exited: false,
        last_used: 0,
        checked_at: None,
    }
}

/// Whether `p` can be trusted without reading /proc: alive, really read from /proc, and
/// confirmed recently.
fn is_fresh(p: &ProcessInfo, now: Instant) -> bool {
    !p.exited
        && !p.start_estimated
        && p.checked_at
            .is_some_and(|t| now.saturating_duration_since(t) < REVALIDATE_AFTER)
}

/// Whether `p` was never seen in /proc (gone when first recorded: its start time is an
/// estimate) and no exit was recorded for it. Its events are normalized already; it is kept
/// for late records and children, like an exited process, and bounded with them.
fn unconfirmed(p: &ProcessInfo) -> bool {
    p.start_estimated && !p.exited
}

/// Whether `p` was found gone from /proc recently (marked exited by a failed read, or not
/// readable when its exec was recorded, hence an estimated start): answered from the cache
/// without a new /proc read, since its pid cannot have been reused that fast (see
/// [`REVALIDATE_AFTER`]). Most execs are short-lived processes already gone when their
/// records are read: this saves the failed /proc lookups after the one of the exec.
fn is_known_gone(p: &ProcessInfo, now: Instant) -> bool {
    (p.exited || p.start_estimated)
        && p.checked_at
            .is_some_and(|t| now.saturating_duration_since(t) < REVALIDATE_AFTER)
}

fn truncate_args(args: &mut Vec<String>) {
    let mut total = 0;
    let mut keep = args.len();
    for (i, a) in args.iter().enumerate() {
        total += a.len() + 1;
        if total > MAX_ARGS_BYTES {
            keep = i;
            break;
        }
    }
    args.truncate(keep);
}

/// `(ppid, start ticks)` from the content of `/proc/PID/stat`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_stat(bytes: &[u8]) -> Option<(u32, u64)> {
    let stat = agent_os::proc_stat::ProcStat::parse(bytes).ok()?;
    Some((stat.ppid, stat.starttime))
}

/// `(real, effective)` uid from the `Uid:` line of `/proc/PID/status`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_status_uids(text: &str) -> Option<(u32, u32)> {
    let line = text.lines().find(|l| l.starts_with("Uid:"))?;
    let mut it = line.split_whitespace().skip(1);
    let real = it.next()?.parse().ok()?;
    let eff = it.next()?.parse().ok()?;
    Some((real, eff))
}

/// NUL-separated `/proc/PID/cmdline` to arguments.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_cmdline(bytes: &[u8]) -> Vec<String> {
    let trimmed = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if trimmed.is_empty() {
        return Vec::new();
    }
    let mut args: Vec<String> = trimmed
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    truncate_args(&mut args);
    args
}

#[cfg(target_os = "linux")]
fn read_start_ticks(root: &Path, pid: u32) -> Option<u64> {
    use std::io::Read as _;
    // Once or twice per event: open, one read into the stack, close (`fs::read` would also
    // `statx` for a size hint and read again to see the end, and allocate).
    let path = root.join(format!("{pid}/stat"));
    let mut f = std::fs::File::open(&path).ok()?;
    let mut buf = [0u8; 1024];
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => {
                n += k;
                // The line ends with a newline: whole once it is there.
                if buf[n - 1] == b'\n' {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    if n == buf.len() {
        let bytes = std::fs::read(&path).ok()?;
        return parse_stat(&bytes).map(|(_, s)| s);
    }
    parse_stat(&buf[..n]).map(|(_, s)| s)
}

#[cfg(target_os = "linux")]
fn read_process(root: &Path, pid: u32) -> Option<ProcessInfo> {
    let dir = root.join(pid.to_string());
    let stat = std::fs::read(dir.join("stat")).ok()?;
    let (ppid, start_ticks) = parse_stat(&stat)?;
    let link = |name: &str| {
        std::fs::read_link(dir.join(name))
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    };
    let uids = std::fs::read_to_string(dir.join("status"))
        .ok()
        .and_then(|s| parse_status_uids(&s));
    let auid = std::fs::read_to_string(dir.join("loginuid"))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|&a| a != u32::MAX);
    let args = std::fs::read(dir.join("cmdline"))
        .map(|b| parse_cmdline(&b))
        .unwrap_or_default();
    let mut info = empty_info(pid);
    info.ppid = ppid;
    info.start_ticks = start_ticks;
    info.start_estimated = false;
    info.exe = link("exe");
    info.args = args;
    info.cwd = link("cwd");
    info.uid = uids.map(|u| u.0);
    info.euid = uids.map(|u| u.1);
    info.auid = auid;
    Some(info)
}

#[cfg(target_os = "linux")]
fn list_pids(root: &Path) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

#[cfg(target_os = "linux")]
fn read_boot_time(root: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(root.join("stat")).ok()?;
    let line = text.lines().find(|l| l.starts_with("btime "))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(not(target_os = "linux"))]
fn read_start_ticks(_root: &Path, _pid: u32) -> Option<u64> {
    None
}
#[cfg(not(target_os = "linux"))]
fn read_process(_root: &Path, _pid: u32) -> Option<ProcessInfo> {
    None
}
#[cfg(not(target_os = "linux"))]
fn list_pids(_root: &Path) -> Vec<u32> {
    Vec::new()
}
#[cfg(not(target_os = "linux"))]
fn read_boot_time(_root: &Path) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_os = "linux")]
    use std::process::{Child, Command};

    #[test]
    fn guid_namespace_and_derivation_are_as_documented() {
        let ns = Uuid::new_v5(
            &Uuid::NAMESPACE_URL,
            b"https://github.com/endpoint-agent/endpoint-agent/process-guid",
        );
        assert_eq!(ns, PROCESS_GUID_NAMESPACE);
        // Cross-checked with Python: uuid.uuid5(ns, "b:1:2").
        assert_eq!(
            process_guid("b", 1, 2).to_string(),
            "9ef4108f-e33e-5ead-8230-840113c9600f"
        );
        assert_eq!(process_guid("b", 1, 2).get_version_num(), 5);
        assert_ne!(process_guid("b", 1, 2), process_guid("b", 1, 3));
        assert_ne!(process_guid("b", 1, 2), process_guid("c", 1, 2));
    }

    #[test]
    fn guid_names_are_written_as_formatted() {
        for (pid, start) in [(0, 0), (1, 9), (4_194_304, 10), (u32::MAX, u64::MAX)] {
            let name = format!("boot:{pid}:{start}");
            assert_eq!(
                process_guid("boot", pid, start),
                Uuid::new_v5(&PROCESS_GUID_NAMESPACE, name.as_bytes())
            );
        }
    }

    #[test]
    fn stat_parsing_survives_hostile_command_names() {
        let line =
            b"4242 (evil) 1 2 3) S 77 4242 4242 0 -1 4194560 0 0 0 0 1 2 0 0 20 0 1 0 123456 0 0";
        assert_eq!(parse_stat(line), Some((77, 123456)));
        assert_eq!(parse_stat(b"garbage"), None);
        assert_eq!(
            parse_status_uids("Name:\tx\nUid:\t1000\t0\t0\t0\n"),
            Some((1000, 0))
        );
        assert_eq!(parse_cmdline(b"ls\0-l\0/tmp\0"), vec!["ls", "-l", "/tmp"]);
        assert_eq!(parse_cmdline(b""), Vec::<String>::new());
        let mut long = vec!["x".repeat(MAX_ARGS_BYTES / 2); 4];
        truncate_args(&mut long);
        assert_eq!(long.len(), 1);
    }

    #[cfg(target_os = "linux")]
    fn boot_id() -> String {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .expect("Linux boot id")
            .trim()
            .to_owned()
    }

    #[cfg(target_os = "linux")]
    fn proc_start(pid: u32) -> u64 {
        let stat = std::fs::read(format!("/proc/{pid}/stat")).unwrap();
        parse_stat(&stat).unwrap().1
    }

    /// A proc root with nothing in it: every process looks gone.
    const NO_PROC: &str = "/nonexistent/proc-root-for-tests";

    /// An exec of a child of init, named after its pid (the bound tests' processes).
    fn child_of_init(pid: u32) -> ExecInfo {
        ExecInfo {
            pid,
            ppid: 1,
            args: vec![format!("p{pid}")],
            ..ExecInfo::default()
        }
    }

    /// Kills and reaps the child even when an assertion fails.
    #[cfg(target_os = "linux")]
    struct KillOnDrop(Child);
    #[cfg(target_os = "linux")]
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn live_own_process_and_parent() {
        let mut t = ProcTable::new(boot_id(), Limits::default());
        let n = t.scan();
        assert!(n >= 2, "scan found {n} processes");
        let me = std::process::id();
        let p = t.get_cached(me).expect("own pid scanned").clone();
        assert_eq!(p.ppid, std::os::unix::process::parent_id());
        assert_eq!(p.start_ticks, proc_start(me));
        assert!(!p.start_estimated);
        let exe = std::env::current_exe().unwrap();
        assert_eq!(p.exe.as_deref(), exe.to_str());
        assert_eq!(p.args, std::env::args().collect::<Vec<_>>());
        assert_eq!(p.cwd.as_deref(), std::env::current_dir().unwrap().to_str());
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let (uid, euid) = parse_status_uids(&status).unwrap();
        assert_eq!((p.uid, p.euid), (Some(uid), Some(euid)));
        assert_eq!(p.guid, process_guid(&boot_id(), me, p.start_ticks));
        assert!(p.name().is_some_and(|n| exe.to_str().unwrap().ends_with(n)));

        let parent = t.parent(me).expect("parent is alive").clone();
        assert_eq!(parent.pid, std::os::unix::process::parent_id());
        assert!(parent.start_ticks <= p.start_ticks);

        // A restarted agent derives the same guids from /proc.
        let mut t2 = ProcTable::new(boot_id(), Limits::default());
        assert_eq!(t2.get(me).unwrap().guid, p.guid);
        assert_eq!(t2.get(parent.pid).unwrap().guid, parent.guid);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn live_spawned_child_cmdline_cwd_and_parent() {
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path().canonicalize().unwrap();
        // `sh` waiting on a pipe that is never written: no grandchild to leak on kill.
        let child = Command::new("sh")
            .args(["-c", "read x", "zero arg"])
            .stdin(std::process::Stdio::piped())
            .current_dir(&cwd)
            .spawn()
            .expect("spawn sh");
        let child = KillOnDrop(child);
        let pid = child.0.id();
        // The child execs asynchronously: wait until /proc shows sleep's arguments.
        let mut t = ProcTable::new(boot_id(), Limits::default());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if cmdline.starts_with(b"sh\0") {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "child never exec'd");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let p = t.get(pid).expect("child visible").clone();
        assert_eq!(p.args, vec!["sh", "-c", "read x", "zero arg"]);
        assert_eq!(p.command_line(), "sh -c read x zero arg");
        assert_eq!(p.cwd.as_deref(), cwd.to_str());
        let sh = std::fs::canonicalize("/bin/sh").unwrap();
        assert_eq!(p.exe.as_deref(), sh.to_str());
        assert_eq!(p.name(), sh.file_name().unwrap().to_str());
        assert_eq!(p.ppid, std::process::id());
        let parent = t.parent(pid).unwrap();
        assert_eq!(parent.pid, std::process::id());
        assert_eq!(parent.args, std::env::args().collect::<Vec<_>>());

        // An exec event for the same instance keeps the guid and updates the image.
        let before = p.guid;
        let after = t
            .on_exec(ExecInfo {
                pid,
                ppid: std::process::id(),
                exe: Some("/usr/bin/other".into()),
                args: vec!["other".into()],
                cwd: Some("/".into()),
                uid: Some(0),
                euid: Some(0),
                auid: Some(u32::MAX),
                time: Some(SystemTime::now()),
            })
            .unwrap()
            .clone();
        assert_eq!(after.guid, before);
        assert_eq!(after.args, vec!["other"]);
        assert_eq!(after.auid, None, "unset login uid is None");

        // Exit: the entry stays and is marked, after the process is gone from /proc.
        drop(child);
        t.on_exit(pid);
        let gone = t.get(pid).expect("exited processes stay resolvable");
        assert!(gone.exited);
        assert_eq!(gone.guid, before);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn pid_reuse_is_detected_through_start_time() {
        let me = std::process::id();
        let mut t = ProcTable::new(boot_id(), Limits::default());
        let real = t.get(me).unwrap().clone();
        // Simulate a previous process that had our pid with another start time.
        let mut stale = real.clone();
        stale.start_ticks = real.start_ticks.saturating_sub(500);
        stale.guid = process_guid(&boot_id(), me, stale.start_ticks);
        stale.args = vec!["old".into()];
        stale.checked_at = None; // last confirmed long ago
        t.insert(stale.clone());
        assert_eq!(t.get_cached(me).unwrap().guid, stale.guid);
        let refreshed = t.get(me).unwrap();
        assert_eq!(refreshed.start_ticks, real.start_ticks);
        assert_eq!(refreshed.guid, real.guid);
        assert_ne!(refreshed.guid, stale.guid);
        assert_eq!(refreshed.args, real.args);
    }

    /// A fake /proc/PID/stat line with the given ppid and start time (field 22).
    #[cfg(target_os = "linux")]
    fn stat_line(pid: u32, ppid: u32, start: u64) -> String {
        // Fields 3..=21 after the command name, then the start time.
        let mut f = vec![
            "S".to_string(),
            ppid.to_string(),
            pid.to_string(),
            pid.to_string(),
        ];
        f.extend(["0", "-1"].map(String::from));
        f.extend(std::iter::repeat_n("0".to_string(), 9)); // fields 9..=17
        f.extend(["20", "0", "1", "0"].map(String::from)); // fields 18..=21
        f.push(start.to_string());
        f.extend(["0", "0"].map(String::from));
        format!("{pid} (fake proc) {}", f.join(" "))
    }

    /// An empty fake /proc: only `stat`, whose `btime` the table reads at start.
    #[cfg(target_os = "linux")]
    fn fake_proc() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("stat"), "cpu  1 2 3 4\nbtime 1000\n").unwrap();
        root
    }

    /// Puts process `pid` (parent 1, started `start` ticks after boot) into the fake /proc
    /// at `root`; returns its directory.
    #[cfg(target_os = "linux")]
    fn fake_process(root: &Path, pid: u32, start: u64) -> PathBuf {
        let d = root.join(pid.to_string());
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("stat"), stat_line(pid, 1, start)).unwrap();
        d
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn pid_reuse_in_a_fake_proc_is_seen_once_the_window_passed() {
        let root = fake_proc();
        let put = |start: u64, arg: &str| {
            let d = fake_process(root.path(), 4242, start);
            std::fs::write(d.join("cmdline"), format!("{arg}\0")).unwrap();
        };
        assert_eq!(
            parse_stat(stat_line(4242, 1, 100).as_bytes()),
            Some((1, 100))
        );
        put(100, "first");
        let mut t = ProcTable::with_proc_root("boot", Limits::default(), root.path());
        assert_eq!(t.scan(), 1);
        let first = t.get(4242).unwrap().clone();
        assert_eq!((first.ppid, first.start_ticks), (1, 100));
        assert_eq!(first.args, vec!["first"]);
        assert_eq!(first.guid, process_guid("boot", 4242, 100));

        put(200, "second"); // the pid is reused
        assert_eq!(
            t.get(4242).unwrap().guid,
            first.guid,
            "trusted within the window"
        );
        let past = Instant::now().checked_sub(REVALIDATE_AFTER).unwrap();
        t.procs.get_mut(&4242).unwrap().checked_at = Some(past);
        let second = t.get(4242).unwrap().clone();
        assert_eq!(second.start_ticks, 200);
        assert_eq!(second.args, vec!["second"]);
        assert_eq!(second.guid, process_guid("boot", 4242, 200));
        assert_ne!(second.guid, first.guid);

        // The process goes away: still answered, now marked exited.
        std::fs::remove_dir_all(root.path().join("4242")).unwrap();
        t.procs.get_mut(&4242).unwrap().checked_at = Some(past);
        let gone = t.get(4242).unwrap();
        assert!(gone.exited);
        assert_eq!(gone.guid, second.guid);
    }

    /// Commands gone before their exec is read, with no exit to mark them (an exec-only
    /// rule set), are bounded with the exited processes, not kept up to `max_entries`;
    /// and a second exec of such a pid is still the same process instance.
    #[cfg(target_os = "linux")]
    #[test]
    fn execs_of_processes_already_gone_are_bounded_with_the_exited() {
        let root = fake_proc();
        let limits = Limits {
            max_exited: 64,
            ..Limits::default()
        };
        let mut t = ProcTable::with_proc_root("boot", limits, root.path());
        let exec = |pid: u32, secs: u64| ExecInfo {
            pid,
            ppid: 1,
            args: vec!["true".into()],
            time: Some(UNIX_EPOCH + std::time::Duration::from_secs(secs)),
            ..ExecInfo::default()
        };
        for pid in 1000..3000 {
            t.on_exec(exec(pid, 2000));
        }
        assert!(t.len() <= 64, "{} entries kept", t.len());
        let first = t.get_cached(2999).expect("the latest stays").clone();
        assert!(!first.exited);
        // `sh -c "exec true"`: both execs read after the process is gone.
        let second = t.on_exec(exec(2999, 2001)).unwrap();
        assert_eq!(second.guid, first.guid);
    }

    /// A short-lived process already gone when its exec is recorded costs one /proc lookup:
    /// the lookups that follow within the window answer from the table (exited), and only
    /// after it is /proc read again (where a new process may have taken the pid).
    #[cfg(target_os = "linux")]
    #[test]
    fn a_process_gone_at_its_exec_is_not_looked_up_again_within_the_window() {
        let root = fake_proc();
        let mut t = ProcTable::with_proc_root("boot", Limits::default(), root.path());
        let exec = t
            .on_exec(ExecInfo {
                pid: 4343,
                ppid: 1,
                args: vec!["true".into()],
                time: Some(UNIX_EPOCH + std::time::Duration::from_secs(2000)),
                ..ExecInfo::default()
            })
            .unwrap()
            .clone();
        assert!(exec.start_estimated && !exec.exited);
        // A process appears under that pid: within the window the table does not look.
        fake_process(root.path(), 4343, 777);
        let got = t.get(4343).unwrap().clone();
        assert!(got.exited, "known gone");
        assert_eq!(got.guid, exec.guid);
        // After the window, /proc is read again and the new process is seen.
        let past = Instant::now().checked_sub(REVALIDATE_AFTER).unwrap();
        t.procs.get_mut(&4343).unwrap().checked_at = Some(past);
        let again = t.get(4343).unwrap();
        assert_eq!(again.start_ticks, 777);
        assert!(!again.exited);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_parent_younger_than_its_child_is_a_reused_pid() {
        let me = std::process::id();
        let mut t = ProcTable::new(boot_id(), Limits::default());
        let my_start = t.get(me).unwrap().start_ticks;
        // A fake child claiming us as parent but started before us: our pid was reused.
        let mut child = empty_info(999_999_999);
        child.ppid = me;
        child.start_ticks = my_start.saturating_sub(1);
        t.insert(child);
        assert!(t.parent(999_999_999).is_none());
    }

    #[test]
    fn gone_processes_get_estimated_start_and_distinct_guids() {
        let mut t = ProcTable::with_proc_root("boot", Limits::default(), NO_PROC);
        t.boot_time = Some(500); // no /proc/stat under NO_PROC
        let ev = |pid, t: u64| ExecInfo {
            pid,
            ppid: 1,
            exe: Some("/usr/bin/id".into()),
            args: vec!["id".into()],
            time: Some(UNIX_EPOCH + std::time::Duration::from_secs(t)),
            ..ExecInfo::default()
        };
        let a = t.on_exec(ev(10, 1000)).unwrap().clone();
        assert!(a.start_estimated);
        t.on_exit(10);
        // The pid is used again later by another short-lived process.
        let b = t.on_exec(ev(10, 2000)).unwrap().clone();
        assert_ne!(a.guid, b.guid);
        // A second exec of a process we know is alive keeps its identity.
        let c = t.on_exec(ev(10, 2001)).unwrap().clone();
        assert_eq!(b.guid, c.guid);
        t.on_fork(10, 11, None);
        let f = t.get_cached(11).unwrap();
        assert_eq!((f.ppid, f.args.clone()), (10, vec!["id".to_string()]));
        assert_ne!(f.guid, c.guid);
    }

    #[test]
    fn table_is_bounded_and_evicts_exited_first() {
        let limits = Limits {
            max_entries: 64,
            max_bytes: 1 << 30,
            max_exited: 64,
        };
        let mut t = ProcTable::with_proc_root("boot", limits, NO_PROC);
        // 32 long-lived processes, used often.
        for pid in 1..=32 {
            t.on_exec(child_of_init(pid));
        }
        for pid in 1000..5000 {
            t.on_exec(child_of_init(pid));
            t.on_exit(pid);
            for live in 1..=32 {
                assert!(t.get_cached(live).is_some(), "live {live} evicted at {pid}");
            }
            assert!(t.len() <= 64);
        }
        // With only live processes, the least recently used go first.
        for pid in 100..200 {
            t.on_exec(child_of_init(pid));
            assert!(t.len() <= 64);
        }
        assert!(t.get_cached(199).is_some());
        assert!(t.get_cached(1).is_none());
    }

    /// An exec storm of short-lived processes (each exits) fills the table only up to the
    /// exited bound: the live processes and the most recently exited ones stay.
    #[cfg(target_os = "linux")]
    #[test]
    fn exited_processes_have_their_own_bound() {
        let limits = Limits {
            max_entries: 16_384,
            max_bytes: 1 << 30,
            max_exited: 64,
        };
        // The 32 long-lived processes are in /proc; the storm's are gone when recorded.
        let root = fake_proc();
        for pid in 1..=32 {
            fake_process(root.path(), pid, 100 + u64::from(pid));
        }
        let mut t = ProcTable::with_proc_root("boot", limits, root.path());
        for pid in 1..=32 {
            t.on_exec(child_of_init(pid));
        }
        for pid in 1000..11_000 {
            t.on_exec(child_of_init(pid));
            t.on_exit(pid);
            assert!(t.exited_len() <= 65, "{} exited at {pid}", t.exited_len());
            assert!(t.len() <= 32 + 65);
        }
        for live in 1..=32 {
            assert!(t.get_cached(live).is_some_and(|p| !p.exited), "live {live}");
        }
        // The last 7/8 of the bound exited most recently: still there for late children.
        for pid in 11_000 - 56..11_000 {
            assert!(t.get_cached(pid).is_some_and(|p| p.exited), "exited {pid}");
        }
        assert!(t.get_cached(1000).is_none());
    }

    /// With no exit events, a command still alive at its exec and gone afterwards stays a
    /// live entry: the total bound holds those, and a long-lived process evicted meanwhile
    /// comes back from /proc at its next lookup, under the same guid.
    #[cfg(target_os = "linux")]
    #[test]
    fn commands_that_die_unseen_are_bounded_and_evicted_processes_come_back() {
        let limits = Limits {
            max_entries: 64,
            max_bytes: 1 << 20,
            max_exited: 16,
        };
        let root = fake_proc();
        let fake = |pid: u32| fake_process(root.path(), pid, 100 + u64::from(pid));
        fake(7);
        let mut t = ProcTable::with_proc_root("boot", limits, root.path());
        let guid = t.get(7).unwrap().guid;
        for pid in 1000..1500 {
            let d = fake(pid);
            assert!(t.on_exec(child_of_init(pid)).is_some_and(|p| !p.exited));
            std::fs::remove_dir_all(d).unwrap();
            assert!(t.len() <= 64, "{} entries at {pid}", t.len());
        }
        assert!(t.get_cached(7).is_none(), "the idle process was evicted");
        let back = t.get(7).unwrap();
        assert_eq!(back.guid, guid);
        assert!(!back.exited);
    }

    #[test]
    fn byte_budget_bounds_memory() {
        let limits = Limits {
            max_entries: 1 << 20,
            max_bytes: 4 * MAX_ARGS_BYTES,
            max_exited: 1 << 20,
        };
        let mut t = ProcTable::with_proc_root("boot", limits, NO_PROC);
        for pid in 0..200 {
            t.on_exec(ExecInfo {
                pid,
                args: vec!["a".repeat(10_000)],
                ..ExecInfo::default()
            });
            assert!(t.bytes <= 4 * MAX_ARGS_BYTES, "{} bytes", t.bytes);
        }
        let sum: usize = t.procs.values().map(|p| p.approx_bytes()).sum();
        assert_eq!(sum, t.bytes);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Exec { pid: u32, secs: u64, arg_len: usize },
        Exit(u32),
        Fork { parent: u32, child: u32 },
        Get(u32),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (1u32..60, 1u64..10_000, 0usize..40_000)
                .prop_map(|(pid, secs, arg_len)| Op::Exec { pid, secs, arg_len }),
            2 => (1u32..60).prop_map(Op::Exit),
            1 => (1u32..60, 1u32..60).prop_map(|(parent, child)| Op::Fork { parent, child }),
            1 => (1u32..60).prop_map(Op::Get),
        ]
    }

    proptest::proptest! {
        /// Model test of the table without /proc (every process looks gone): bounds and byte
        /// accounting hold after every operation, guids are always derived from (boot, pid,
        /// start), the last exec is what the table reports, and a live process is only
        /// evicted once no exited one is left to evict.
        #[test]
        fn table_model(
            max_entries in 16usize..40,
            max_exited in 16usize..48,
            small_budget in proptest::bool::ANY,
            ops in proptest::collection::vec(op(), 1..200),
        ) {
            use proptest::prop_assert;
            use proptest::prop_assert_eq;
            let max_bytes = if small_budget { 4 * MAX_ARGS_BYTES } else { 1 << 30 };
            let mut t = ProcTable::with_proc_root("boot", Limits { max_entries, max_bytes, max_exited }, NO_PROC);
            t.boot_time = Some(0);
            for op in ops {
                let before: HashMap<u32, bool> = t.procs.iter().map(|(p, i)| (*p, i.exited)).collect();
                let own = match &op {
                    Op::Exec { pid, secs, arg_len } => {
                        let arg = "x".repeat(*arg_len);
                        let got = t.on_exec(ExecInfo {
                            pid: *pid,
                            ppid: 1,
                            args: vec![arg.clone()],
                            time: Some(UNIX_EPOCH + std::time::Duration::from_secs(*secs)),
                            ..ExecInfo::default()
                        }).cloned();
                        let got = got.expect("just executed");
                        prop_assert_eq!(&got.args, &vec![arg]);
                        prop_assert!(!got.exited);
                        Some(*pid)
                    }
                    Op::Exit(pid) => {
                        t.on_exit(*pid);
                        if let Some(p) = t.get_cached(*pid) {
                            prop_assert!(p.exited);
                        }
                        None
                    }
                    Op::Fork { parent, child } => {
                        t.on_fork(*parent, *child, None);
                        Some(*child)
                    }
                    Op::Get(pid) => {
                        let was = before.get(pid).copied();
                        let now = t.get(*pid).map(|p| p.exited);
                        // Gone from /proc: a cached process is answered and marked exited.
                        prop_assert_eq!(now, was.map(|_| true));
                        None
                    }
                };
                prop_assert!(t.len() <= max_entries);
                prop_assert!(t.bytes <= max_bytes);
                let exited = t.procs.values().filter(|p| p.exited).count();
                prop_assert_eq!(exited, t.exited_len());
                if own.is_some() {
                    // Inserts enforce the bound; exits and lookups only mark.
                    prop_assert!(exited <= max_exited);
                }
                let sum: usize = t.procs.values().map(|p| p.approx_bytes()).sum();
                prop_assert_eq!(sum, t.bytes);
                for p in t.procs.values() {
                    prop_assert_eq!(p.guid, process_guid("boot", p.pid, p.start_ticks));
                }
                let evicted: Vec<(u32, bool)> = before
                    .iter()
                    .filter(|(pid, _)| Some(**pid) != own && !t.procs.contains_key(pid))
                    .map(|(p, e)| (*p, *e))
                    .collect();
                if evicted.iter().any(|(_, exited)| !exited) {
                    let exited_left = before
                        .iter()
                        .filter(|(pid, exited)| **exited && Some(**pid) != own && t.procs.contains_key(pid))
                        .count();
                    prop_assert_eq!(exited_left, 0, "live evicted while exited entries remain");
                }
            }
        }
    }
}
