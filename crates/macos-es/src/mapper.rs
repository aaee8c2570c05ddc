//! Endpoint Security messages → endpoint-dialect events (`agent_event::Event`).
//!
//! | ES event | dialect event |
//! |---|---|
//! | `exec` | process created (code 1), args, cwd, parent, code signature |
//! | `fork` | none: the child inherits its parent's command line in the process cache |
//! | `exit` | process terminated (code 5) with `process.exit_code` |
//! | `create` | file created (code 11) / directory created |
//! | `unlink` | file deleted (code 23) |
//! | `rename` | renamed, the old path in `file.Ext.original.*` |
//! | `write`, `close` with `modified` | file changed (`opened-file`, type change) |
//! | `setmode` / `setowner` | `changed-file-permissions-of` / `changed-file-ownership-of` |
//! | `sudo` | `ran-command` (process, start) from the invoking to the target user |
//! | `su` | `authenticated`, from the invoking to the target user |
//! | `openssh_login` | `logged-in` with `source.ip` |
//! | `authentication` | `authenticated` (Open Directory, Touch ID, token, auto unlock) |
//!
//! `process.*` is the process that acted (for `exec`, the new image), its command line
//! and working directory from a bounded cache filled by `exec` and `fork` (ES gives
//! arguments only at exec). `sekoiaio.process.guid` is derived from the audit token:
//! `UUIDv5(namespace, "<boot session uuid>:<pid>:<pidversion>")`. `user.*` is the login user
//! (`auid`, else the real uid) with `user.effective.*`, as on Linux. `tags[]`: see
//! [`crate::tags`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;

use agent_event::{Event, File, Group, Outcome, Process, Strings, Timestamp, User};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::message::{
    mode, AuditToken, Authentication, Close, Create, EsEvent, EsFile, EsMessage, EsProcess, Exec,
    Exit, OpensshLogin, Rename, SetMode, SetOwner, Su, Sudo, Unlink, AU_DEFAULTID,
};
use crate::tags::{self, base_name};

/// Namespace of process GUIDs, the same as the Linux collector's:
/// `UUIDv5(NAMESPACE_URL, "https://github.com/endpoint-agent/endpoint-agent/process-guid")`.
/// Never change it: the guids of running processes would change with it.
pub const PROCESS_GUID_NAMESPACE: Uuid = Uuid::from_u128(0x8207_d261_248f_50ea_991a_4db7_9fa6_a1f7);

/// `CS_VALID`: the code signature is valid (`<kern/cs_blobs.h>`).
const CS_VALID: u32 = 0x0000_0001;
/// `CS_SIGNED`: the code has a signature.
const CS_SIGNED: u32 = 0x2000_0000;

/// The stable identity of one process image on one boot: ES increments `pidversion` at
/// every exec and pid reuse, so `(pid, pidversion)` never names two images in a boot.
pub fn process_guid(boot_id: &str, token: &AuditToken) -> Uuid {
    let name = format!("{boot_id}:{}:{}", token.pid, token.pidversion);
    Uuid::new_v5(&PROCESS_GUID_NAMESPACE, name.as_bytes())
}

/// User and group names by id.
pub trait Names {
    /// The name of user `uid`.
    fn user(&mut self, uid: u32) -> Option<String>;
    /// The name of group `gid`.
    fn group(&mut self, gid: u32) -> Option<String>;
}

impl Names for agent_host::UserNames {
    fn user(&mut self, uid: u32) -> Option<String> {
        agent_host::UserNames::user(self, uid).map(|n| n.to_string())
    }
    fn group(&mut self, gid: u32) -> Option<String> {
        agent_host::UserNames::group(self, gid).map(|n| n.to_string())
    }
}

/// A fixed table of names (tests, replays of events recorded on another host).
#[derive(Debug, Clone, Default)]
pub struct NameTable {
    /// uid → name.
    pub users: HashMap<u32, String>,
    /// gid → name.
    pub groups: HashMap<u32, String>,
}

impl Names for NameTable {
    fn user(&mut self, uid: u32) -> Option<String> {
        self.users.get(&uid).cloned()
    }
    fn group(&mut self, gid: u32) -> Option<String> {
        self.groups.get(&gid).cloned()
    }
}

