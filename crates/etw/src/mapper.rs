//! ETW events → endpoint-dialect events. Pure: no Windows API, compiled and tested on every OS.
//!
//! [`Mapper::map`] takes one [`EtwRecord`] and appends what it maps to (zero or more events):
//!
//! | source | event |
//! |---|---|
//! | kernel Process opcode 1 / 2 | process created (code 1) / terminated (code 5); opcode 3 (rundown) only fills the process table |
//! | Kernel-Process 3 | remote thread (code 8) when the creating process is not the target (and it is not the first thread of a child) |
//! | Kernel-File 30 / 12 / 26 / 27 / 19 | file created (code 11) or directory created / file overwritten / deleted (code 23) / renamed |
//! | Kernel-Network 12, 28 / 15, 31 | network connection (code 3), outbound / inbound |
//! | DNS-Client 3008 | DNS resolution (code 22), repeats aggregated |
//! | PowerShell, WMI-Activity, NTLM, Security 5156 | the OS event under its own provider and ID |
//!
//! `action.properties` keeps the event's properties by their provider's names, rendered as
//! strings, minus those carried in typed fields (`ProcessId`, `CommandLine`, addresses ...),
//! plus `Keywords`, `ProviderGuid`, `Severity` and `SourceName` from the header, as the
//! product's events do. Events of the agent's own process are dropped before mapping.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use agent_event::{codes, Endpoint, Event, File, Outcome, Process, Strings, Timestamp};
use serde_json::{Map, Value};

use crate::dns::{self, RepeatKey, Repeats};
use crate::paths::DeviceMap;
use crate::proctable::{filetime, ProcTable, ProcessInfo, StartInfo};
use crate::providers::{opcode, Provider};
use crate::record::EtwRecord;

/// `event.action` of a remote thread.
pub const REMOTE_THREAD_CREATED: &str = "remote-thread-created";

/// File objects whose name is remembered at most (for renames, which name only the object).
const MAX_FILE_OBJECTS: usize = 65_536;

/// New processes whose first thread is still to come, remembered at most.
const MAX_PENDING_CHILDREN: usize = 4_096;

/// `CreateOptions` bit: the object is a directory.
const FILE_DIRECTORY_FILE: u64 = 0x1;

/// Settings of a [`Mapper`].
#[derive(Debug, Clone)]
pub struct MapperConfig {
    /// Names the boot session in process GUIDs (the binding reads the kernel's boot id).
    pub boot_id: String,
    /// The agent's own pid: its events are dropped.
    pub own_pid: Option<u32>,
    /// Identical DNS answers within this long are aggregated (zero: never).
    pub dns_repeat_window: Duration,
    /// Volume devices → drive letters.
    pub devices: DeviceMap,
}

impl Default for MapperConfig {
    fn default() -> Self {
        MapperConfig {
            boot_id: String::new(),
            own_pid: None,
            dns_repeat_window: Duration::from_secs(60),
            devices: DeviceMap::new(),
        }
    }
}

/// Maps ETW records to dialect events; see the module documentation.
#[derive(Debug)]
pub struct Mapper {
    procs: ProcTable,
    devices: DeviceMap,
    own_pid: Option<u32>,
    files: HashMap<u64, String>,
    children: HashMap<u32, u32>,
    dns: Repeats,
    own_dropped: u64,
}

impl Mapper {
    /// A mapper with an empty process table.
    pub fn new(config: MapperConfig) -> Mapper {
        Mapper {
            procs: ProcTable::new(config.boot_id),
            devices: config.devices,
            own_pid: config.own_pid,
            files: HashMap::new(),
            children: HashMap::new(),
            dns: Repeats::new(config.dns_repeat_window),
            own_dropped: 0,
        }
    }

    /// The process table.
    pub fn procs(&self) -> &ProcTable {
        &self.procs
    }

    /// Replaces the drive letter table (drives mounted after start).
    pub fn set_devices(&mut self, devices: DeviceMap) {
        self.devices = devices;
    }

    /// Events of the agent's own process dropped so far.
    pub fn own_dropped(&self) -> u64 {
        self.own_dropped
    }

