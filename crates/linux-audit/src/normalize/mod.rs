//! Reassembled audit events → endpoint-dialect events (`agent_event::Event`).
//!
//! One [`Normalizer`] owns the state enrichment needs: the [`ProcTable`] (parents, command
//! lines, process guids) and the uid/gid name caches. [`Normalizer::normalize`] maps one
//! [`AuditEvent`]:
//!
//! - `execve`/`execveat` → process created (code 1) with the parent from the table;
//! - `exit_group` → process terminated (code 5) with `process.exit_code`;
//! - `connect` / `accept` / `accept4` on inet sockets → network connection (code 3), the
//!   remote end from the `SOCKADDR` record, the local end from `/proc` ([`sockets`]);
//!   `unix` sockets give a connection with `network.transport = unix` and the path as
//!   address; both ends loopback → `network.direction = internal`;
//! - file syscalls → created (code 11) / changed / renamed / deleted (code 23) /
//!   directory created ..., paths made absolute with the `CWD` record; created, changed and
//!   renamed regular files are returned as [`Normalized::NeedsHash`] so the caller hashes
//!   them off the hot path and fills `file.hash.*` with [`apply_hashes`];
//! - user-space records (`USER_LOGIN`, `USER_AUTH`, `LOGIN`, `CRED_*`, `USER_START`,
//!   `USER_END`, account management ...) → authentication / session / iam events;
//! - any other keyed syscall → a `process` event named after [`vocabulary::syscall`].
//!
//! - records the kernel or a daemon sends beside (or without) a syscall — `LOGIN`,
//!   `NETFILTER_CFG`, `ANOM_PROMISCUOUS`, `ANOM_ABEND`, `SERVICE_START`/`STOP` — are mapped
//!   by their record type, with the process of the `SYSCALL` record when there is one;
//! - `socket()` events emit nothing: they record each socket's type so that a later
//!   `connect` on it knows its transport even when the process is gone ([`Skip::Context`]).
//!
//! Users: `user.*` is the login user (`auid`; the real uid when no login user is set),
//! `user.effective.*` the effective uid and gid, names resolved. `tags[]` are the rule
//! keys; `action.properties` keeps the raw fields of the main record.
//!
//! A normalizer is either live (the collector: names from the system, sizes and
//! descriptors from the file system and `/proc`) or offline ([`Normalizer::offline`], for
//! `agent replay`): then everything comes from the records alone.

pub mod sockets;
pub mod vocabulary;

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use agent_event::{Endpoint, Event, File, Group, Outcome, Process, Strings, Timestamp, User};
use agent_host::{FileHashes, UserNames};
use serde_json::{Map, Value as Json};

use crate::event::AuditEvent;
use crate::msgtype;
use crate::proctable::{ExecInfo, ProcTable, ProcessInfo};
use crate::record::{AuditRecord, Value};
use crate::sockaddr::SockAddr;

/// `-EINPROGRESS`: a non-blocking connect that is still being established.
const EINPROGRESS: i64 = -115;

/// Tag of events whose executable was deleted while the process ran (the kernel's
/// ` (deleted)` suffix is stripped from `process.executable`).
pub const TAG_EXECUTABLE_DELETED: &str = "executable-deleted";
/// Tags the normalizer adds to executions of interpreters found by name wherever they are
/// installed (pyenv, venv, conda, /opt ...), beside the kernel rules' keys.
pub const TAG_PYTHON: &str = "python-exec";
/// See [`TAG_PYTHON`].
pub const TAG_PERL: &str = "perl-exec";
/// See [`TAG_PYTHON`]: `pip*` run as a script of a Python interpreter.
pub const TAG_PACKAGE: &str = "package-install";

/// Remembered `(device, inode)` → path entries (to name files that syscalls reach through a
/// descriptor: `fchmod`, `fchown`, ...); the map is cleared when full.
const MAX_INODE_PATHS: usize = 8192;
/// Processes whose socket types are remembered; the map is cleared when full.
const MAX_SOCKET_PIDS: usize = 8192;
/// Sockets remembered per process (the oldest are forgotten first).
const MAX_SOCKETS_PER_PID: usize = 64;

/// The result of normalizing one audit event.
#[derive(Debug, Clone, PartialEq)]
pub enum Normalized {
    /// Complete; emit it.
    Ready(Event),
    /// A file event whose `file.hash.*` should be filled from `path` before emitting.
    NeedsHash {
        /// The event.
        event: Event,
        /// The file to hash.
        path: PathBuf,
    },
}

impl Normalized {
    /// The event, whether or not it still needs hashes.
    pub fn event(&self) -> &Event {
        match self {
            Normalized::Ready(e) | Normalized::NeedsHash { event: e, .. } => e,
        }
    }

    /// The event, dropping any hash request.
    pub fn into_event(self) -> Event {
        match self {
            Normalized::Ready(e) | Normalized::NeedsHash { event: e, .. } => e,
        }
    }
}

/// Fills `file.hash.*`.
pub fn apply_hashes(event: &mut Event, hashes: &FileHashes) {
    event.file.hash.md5 = hashes.md5.clone();
    event.file.hash.sha1 = hashes.sha1.clone();
    event.file.hash.sha256 = hashes.sha256.clone();
}

/// Why an audit event produced no dialect event (counted by the collector).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// A record type or syscall event this normalizer does not turn into events
    /// (`CONFIG_CHANGE` from loading rules, unkeyed syscalls, ...).
    Unmapped,
    /// An event of an excluded process (the agent itself).
    OwnActivity,
    /// An event that only feeds the state later events are built from (a `socket()` call
    /// whose type a later `connect` on it needs).
    Context,
}

impl Skip {
    /// A short reason, as `agent replay` reports it.
    pub fn reason(self) -> &'static str {
        match self {
            Skip::Unmapped => "unmapped",
            Skip::OwnActivity => "own activity",
            Skip::Context => "context for later events",
        }
    }
}