/// Which file events become dialect events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FileScope {
    /// Only those with a tag: the areas the Linux rules watch (`/etc`, accounts, binaries,
    /// scheduled jobs, launchd jobs). ES reports every file of the system; this keeps the
    /// volume and the meaning of the Linux collector.
    #[default]
    Tagged,
    /// Every file event outside the muted paths.
    All,
}

/// What a [`Mapper`] needs to know about the host and the agent.
#[derive(Debug, Clone, Default)]
pub struct MapperConfig {
    /// The boot's identity (`kern.bootsessionuuid` on macOS), part of every process guid.
    pub boot_id: String,
    /// The agent's own pid: its events are dropped (the binding also mutes it in ES).
    pub own_pid: Option<u32>,
    /// Which file events are kept.
    pub file_scope: FileScope,
    /// File events on paths under these prefixes are dropped (the binding mutes them in
    /// ES too); see [`default_muted_paths`].
    pub muted_paths: Vec<String>,
}

impl MapperConfig {
    /// Whether a file event on `paths` (a rename: new, then old) is kept, and its tag:
    /// not when every path is muted, nor without a tag under [`FileScope::Tagged`]. The
    /// macOS binding asks before copying a message, so that discarded events never take
    /// room in the queue.
    pub fn file_filter(&self, paths: &[&str]) -> Result<Option<&'static str>, Skip> {
        let muted = |p: &str| self.muted_paths.iter().any(|m| p.starts_with(m.as_str()));
        if paths.iter().all(|p| muted(p)) {
            return Err(Skip::Muted);
        }
        let tag = paths.iter().find_map(|p| tags::file_tag(p));
        if tag.is_none() && self.file_scope == FileScope::Tagged {
            return Err(Skip::Untagged);
        }
        Ok(tag)
    }
}

/// High-volume paths the product does not need: per-user temporary and cache folders,
/// the unified log store, Spotlight's index, devices. `homes` are the users' home
/// directories, whose `Library/Caches` are muted too.
pub fn default_muted_paths<I, S>(homes: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut paths: Vec<String> = [
        "/private/var/folders/",
        "/private/var/db/diagnostics/",
        "/private/var/db/uuidtext/",
        "/private/var/db/Spotlight-V100/",
        "/System/Volumes/Data/.Spotlight-V100/",
        "/.Spotlight-V100/",
        "/Library/Caches/",
        "/private/var/vm/",
        "/dev/",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for home in homes {
        let home = home.as_ref().trim_end_matches('/');
        paths.push(format!("{home}/Library/Caches/"));
    }
    paths
}

/// The result of mapping one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
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

impl Mapped {
    /// The event, whether or not it still needs hashes.
    pub fn event(&self) -> &Event {
        match self {
            Mapped::Ready(e) | Mapped::NeedsHash { event: e, .. } => e,
        }
    }

    /// The event, dropping any hash request.
    pub fn into_event(self) -> Event {
        match self {
            Mapped::Ready(e) | Mapped::NeedsHash { event: e, .. } => e,
        }
    }
}

/// Why a message produced no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// An event kind this mapper does not turn into events.
    Unmapped,
    /// The agent's own activity.
    OwnActivity,
    /// A file event under a muted path.
    Muted,
    /// A file event outside the tagged areas, with [`FileScope::Tagged`].
    Untagged,
    /// A `close` of a file that was not modified.
    Unmodified,
    /// An event that only updates the mapper's state (`fork`).
    StateOnly,
}

/// What the cache remembers of a process image: ES sends arguments and the working
/// directory only with `exec`.
#[derive(Debug, Clone, Default)]
struct ProcEntry {
    executable: String,
    args: Vec<String>,
    cwd: String,
    used: u64,
}

/// Bounded: when full, the least recently used half goes in one pass (amortised O(1)).
#[derive(Debug)]
struct ProcCache {
    map: HashMap<(u32, u32), ProcEntry>,
    clock: u64,
    capacity: usize,
}

impl ProcCache {
    fn new(capacity: usize) -> Self {
        ProcCache {
            map: HashMap::new(),
            clock: 0,
            capacity: capacity.max(2),
        }
    }

    fn get(&mut self, t: &AuditToken) -> Option<&ProcEntry> {
        self.clock += 1;
        let clock = self.clock;
        self.map.get_mut(&(t.pid, t.pidversion)).map(|e| {
            e.used = clock;
            &*e
        })
    }