    /// Maps one record, appending the resulting events (often none) to `out`.
    pub fn map(&mut self, rec: &EtwRecord, out: &mut Vec<Event>) {
        let Some(provider) = Provider::from_guid(rec.header.provider) else {
            return;
        };
        let mapped = match provider {
            Provider::KernelProcessClassic => self.process(rec),
            Provider::KernelProcess if rec.header.id == 3 => self.thread(rec),
            Provider::KernelProcess if rec.header.id == 1 => {
                self.child_started(rec);
                None
            }
            Provider::KernelProcess => None,
            Provider::KernelFile => self.file(rec),
            Provider::KernelNetwork => self.network(rec),
            Provider::DnsClient => self.dns(rec, out),
            Provider::PowerShell
            | Provider::WmiActivity
            | Provider::Ntlm
            | Provider::SecurityAuditing => self.os_event(provider, rec),
        };
        out.extend(mapped);
    }

    /// Emits the DNS repeat summaries whose window closed by `now`; the binding calls it
    /// every few seconds.
    pub fn flush(&mut self, now: Timestamp, out: &mut Vec<Event>) {
        self.dns.flush(now, out);
    }

    /// Emits every pending DNS repeat summary (at stop).
    pub fn flush_all(&mut self, out: &mut Vec<Event>) {
        self.dns.flush_all(out);
    }

    fn is_own(&mut self, pid: u32) -> bool {
        let own = self.own_pid == Some(pid);
        if own {
            self.own_dropped += 1;
        }
        own
    }

    // --- kernel Process (classic) -------------------------------------------------------

    fn process(&mut self, rec: &EtwRecord) -> Option<Event> {
        let h = &rec.header;
        let op = h.opcode;
        if !matches!(op, opcode::START | opcode::END | opcode::DC_START) {
            return None;
        }
        let pid = rec.u32("ProcessId")?;
        if self.is_own(pid) {
            return None;
        }
        let start = StartInfo {
            pid,
            ppid: rec.u32("ParentId").unwrap_or(0),
            start: filetime(rec.extra.create_time.unwrap_or(h.timestamp)),
            image_file_name: rec.str("ImageFileName").unwrap_or("").to_owned(),
            image_path: rec
                .extra
                .image_path
                .as_deref()
                .map(|p| self.devices.to_dos(p)),
            command_line: rec.str("CommandLine").unwrap_or("").to_owned(),
            user_sid: rec.str("UserSID").unwrap_or("").to_owned(),
            rundown: op == opcode::DC_START,
        };
        let mut e = match op {
            opcode::START => {
                self.procs.on_start(start);
                let mut e = Event::process_created(h.timestamp, Process::default());
                self.acting(pid, None, &mut e);
                e
            }
            opcode::END => {
                let mut e = Event::process_terminated(h.timestamp, Process::default());
                if self.procs.get(pid).is_some() {
                    self.acting(pid, None, &mut e);
                } else {
                    // Started before the session and missed by the rundown: what the end
                    // event itself says.
                    let mut scratch = ProcTable::new("");
                    let info = scratch.on_start(start);
                    e.process = process_of(info);
                    if info.user_sid.starts_with("S-1-") {
                        e.user.id = info.user_sid.clone();
                    }
                    if info.ppid != 0 {
                        e.process.parent = Some(Box::new(Process {
                            pid: Some(info.ppid),
                            ..Process::default()
                        }));
                    }
                }
                e.process.exit_code = rec.u64("ExitStatus").map(|s| i64::from(s as u32 as i32));
                self.procs.on_end(pid);
                e
            }
            _ => {
                self.procs.on_start(start);
                return None;
            }
        };
        e.action.id = Some(u32::from(op));
        e.action.name = e.event.action.clone();
        e.action.properties = properties(
            rec,
            Provider::KernelProcessClassic,
            &["ProcessId", "ParentId", "CommandLine"],
        );
        Some(e)
    }

    // --- Microsoft-Windows-Kernel-Process: remote threads --------------------------------