/// Maps audit events to dialect events; see the module documentation.
#[derive(Debug)]
pub struct Normalizer {
    procs: ProcTable,
    names: UserNames,
    proc_root: PathBuf,
    exclude_pid: Option<u32>,
    live: bool,
    inode_paths: HashMap<(String, u64), String>,
    /// pid → (fd, transport) of the inet sockets it created, newest last.
    sockets: HashMap<u32, Vec<(u64, &'static str)>>,
    /// The last `user.*` built by [`Normalizer::users`], see [`UsersMemo`].
    users_memo: Option<UsersMemo>,
}

/// `user.*` for one combination of (login or real uid, gid, euid, egid), reused for
/// [`USERS_MEMO_FOR`]: consecutive events are mostly of the same users, and building the
/// value anew (four numbers formatted, four name lookups) was a few percent of an exec's
/// cost. Names may thereby change up to that much later than the name caches say.
#[derive(Debug)]
struct UsersMemo {
    ids: [Option<u32>; 4],
    user: User,
    at: std::time::Instant,
}

/// How long a [`UsersMemo`] is reused.
const USERS_MEMO_FOR: std::time::Duration = std::time::Duration::from_secs(1);

impl Normalizer {
    /// A live normalizer over a process table (see [`ProcTable::new`]): user names come from
    /// the system, file sizes and descriptors from the file system and `/proc`.
    pub fn new(procs: ProcTable) -> Self {
        Normalizer {
            procs,
            names: UserNames::new(),
            proc_root: PathBuf::from("/proc"),
            exclude_pid: None,
            live: true,
            inode_paths: HashMap::new(),
            sockets: HashMap::new(),
            users_memo: None,
        }
    }

    /// A normalizer for recorded logs: nothing is read from this host (no user names, no
    /// `stat`, no `/proc`): the events hold what the records hold. `procs` should be a
    /// table that was not filled from this host's `/proc` (see
    /// [`ProcTable::with_proc_root`] with an empty directory).
    pub fn offline(procs: ProcTable) -> Self {
        let none: agent_host::NameResolver = |_| None;
        let ttl = std::time::Duration::from_secs(u64::from(u32::MAX));
        Normalizer {
            names: UserNames {
                users: agent_host::IdNameCache::new(none, 1, ttl),
                groups: agent_host::IdNameCache::new(none, 1, ttl),
            },
            live: false,
            ..Normalizer::new(procs)
        }
    }

    /// Drops every event of `pid` (the agent's own pid, in case a rule of the user's file
    /// precedes the exclusion rule).
    pub fn exclude_pid(mut self, pid: u32) -> Self {
        self.exclude_pid = Some(pid);
        self
    }

    /// The process table.
    pub fn procs(&mut self) -> &mut ProcTable {
        &mut self.procs
    }

    /// Maps one audit event; `Err` says why it maps to nothing.
    pub fn normalize(&mut self, ev: &AuditEvent) -> Result<Normalized, Skip> {
        let ts = Timestamp::from_unix(
            i64::try_from(ev.timestamp.secs).unwrap_or(i64::MAX),
            ev.timestamp.millis.saturating_mul(1_000_000),
        );
        let sc = ev.syscall();
        let pid = sc
            .and_then(|sc| sc.get_u64("pid"))
            .and_then(|p| u32::try_from(p).ok());
        if pid.is_some() && pid == self.exclude_pid {
            return Err(Skip::OwnActivity);
        }
        // A record that says more than the syscall it came with: the `LOGIN` of a write to
        // /proc/self/loginuid, the `NETFILTER_CFG` of an nft/iptables call, ...
        if let Some(rec) = ev.records.iter().find(|r| is_record_event(r.record_type)) {
            return self.record_event(ev, rec, sc, ts).ok_or(Skip::Unmapped);
        }
        match sc {
            Some(sc) => self.syscall_event(ev, sc, ts),
            None => {
                let rec = ev.records.first().ok_or(Skip::Unmapped)?;
                self.user_space_event(rec, ts).ok_or(Skip::Unmapped)
            }
        }
    }