    fn insert(&mut self, t: &AuditToken, mut entry: ProcEntry) {
        self.clock += 1;
        let key = (t.pid, t.pidversion);
        if self.map.len() >= self.capacity && !self.map.contains_key(&key) {
            let mut uses: Vec<u64> = self.map.values().map(|e| e.used).collect();
            uses.sort_unstable();
            let cutoff = uses[uses.len() / 2];
            self.map.retain(|_, e| e.used > cutoff);
        }
        entry.used = self.clock;
        self.map.insert(key, entry);
    }

    fn remove(&mut self, t: &AuditToken) {
        self.map.remove(&(t.pid, t.pidversion));
    }
}

/// Processes the cache remembers at most.
pub const PROCESS_CACHE_CAPACITY: usize = 8192;

/// Maps ES messages to dialect events; see the module documentation.
#[derive(Debug)]
pub struct Mapper<N> {
    config: MapperConfig,
    names: N,
    procs: ProcCache,
}

impl<N: Names> Mapper<N> {
    /// A mapper with its settings and a source of user and group names.
    pub fn new(config: MapperConfig, names: N) -> Self {
        Mapper {
            config,
            names,
            procs: ProcCache::new(PROCESS_CACHE_CAPACITY),
        }
    }

    /// Remembers a process that was running before the collector started (ES reports
    /// arguments only at exec): its later events, and those of its children, then carry
    /// its command line. The macOS binding seeds every running process at start.
    pub fn seed_process(
        &mut self,
        token: &AuditToken,
        executable: &str,
        args: Vec<String>,
        cwd: &str,
    ) {
        self.procs.insert(
            token,
            ProcEntry {
                executable: executable.to_owned(),
                args,
                cwd: cwd.to_owned(),
                used: 0,
            },
        );
    }

    /// Maps one message; `Err` says why it maps to nothing.
    pub fn map(&mut self, m: &EsMessage) -> Result<Mapped, Skip> {
        if self.config.own_pid == Some(m.process.audit_token.pid) {
            return Err(Skip::OwnActivity);
        }
        let ts = m
            .time
            .parse::<Timestamp>()
            .unwrap_or_else(|_| Timestamp::now());
        match &m.event {
            EsEvent::Exec(x) => Ok(Mapped::Ready(self.exec(ts, x))),
            EsEvent::Fork(f) => {
                let entry = self
                    .procs
                    .get(&m.process.audit_token)
                    .cloned()
                    .unwrap_or_else(|| ProcEntry {
                        executable: f.child.executable.path.clone(),
                        ..ProcEntry::default()
                    });
                self.procs.insert(&f.child.audit_token, entry);
                Err(Skip::StateOnly)
            }
            EsEvent::Exit(x) => Ok(Mapped::Ready(self.exit(ts, &m.process, x))),
            EsEvent::Create(c) => self.create(ts, &m.process, c),
            EsEvent::Unlink(u) => self.unlink(ts, &m.process, u),
            EsEvent::Rename(r) => self.rename(ts, &m.process, r),
            EsEvent::Write(w) => self.changed(ts, &m.process, &w.target, None),
            EsEvent::Close(c) => self.close(ts, &m.process, c),
            EsEvent::SetMode(s) => self.setmode(ts, &m.process, s),
            EsEvent::SetOwner(s) => self.setowner(ts, &m.process, s),
            EsEvent::Sudo(s) => Ok(Mapped::Ready(self.sudo(ts, &m.process, s))),
            EsEvent::Su(s) => Ok(Mapped::Ready(self.su(ts, &m.process, s))),
            EsEvent::OpensshLogin(o) => Ok(Mapped::Ready(self.openssh_login(ts, &m.process, o))),
            EsEvent::Authentication(a) => Ok(Mapped::Ready(self.authentication(ts, &m.process, a))),
            EsEvent::Other(_) => Err(Skip::Unmapped),
        }
    }

    // --- processes -------------------------------------------------------------------