    /// Kernel-Process 1 (ProcessStart), in the same session as the thread starts: it comes
    /// before the new process's first thread, which the kernel session's start event (another
    /// session, delivered on its own schedule) may not.
    fn child_started(&mut self, rec: &EtwRecord) {
        let (Some(pid), Some(ppid)) = (rec.u32("ProcessID"), rec.u32("ParentProcessID")) else {
            return;
        };
        if self.children.len() >= MAX_PENDING_CHILDREN {
            self.children.clear();
        }
        self.children.insert(pid, ppid);
    }

    fn thread(&mut self, rec: &EtwRecord) -> Option<Event> {
        let h = &rec.header;
        let target = rec.u32("ProcessID")?;
        let creator = h.pid;
        let first = self.procs.on_thread(target);
        let new_child_of = self.children.remove(&target);
        if target == creator || self.is_own(creator) {
            return None;
        }
        // A new process's first thread is created by its parent: not a remote thread.
        if new_child_of == Some(creator)
            || (first && self.procs.get(target).map(|p| p.ppid) == Some(creator))
        {
            return None;
        }
        let mut e = Event::at(h.timestamp);
        e.event.action = REMOTE_THREAD_CREATED.to_owned();
        e.event.category = Strings::from(["process"]);
        e.event.types = Strings::One("creation".to_owned());
        e.event.code = Some(codes::REMOTE_THREAD);
        e.event.provider = agent_event::PROVIDER.to_owned();
        e.event.outcome = Outcome::Success.as_str().to_owned();
        self.acting(creator, Some(h.tid), &mut e);

        let mut source = serde_json::to_value(&e.process).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut source {
            if !e.sekoiaio.process.guid.is_empty() {
                m.insert(
                    "guid".into(),
                    Value::String(e.sekoiaio.process.guid.clone()),
                );
            }
        }
        let mut t = match self.procs.get(target) {
            Some(info) => process_of(info),
            None => Process::default(),
        };
        t.pid = Some(target);
        t.thread.id = rec.u64("ThreadID");
        let mut target_v = serde_json::to_value(&t).unwrap_or(Value::Null);
        if let (Value::Object(m), Some(info)) = (&mut target_v, self.procs.get(target)) {
            m.insert("guid".into(), Value::String(info.guid.to_string()));
        }
        e.sekoiaio.other.insert("source_process".into(), source);
        e.sekoiaio.other.insert("target_process".into(), target_v);
        e.action.id = Some(u32::from(h.id));
        e.action.properties = properties(rec, Provider::KernelProcess, &["ProcessID", "ThreadID"]);
        Some(e)
    }

    // --- Microsoft-Windows-Kernel-File ----------------------------------------------------

    fn file(&mut self, rec: &EtwRecord) -> Option<Event> {
        let h = &rec.header;
        if self.is_own(h.pid) {
            return None;
        }
        let object = rec.u64("FileObject");
        let path_prop = |name: &str| rec.non_empty(name).map(|p| self.devices.to_dos(p));
        let options = rec.u64("CreateOptions").unwrap_or(0);
        let is_dir = options & FILE_DIRECTORY_FILE != 0;
        let ts = h.timestamp;
        let (mut e, structured): (Event, &[&str]) = match h.id {
            12 => {
                let path = path_prop("FileName")?;
                self.remember(object, &path);
                // The create disposition is the top byte: 0 supersede, 4 overwrite replace
                // an existing file's content. New files are reported by 30.
                let disposition = (options >> 24) & 0xFF;
                if is_dir || !matches!(disposition, 0 | 4) {
                    return None;
                }
                (
                    Event::file_changed(ts, File::from_path(&path)),
                    &["FileName"],
                )
            }
            30 => {
                let path = path_prop("FileName")?;
                self.remember(object, &path);
                let file = File::from_path(&path);
                let e = if is_dir {
                    Event::directory_created(ts, file)
                } else {
                    Event::file_created(ts, file)
                };
                (e, &["FileName"])
            }
            26 => {
                let path = path_prop("FilePath")?;
                if let Some(o) = object {
                    self.files.remove(&o);
                }
                (
                    Event::file_deleted(ts, File::from_path(&path)),
                    &["FilePath"],
                )
            }
            27 => {
                let new = path_prop("FilePath")?;
                let old = object.and_then(|o| self.files.get(&o)).cloned();
                self.remember(object, &new);
                let e =
                    Event::file_renamed(ts, old.as_deref().unwrap_or(""), File::from_path(&new));
                (e, &["FilePath"])
            }
            19 => {
                // No path: the rename of a file object whose name a Create gave us. The new
                // name is not in the event (RenamePath, 27, carries it where available).
                let old = object.and_then(|o| self.files.get(&o)).cloned()?;
                (Event::file_renamed(ts, &old, File::default()), &[])
            }
            _ => return None,
        };
        self.acting(h.pid, None, &mut e);
        e.action.id = Some(u32::from(h.id));
        e.action.properties = properties(rec, Provider::KernelFile, structured);
        Some(e)
    }

