//! The typed endpoint dialect: one struct per ECS object the agent fills in.
//!
//! Every struct has public fields (empty ones are not written) and an `other` map that
//! keeps whatever the model does not name, so that events from other producers survive.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::node::{node_struct, Node};
use crate::timestamp::Timestamp;

/// A keyword field that ECS allows as one value or a list (`event.category`,
/// `event.type`). The agent writes lists; a received scalar is kept a scalar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strings {
    /// Written as a JSON string.
    One(String),
    /// Written as a JSON array of strings.
    Many(Vec<String>),
}

impl Default for Strings {
    fn default() -> Self {
        Strings::Many(Vec::new())
    }
}

impl Strings {
    /// The values, whichever the form.
    pub fn as_slice(&self) -> &[String] {
        match self {
            Strings::One(s) => std::slice::from_ref(s),
            Strings::Many(v) => v,
        }
    }

    /// Whether `value` is one of the values.
    pub fn contains(&self, value: &str) -> bool {
        self.as_slice().iter().any(|s| s == value)
    }
}

impl<const N: usize> From<[&str; N]> for Strings {
    fn from(values: [&str; N]) -> Self {
        Strings::Many(values.iter().map(|s| (*s).to_owned()).collect())
    }
}

impl From<Vec<String>> for Strings {
    fn from(values: Vec<String>) -> Self {
        Strings::Many(values)
    }
}

impl Serialize for Strings {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Strings::One(s) => s.serialize(serializer),
            Strings::Many(v) => v.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Strings {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(deserializer)?;
        Strings::from_json(&v)
            .ok_or_else(|| serde::de::Error::custom("expected a string or a list of strings"))
    }
}

impl Node for Strings {
    fn is_empty(&self) -> bool {
        match self {
            Strings::One(s) => s.is_empty(),
            Strings::Many(v) => v.is_empty(),
        }
    }
    fn from_json(v: &Value) -> Option<Self> {
        match v {
            Value::String(s) => Some(Strings::One(s.clone())),
            Value::Array(_) => Vec::<String>::from_json(v).map(Strings::Many),
            _ => None,
        }
    }
}

node_struct! {
    /// One event of the endpoint dialect.
    pub struct Event {
        /// When it happened (`@timestamp`), RFC 3339 UTC.
        timestamp: Option<Timestamp> = "@timestamp",
        /// `agent.*`: who reports it.
        agent: Agent = "agent",
        /// `event.*`: what kind of event.
        event: EventInfo = "event",
        /// `host.*`: where it happened.
        host: Host = "host",
        /// `process.*`: the acting process.
        process: Process = "process",
        /// `file.*`: the file acted upon.
        file: File = "file",
        /// `source.*`: the connection's source.
        source: Endpoint = "source",
        /// `destination.*`: the connection's destination.
        destination: Endpoint = "destination",
        /// `network.*`.
        network: Network = "network",
        /// `user.*`: the acting user (login user), with `effective` and `target`.
        user: User = "user",
        /// `group.*`: the group acted upon.
        group: Group = "group",
        /// `dns.*`.
        dns: Dns = "dns",
        /// `action.*`: the raw OS fields.
        action: Action = "action",
        /// `log.*`: agent log events.
        log: Log = "log",
        /// `error.*`.
        error: ErrorInfo = "error",
        /// `sekoiaio.*`: fields specific to this product.
        sekoiaio: Sekoiaio = "sekoiaio",
        /// `tags[]`: the audit rule keys that matched.
        tags: Vec<String> = "tags",
    }
}

node_struct! {
    /// `agent.*`.
    pub struct Agent {
        /// 64 hex chars, stable per install.
        id: String = "id",
        /// `v<semver>+<sha>`.
        version: String = "version",
    }
}