    /// `process.*` and `sekoiaio.process.*` of `p`, with what the cache knows of it and of
    /// its parent.
    fn acting_process(&mut self, p: &EsProcess, e: &mut Event) {
        let mut process = Process {
            pid: Some(p.audit_token.pid),
            executable: p.executable.path.clone(),
            name: base_name(&p.executable.path).to_owned(),
            start: p.start_time.as_deref().and_then(|t| t.parse().ok()),
            ..Process::default()
        };
        if let Some(entry) = self.procs.get(&p.audit_token) {
            process.command_line = entry.args.join(" ");
            process.args = entry.args.clone();
            process.working_directory = entry.cwd.clone();
        }
        process.parent = Some(Box::new(self.parent(p, e)));
        e.sekoiaio.process.guid = process_guid(&self.config.boot_id, &p.audit_token).to_string();
        e.process = process;
    }

    /// The parent of `p`: its pid, and its image from the cache when known.
    fn parent(&mut self, p: &EsProcess, e: &mut Event) -> Process {
        let mut parent = Process {
            pid: Some(p.ppid),
            ..Process::default()
        };
        if let Some(token) = p
            .parent_audit_token
            .filter(|t| t.pid != 0 || t.pidversion != 0)
        {
            e.sekoiaio.process.parent_guid = process_guid(&self.config.boot_id, &token).to_string();
            if let Some(entry) = self.procs.get(&token) {
                parent.executable = entry.executable.clone();
                parent.name = base_name(&entry.executable).to_owned();
                parent.command_line = entry.args.join(" ");
            }
        }
        parent
    }

    fn exec(&mut self, ts: Timestamp, x: &Exec) -> Event {
        let t = &x.target;
        let cwd = x.cwd.as_ref().map(|c| c.path.clone()).unwrap_or_default();
        self.procs.insert(
            &t.audit_token,
            ProcEntry {
                executable: t.executable.path.clone(),
                args: x.args.clone(),
                cwd: cwd.clone(),
                used: 0,
            },
        );
        let mut e = Event::process_created(ts, Process::default());
        self.acting_process(t, &mut e);
        // The event's own view (the cache may have been full).
        e.process.args = x.args.clone();
        e.process.command_line = x.args.join(" ");
        e.process.working_directory = cwd;
        e.process
            .other
            .insert("code_signature".to_owned(), code_signature(t));
        e.user = self.users(&t.audit_token);
        let script = x.script.as_ref().map(|s| s.path.as_str());
        e.tags = tags::exec_tags(&t.executable.path, script, t.audit_token.euid);
        let mut props = signing_properties(t);
        if let Some(s) = script {
            props.insert("script".to_owned(), s.into());
        }
        e.action.properties = props;
        e
    }

    fn exit(&mut self, ts: Timestamp, p: &EsProcess, x: &Exit) -> Event {
        let mut e = Event::process_terminated(ts, Process::default());
        self.acting_process(p, &mut e);
        self.procs.remove(&p.audit_token);
        // A wait status: the exit code when the process exited, 128 + the signal (as
        // shells report it) when a signal ended it.
        let signal = x.stat & 0x7f;
        e.process.exit_code = Some(if signal == 0 {
            i64::from((x.stat >> 8) & 0xff)
        } else {
            128 + i64::from(signal)
        });
        e.user = self.users(&p.audit_token);
        e.tags = vec![tags::PROCESS_EXIT.to_owned()];
        let mut props = Map::new();
        props.insert("stat".to_owned(), x.stat.to_string().into());
        if signal != 0 {
            props.insert("signal".to_owned(), signal.to_string().into());
        }
        e.action.properties = props;
        e
    }

    // --- files -----------------------------------------------------------------------