    fn syscall_event(
        &mut self,
        ev: &AuditEvent,
        sc: &AuditRecord,
        ts: Timestamp,
    ) -> Result<Normalized, Skip> {
        let keys = ev.keys();
        let name = ev.syscall_name().unwrap_or("");
        let success = sc.raw("success") != Some("no");
        let exit = sc.raw("exit").and_then(|e| e.parse::<i64>().ok());
        let pid = sc
            .get_u64("pid")
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or(0);
        if name == "socket" {
            self.on_socket(sc, pid, exit);
            return Err(Skip::Context);
        }
        let vocab = vocabulary::syscall(name);
        let mut out = match name {
            "execve" | "execveat" if success => self.exec(ev, sc, pid, ts),
            "exit_group" => self.exit(sc, pid, ts),
            "connect" | "accept" | "accept4" => {
                match self.connection(ev, sc, name, pid, exit, ts) {
                    Some(n) => n,
                    None if keys.is_empty() => return Err(Skip::Unmapped),
                    None => Normalized::Ready(self.generic(ev, sc, pid, ts, name)),
                }
            }
            _ if vocab.is_some_and(|v| v.category == ["file"]) => {
                match self.file(ev, sc, name, pid, ts) {
                    Some(n) => n,
                    None if keys.is_empty() => return Err(Skip::Unmapped),
                    None => Normalized::Ready(self.generic(ev, sc, pid, ts, name)),
                }
            }
            _ if keys.is_empty() => return Err(Skip::Unmapped),
            _ => Normalized::Ready(self.generic(ev, sc, pid, ts, name)),
        };
        let e = match &mut out {
            Normalized::Ready(e) | Normalized::NeedsHash { event: e, .. } => e,
        };
        if !success && !matches!(name, "connect") {
            e.event.outcome = Outcome::Failure.as_str().to_owned();
        }
        e.user = self.users(sc);
        let mut tags = keys;
        for t in std::mem::take(&mut e.tags) {
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        e.tags = tags;
        let extra = std::mem::take(&mut e.action.properties);
        e.action.properties = properties(sc);
        e.action.properties.extend(extra);
        // The old name of a rename: `file.Ext.original.*` is Elastic's extension, which an
        // ECS-only intake drops; `labels` (ECS's own custom keyword pairs) and the raw
        // properties keep it.
        if !e.file.ext.original.path.is_empty() {
            let old = Json::String(e.file.ext.original.path.clone());
            e.action
                .properties
                .insert("original_path".to_owned(), old.clone());
            e.other
                .entry("labels".to_owned())
                .or_insert_with(|| Json::Object(Map::new()))
                .as_object_mut()
                .map(|l| l.insert("original_path".to_owned(), old));
        }
        Ok(out)
    }

    /// Remembers the transport of an inet socket the process just created.
    fn on_socket(&mut self, sc: &AuditRecord, pid: u32, exit: Option<i64>) {
        let hex = |k: &str| sc.raw(k).and_then(|a| u64::from_str_radix(a, 16).ok());
        let (Some(family), Some(kind), Some(fd)) = (
            hex("a0"),
            hex("a1"),
            exit.and_then(|x| u64::try_from(x).ok()),
        ) else {
            return;
        };
        // AF_INET, AF_INET6; SOCK_STREAM, SOCK_DGRAM (the type's low bits; the rest are
        // SOCK_NONBLOCK / SOCK_CLOEXEC flags).
        let transport = match (family, kind & 0xf) {
            (2 | 10, 1) => "tcp",
            (2 | 10, 2) => "udp",
            _ => return,
        };
        if self.sockets.len() >= MAX_SOCKET_PIDS && !self.sockets.contains_key(&pid) {
            self.sockets.clear();
        }
        let list = self.sockets.entry(pid).or_default();
        list.retain(|&(f, _)| f != fd);
        if list.len() >= MAX_SOCKETS_PER_PID {
            list.remove(0);
        }
        list.push((fd, transport));
    }

    /// The transport of socket `fd` of `pid`, if its creation was seen.
    fn socket_transport(&self, pid: u32, fd: u64) -> Option<&'static str> {
        self.sockets
            .get(&pid)?
            .iter()
            .rev()
            .find(|&&(f, _)| f == fd)
            .map(|&(_, t)| t)
    }

    /// `process.*` and `sekoiaio.process.*` of the acting process from the table, with
    /// the executable of the `SYSCALL` record.
    fn acting_process(&mut self, sc: &AuditRecord, pid: u32, e: &mut Event) {
        self.acting_process_with(sc, pid, e, true);
    }

    /// [`Self::acting_process`]; without `from_table` the image fields (executable, name,
    /// arguments, command line, directory, the deleted-executable tag) are left to the
    /// caller, which sets them from its own records (an exec: the copies made here were
    /// thrown away, seven allocations per exec).
    fn acting_process_with(&mut self, sc: &AuditRecord, pid: u32, e: &mut Event, from_table: bool) {
        let mut p = Process {
            pid: Some(pid),
            ..Process::default()
        };
        if from_table {
            p.executable = sc.get("exe").map(Cow::into_owned).unwrap_or_default();
        }
        if let Some(info) = self.procs.get(pid) {
            if from_table {
                fill_from_info(&mut p, info);
            }
            e.sekoiaio.process.guid = guid_text(info.guid);
        }
        if from_table {
            if strip_deleted(&mut p.executable) {
                e.tags.push(TAG_EXECUTABLE_DELETED.to_owned());
            }
            if p.name.is_empty() {
                p.name = base_name(&p.executable).to_owned();
            }
        }
        if let Some(parent) = self.procs.parent(pid) {
            e.sekoiaio.process.parent_guid = guid_text(parent.guid);
            p.parent = Some(Box::new(parent_process(parent)));
        } else if let Some(ppid) = sc.get_u64("ppid").and_then(|p| u32::try_from(p).ok()) {
            p.parent = Some(Box::new(Process {
                pid: Some(ppid),
                ..Process::default()
            }));
        }
        e.process = p;
    }

    fn exec(&mut self, ev: &AuditEvent, sc: &AuditRecord, pid: u32, ts: Timestamp) -> Normalized {
        let args = ev
            .execve_args()
            .or_else(|| ev.proctitle())
            .unwrap_or_default();
        let exe = sc.get("exe").map(Cow::into_owned);
        let ppid = sc
            .get_u64("ppid")
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or(0);
        let id = |k: &str| sc.get_id(k).flatten();
        let cwd = ev.cwd();
        self.procs.on_exec(ExecInfo {
            pid,
            ppid,
            exe: exe.clone(),
            args: args.clone(),
            cwd: cwd.clone(),
            uid: id("uid"),
            euid: id("euid"),
            auid: id("auid"),
            time: Some(ev.timestamp.to_system_time()),
        });
        let mut e = Event::process_created(ts, Process::default());
        // Executable, name, arguments, command line and directory are set below from the
        // event's own records.
        self.acting_process_with(sc, pid, &mut e, false);
        // The event's own view wins over the table's (which may have truncated args).
        e.process.executable = exe.unwrap_or_default();
        if strip_deleted(&mut e.process.executable)
            && !e.tags.iter().any(|t| t == TAG_EXECUTABLE_DELETED)
        {
            e.tags.push(TAG_EXECUTABLE_DELETED.to_owned());
        }
        e.process.name = base_name(&e.process.executable).to_owned();
        e.tags.extend(
            interpreter_tags(&e.process.name, &args)
                .into_iter()
                .map(str::to_owned),
        );
        e.process.command_line = args.join(" ");
        e.process.args = args;
        if let Some(cwd) = cwd {
            e.process.working_directory = cwd;
        }
        Normalized::Ready(e)
    }