    fn remember(&mut self, object: Option<u64>, path: &str) {
        let Some(o) = object else { return };
        if self.files.len() >= MAX_FILE_OBJECTS && !self.files.contains_key(&o) {
            // Names of objects long closed dominate; start over rather than track age.
            self.files.clear();
        }
        self.files.insert(o, path.to_owned());
    }

    // --- Microsoft-Windows-Kernel-Network -------------------------------------------------

    fn network(&mut self, rec: &EtwRecord) -> Option<Event> {
        let h = &rec.header;
        let inbound = match h.id {
            12 | 28 => false,
            15 | 31 => true,
            _ => return None,
        };
        let pid = rec.u32("PID").unwrap_or(h.pid);
        if self.is_own(pid) {
            return None;
        }
        // saddr/sport is this host's end, daddr/dport the peer, whatever the direction.
        let local = endpoint(rec.get("saddr"), rec.get("sport"));
        let remote = endpoint(rec.get("daddr"), rec.get("dport"));
        if remote.ip.is_empty() {
            return None;
        }
        let loopback = [&local, &remote]
            .iter()
            .all(|ep| ep.ip.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()));
        let (source, destination) = if inbound {
            (remote, local)
        } else {
            (local, remote)
        };
        let mut e = Event::network_connection(h.timestamp, source, destination, "tcp", inbound);
        if loopback {
            e.network.direction = "internal".to_owned();
        }
        self.acting(pid, None, &mut e);
        e.action.id = Some(u32::from(h.id));
        e.action.properties = properties(
            rec,
            Provider::KernelNetwork,
            &["PID", "daddr", "saddr", "dport", "sport"],
        );
        Some(e)
    }

    // --- Microsoft-Windows-DNS-Client ----------------------------------------------------

    fn dns(&mut self, rec: &EtwRecord, out: &mut Vec<Event>) -> Option<Event> {
        let h = &rec.header;
        // 3006 (query sent) and the others add nothing 3008 does not say: one event per
        // completed query.
        if h.id != 3008 || self.is_own(h.pid) {
            return None;
        }
        let name = rec.non_empty("QueryName")?;
        let qtype = rec.u64("QueryType");
        let status = rec.u64("QueryStatus").unwrap_or(0);
        let results = rec.str("QueryResults").unwrap_or("");
        let mut e = Event::dns_query(h.timestamp, name, dns::parse_results(name, results));
        if let Some(t) = qtype {
            e.dns.question.record_type = dns::type_name(t);
        }
        e.dns.question.class = "IN".to_owned();
        if let Some(rc) = dns::response_code(status) {
            e.dns.response_code = rc.to_owned();
        }
        if !matches!(status, 0 | 9501) {
            e.event.outcome = Outcome::Failure.as_str().to_owned();
        }
        self.acting(h.pid, None, &mut e);
        e.action.id = Some(u32::from(h.id));
        e.action.properties = properties(rec, Provider::DnsClient, &["QueryName", "QueryResults"]);
        let key = RepeatKey {
            pid: h.pid,
            name: name.to_ascii_lowercase(),
            qtype: qtype.unwrap_or(0),
            status,
            results: results.to_owned(),
        };
        self.dns.offer(key, e, out)
    }

    // --- events kept under their own provider and ID --------------------------------------

    fn os_event(&mut self, provider: Provider, rec: &EtwRecord) -> Option<Event> {
        let h = &rec.header;
        let id = h.id;
        let pid_prop = match (provider, id) {
            (Provider::WmiActivity, 5857) => Some("ProcessID"),
            (Provider::WmiActivity, 5858) => Some("ClientProcessId"),
            (Provider::WmiActivity, 5859 | 5860) => Some("processid"),
            (Provider::WmiActivity, 5861) => None,
            (Provider::WmiActivity, _) => return None,
            (Provider::Ntlm, 8001..=8003 | 4001..=4003) => Some("CallerPID"),
            (Provider::Ntlm, 8004) => None,
            (Provider::Ntlm, _) => return None,
            (Provider::PowerShell, 4103 | 4104) => None,
            (Provider::PowerShell, _) => return None,
            (Provider::SecurityAuditing, 5156) => Some("ProcessID"),
            (Provider::SecurityAuditing, _) => return None,
            _ => return None,
        };
        let pid = pid_prop.and_then(|p| rec.u32(p)).unwrap_or(h.pid);
        if self.is_own(pid) {
            return None;
        }
        let mut e = Event::at(h.timestamp);
        e.event.provider = provider.name().to_owned();
        e.event.code = Some(u32::from(id));
        e.action.id = Some(u32::from(id));
        let mut structured: &[&str] = &[];
        match provider {
            Provider::SecurityAuditing => {
                // Security events have no thread of interest.
                self.acting(pid, None, &mut e);
                e.source = ip_port(rec.str("SourceAddress"), rec.u64("SourcePort"));
                e.destination = ip_port(rec.str("DestAddress"), rec.u64("DestPort"));
                if let Some(t) = rec.u64("Protocol").and_then(transport) {
                    e.network.transport = t.to_owned();
                }
                structured = &[
                    "ProcessID",
                    "SourceAddress",
                    "SourcePort",
                    "DestAddress",
                    "DestPort",
                    "Protocol",
                ];
            }
            _ => {
                let tid = (pid == h.pid).then_some(h.tid);
                self.acting(pid, tid, &mut e);
            }
        }
        if provider == Provider::Ntlm {
            let (user, domain) = match id {
                8002 | 4002 => ("ClientUserName", "ClientDomainName"),
                _ => ("UserName", "DomainName"),
            };
            if let Some(u) = rec.non_empty(user) {
                e.user.name = u.to_owned();
                e.user.domain = rec.non_empty(domain).unwrap_or("").to_owned();
            }
        }
        e.action.properties = properties(rec, provider, structured);
        Some(e)
    }

    // --- shared ---------------------------------------------------------------------------

    /// `process.*`, `sekoiaio.process.*` and `user.id` of the acting process from the table.
    fn acting(&self, pid: u32, tid: Option<u32>, e: &mut Event) {
        let mut p = Process {
            pid: Some(pid),
            ..Process::default()
        };
        if let Some(info) = self.procs.get(pid) {
            p = process_of(info);
            e.sekoiaio.process.guid = info.guid.to_string();
            if info.user_sid.starts_with("S-1-") {
                e.user.id = info.user_sid.clone();
            }
            if let Some(parent) = self.procs.parent(pid) {
                e.sekoiaio.process.parent_guid = parent.guid.to_string();
                p.parent = Some(Box::new(process_of(parent)));
            } else if info.ppid != 0 {
                p.parent = Some(Box::new(Process {
                    pid: Some(info.ppid),
                    ..Process::default()
                }));
            }
        }
        p.thread.id = tid.map(u64::from);
        e.process = p;
    }
}