    /// Whether a file event on these paths is kept, and its tag.
    fn file_filter(&self, paths: &[&str]) -> Result<Option<&'static str>, Skip> {
        self.config.file_filter(paths)
    }

    /// Completes a file event: acting process, users, tag, properties; asks for hashes of
    /// `hash` when it is a regular file (or of unknown type).
    fn finish_file(
        &mut self,
        mut e: Event,
        p: &EsProcess,
        tag: Option<&'static str>,
        props: Map<String, Value>,
        hash: Option<&EsFile>,
    ) -> Mapped {
        self.acting_process(p, &mut e);
        e.user = self.users(&p.audit_token);
        e.tags = tag.map(|t| vec![t.to_owned()]).unwrap_or_default();
        e.action.properties = props;
        match hash {
            Some(f)
                if f.stat
                    .as_ref()
                    .is_none_or(|s| s.st_mode & mode::S_IFMT == mode::S_IFREG) =>
            {
                let path = PathBuf::from(&e.file.path);
                Mapped::NeedsHash { event: e, path }
            }
            _ => Mapped::Ready(e),
        }
    }

    fn file_info(&mut self, path: &str, f: Option<&EsFile>) -> File {
        let mut file = File::from_path(path);
        let Some(st) = f.and_then(|f| f.stat.as_ref()) else {
            return file;
        };
        file.inode = st.st_ino.to_string();
        // dev_t on macOS: major in the top 8 bits, minor in the low 24.
        file.device = format!(
            "{:02x}:{:02x}",
            (st.st_dev >> 24) & 0xff,
            st.st_dev & 0x00ff_ffff
        );
        file.mode = format!("{:04o}", st.st_mode & 0o7777);
        file.size = Some(st.st_size);
        file.owner = self
            .names
            .user(st.st_uid)
            .unwrap_or_else(|| st.st_uid.to_string());
        file.group = self
            .names
            .group(st.st_gid)
            .unwrap_or_else(|| st.st_gid.to_string());
        if let Some(Value::String(t)) = &st.st_birthtimespec {
            file.created.clone_from(t);
        }
        file
    }

    fn create(&mut self, ts: Timestamp, p: &EsProcess, c: &Create) -> Result<Mapped, Skip> {
        let path = c.destination.path().ok_or(Skip::Unmapped)?;
        let tag = self.file_filter(&[&path])?;
        let existing = c.destination.existing_file.as_ref();
        let is_dir = existing
            .and_then(|f| f.stat.as_ref())
            .is_some_and(|s| s.st_mode & mode::S_IFMT == mode::S_IFDIR);
        let mut file = self.file_info(&path, existing);
        if let (None, Some(m)) = (
            existing,
            c.destination.new_path.as_ref().and_then(|n| n.mode),
        ) {
            file.mode = format!("{:04o}", m & 0o7777);
        }
        if is_dir {
            let e = Event::directory_created(ts, file);
            return Ok(self.finish_file(e, p, tag, Map::new(), None));
        }
        let e = Event::file_created(ts, file);
        let placeholder = EsFile::default();
        Ok(self.finish_file(
            e,
            p,
            tag,
            Map::new(),
            Some(existing.unwrap_or(&placeholder)),
        ))
    }

    fn unlink(&mut self, ts: Timestamp, p: &EsProcess, u: &Unlink) -> Result<Mapped, Skip> {
        let tag = self.file_filter(&[&u.target.path])?;
        let file = self.file_info(&u.target.path, Some(&u.target));
        let e = Event::file_deleted(ts, file);
        Ok(self.finish_file(e, p, tag, Map::new(), None))
    }

    fn rename(&mut self, ts: Timestamp, p: &EsProcess, r: &Rename) -> Result<Mapped, Skip> {
        let to = r.destination.path().ok_or(Skip::Unmapped)?;
        let tag = self.file_filter(&[&to, &r.source.path])?;
        // The source's stat describes the moved file (same inode) under its new name.
        let file = self.file_info(&to, Some(&r.source));
        let e = Event::file_renamed(ts, &r.source.path, file);
        let mut props = Map::new();
        if r.destination.existing_file.is_some() {
            props.insert("replaced".to_owned(), "true".into());
        }
        Ok(self.finish_file(e, p, tag, props, Some(&r.source)))
    }

    fn changed(
        &mut self,
        ts: Timestamp,
        p: &EsProcess,
        target: &EsFile,
        props: Option<Map<String, Value>>,
    ) -> Result<Mapped, Skip> {
        let tag = self.file_filter(&[&target.path])?;
        let file = self.file_info(&target.path, Some(target));
        let e = Event::file_changed(ts, file);
        Ok(self.finish_file(e, p, tag, props.unwrap_or_default(), Some(target)))
    }

    fn close(&mut self, ts: Timestamp, p: &EsProcess, c: &Close) -> Result<Mapped, Skip> {
        if !c.modified {
            return Err(Skip::Unmodified);
        }
        let mut props = Map::new();
        if c.was_mapped_writable == Some(true) {
            props.insert("was_mapped_writable".to_owned(), "true".into());
        }
        self.changed(ts, p, &c.target, Some(props))
    }

    fn setmode(&mut self, ts: Timestamp, p: &EsProcess, s: &SetMode) -> Result<Mapped, Skip> {
        let tag = self.file_filter(&[&s.target.path])?;
        let mut file = self.file_info(&s.target.path, Some(&s.target));
        file.mode = format!("{:04o}", s.mode & 0o7777);
        let mut e = Event::file_changed(ts, file);
        e.event.action = "changed-file-permissions-of".to_owned();
        let mut props = Map::new();
        props.insert("mode".to_owned(), format!("{:04o}", s.mode & 0o7777).into());
        Ok(self.finish_file(e, p, tag, props, None))
    }

    fn setowner(&mut self, ts: Timestamp, p: &EsProcess, s: &SetOwner) -> Result<Mapped, Skip> {
        let tag = self.file_filter(&[&s.target.path])?;
        let mut file = self.file_info(&s.target.path, Some(&s.target));
        let mut props = Map::new();
        // u32::MAX (-1) leaves that id unchanged.
        if s.uid != u32::MAX {
            file.owner = self.names.user(s.uid).unwrap_or_else(|| s.uid.to_string());
            props.insert("uid".to_owned(), s.uid.to_string().into());
        }
        if s.gid != u32::MAX {
            file.group = self.names.group(s.gid).unwrap_or_else(|| s.gid.to_string());
            props.insert("gid".to_owned(), s.gid.to_string().into());
        }
        let mut e = Event::file_changed(ts, file);
        e.event.action = "changed-file-ownership-of".to_owned();
        Ok(self.finish_file(e, p, tag, props, None))
    }

    // --- authentication ----------------------------------------------------------------

    /// A user named by uid and/or name; the name is looked up when only the uid is known.
    fn account(&mut self, uid: Option<u32>, name: Option<&str>) -> User {
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => n.to_owned(),
            None => uid.and_then(|u| self.names.user(u)).unwrap_or_default(),
        };
        User {
            id: uid.map(|u| u.to_string()).unwrap_or_default(),
            name,
            ..User::default()
        }
    }

    fn auth_event(
        &mut self,
        ts: Timestamp,
        p: &EsProcess,
        action: &str,
        vocab: (&str, &str),
        success: bool,
        user: User,
    ) -> Event {
        let outcome = if success {
            Outcome::Success
        } else {
            Outcome::Failure
        };
        let mut e = Event::authentication(ts, action, outcome, user);
        e.event.category = Strings::from([vocab.0]);
        e.event.types = Strings::from([vocab.1]);
        let user = std::mem::take(&mut e.user);
        self.acting_process(p, &mut e);
        e.user = user;
        e
    }

    fn sudo(&mut self, ts: Timestamp, p: &EsProcess, s: &Sudo) -> Event {
        let from_uid = s.from_uid.filter(|_| s.has_from_uid);
        let to_uid = s.to_uid.filter(|_| s.has_to_uid);
        let mut user = self.account(from_uid, s.from_username.as_deref());
        let target = self.account(to_uid, s.to_username.as_deref());
        if !target.id.is_empty() || !target.name.is_empty() {
            user.effective = Some(Box::new(target));
        }
        let mut e = self.auth_event(ts, p, "ran-command", ("process", "start"), s.success, user);
        let mut props = Map::new();
        if let Some(c) = s.command.as_deref().filter(|c| !c.is_empty()) {
            props.insert("command".to_owned(), c.into());
        }
        if let Some(r) = &s.reject_info {
            props.insert("plugin_name".to_owned(), r.plugin_name.clone().into());
            props.insert(
                "plugin_type".to_owned(),
                sudo_plugin_type(r.plugin_type).into(),
            );
            props.insert(
                "failure_message".to_owned(),
                r.failure_message.clone().into(),
            );
        }
        e.action.properties = props;
        e
    }

    fn su(&mut self, ts: Timestamp, p: &EsProcess, s: &Su) -> Event {
        let mut user = self.account(Some(s.from_uid), s.from_username.as_deref());
        let to_uid = s.to_uid.filter(|_| s.has_to_uid);
        let target = self.account(to_uid, s.to_username.as_deref());
        if !target.id.is_empty() || !target.name.is_empty() {
            user.effective = Some(Box::new(target));
        }
        let mut e = self.auth_event(
            ts,
            p,
            "authenticated",
            ("authentication", "start"),
            s.success,
            user,
        );
        let mut props = Map::new();
        if let Some(sh) = s.shell.as_deref().filter(|x| !x.is_empty()) {
            props.insert("shell".to_owned(), sh.into());
        }
        if !s.argv.is_empty() {
            props.insert("argv".to_owned(), s.argv.join(" ").into());
        }
        if let Some(m) = s.failure_message.as_deref().filter(|m| !m.is_empty()) {
            props.insert("failure_message".to_owned(), m.into());
        }
        e.action.properties = props;
        e
    }

    fn openssh_login(&mut self, ts: Timestamp, p: &EsProcess, o: &OpensshLogin) -> Event {
        let uid = o.uid.filter(|_| o.has_uid);
        let user = self.account(uid, Some(&o.username));
        let mut e = self.auth_event(
            ts,
            p,
            "logged-in",
            ("authentication", "start"),
            o.success,
            user,
        );
        if let Ok(ip) = o.source_address.parse::<IpAddr>() {
            e.source.ip = ip.to_string();
            e.source.address = ip.to_string();
            e.network.direction = if ip.is_loopback() {
                "internal"
            } else {
                "ingress"
            }
            .to_owned();
        } else if !o.source_address.is_empty() {
            e.source.address = o.source_address.clone();
        }
        let mut props = Map::new();
        props.insert(
            "result_type".to_owned(),
            openssh_result(o.result_type).into(),
        );
        e.action.properties = props;
        e
    }

    fn authentication(&mut self, ts: Timestamp, p: &EsProcess, a: &Authentication) -> Event {
        let mut props = Map::new();
        let mut instigator = None;
        let user = match a.auth_type {
            0 => {
                props.insert("type".to_owned(), "od".into());
                let od = a.data.od.clone().unwrap_or_default();
                props.insert("record_type".to_owned(), od.record_type.clone().into());
                props.insert("node_name".to_owned(), od.node_name.clone().into());
                if let Some(db) = od.db_path.as_deref().filter(|d| !d.is_empty()) {
                    props.insert("db_path".to_owned(), db.into());
                }
                instigator = od.instigator;
                self.account(None, Some(&od.record_name))
            }
            1 => {
                props.insert("type".to_owned(), "touchid".into());
                let t = a.data.touchid.clone().unwrap_or_default();
                let mode = if t.touchid_mode == 1 {
                    "identification"
                } else {
                    "verification"
                };
                props.insert("touchid_mode".to_owned(), mode.into());
                instigator = t.instigator;
                self.account(t.uid.filter(|_| t.has_uid), None)
            }
            2 => {
                props.insert("type".to_owned(), "token".into());
                let t = a.data.token.clone().unwrap_or_default();
                props.insert("pubkey_hash".to_owned(), t.pubkey_hash.clone().into());
                props.insert("token_id".to_owned(), t.token_id.clone().into());
                if let Some(k) = t.kerberos_principal.as_deref().filter(|k| !k.is_empty()) {
                    props.insert("kerberos_principal".to_owned(), k.into());
                }
                instigator = t.instigator;
                User::default()
            }
            3 => {
                props.insert("type".to_owned(), "auto_unlock".into());
                let u = a.data.auto_unlock.clone().unwrap_or_default();
                let kind = if u.unlock_type == 2 {
                    "auth_prompt"
                } else {
                    "machine_unlock"
                };
                props.insert("auto_unlock_type".to_owned(), kind.into());
                self.account(None, Some(&u.username))
            }
            other => {
                props.insert("type".to_owned(), other.to_string().into());
                User::default()
            }
        };
        // The process that asked for the authentication, when ES names it, acted.
        let acting = instigator.unwrap_or_else(|| p.clone());
        let mut e = self.auth_event(
            ts,
            &acting,
            "authenticated",
            ("authentication", "info"),
            a.success,
            user,
        );
        e.action.properties = props;
        e
    }

    /// `user.*`: the login user (auid, else the real uid) and `user.effective.*`.
    fn users(&mut self, t: &AuditToken) -> User {
        let login = if t.auid == AU_DEFAULTID {
            t.ruid
        } else {
            t.auid
        };
        let mut user = self.user(login, Some(t.rgid));
        user.effective = Some(Box::new(self.user(t.euid, Some(t.egid))));
        user
    }

    fn user(&mut self, uid: u32, gid: Option<u32>) -> User {
        let mut u = User {
            id: uid.to_string(),
            name: self.names.user(uid).unwrap_or_default(),
            ..User::default()
        };
        if let Some(gid) = gid {
            u.group = Group {
                id: gid.to_string(),
                name: self.names.group(gid).unwrap_or_default(),
                ..Group::default()
            };
        }
        u
    }
}

