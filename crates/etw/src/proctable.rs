//! The process table: pid → what its start event said, kept from the kernel Process events
//! (start, and the rundown of processes already running when the session starts).
//!
//! Most ETW events carry only a pid. The table gives them the process's image, command
//! line, user, parent and `sekoiaio.process.guid`.
//!
//! # Process GUID
//!
//! As on Linux: `UUIDv5(PROCESS_GUID_NAMESPACE, "<boot id>:<pid>:<start>")`, where the start
//! is the process creation time in 100 ns units since 1601 (`FILETIME`, from
//! `GetProcessTimes` when the binding could read it, else the start event's time). The
//! triple names one process instance, so the GUID is the same after an agent restart and a
//! reused pid gets a new one.
//!
//! # Bounds
//!
//! At most [`MAX_ENTRIES`] processes; when full, exited processes go first, then the
//! oldest. Exited processes stay a while because events about a process (its last file
//! writes, its connections) can arrive after its end event.

use std::collections::{HashMap, VecDeque};

use agent_event::Timestamp;
use uuid::Uuid;

use crate::cmdline;
use crate::paths::{base_name, is_absolute};

/// Namespace of process GUIDs; the same value as the Linux collector's, so a GUID is
/// derived the same way on every OS. Never change it.
pub const PROCESS_GUID_NAMESPACE: Uuid = Uuid::from_u128(0x8207_d261_248f_50ea_991a_4db7_9fa6_a1f7);

/// Processes kept at most.
pub const MAX_ENTRIES: usize = 16_384;

/// Exited processes kept at most (a ring: the oldest exit is forgotten first).
pub const MAX_EXITED: usize = 2_048;

/// 100 ns intervals between 1601-01-01 and 1970-01-01.
const FILETIME_UNIX_EPOCH: i64 = 116_444_736_000_000_000;

/// A timestamp as a `FILETIME` count (100 ns units since 1601).
pub fn filetime(ts: Timestamp) -> u64 {
    let ticks = ts
        .unix_seconds()
        .saturating_mul(10_000_000)
        .saturating_add(i64::from(ts.subsec_nanos() / 100))
        .saturating_add(FILETIME_UNIX_EPOCH);
    u64::try_from(ticks).unwrap_or(0)
}

/// A `FILETIME` count as a timestamp.
pub fn from_filetime(ft: u64) -> Timestamp {
    let unix = i64::try_from(ft).unwrap_or(i64::MAX) - FILETIME_UNIX_EPOCH;
    Timestamp::from_unix(
        unix.div_euclid(10_000_000),
        (unix.rem_euclid(10_000_000) as u32) * 100,
    )
}

/// The stable identity of a process instance; see the module documentation.
pub fn process_guid(boot_id: &str, pid: u32, start_filetime: u64) -> Uuid {
    let name = format!("{boot_id}:{pid}:{start_filetime}");
    Uuid::new_v5(&PROCESS_GUID_NAMESPACE, name.as_bytes())
}

/// What the table knows about one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Process id.
    pub pid: u32,
    /// Parent (creator) pid.
    pub ppid: u32,
    /// Creation time, `FILETIME` units.
    pub start: u64,
    /// Full path of the image (DOS form), or the image file name when nothing better is known.
    pub executable: String,
    /// Image file name (`cmd.exe`).
    pub name: String,
    /// Command line as the kernel gave it.
    pub command_line: String,
    /// The command line split into arguments.
    pub args: Vec<String>,
    /// The user's SID (`S-1-5-…`), empty when unknown.
    pub user_sid: String,
    /// `sekoiaio.process.guid`.
    pub guid: Uuid,
    /// An end event was seen.
    pub exited: bool,
    /// A thread start was seen for this process (its first thread is created by the
    /// parent and is not a remote thread).
    pub had_thread: bool,
}

/// What a process start (or rundown) event gives.
#[derive(Debug, Clone, Default)]
pub struct StartInfo {
    /// Process id.
    pub pid: u32,
    /// Parent pid.
    pub ppid: u32,
    /// Creation time, `FILETIME` units.
    pub start: u64,
    /// `ImageFileName` (short name).
    pub image_file_name: String,
    /// Full image path in DOS form, if the binding found it.
    pub image_path: Option<String>,
    /// `CommandLine`.
    pub command_line: String,
    /// `UserSID` as text.
    pub user_sid: String,
    /// From a rundown: the process was already running, so its first thread is not news.
    pub rundown: bool,
}