node_struct! {
    /// `event.*`.
    pub struct EventInfo {
        /// ECS `event.kind` (`event`, `metric`, ...).
        kind: String = "kind",
        /// `SEKOIA-IO-Endpoint` for events the agent derives, else the OS provider's name.
        provider: String = "provider",
        /// Sysmon-style numeric code (1 process created, 3 network, 5 terminated, ...).
        code: Option<u32> = "code",
        /// Verb phrase (`process-created`, `opened-file`, `logged-in`, ...).
        action: String = "action",
        /// ECS categories.
        category: Strings = "category",
        /// ECS types.
        types: Strings = "type",
        /// `success`, `failure` or `unknown`.
        outcome: String = "outcome",
        /// Human-readable reason (agent log events).
        reason: String = "reason",
        /// Start of the activity.
        start: Option<Timestamp> = "start",
        /// End of the activity.
        end: Option<Timestamp> = "end",
    }
}

node_struct! {
    /// `host.*`.
    pub struct Host {
        /// Host name.
        hostname: String = "hostname",
        /// `host.os.*`.
        os: HostOs = "os",
        /// The host's IP addresses.
        ip: Vec<String> = "ip",
        /// Seconds since boot.
        uptime: Option<u64> = "uptime",
    }
}

node_struct! {
    /// `host.os.*`.
    pub struct HostOs {
        /// `linux`, `windows` or `macos`.
        os_type: String = "type",
        /// OS family.
        family: String = "family",
        /// OS name.
        name: String = "name",
        /// OS version.
        version: String = "version",
        /// Kernel version.
        kernel: String = "kernel",
    }
}

node_struct! {
    /// `process.*` (and `process.parent.*`).
    pub struct Process {
        /// Process id.
        pid: Option<u32> = "pid",
        /// Full path of the executable.
        executable: String = "executable",
        /// Executable file name.
        name: String = "name",
        /// Full command line.
        command_line: String = "command_line",
        /// Arguments, the first being the program.
        args: Vec<String> = "args",
        /// Current directory.
        working_directory: String = "working_directory",
        /// Start time.
        start: Option<Timestamp> = "start",
        /// Exit code (process terminated).
        exit_code: Option<i64> = "exit_code",
        /// `process.thread.*`.
        thread: Thread = "thread",
        /// The parent process.
        parent: Option<Box<Process>> = "parent",
    }
}

node_struct! {
    /// `process.thread.*`.
    pub struct Thread {
        /// Thread id.
        id: Option<u64> = "id",
    }
}

node_struct! {
    /// `file.*`.
    pub struct File {
        /// Full path.
        path: String = "path",
        /// File name.
        name: String = "name",
        /// Containing directory.
        directory: String = "directory",
        /// `file.hash.*`.
        hash: Hashes = "hash",
        /// Size in bytes.
        size: Option<u64> = "size",
        /// Octal permission bits as a string (`0644`).
        mode: String = "mode",
        /// Owner user name.
        owner: String = "owner",
        /// Owner group name.
        group: String = "group",
        /// Inode, as a decimal string.
        inode: String = "inode",
        /// Device (`major:minor`).
        device: String = "device",
        /// Creation time, as the source wrote it.
        created: String = "created",
        /// `file.Ext.*` (the path before a rename is `file.Ext.original.path`).
        ext: FileExt = "Ext",
    }
}

node_struct! {
    /// `file.Ext.*`.
    pub struct FileExt {
        /// The file before the action (rename source).
        original: FileOriginal = "original",
    }
}

node_struct! {
    /// `file.Ext.original.*`.
    pub struct FileOriginal {
        /// The path before a rename.
        path: String = "path",
        /// The name before a rename.
        name: String = "name",
    }
}

node_struct! {
    /// `file.hash.*`, lowercase hex.
    pub struct Hashes {
        /// MD5.
        md5: String = "md5",
        /// SHA-1.
        sha1: String = "sha1",
        /// SHA-256.
        sha256: String = "sha256",
    }
}

node_struct! {
    /// `source.*` / `destination.*`.
    pub struct Endpoint {
        /// Address as seen (IP or name).
        address: String = "address",
        /// IP address.
        ip: String = "ip",
        /// Port.
        port: Option<u16> = "port",
        /// Domain name.
        domain: String = "domain",
    }
}

node_struct! {
    /// `network.*`.
    pub struct Network {
        /// `tcp`, `udp`, ...
        transport: String = "transport",
        /// `ingress`, `egress`, ...
        direction: String = "direction",
        /// Application protocol.
        protocol: String = "protocol",
        /// `ipv4` / `ipv6`.
        net_type: String = "type",
    }
}