/// ECS `process.code_signature.*` of an ES process.
fn code_signature(p: &EsProcess) -> Value {
    let mut cs = Map::new();
    cs.insert(
        "exists".to_owned(),
        Value::Bool(p.codesigning_flags & CS_SIGNED != 0 || p.signing_id.is_some()),
    );
    cs.insert(
        "valid".to_owned(),
        Value::Bool(p.codesigning_flags & CS_VALID != 0),
    );
    if let Some(id) = p.signing_id.as_deref().filter(|s| !s.is_empty()) {
        cs.insert("signing_id".to_owned(), id.into());
    }
    if let Some(team) = p.team_id.as_deref().filter(|s| !s.is_empty()) {
        cs.insert("team_id".to_owned(), team.into());
    }
    Value::Object(cs)
}

/// The raw signing fields of an exec'd image.
fn signing_properties(p: &EsProcess) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(
        "codesigning_flags".to_owned(),
        format!("0x{:08x}", p.codesigning_flags).into(),
    );
    m.insert(
        "is_platform_binary".to_owned(),
        p.is_platform_binary.to_string().into(),
    );
    if !p.cdhash.is_empty() {
        m.insert("cdhash".to_owned(), p.cdhash.clone().into());
    }
    m
}

fn openssh_result(code: u32) -> String {
    match code {
        0 => "login_exceed_maxtries",
        1 => "login_root_denied",
        2 => "auth_success",
        3 => "auth_fail_none",
        4 => "auth_fail_passwd",
        5 => "auth_fail_kbdint",
        6 => "auth_fail_pubkey",
        7 => "auth_fail_hostbased",
        8 => "auth_fail_gssapi",
        9 => "invalid_user",
        n => return n.to_string(),
    }
    .to_owned()
}