    fn exit(&mut self, sc: &AuditRecord, pid: u32, ts: Timestamp) -> Normalized {
        let mut e = Event::process_terminated(ts, Process::default());
        self.acting_process(sc, pid, &mut e);
        e.process.exit_code = sc
            .raw("a0")
            .and_then(|a| u64::from_str_radix(a, 16).ok())
            // exit_group(int): the low 32 bits, signed.
            .map(|a| i64::from(a as u32 as i32));
        self.procs.on_exit(pid);
        self.sockets.remove(&pid);
        Normalized::Ready(e)
    }

    fn connection(
        &mut self,
        ev: &AuditEvent,
        sc: &AuditRecord,
        name: &str,
        pid: u32,
        exit: Option<i64>,
        ts: Timestamp,
    ) -> Option<Normalized> {
        let inbound = name != "connect";
        let addr = ev.sockaddr()?;
        // The socket: connect's first argument, or the descriptor accept returned.
        let fd = if inbound {
            exit.and_then(|x| u64::try_from(x).ok())
        } else {
            sc.raw("a0").and_then(|a| u64::from_str_radix(a, 16).ok())
        };
        let (remote, transport) = match addr {
            SockAddr::Inet { addr, port } => (ip_endpoint(IpAddr::V4(*addr), *port), ""),
            SockAddr::Inet6 { addr, port } => (ip_endpoint(IpAddr::V6(*addr), *port), ""),
            SockAddr::Unix { path } => (
                Endpoint {
                    address: path.clone(),
                    ..Endpoint::default()
                },
                "unix",
            ),
            _ => return None,
        };
        let mut local = Endpoint::default();
        let mut transport = transport;
        let net_type = match addr {
            SockAddr::Inet { .. } => "ipv4",
            SockAddr::Inet6 { .. } => "ipv6",
            _ => "",
        };
        if transport.is_empty() {
            // The socket's type as recorded at its creation (exact, even when the process
            // is gone by now); an accepted socket is a connection-oriented one (TCP for
            // inet families).
            transport = fd
                .and_then(|fd| self.socket_transport(pid, fd))
                .or(inbound.then_some("tcp"))
                .unwrap_or("");
            // The local end is in no record: only the live socket has it.
            let end = if self.live {
                fd.and_then(|fd| sockets::local_end(&self.proc_root, pid, fd))
            } else {
                None
            };
            if let Some(end) = end {
                local = ip_endpoint(end.ip, end.port);
                transport = end.transport;
            }
        }
        let (source, destination) = if inbound {
            (remote, local)
        } else {
            (local, remote)
        };
        let loopback = [&source, &destination]
            .iter()
            .all(|ep| ep.ip.is_empty() || ep.ip.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()))
            && !(source.ip.is_empty() && destination.ip.is_empty());
        let mut e = Event::network_connection(ts, source, destination, transport, inbound);
        e.network.net_type = net_type.to_owned();
        if loopback {
            e.network.direction = "internal".to_owned();
        }
        if transport == "unix" {
            e.network.direction.clear();
        }
        e.event.outcome = match exit {
            Some(EINPROGRESS) => Outcome::Unknown,
            _ if sc.raw("success") == Some("no") => Outcome::Failure,
            _ => Outcome::Success,
        }
        .as_str()
        .to_owned();
        self.acting_process(sc, pid, &mut e);
        Some(Normalized::Ready(e))
    }

    fn file(
        &mut self,
        ev: &AuditEvent,
        sc: &AuditRecord,
        name: &str,
        pid: u32,
        ts: Timestamp,
    ) -> Option<Normalized> {
        let cwd = ev.cwd();
        let paths = ev.paths();
        for p in &paths {
            self.remember_path(p, cwd.as_deref());
        }
        let of_type = |t: &str| -> Vec<&AuditRecord> {
            paths
                .iter()
                .filter(|p| name_type(p) == Some(t))
                .copied()
                .collect()
        };
        let last_of = |t: &str| of_type(t).last().copied();
        let success = sc.raw("success") != Some("no");
        let hex = |k: &str| sc.raw(k).and_then(|a| u64::from_str_radix(a, 16).ok());
        let mut hash = false;
        let mut created = false;
        let (mut e, rec) = match name {
            "rename" | "renameat" | "renameat2" => {
                // PATH records in order: the two parent directories, the old name
                // (DELETE), the replaced target if the new name existed (DELETE, another
                // inode), then the new name (CREATE, the moved inode).
                let to = last_of("CREATE")?;
                let deletes = of_type("DELETE");
                let from = deletes
                    .iter()
                    .find(|d| d.raw("inode").is_some() && d.raw("inode") == to.raw("inode"))
                    .or_else(|| deletes.first())
                    .copied()?;
                let from_path = self.path_of(from, cwd.as_deref(), pid, None);
                let file = self.file_info(to, cwd.as_deref(), pid, None);
                hash = true;
                let mut e = Event::file_renamed(ts, &from_path, file);
                if let Some(replaced) = deletes.iter().find(|d| {
                    !std::ptr::eq(**d, from)
                        && d.raw("name").is_some()
                        && d.raw("name") == to.raw("name")
                }) {
                    if let Some(ino) = replaced.raw("inode") {
                        e.action
                            .properties
                            .insert("replaced_inode".to_owned(), Json::String(ino.to_owned()));
                    }
                }
                (e, to)
            }
            "unlink" | "unlinkat" | "rmdir" => {
                let p = last_of("DELETE")?;
                (
                    Event::file_deleted(ts, self.file_info(p, cwd.as_deref(), pid, None)),
                    p,
                )
            }
            "mkdir" | "mkdirat" => {
                let p = last_of("CREATE")?;
                created = true;
                let mut e =
                    Event::directory_created(ts, self.file_info(p, cwd.as_deref(), pid, None));
                e.event.action = vocabulary::DIRECTORY_CREATED.to_owned();
                (e, p)
            }
            _ => {
                let vocab = vocabulary::syscall(name)?;
                // Calls through a descriptor name no path: `fchmod(fd)`, `fchown(fd)`, ...
                let fd = matches!(
                    name,
                    "fchmod" | "fchown" | "fsetxattr" | "fremovexattr" | "ftruncate" | "fallocate"
                )
                .then(|| hex("a0"))
                .flatten();
                if let Some(p) = last_of("CREATE") {
                    hash = true;
                    created = true;
                    let mut e = Event::file_created(ts, self.file_info(p, cwd.as_deref(), pid, fd));
                    if vocab.action != "opened-file" {
                        e.event.action = vocab.action.to_owned();
                        e.event.code = None;
                        e.event.category = strings(vocab.category);
                        e.event.types = strings(vocab.types);
                    }
                    (e, p)
                } else {
                    let p = last_of("NORMAL").or_else(|| paths.last().copied())?;
                    let mut e = Event::file_changed(ts, self.file_info(p, cwd.as_deref(), pid, fd));
                    e.event.action = vocab.action.to_owned();
                    e.event.category = strings(vocab.category);
                    e.event.types = strings(vocab.types);
                    // An open for writing (what a `-p w` watch reports) is a change.
                    if vocab.action == "opened-file" {
                        e.event.types = Strings::from(["change"]);
                    }
                    hash = vocab.action == "opened-file";
                    (e, p)
                }
            }
        };
        if success {
            apply_new_attributes(&mut e.file, name, &hex, &mut self.names);
        }
        if created {
            // The file came into being with this call: its creation time is the event's.
            e.file.created = ts.to_string();
        }
        if self.live && success && !e.file.path.is_empty() && name_type(rec) != Some("DELETE") {
            self.stat_after(&mut e.file, rec, created);
        }
        self.acting_process(sc, pid, &mut e);
        let regular = rec.raw("mode").is_some_and(|m| m.starts_with("010"));
        if hash && success && !e.file.path.is_empty() && (regular || rec.raw("mode").is_none()) {
            let path = PathBuf::from(&e.file.path);
            return Some(Normalized::NeedsHash { event: e, path });
        }
        Some(Normalized::Ready(e))
    }