node_struct! {
    /// `user.*`: the login user, with the effective and target users.
    pub struct User {
        /// User id (uid, SID).
        id: String = "id",
        /// User name.
        name: String = "name",
        /// Domain.
        domain: String = "domain",
        /// The user's group.
        group: Group = "group",
        /// `user.effective.*`.
        effective: Option<Box<User>> = "effective",
        /// `user.target.*`.
        target: Option<Box<User>> = "target",
    }
}

node_struct! {
    /// `group.*` / `user.group.*`.
    pub struct Group {
        /// Group id.
        id: String = "id",
        /// Group name.
        name: String = "name",
    }
}

node_struct! {
    /// `dns.*`.
    pub struct Dns {
        /// `dns.question.*`.
        question: DnsQuestion = "question",
        /// The answers.
        answers: Vec<DnsAnswer> = "answers",
        /// IPs of the answers.
        resolved_ip: Vec<String> = "resolved_ip",
        /// Response code.
        response_code: String = "response_code",
        /// `query` or `answer`.
        message_type: String = "type",
        /// Header flags (`RD`, `RA`, ...).
        header_flags: Vec<String> = "header_flags",
        /// Operation code.
        op_code: String = "op_code",
        /// Message id.
        id: Option<u64> = "id",
    }
}

node_struct! {
    /// `dns.question.*`.
    pub struct DnsQuestion {
        /// Queried name.
        name: String = "name",
        /// Record type.
        record_type: String = "type",
        /// Class (`IN`).
        class: String = "class",
        /// Length of the name.
        size_in_char: Option<u64> = "size_in_char",
    }
}

node_struct! {
    /// One `dns.answers[]` entry.
    pub struct DnsAnswer {
        /// Owner name.
        name: String = "name",
        /// Record type.
        record_type: String = "type",
        /// Class.
        class: String = "class",
        /// Record data.
        data: String = "data",
        /// Time to live.
        ttl: Option<u64> = "ttl",
    }
}

node_struct! {
    /// `action.*`: the raw fields of the OS record.
    pub struct Action {
        /// OS event id (ETW/Event Log id).
        id: Option<u32> = "id",
        /// Action name.
        name: String = "name",
        /// Raw OS fields in the order the OS gave them (audit `syscall`, `a0`.., ETW names).
        properties: Map<String, Value> = "properties",
    }
}

node_struct! {
    /// `log.*`.
    pub struct Log {
        /// `debug`, `info`, `warning`, `error`.
        level: String = "level",
        /// Emitting component.
        logger: String = "logger",
    }
}

node_struct! {
    /// `error.*`.
    pub struct ErrorInfo {
        /// Error message.
        message: String = "message",
    }
}

node_struct! {
    /// `sekoiaio.*`.
    pub struct Sekoiaio {
        /// `sekoiaio.process.*`.
        process: ProcessGuids = "process",
        /// `sekoiaio.agent.*` (stats).
        agent: AgentUsage = "agent",
        /// `sekoiaio.host.*` (stats).
        host: HostUsage = "host",
    }
}

node_struct! {
    /// `sekoiaio.process.*`: stable per-process-instance UUIDs.
    pub struct ProcessGuids {
        /// This process.
        guid: String = "guid",
        /// Its parent.
        parent_guid: String = "parent_guid",
    }
}

node_struct! {
    /// `sekoiaio.agent.*`: the agent's own resource use.
    pub struct AgentUsage {
        /// CPU, percent of one core.
        cpu_usage: Option<f64> = "cpu_usage",
        /// Memory, percent of the host's.
        memory_usage: Option<f64> = "memory_usage",
    }
}

node_struct! {
    /// `sekoiaio.host.*`: the host's resource use.
    pub struct HostUsage {
        /// CPU, percent.
        cpu_usage: Option<f64> = "cpu_usage",
        /// Total memory, bytes.
        memory_total: Option<u64> = "memory_total",
        /// Available memory, bytes.
        memory_available: Option<u64> = "memory_available",
        /// Used memory, whole percent.
        memory_usage: Option<u64> = "memory_usage",
    }
}