/// The table; see the module documentation.
#[derive(Debug)]
pub struct ProcTable {
    boot_id: String,
    procs: HashMap<u32, ProcessInfo>,
    exited: VecDeque<(u32, u64)>,
}

impl ProcTable {
    /// An empty table; `boot_id` names the boot session in process GUIDs.
    pub fn new(boot_id: impl Into<String>) -> ProcTable {
        ProcTable {
            boot_id: boot_id.into(),
            procs: HashMap::new(),
            exited: VecDeque::new(),
        }
    }

    /// Processes known.
    pub fn len(&self) -> usize {
        self.procs.len()
    }

    /// Whether no process is known.
    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    /// The process `pid`, if known.
    pub fn get(&self, pid: u32) -> Option<&ProcessInfo> {
        self.procs.get(&pid)
    }

    /// The parent of `pid`: the table's entry for its ppid, if that entry started before
    /// it (else the pid was reused and the creator is gone).
    pub fn parent(&self, pid: u32) -> Option<&ProcessInfo> {
        let child = self.procs.get(&pid)?;
        self.procs
            .get(&child.ppid)
            .filter(|p| p.pid != pid && p.start <= child.start)
    }

    /// Records a started (or already running) process and returns its entry.
    pub fn on_start(&mut self, s: StartInfo) -> &ProcessInfo {
        let args = cmdline::split(&s.command_line);
        // The executable: the command line's program if it is an absolute path (what the
        // user ran, as the product reports it), else the image path, else the short name.
        let executable = match args.first() {
            Some(a0) if is_absolute(a0) => a0.clone(),
            _ => s
                .image_path
                .clone()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| s.image_file_name.clone()),
        };
        let name = if executable.is_empty() {
            s.image_file_name.clone()
        } else {
            base_name(&executable).to_owned()
        };
        let info = ProcessInfo {
            pid: s.pid,
            ppid: s.ppid,
            start: s.start,
            guid: process_guid(&self.boot_id, s.pid, s.start),
            executable,
            name,
            command_line: s.command_line,
            args,
            user_sid: s.user_sid,
            exited: false,
            had_thread: s.rundown,
        };
        if self.procs.len() >= MAX_ENTRIES && !self.procs.contains_key(&s.pid) {
            self.evict();
        }
        let pid = s.pid;
        self.procs.insert(pid, info);
        // `insert` just put it there.
        &self.procs[&pid]
    }

    /// Marks `pid` exited (kept for late events until [`MAX_EXITED`] newer exits).
    pub fn on_end(&mut self, pid: u32) {
        if let Some(p) = self.procs.get_mut(&pid) {
            p.exited = true;
            self.exited.push_back((pid, p.start));
        }
        while self.exited.len() > MAX_EXITED {
            if let Some((old, start)) = self.exited.pop_front() {
                self.remove_instance(old, start);
            }
        }
    }

    /// Notes a thread start in `pid`; returns whether it was the process's first.
    pub fn on_thread(&mut self, pid: u32) -> bool {
        match self.procs.get_mut(&pid) {
            Some(p) => !std::mem::replace(&mut p.had_thread, true),
            None => false,
        }
    }

    fn remove_instance(&mut self, pid: u32, start: u64) {
        if self.procs.get(&pid).is_some_and(|p| p.start == start) {
            self.procs.remove(&pid);
        }
    }

    /// Makes room: every exited process, else the oldest eighth of the live ones.
    fn evict(&mut self) {
        let before = self.procs.len();
        for (pid, start) in std::mem::take(&mut self.exited) {
            self.remove_instance(pid, start);
        }
        if self.procs.len() < before {
            return;
        }
        let mut starts: Vec<(u64, u32)> = self.procs.values().map(|p| (p.start, p.pid)).collect();
        starts.sort_unstable();
        for (_, pid) in starts.iter().take((MAX_ENTRIES / 8).max(1)) {
            self.procs.remove(pid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(pid: u32, ppid: u32, at: u64, cmd: &str) -> StartInfo {
        StartInfo {
            pid,
            ppid,
            start: at,
            image_file_name: "x.exe".into(),
            command_line: cmd.into(),
            ..StartInfo::default()
        }
    }

    #[test]
    fn filetime_round_trips() {
        let ts: Timestamp = "2024-01-02T13:51:48.1394289Z".parse().unwrap();
        let ft = filetime(ts);
        assert_eq!(ft, 133_486_771_081_394_289);
        assert_eq!(
            from_filetime(ft).to_string(),
            "2024-01-02T13:51:48.1394289Z"
        );
        assert_eq!(from_filetime(0).unix_seconds(), -11_644_473_600);
    }

    #[test]
    fn guid_is_stable_per_instance_and_changes_on_pid_reuse() {
        let mut t = ProcTable::new("boot-1");
        let g1 = t.on_start(start(100, 4, 1_000, "a.exe")).guid;
        assert_eq!(g1, process_guid("boot-1", 100, 1_000));
        assert_eq!(g1.get_version_num(), 5);
        // Restart of the agent: same boot, same process → same guid.
        let mut again = ProcTable::new("boot-1");
        assert_eq!(again.on_start(start(100, 4, 1_000, "a.exe")).guid, g1);
        // Pid reused later: another instance.
        t.on_end(100);
        let g2 = t.on_start(start(100, 4, 2_000, "b.exe")).guid;
        assert_ne!(g1, g2);
        // Another boot: another instance.
        assert_ne!(
            ProcTable::new("boot-2")
                .on_start(start(100, 4, 1_000, ""))
                .guid,
            g1
        );
    }

    #[test]
    fn parent_must_have_started_first() {
        let mut t = ProcTable::new("b");
        t.on_start(start(10, 1, 500, "parent.exe"));
        t.on_start(start(20, 10, 600, "child.exe"));
        assert_eq!(t.parent(20).map(|p| p.pid), Some(10));
        // The parent pid reused by a later process: not the creator.
        t.on_start(start(10, 1, 700, "other.exe"));
        assert!(t.parent(20).is_none());
    }

    #[test]
    fn executable_prefers_an_absolute_program_then_the_image_path() {
        let mut t = ProcTable::new("b");
        let p = t.on_start(StartInfo {
            image_path: Some(r"C:\Windows\System32\cmd.exe".into()),
            ..start(1, 0, 1, r#""C:\Windows\system32\cmd.exe" /c dir"#)
        });
        assert_eq!(p.executable, r"C:\Windows\system32\cmd.exe");
        assert_eq!(p.name, "cmd.exe");
        let p = t.on_start(StartInfo {
            image_path: Some(r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe".into()),
            ..start(2, 0, 1, "powershell -nop")
        });
        assert_eq!(
            p.executable,
            r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe"
        );
        let p = t.on_start(start(3, 0, 1, ""));
        assert_eq!((p.executable.as_str(), p.name.as_str()), ("x.exe", "x.exe"));
        assert!(p.args.is_empty());
    }

    #[test]
    fn first_thread_is_told_apart() {
        let mut t = ProcTable::new("b");
        t.on_start(start(5, 1, 1, "a"));
        assert!(t.on_thread(5));
        assert!(!t.on_thread(5));
        assert!(!t.on_thread(6));
        let mut rundown = start(7, 1, 1, "a");
        rundown.rundown = true;
        t.on_start(rundown);
        assert!(!t.on_thread(7));
    }

    #[test]
    fn stays_bounded() {
        let mut t = ProcTable::new("b");
        for pid in 0..(MAX_ENTRIES as u32 + 100) {
            t.on_start(start(pid, 0, u64::from(pid), ""));
        }
        assert!(t.len() <= MAX_ENTRIES);
        // The newest are kept.
        assert!(t.get(MAX_ENTRIES as u32 + 99).is_some());
        for pid in 0..(MAX_EXITED as u32 + 10) {
            t.on_end(MAX_ENTRIES as u32 + 99 - pid);
        }
        assert!(
            t.get(MAX_ENTRIES as u32 + 99).is_none(),
            "oldest exit forgotten"
        );
    }
}