/// `process.*` of a table entry (no parent).
fn process_of(info: &ProcessInfo) -> Process {
    Process {
        pid: Some(info.pid),
        executable: info.executable.clone(),
        name: info.name.clone(),
        command_line: info.command_line.clone(),
        args: info.args.clone(),
        ..Process::default()
    }
}

/// `action.properties`: the event's properties minus `structured`, and the header fields the
/// product adds, in key order (as the product writes them).
fn properties(rec: &EtwRecord, provider: Provider, structured: &[&str]) -> Map<String, Value> {
    let h = &rec.header;
    let mut sorted: BTreeMap<&str, String> = rec
        .properties
        .iter()
        .filter(|(k, _)| !structured.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.render()))
        .collect();
    sorted.insert("Keywords", format!("0x{:X}", h.keywords));
    sorted.insert("ProviderGuid", format!("{{{}}}", h.provider));
    sorted.insert("Severity", severity(h.level).to_owned());
    sorted.insert("SourceName", provider.name().to_owned());
    sorted
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value::String(v)))
        .collect()
}

/// The product's names of ETW levels.
fn severity(level: u8) -> &'static str {
    match level {
        0 => "LOG_ALWAYS",
        1 => "CRITICAL",
        2 => "ERROR",
        3 => "WARNING",
        4 => "INFO",
        _ => "VERBOSE",
    }
}

