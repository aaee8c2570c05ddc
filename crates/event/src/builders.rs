//! Constructors for the events collectors emit, with `event.*` filled the way the product
//! we replace fills it (see `reference/dialect-samples`). Everything else is a public
//! field the collector sets afterwards.

use crate::model::{
    AgentUsage, Dns, DnsAnswer, DnsQuestion, Endpoint, Event, EventInfo, File, HostUsage, Process,
    Strings, User,
};
use crate::timestamp::Timestamp;

/// `event.provider` of the events the agent derives itself.
pub const PROVIDER: &str = "SEKOIA-IO-Endpoint";

/// `event.action` values the builders use (vocabulary of `reference/audit-normalizations.yaml`
/// and of the dialect samples).
pub mod actions {
    /// A process started.
    pub const PROCESS_CREATED: &str = "process-created";
    /// A process exited.
    pub const PROCESS_TERMINATED: &str = "process-terminated";
    /// A file was opened for creation or writing.
    pub const OPENED_FILE: &str = "opened-file";
    /// A file was deleted.
    pub const DELETED: &str = "deleted";
    /// A file was renamed.
    pub const RENAMED: &str = "renamed";
    /// A directory was created.
    pub const CREATED_DIRECTORY: &str = "created-directory";
    /// An outbound connection.
    pub const CONNECTED_TO: &str = "connected-to";
    /// An inbound connection.
    pub const ACCEPTED_CONNECTION_FROM: &str = "accepted-connection-from";
    /// A DNS answer.
    pub const DNS_QUERY_RESULT: &str = "dns-query-result";
    /// A user logged in.
    pub const LOGGED_IN: &str = "logged-in";
    /// Periodic agent statistics.
    pub const STATS: &str = "stats";
}

/// Sysmon-numbered `event.code` values.
pub mod codes {
    /// Process created.
    pub const PROCESS_CREATED: u32 = 1;
    /// Network connection.
    pub const NETWORK_CONNECTION: u32 = 3;
    /// Process terminated.
    pub const PROCESS_TERMINATED: u32 = 5;
    /// Remote thread created.
    pub const REMOTE_THREAD: u32 = 8;
    /// File created.
    pub const FILE_CREATED: u32 = 11;
    /// DNS query.
    pub const DNS: u32 = 22;
    /// File deleted.
    pub const FILE_DELETED: u32 = 23;
}

/// ECS `event.outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It worked.
    Success,
    /// It was refused or failed.
    Failure,
    /// Not known.
    Unknown,
}

impl Outcome {
    /// The ECS keyword.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Unknown => "unknown",
        }
    }
}

/// Severity of an agent log event (`log.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Debug.
    Debug,
    /// Info.
    Info,
    /// Warning.
    Warning,
    /// Error.
    Error,
}

impl LogLevel {
    /// The `log.level` keyword.
    pub fn as_str(&self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warning => "warning",
            LogLevel::Error => "error",
        }
    }
}

fn derived(
    ts: Timestamp,
    action: &str,
    code: Option<u32>,
    category: &str,
    types: Strings,
    outcome: Outcome,
) -> Event {
    Event {
        timestamp: Some(ts),
        event: EventInfo {
            action: action.to_owned(),
            provider: PROVIDER.to_owned(),
            outcome: outcome.as_str().to_owned(),
            category: Strings::from([category]),
            types,
            code,
            ..EventInfo::default()
        },
        ..Event::default()
    }
}

impl File {
    /// `file.path`, `file.name` and `file.directory` from a path (`/` or `\` separated).
    pub fn from_path(path: &str) -> File {
        let (directory, name) = match path.rfind(['/', '\\']) {
            Some(0) => (&path[..1], &path[1..]),
            Some(i) => (&path[..i], &path[i + 1..]),
            None => ("", path),
        };
        File {
            path: path.to_owned(),
            name: name.to_owned(),
            directory: directory.to_owned(),
            ..File::default()
        }
    }
}

impl Event {
    /// An event with only `@timestamp` set.
    pub fn at(ts: Timestamp) -> Event {
        Event {
            timestamp: Some(ts),
            ..Event::default()
        }
    }

    /// Process created (code 1, `process-created`, category process, type creation).
    pub fn process_created(ts: Timestamp, process: Process) -> Event {
        Event {
            process,
            ..derived(
                ts,
                actions::PROCESS_CREATED,
                Some(codes::PROCESS_CREATED),
                "process",
                Strings::from(["creation"]),
                Outcome::Success,
            )
        }
    }

    /// Process terminated (code 5, `process-terminated`, category process, type end).
    pub fn process_terminated(ts: Timestamp, process: Process) -> Event {
        Event {
            process,
            ..derived(
                ts,
                actions::PROCESS_TERMINATED,
                Some(codes::PROCESS_TERMINATED),
                "process",
                Strings::from(["end"]),
                Outcome::Success,
            )
        }
    }

    /// File created (code 11, `opened-file`, type creation).
    pub fn file_created(ts: Timestamp, file: File) -> Event {
        Event {
            file,
            ..derived(
                ts,
                actions::OPENED_FILE,
                Some(codes::FILE_CREATED),
                "file",
                Strings::from(["creation"]),
                Outcome::Success,
            )
        }
    }

