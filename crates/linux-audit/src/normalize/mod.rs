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
//! Users: `user.*` is the login user (`auid`; the real uid when no login user is set),
//! `user.effective.*` the effective uid and gid, names resolved. `tags[]` are the rule
//! keys; `action.properties` keeps the raw fields of the main record.

pub mod sockets;
pub mod vocabulary;

use std::borrow::Cow;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use agent_event::{Endpoint, Event, File, Group, Outcome, Process, Strings, Timestamp, User};
use agent_host::{FileHashes, UserNames};
use serde_json::{Map, Value as Json};

use crate::event::AuditEvent;
use crate::proctable::{ExecInfo, ProcTable, ProcessInfo};
use crate::record::{AuditRecord, Value};
use crate::sockaddr::SockAddr;

/// `-EINPROGRESS`: a non-blocking connect that is still being established.
const EINPROGRESS: i64 = -115;

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
}

/// Maps audit events to dialect events; see the module documentation.
#[derive(Debug)]
pub struct Normalizer {
    procs: ProcTable,
    names: UserNames,
    proc_root: PathBuf,
    exclude_pid: Option<u32>,
}

impl Normalizer {
    /// A normalizer over a process table (see [`ProcTable::new`]).
    pub fn new(procs: ProcTable) -> Self {
        Normalizer {
            procs,
            names: UserNames::new(),
            proc_root: PathBuf::from("/proc"),
            exclude_pid: None,
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
        match ev.syscall() {
            Some(sc) => {
                let pid = sc.get_u64("pid").and_then(|p| u32::try_from(p).ok());
                if pid.is_some() && pid == self.exclude_pid {
                    return Err(Skip::OwnActivity);
                }
                self.syscall_event(ev, sc, ts)
            }
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
        e.tags = keys;
        e.action.properties = properties(sc);
        Ok(out)
    }

    /// `process.*` and `sekoiaio.process.*` of the acting process from the table, with
    /// the executable of the `SYSCALL` record.
    fn acting_process(&mut self, sc: &AuditRecord, pid: u32, e: &mut Event) {
        let mut p = Process {
            pid: Some(pid),
            executable: sc.get("exe").map(Cow::into_owned).unwrap_or_default(),
            ..Process::default()
        };
        if let Some(info) = self.procs.get(pid) {
            fill_from_info(&mut p, info);
            e.sekoiaio.process.guid = info.guid.to_string();
        }
        if p.name.is_empty() {
            p.name = base_name(&p.executable).to_owned();
        }
        if let Some(parent) = self.procs.parent(pid) {
            e.sekoiaio.process.parent_guid = parent.guid.to_string();
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
        self.procs.on_exec(ExecInfo {
            pid,
            ppid,
            exe: exe.clone(),
            args: args.clone(),
            cwd: ev.cwd(),
            uid: id("uid"),
            euid: id("euid"),
            auid: id("auid"),
            time: Some(ev.timestamp.to_system_time()),
        });
        let mut e = Event::process_created(ts, Process::default());
        self.acting_process(sc, pid, &mut e);
        // The event's own view wins over the table's (which may have truncated args).
        e.process.executable = exe.unwrap_or_default();
        e.process.name = base_name(&e.process.executable).to_owned();
        e.process.command_line = args.join(" ");
        e.process.args = args;
        if let Some(cwd) = ev.cwd() {
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
        if transport.is_empty() {
            if let Some(end) = fd.and_then(|fd| sockets::local_end(&self.proc_root, pid, fd)) {
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
        let by_type = |t: &str| {
            paths
                .iter()
                .rev()
                .find(|p| p.raw("nametype") == Some(t))
                .copied()
        };
        let success = sc.raw("success") != Some("no");
        let mut hash = false;
        let (mut e, rec) = match name {
            "rename" | "renameat" | "renameat2" => {
                let from = by_type("DELETE")?;
                let to = by_type("CREATE")?;
                let from_path = abs_path(from, cwd.as_deref());
                let file = self.file_info(to, cwd.as_deref());
                hash = true;
                (Event::file_renamed(ts, &from_path, file), to)
            }
            "unlink" | "unlinkat" | "rmdir" => {
                let p = by_type("DELETE")?;
                (
                    Event::file_deleted(ts, self.file_info(p, cwd.as_deref())),
                    p,
                )
            }
            "mkdir" | "mkdirat" => {
                let p = by_type("CREATE")?;
                (
                    Event::directory_created(ts, self.file_info(p, cwd.as_deref())),
                    p,
                )
            }
            _ => {
                let vocab = vocabulary::syscall(name)?;
                if let Some(p) = by_type("CREATE") {
                    hash = true;
                    let mut e = Event::file_created(ts, self.file_info(p, cwd.as_deref()));
                    if vocab.action != "opened-file" {
                        e.event.action = vocab.action.to_owned();
                        e.event.code = None;
                    }
                    (e, p)
                } else {
                    let p = by_type("NORMAL").or_else(|| paths.last().copied())?;
                    let mut e = Event::file_changed(ts, self.file_info(p, cwd.as_deref()));
                    e.event.action = vocab.action.to_owned();
                    // An open for writing (what a `-p w` watch reports) is a change.
                    hash = vocab.action == "opened-file";
                    (e, p)
                }
            }
        };
        self.acting_process(sc, pid, &mut e);
        let regular = rec.raw("mode").is_some_and(|m| m.starts_with("010"));
        if hash && success && !e.file.path.is_empty() && (regular || rec.raw("mode").is_none()) {
            let path = PathBuf::from(&e.file.path);
            return Some(Normalized::NeedsHash { event: e, path });
        }
        Some(Normalized::Ready(e))
    }

    fn file_info(&mut self, p: &AuditRecord, cwd: Option<&str>) -> File {
        let mut f = File::from_path(&abs_path(p, cwd));
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
        let mut user = match login {
            Some(uid) => self.user(uid, id("gid")),
            None => User::default(),
        };
        if let Some(euid) = id("euid") {
            user.effective = Some(Box::new(self.user(euid, id("egid"))));
        }
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

    /// Authentication, session and account events from user-space records.
    fn user_space_event(&mut self, r: &AuditRecord, ts: Timestamp) -> Option<Normalized> {
        let vocab = vocabulary::record_type(&r.type_name())?;
        let outcome = match r.raw("res").map(|s| s.trim_matches('\'')) {
            Some("success" | "yes" | "1") => Outcome::Success,
            Some("failed" | "no" | "0") => Outcome::Failure,
            _ => Outcome::Unknown,
        };
        let id = |k: &str| r.get_id(k).flatten();
        // The account acted upon: `acct` (a name), else `id` (a uid), else the real uid.
        let account = match (r.get("acct"), id("id")) {
            (Some(a), _) if a != "?" && !a.is_empty() => {
                let name = a.into_owned();
                Some(User {
                    name,
                    ..User::default()
                })
            }
            (_, Some(uid)) => Some(self.user(uid, None)),
            _ => id("uid").map(|uid| self.user(uid, None)),
        };
        let mut user = match id("auid") {
            Some(auid) => self.user(auid, None),
            None => account.clone().unwrap_or_default(),
        };
        user.effective = account.map(Box::new);
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
        e.action.properties = properties(r);
        Some(Normalized::Ready(e))
    }
}

fn strings(s: &[&str]) -> Strings {
    Strings::from(s.iter().map(|&x| x.to_owned()).collect::<Vec<_>>())
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
    Process {
        pid: Some(info.pid),
        executable: info.exe.clone().unwrap_or_default(),
        name: info.name().unwrap_or_default().to_owned(),
        command_line: info.command_line(),
        ..Process::default()
    }
}

/// A `PATH` record's name, absolute: relative names are joined to the `CWD`.
fn abs_path(p: &AuditRecord, cwd: Option<&str>) -> String {
    let name = p.get("name").map(Cow::into_owned).unwrap_or_default();
    match cwd {
        Some(cwd) if !name.starts_with('/') && !name.is_empty() => Path::new(cwd)
            .join(name.trim_start_matches("./"))
            .to_string_lossy()
            .into_owned(),
        _ => name,
    }
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