/// An address property: text, raw bytes in network order (4 or 16), or a 32-bit number
/// read in the machine's (little-endian) order from network-order bytes.
fn ip_of(p: &crate::record::Prop) -> Option<IpAddr> {
    use crate::record::Prop;
    match p {
        Prop::Str(s) => s.parse().ok(),
        Prop::Bytes(b) => match b.len() {
            4 => Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
            16 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(b);
                Some(IpAddr::V6(Ipv6Addr::from(a)))
            }
            _ => None,
        },
        Prop::UInt(n) | Prop::Ptr(n) => {
            let v = u32::try_from(*n).ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(v.to_le_bytes())))
        }
        _ => None,
    }
}

/// A port property in network byte order, read as a little-endian number: swap it back.
fn port_of(p: &crate::record::Prop) -> Option<u16> {
    // Windows is little-endian: the binding read the two network-order bytes swapped.
    Some(u16::try_from(p.as_u64()?).ok()?.swap_bytes())
}

fn endpoint(addr: Option<&crate::record::Prop>, port: Option<&crate::record::Prop>) -> Endpoint {
    let mut ep = Endpoint::default();
    if let Some(ip) = addr.and_then(ip_of) {
        ep.ip = ip.to_string();
        ep.address = ep.ip.clone();
    }
    ep.port = port.and_then(port_of);
    ep
}

/// An endpoint from an address text and a port number in host order (Event Log records).
fn ip_port(addr: Option<&str>, port: Option<u64>) -> Endpoint {
    let mut ep = Endpoint::default();
    if let Some(ip) = addr.and_then(|a| a.parse::<IpAddr>().ok()) {
        ep.ip = ip.to_string();
        ep.address = ep.ip.clone();
    }
    ep.port = port.and_then(|p| u16::try_from(p).ok());
    ep
}

fn transport(protocol: u64) -> Option<&'static str> {
    Some(match protocol {
        1 => "icmp",
        6 => "tcp",
        17 => "udp",
        58 => "ipv6-icmp",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Prop;

    #[test]
    fn ports_arrive_in_network_byte_order() {
        // 443 = 0x01BB is sent as bytes [0x01, 0xBB]; read little-endian that is 0xBB01.
        assert_eq!(port_of(&Prop::UInt(0xBB01)), Some(443));
        assert_eq!(port_of(&Prop::UInt(0x5000)), Some(80));
        assert_eq!(port_of(&Prop::UInt(70_000)), None);
        // 192.0.2.10 as bytes [192, 0, 2, 10], read little-endian.
        let raw = u32::from_le_bytes([192, 0, 2, 10]);
        assert_eq!(
            ip_of(&Prop::UInt(u64::from(raw))),
            Some("192.0.2.10".parse().unwrap())
        );
        assert_eq!(
            ip_of(&Prop::Bytes(vec![
                0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1
            ])),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(ip_of(&Prop::Bytes(vec![1, 2, 3])), None);
    }

    #[test]
    fn severities() {
        assert_eq!(severity(0), "LOG_ALWAYS");
        assert_eq!(severity(4), "INFO");
        assert_eq!(severity(5), "VERBOSE");
    }
}