    /// `file.size` (and `file.created` from the birth time, when the file system keeps one)
    /// from a `stat` when the event is read — only if the path still leads to the inode the
    /// event names, so a file replaced since then does not lend its values.
    fn stat_after(&self, f: &mut File, rec: &AuditRecord, created: bool) {
        let Ok(meta) = std::fs::symlink_metadata(&f.path) else {
            return;
        };
        if !same_inode(&meta, rec) {
            return;
        }
        if meta.is_file() {
            f.size = Some(meta.len());
        }
        if !created {
            if let Ok(t) = meta.created() {
                if let Ok(d) = t.duration_since(std::time::UNIX_EPOCH) {
                    let ts = Timestamp::from_unix(
                        i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                        d.subsec_millis() * 1_000_000,
                    );
                    f.created = ts.to_string();
                }
            }
        }
    }

    /// Remembers which path a `(device, inode)` was last seen under.
    fn remember_path(&mut self, p: &AuditRecord, cwd: Option<&str>) {
        let (Some(dev), Some(ino), Some(name)) = (p.raw("dev"), p.get_u64("inode"), named(p))
        else {
            return;
        };
        if name_type(p) == Some("PARENT") || name_type(p) == Some("DELETE") {
            return;
        }
        let path = join_cwd(&name, cwd);
        if self.inode_paths.len() >= MAX_INODE_PATHS {
            self.inode_paths.clear();
        }
        self.inode_paths.insert((dev.to_owned(), ino), path);
    }

    /// The absolute path of a `PATH` record. A record without a name (`name=(null)`: the
    /// call reached the file through descriptor `fd`) is named after the path the same inode
    /// was last seen under, else (live) `/proc/PID/fd/FD`; else no path.
    fn path_of(&self, p: &AuditRecord, cwd: Option<&str>, pid: u32, fd: Option<u64>) -> String {
        if let Some(name) = named(p) {
            return join_cwd(&name, cwd);
        }
        if let (Some(dev), Some(ino)) = (p.raw("dev"), p.get_u64("inode")) {
            if let Some(path) = self.inode_paths.get(&(dev.to_owned(), ino)) {
                return path.clone();
            }
        }
        if let (true, Some(fd)) = (self.live, fd) {
            if let Ok(target) = std::fs::read_link(self.proc_root.join(format!("{pid}/fd/{fd}"))) {
                let t = target.to_string_lossy();
                if t.starts_with('/') {
                    return t.strip_suffix(" (deleted)").unwrap_or(&t).to_owned();
                }
            }
        }
        String::new()
    }

    fn file_info(&mut self, p: &AuditRecord, cwd: Option<&str>, pid: u32, fd: Option<u64>) -> File {
        let path = self.path_of(p, cwd, pid, fd);
        let mut f = if path.is_empty() {
            File::default()
        } else {
            File::from_path(&path)
        };
        if let Some(ino) = p.raw("inode") {
            f.inode = ino.to_owned();
        }
        if let Some(dev) = p.raw("dev") {
            f.device = dev.to_owned();
        }
        if let Some(mode) = p.raw("mode") {
            // `0100644`: keep the permission bits (`0644`).
            let perm = u32::from_str_radix(mode, 8)
                .map(|m| m & 0o7777)
                .unwrap_or(0);
            f.mode = format!("{perm:04o}");
        }
        if let Some(Some(uid)) = p.get_id("ouid") {
            f.owner = self
                .names
                .user(uid)
                .map_or_else(|| uid.to_string(), |n| n.to_string());
        }
        if let Some(Some(gid)) = p.get_id("ogid") {
            f.group = self
                .names
                .group(gid)
                .map_or_else(|| gid.to_string(), |n| n.to_string());
        }
        f
    }