fn sudo_plugin_type(code: u32) -> String {
    match code {
        1 => "front_end",
        2 => "policy",
        3 => "io",
        4 => "audit",
        5 => "approval",
        n => return n.to_string(),
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_is_v5_of_boot_pid_and_pidversion() {
        let t = AuditToken {
            pid: 4242,
            pidversion: 17,
            ..AuditToken::default()
        };
        let ns = Uuid::new_v5(
            &Uuid::NAMESPACE_URL,
            b"https://github.com/endpoint-agent/endpoint-agent/process-guid",
        );
        assert_eq!(ns, PROCESS_GUID_NAMESPACE);
        let g = process_guid("B", &t);
        assert_eq!(g, Uuid::new_v5(&ns, b"B:4242:17"));
        assert_ne!(
            g,
            process_guid(
                "B",
                &AuditToken {
                    pidversion: 18,
                    ..t
                }
            )
        );
        assert_ne!(g, process_guid("C", &t));
    }

    #[test]
    fn the_process_cache_stays_bounded_and_keeps_recent_entries() {
        let mut c = ProcCache::new(4);
        let tok = |pid| AuditToken {
            pid,
            pidversion: 1,
            ..AuditToken::default()
        };
        for pid in 0..4 {
            c.insert(&tok(pid), ProcEntry::default());
        }
        assert!(c.get(&tok(0)).is_some());
        c.insert(&tok(9), ProcEntry::default());
        assert!(c.map.len() <= 4);
        assert!(c.get(&tok(0)).is_some(), "recently used entry evicted");
        assert!(c.get(&tok(9)).is_some());
    }

    #[test]
    fn muted_paths_cover_each_home_cache() {
        let m = default_muted_paths(["/Users/alice", "/var/root/"]);
        assert!(m.contains(&"/Users/alice/Library/Caches/".to_owned()));
        assert!(m.contains(&"/var/root/Library/Caches/".to_owned()));
        assert!(m.contains(&"/private/var/folders/".to_owned()));
    }
}