    /// File changed (`opened-file`, type change; Sysmon has no code for it).
    pub fn file_changed(ts: Timestamp, file: File) -> Event {
        Event {
            file,
            ..derived(
                ts,
                actions::OPENED_FILE,
                None,
                "file",
                Strings::from(["change"]),
                Outcome::Success,
            )
        }
    }

    /// File deleted (code 23, `deleted`, type deletion).
    pub fn file_deleted(ts: Timestamp, file: File) -> Event {
        Event {
            file,
            ..derived(
                ts,
                actions::DELETED,
                Some(codes::FILE_DELETED),
                "file",
                Strings::from(["deletion"]),
                Outcome::Success,
            )
        }
    }

    /// File renamed (`renamed`, type change): `file` is the new name, the old path goes to
    /// `file.Ext.original.path` / `name`.
    pub fn file_renamed(ts: Timestamp, from: &str, mut to: File) -> Event {
        let old = File::from_path(from);
        to.ext.original.path = old.path;
        to.ext.original.name = old.name;
        Event {
            file: to,
            ..derived(
                ts,
                actions::RENAMED,
                None,
                "file",
                Strings::from(["change"]),
                Outcome::Success,
            )
        }
    }

    /// Directory created (`created-directory`, type creation).
    pub fn directory_created(ts: Timestamp, dir: File) -> Event {
        Event {
            file: dir,
            ..derived(
                ts,
                actions::CREATED_DIRECTORY,
                None,
                "file",
                Strings::from(["creation"]),
                Outcome::Success,
            )
        }
    }

    /// Network connection (code 3, category network, type connection + start).
    /// `inbound` picks `accepted-connection-from` / ingress over `connected-to` / egress.
    pub fn network_connection(
        ts: Timestamp,
        source: Endpoint,
        destination: Endpoint,
        transport: &str,
        inbound: bool,
    ) -> Event {
        let action = if inbound {
            actions::ACCEPTED_CONNECTION_FROM
        } else {
            actions::CONNECTED_TO
        };
        let mut e = derived(
            ts,
            action,
            Some(codes::NETWORK_CONNECTION),
            "network",
            Strings::from(["connection", "start"]),
            Outcome::Success,
        );
        e.source = source;
        e.destination = destination;
        e.network.transport = transport.to_owned();
        e.network.direction = if inbound { "ingress" } else { "egress" }.to_owned();
        e
    }

    /// DNS resolution (code 22, `dns-query-result`, category network, type connection +
    /// protocol). `resolved_ip` is filled from the A / AAAA answers.
    pub fn dns_query(ts: Timestamp, name: &str, answers: Vec<DnsAnswer>) -> Event {
        let resolved_ip = answers
            .iter()
            .filter(|a| matches!(a.record_type.as_str(), "A" | "AAAA"))
            .map(|a| a.data.clone())
            .collect();
        let mut e = derived(
            ts,
            actions::DNS_QUERY_RESULT,
            Some(codes::DNS),
            "network",
            Strings::from(["connection", "protocol"]),
            Outcome::Success,
        );
        e.dns = Dns {
            question: DnsQuestion {
                name: name.to_owned(),
                size_in_char: Some(name.chars().count() as u64),
                ..DnsQuestion::default()
            },
            answers,
            resolved_ip,
            message_type: "answer".to_owned(),
            ..Dns::default()
        };
        e
    }

    /// Authentication (category authentication, type start): `action` is the verb
    /// (`logged-in`, `changed-login-id-to`, ...), `user` who authenticated.
    pub fn authentication(ts: Timestamp, action: &str, outcome: Outcome, user: User) -> Event {
        Event {
            user,
            ..derived(
                ts,
                action,
                None,
                "authentication",
                Strings::from(["start"]),
                outcome,
            )
        }
    }

    /// Periodic agent statistics (`stats`, kind metric, category `host`, type info).
    pub fn agent_stats(
        ts: Timestamp,
        agent: AgentUsage,
        host: HostUsage,
        uptime: Option<u64>,
    ) -> Event {
        let mut e = Event::at(ts);
        e.event.action = actions::STATS.to_owned();
        e.event.kind = "metric".to_owned();
        // As the product sends it: a scalar category, a list type.
        e.event.category = Strings::One("host".to_owned());
        e.event.types = Strings::from(["info"]);
        e.event.provider = PROVIDER.to_owned();
        e.host.uptime = uptime;
        e.sekoiaio.agent = agent;
        e.sekoiaio.host = host;
        e
    }

    /// An agent log line: `log.level`, `log.logger`, `event.reason`, and `error.message`
    /// when there is an error.
    pub fn agent_log(ts: Timestamp, level: LogLevel, reason: &str, error: Option<&str>) -> Event {
        let mut e = Event::at(ts);
        e.event.kind = "event".to_owned();
        e.event.category = Strings::from(["host"]);
        e.event.provider = PROVIDER.to_owned();
        e.event.reason = reason.to_owned();
        e.log.level = level.as_str().to_owned();
        e.log.logger = PROVIDER.to_owned();
        if let Some(message) = error {
            e.error.message = message.to_owned();
        }
        e
    }
}