    fn generic(
        &mut self,
        _ev: &AuditEvent,
        sc: &AuditRecord,
        pid: u32,
        ts: Timestamp,
        name: &str,
    ) -> Event {
        let mut e = Event::at(ts);
        match vocabulary::syscall(name) {
            Some(v) => {
                e.event.action = v.action.to_owned();
                e.event.category = strings(v.category);
                e.event.types = strings(v.types);
            }
            None => {
                e.event.action = name.to_owned();
                e.event.category = Strings::from(["process"]);
                e.event.types = Strings::from(["info"]);
            }
        }
        e.event.provider = agent_event::PROVIDER.to_owned();
        e.event.outcome = Outcome::Success.as_str().to_owned();
        self.acting_process(sc, pid, &mut e);
        e
    }

    /// `user.*`: the login user (auid, else the real uid) and `user.effective.*`.
    fn users(&mut self, r: &AuditRecord) -> User {
        let id = |k: &str| r.get_id(k).flatten();
        let login = id("auid").or_else(|| id("uid"));
        let ids = [login, id("gid"), id("euid"), id("egid")];
        let now = std::time::Instant::now();
        if let Some(m) = &self.users_memo {
            if m.ids == ids && now.saturating_duration_since(m.at) < USERS_MEMO_FOR {
                return m.user.clone();
            }
        }
        let [login, gid, euid, egid] = ids;
        let mut user = match login {
            Some(uid) => self.user(uid, gid),
            None => User::default(),
        };
        if let Some(euid) = euid {
            user.effective = Some(Box::new(self.user(euid, egid)));
        }
        self.users_memo = Some(UsersMemo {
            ids,
            user: user.clone(),
            at: now,
        });
        user
    }

    fn user(&mut self, uid: u32, gid: Option<u32>) -> User {
        let mut u = User {
            id: uid.to_string(),
            name: self
                .names
                .user(uid)
                .map(|n| n.to_string())
                .unwrap_or_default(),
            ..User::default()
        };
        if let Some(gid) = gid {
            u.group = Group {
                id: gid.to_string(),
                name: self
                    .names
                    .group(gid)
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
                ..Group::default()
            };
        }
        u
    }

    /// The account a user-space record acts upon: `acct=` (a name), else `id=` (a uid);
    /// with the uid too when both are known.
    fn target_account(&mut self, r: &AuditRecord) -> Option<User> {
        // `id=` is a uid (shadow-utils write `op=adding user id=1001`); the parser only
        // types the well-known id fields, so read the number here.
        let id = r
            .get_id("id")
            .flatten()
            .or_else(|| r.raw("id").and_then(|v| v.parse::<u32>().ok()));
        let acct = r
            .get("acct")
            .filter(|a| a != "?" && !a.is_empty())
            .map(Cow::into_owned);
        match (acct, id) {
            (Some(name), Some(uid)) => Some(User {
                name,
                ..self.user(uid, None)
            }),
            (Some(name), None) => Some(User {
                name,
                ..User::default()
            }),
            (None, Some(uid)) => {
                let mut u = self.user(uid, None);
                if u.name.is_empty() {
                    u.name = self.account_from_command_line(r).unwrap_or_default();
                }
                Some(u)
            }
            (None, None) => None,
        }
    }

    /// The login a shadow-utils tool acts upon, from its command line (`useradd [options]
    /// LOGIN`: the last argument). Needed for `ADD_USER`, which names only the new uid and
    /// is sent before the tool writes `/etc/passwd`, so the uid has no name yet.
    fn account_from_command_line(&mut self, r: &AuditRecord) -> Option<String> {
        let exe = r.get("exe")?;
        if !matches!(
            base_name(&exe),
            "useradd" | "usermod" | "userdel" | "newusers"
        ) {
            return None;
        }
        let pid = u32::try_from(r.get_u64("pid")?).ok()?;
        let info = self.procs.get(pid)?;
        let last = info.args.last()?;
        (info.args.len() > 1 && !last.starts_with('-')).then(|| last.clone())
    }

    /// The acting user of a user-space record: the login user (`auid`) when set, else the
    /// real uid of the process that wrote it (a daemon, or `su` started outside a login).
    fn actor(&mut self, r: &AuditRecord) -> User {
        let id = |k: &str| r.get_id(k).flatten();
        match id("auid").or_else(|| id("uid")) {
            Some(uid) => self.user(uid, None),
            None => User::default(),
        }
    }

    /// Authentication, session and account events from user-space records.
    fn user_space_event(&mut self, r: &AuditRecord, ts: Timestamp) -> Option<Normalized> {
        let vocab = vocabulary::record_type(&r.type_name())?;
        let outcome = outcome_of(r);
        // The actor in `user.*`; the account acted upon in `user.effective` (as the
        // dialect's Linux samples carry it) and, for account management, in `user.target`
        // (ECS's field for the user an IAM action was aimed at).
        let target = self.target_account(r);
        let mut user = self.actor(r);
        if vocab.category == ["iam"] {
            user.target = target.clone().map(Box::new);
        }
        user.effective = target.map(Box::new);
        let mut e = Event::authentication(ts, vocab.action, outcome, user);
        e.event.category = strings(vocab.category);
        e.event.types = strings(vocab.types);
        if let Some(pid) = r.get_u64("pid").and_then(|p| u32::try_from(p).ok()) {
            e.process.pid = Some(pid);
        }
        if let Some(exe) = r.get("exe").filter(|x| x != "?") {
            e.process.executable = exe.into_owned();
            e.process.name = base_name(&e.process.executable).to_owned();
        }
        let addr = r.get("addr").filter(|a| a != "?" && !a.is_empty());
        let host = r.get("hostname").filter(|a| a != "?" && !a.is_empty());
        if let Some(ip) = addr.as_deref().and_then(|a| a.parse::<IpAddr>().ok()) {
            e.source.ip = ip.to_string();
            e.source.address = host.map_or_else(|| ip.to_string(), Cow::into_owned);
            e.network.direction = if ip.is_loopback() {
                "internal"
            } else {
                "ingress"
            }
            .to_owned();
        }
        if let Some(tag) = vocabulary::record_tag(&r.type_name()) {
            e.tags.push(tag.to_owned());
        }
        e.action.properties = properties(r);
        Some(Normalized::Ready(e))
    }

    /// Events named by a record the kernel writes beside a syscall (or alone): `LOGIN`,
    /// `NETFILTER_CFG`, `ANOM_PROMISCUOUS`, `ANOM_ABEND`; user-space ones
    /// (`SERVICE_START`, ...) go through [`Self::user_space_event`].
    fn record_event(
        &mut self,
        ev: &AuditEvent,
        rec: &AuditRecord,
        sc: Option<&AuditRecord>,
        ts: Timestamp,
    ) -> Option<Normalized> {
        let type_name = rec.type_name();
        let vocab = vocabulary::record_type(&type_name)?;
        if msgtype::is_standalone(rec.record_type) {
            return self.user_space_event(rec, ts);
        }
        let mut e = Event::at(ts);
        e.event.provider = agent_event::PROVIDER.to_owned();
        e.event.action = vocab.action.to_owned();
        e.event.category = strings(vocab.category);
        e.event.types = strings(vocab.types);
        e.event.outcome = match (outcome_of(rec), sc) {
            // No `res=` (NETFILTER_CFG, ANOM_PROMISCUOUS): the syscall's result says it.
            (Outcome::Unknown, Some(sc)) if sc.raw("success") == Some("no") => Outcome::Failure,
            (Outcome::Unknown, Some(_)) => Outcome::Success,
            (o, _) => o,
        }
        .as_str()
        .to_owned();
        let pid = rec
            .get_u64("pid")
            .or_else(|| sc.and_then(|sc| sc.get_u64("pid")))
            .and_then(|p| u32::try_from(p).ok());
        match (sc, pid) {
            (Some(sc), Some(pid)) => self.acting_process(sc, pid, &mut e),
            (None, Some(pid)) => self.acting_process(rec, pid, &mut e),
            _ => {}
        }
        if type_name == "LOGIN" {
            // The process (uid) set its login uid: the actor is the uid, the new login
            // user is `user.effective` (as in the dialect's `linux_auth2` sample).
            let id = |k: &str| rec.get_id(k).flatten();
            let mut user = match id("uid") {
                Some(uid) => self.user(uid, None),
                None => User::default(),
            };
            user.effective = id("auid").map(|a| Box::new(self.user(a, None)));
            e.user = user;
        } else {
            e.user = match sc {
                Some(sc) => self.users(sc),
                None => self.users(rec),
            };
        }
        if type_name == "ANOM_ABEND" {
            // The process ended on a signal: the record names it, maybe nothing else does.
            e.process.exit_code = rec
                .get_u64("sig")
                .and_then(|s| i64::try_from(s).ok())
                .map(|s| -s);
        }
        let mut tags = ev.keys();
        if let Some(tag) = vocabulary::record_tag(&type_name) {
            tags.push(tag.to_owned());
        }
        for t in std::mem::take(&mut e.tags) {
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        e.tags = tags;
        let mut props = properties(rec);
        if let Some(sc) = sc {
            for (k, v) in properties(sc) {
                props.entry(k).or_insert(v);
            }
        }
        e.action.properties = props;
        Some(Normalized::Ready(e))
    }
}

/// `event.outcome` of a record's `res=`.
fn outcome_of(r: &AuditRecord) -> Outcome {
    match r.raw("res").map(|s| s.trim_matches('\'')) {
        Some("success" | "yes" | "1") => Outcome::Success,
        Some("failed" | "no" | "0") => Outcome::Failure,
        _ => Outcome::Unknown,
    }
}

/// Record types that make an event of their own, even beside a `SYSCALL` record.
fn is_record_event(t: u16) -> bool {
    matches!(
        t,
        msgtype::AUDIT_LOGIN
            | msgtype::AUDIT_NETFILTER_CFG
            | msgtype::AUDIT_ANOM_PROMISCUOUS
            | msgtype::AUDIT_ANOM_ABEND
            | msgtype::AUDIT_SERVICE_START
            | msgtype::AUDIT_SERVICE_STOP
    )
}

fn strings(s: &[&str]) -> Strings {
    Strings::from(s.iter().map(|&x| x.to_owned()).collect::<Vec<_>>())
}

/// A guid as `to_string` writes it (hyphenated, lowercase), encoded into a stack buffer
/// rather than through the formatting machinery: twice per event.
fn guid_text(guid: uuid::Uuid) -> String {
    guid.hyphenated()
        .encode_lower(&mut uuid::Uuid::encode_buffer())
        .to_owned()
}

fn ip_endpoint(ip: IpAddr, port: u16) -> Endpoint {
    Endpoint {
        address: ip.to_string(),
        ip: ip.to_string(),
        port: Some(port),
        ..Endpoint::default()
    }
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn fill_from_info(p: &mut Process, info: &ProcessInfo) {
    if p.executable.is_empty() {
        p.executable = info.exe.clone().unwrap_or_default();
    }
    p.name = info.name().unwrap_or_default().to_owned();
    p.command_line = info.command_line();
    p.args = info.args.clone();
    p.working_directory = info.cwd.clone().unwrap_or_default();
}

fn parent_process(info: &ProcessInfo) -> Process {
    let mut executable = info.exe.clone().unwrap_or_default();
    strip_deleted(&mut executable);
    Process {
        pid: Some(info.pid),
        executable,
        name: info.name().unwrap_or_default().to_owned(),
        command_line: info.command_line(),
        ..Process::default()
    }
}

/// Whether `meta` is the inode the record names (true when either side cannot tell).
#[cfg(unix)]
fn same_inode(meta: &std::fs::Metadata, rec: &AuditRecord) -> bool {
    use std::os::unix::fs::MetadataExt;
    rec.get_u64("inode").is_none_or(|ino| ino == meta.ino())
}

/// Whether `meta` is the inode the record names (no inode numbers here: assume so).
#[cfg(not(unix))]
fn same_inode(_meta: &std::fs::Metadata, _rec: &AuditRecord) -> bool {
    true
}

/// A `PATH` record's name, if it has one (`name=(null)` has none).
fn named(p: &AuditRecord) -> Option<String> {
    let f = p.field("name")?;
    if *f.value == Value::Null || f.raw.is_empty() {
        return None;
    }
    Some(f.text().into_owned())
}

/// A name made absolute: relative names are joined to the `CWD`.
fn join_cwd(name: &str, cwd: Option<&str>) -> String {
    match cwd {
        Some(cwd) if !name.starts_with('/') && !name.is_empty() => Path::new(cwd)
            .join(name.trim_start_matches("./"))
            .to_string_lossy()
            .into_owned(),
        _ => name.to_owned(),
    }
}

/// A `PATH` record's role: `nametype=` (kernels since 3.?) or `objtype=` (RHEL 6/7's
/// kernels and others of that age write the same values under this name).
fn name_type(p: &AuditRecord) -> Option<&str> {
    p.raw("nametype").or_else(|| p.raw("objtype"))
}

/// Mode, owner and group as a successful chmod/chown left them (the `PATH` record holds the
/// values from before the call): the new values are the call's arguments.
fn apply_new_attributes(
    f: &mut File,
    syscall: &str,
    hex: &dyn Fn(&str) -> Option<u64>,
    names: &mut UserNames,
) {
    let mode_arg = match syscall {
        "chmod" | "fchmod" => hex("a1"),
        "fchmodat" => hex("a2"),
        _ => None,
    };
    if let Some(m) = mode_arg {
        f.mode = format!("{:04o}", m & 0o7777);
    }
    let (uid, gid) = match syscall {
        "chown" | "fchown" | "lchown" => (hex("a1"), hex("a2")),
        "fchownat" => (hex("a2"), hex("a3")),
        _ => (None, None),
    };
    // -1 (as a 32-bit id) leaves that id unchanged.
    let id = |v: Option<u64>| {
        v.map(|v| (v & 0xffff_ffff) as u32)
            .filter(|&v| v != u32::MAX)
    };
    if let Some(uid) = id(uid) {
        f.owner = names
            .user(uid)
            .map_or_else(|| uid.to_string(), |n| n.to_string());
    }
    if let Some(gid) = id(gid) {
        f.group = names
            .group(gid)
            .map_or_else(|| gid.to_string(), |n| n.to_string());
    }
}

/// Removes the kernel's ` (deleted)` suffix of an executable deleted while it ran; true if
/// there was one.
fn strip_deleted(exe: &mut String) -> bool {
    match exe.strip_suffix(" (deleted)") {
        Some(s) => {
            let len = s.len();
            exe.truncate(len);
            true
        }
        None => false,
    }
}

/// Tags for executions of interpreters by file name, wherever the binary is installed:
/// `python*` → python-exec, `perl`/`perl5*` → perl-exec, and `pip*` run as a Python script
/// (`python .../pip install`) → package-install too.
fn interpreter_tags(name: &str, args: &[String]) -> Vec<&'static str> {
    let mut tags = Vec::new();
    let pip = |a: &String| base_name(a).starts_with("pip");
    if name.starts_with("python") {
        tags.push(TAG_PYTHON);
        if args.iter().skip(1).take(2).any(pip) {
            tags.push(TAG_PACKAGE);
        }
    } else if name.starts_with("pip") {
        tags.push(TAG_PACKAGE);
    } else if name == "perl" || name.starts_with("perl5") {
        tags.push(TAG_PERL);
    }
    tags
}

/// The raw fields of a record as text, with `arch` and `syscall` named. Fields the event
/// already carries in structured form with the same value are left out (`pid` is
/// `process.pid`, `success` is `event.outcome`, ...): the dialect's own Linux events keep
/// `action.properties` to the raw syscall fields, and repeating the rest made every event
/// larger.
fn properties(r: &AuditRecord) -> Map<String, Json> {
    let syscall = r.record_type == crate::msgtype::AUDIT_SYSCALL;
    let mut m = Map::with_capacity(r.field_count());
    for f in r.fields() {
        if f.key == "key" || *f.value == Value::Null || (syscall && in_structured_fields(f.key)) {
            continue;
        }
        let text = match f.key {
            "arch" => arch_name(f.raw).map_or_else(|| f.text().into_owned(), str::to_owned),
            "syscall" => syscall_name(r).map_or_else(|| f.text().into_owned(), str::to_owned),
            _ => f.text().into_owned(),
        };
        m.insert(f.key.to_owned(), Json::String(text));
    }
    m
}

/// `SYSCALL` fields every event built from one carries elsewhere: `process.pid`,
/// `process.parent.pid`, `process.executable`, `event.outcome`, `user.effective.id` and
/// its group, the login user (`user.id` is `auid` when set), and `items`, the count of the
/// PATH records the `file.*` fields come from. `uid`/`gid` stay: with a login user set
/// they are not in `user.*`.
fn in_structured_fields(key: &str) -> bool {
    matches!(
        key,
        "pid" | "ppid" | "exe" | "success" | "items" | "euid" | "egid" | "auid"
    )
}

fn arch_name(raw: &str) -> Option<&'static str> {
    Some(match raw {
        "c000003e" => "x86_64",
        "40000003" => "i386",
        "c00000b7" => "aarch64",
        "40000028" => "arm",
        _ => return None,
    })
}

fn syscall_name(r: &AuditRecord) -> Option<&'static str> {
    let arch = u32::from_str_radix(r.raw("arch")?, 16).ok()?;
    let nr = u32::try_from(r.get_u64("syscall")?).ok()?;
    crate::rule::syscall_name(arch, nr)
}

#[cfg(test)]
mod tests;
