//! Other consumers of the Linux kernel audit stream, and the one message the operator gets
//! about each, wherever it is found (at install, or when the audit collector starts).
//!
//! Only one process can be the audit daemon: while auditd (or anything else) is registered,
//! the agent's audit collector receives the records through the kernel's multicast group
//! instead, where the daemon's backlog and rate limits apply and every record is handled
//! twice (see docs/linux-audit-events.md, "Beside auditd"). systemd-journald's audit socket subscribes journald to
//! the audit multicast group, so every record the agent's rules produce is also copied into
//! the journal. The agent never stops either itself: it tells the operator how.
//!
//! The `/proc` readers take the proc root as a parameter so that tests can point them at a
//! fake tree; on other OSes they find nothing.

use std::path::Path;

/// systemd's unit of the audit daemon.
pub const AUDITD_UNIT: &str = "auditd.service";
/// systemd's socket unit through which journald reads audit records.
pub const JOURNALD_AUDIT_UNIT: &str = "systemd-journald-audit.socket";

/// Which kind of consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerKind {
    /// A process registered (or about to register) as the audit daemon: the agent receives
    /// the audit stream only through the multicast group while it runs.
    AuditDaemon,
    /// systemd-journald's audit socket: it doubles the cost of every audit record.
    JournaldAudit,
}

/// One active audit consumer, with what to tell the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConsumer {
    /// Which kind.
    pub kind: ConsumerKind,
    /// What is running: `auditd`, `systemd-journald-audit.socket`, or the command name of
    /// another registered daemon.
    pub what: String,
    /// Its process id, when known.
    pub pid: Option<u32>,
    /// Why it matters, one sentence without the final period.
    pub why: &'static str,
    /// Shell commands, in order, to run as root to stop it and keep it from coming back; empty
    /// for a daemon we do not know.
    pub commands: Vec<&'static str>,
}

impl AuditConsumer {
    /// The process registered as the audit daemon, by its command name (`auditd` gets its
    /// exact commands, anything else a generic instruction).
    pub fn audit_daemon(comm: &str, pid: Option<u32>) -> Self {
        let commands = if comm == "auditd" {
            // auditd.service refuses `systemctl stop` where it sets RefuseManualStop=yes
            // (RHEL and derivatives); `service auditd stop` works there and everywhere else.
            vec!["systemctl disable auditd.service", "service auditd stop"]
        } else {
            Vec::new()
        };
        AuditConsumer {
            kind: ConsumerKind::AuditDaemon,
            what: comm.to_owned(),
            pid,
            why: "only one process can receive the kernel's unicast audit stream, so the \
                  agent falls back to the multicast group, where that daemon's backlog and rate \
                  limits apply and every audit record is handled twice",
            commands,
        }
    }

    /// journald's audit socket (`pid`: journald's, when known).
    pub fn journald_audit(pid: Option<u32>) -> Self {
        AuditConsumer {
            kind: ConsumerKind::JournaldAudit,
            what: JOURNALD_AUDIT_UNIT.to_owned(),
            pid,
            why: "journald copies every audit record into the journal, doubling the cost of \
                  each audit event",
            // journald keeps the socket it was handed until it restarts.
            commands: vec![
                "systemctl stop systemd-journald-audit.socket",
                "systemctl mask systemd-journald-audit.socket",
                "systemctl restart systemd-journald.service",
            ],
        }
    }

    /// The operator message on one line, for logs and errors.
    pub fn message(&self) -> String {
        let pid = self.pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
        let state = match self.kind {
            ConsumerKind::AuditDaemon => "is registered as the audit daemon",
            ConsumerKind::JournaldAudit => "is active",
        };
        let todo = if self.commands.is_empty() {
            "Stop it and keep it from starting at boot".to_owned()
        } else {
            let commands: Vec<String> = self.commands.iter().map(|c| format!("`{c}`")).collect();
            format!(
                "To stop and disable it, run as root: {}",
                commands.join(", then ")
            )
        };
        format!("{}{pid} {state}: {}. {todo}.", self.what, self.why)
    }
}

/// The command name (`/proc/PID/comm`, without its newline) of `pid`.
pub fn comm_of(proc_root: &Path, pid: u32) -> Option<String> {
    let comm = std::fs::read(proc_root.join(pid.to_string()).join("comm")).ok()?;
    let comm = comm.strip_suffix(b"\n").unwrap_or(&comm);
    Some(String::from_utf8_lossy(comm).into_owned())
}

/// The pid of a process whose command name is `comm`, if one runs (auditd can run without
/// systemd knowing).
pub fn find_process(proc_root: &Path, comm: &str) -> Option<u32> {
    pids(proc_root).find(|&pid| comm_of(proc_root, pid).as_deref() == Some(comm))
}

/// Processes holding a `NETLINK_AUDIT` socket subscribed to a multicast group (journald's
/// audit socket, `auditctl`-free readers like the agent in multicast mode), with their command
/// names: from `net/netlink` and the `fd` links under `proc_root`. Reading other processes'
/// `fd` needs root (or `CAP_SYS_PTRACE`); without it only our own sockets are seen.
pub fn audit_multicast_listeners(proc_root: &Path) -> Vec<(u32, String)> {
    const NETLINK_AUDIT: &str = "9";
    let Ok(table) = std::fs::read_to_string(proc_root.join("net/netlink")) else {
        return Vec::new();
    };
    // Columns: sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
    let sockets: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            let groups = u32::from_str_radix(c.get(3)?, 16).ok()?;
            let inode = c.get(9)?;
            (c.get(1) == Some(&NETLINK_AUDIT) && groups != 0).then(|| format!("socket:[{inode}]"))
        })
        .collect();
    if sockets.is_empty() {
        return Vec::new();
    }
    pids(proc_root)
        .filter(|pid| {
            let Ok(fds) = std::fs::read_dir(proc_root.join(pid.to_string()).join("fd")) else {
                return false;
            };
            fds.flatten().any(|fd| {
                std::fs::read_link(fd.path())
                    .is_ok_and(|t| sockets.iter().any(|s| t.as_os_str() == s.as_str()))
            })
        })
        .map(|pid| {
            let comm = comm_of(proc_root, pid).unwrap_or_else(|| "unknown".into());
            (pid, comm)
        })
        .collect()
}

/// journald's pid if it listens to the audit multicast group (see
/// [`audit_multicast_listeners`]).
pub fn journald_audit_listener(proc_root: &Path) -> Option<u32> {
    audit_multicast_listeners(proc_root)
        .into_iter()
        .find(|(_, comm)| comm.starts_with("systemd-journal"))
        .map(|(pid, _)| pid)
}

fn pids(proc_root: &Path) -> impl Iterator<Item = u32> {
    std::fs::read_dir(proc_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_proc(comms: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (i, comm) in comms.iter().enumerate() {
            let p = dir.path().join((100 + i).to_string());
            std::fs::create_dir(&p).unwrap();
            std::fs::write(p.join("comm"), format!("{comm}\n")).unwrap();
        }
        std::fs::create_dir(dir.path().join("self")).unwrap();
        dir
    }

    #[test]
    fn auditd_message_has_the_commands_that_work_on_every_distribution() {
        let m = AuditConsumer::audit_daemon("auditd", Some(42)).message();
        assert_eq!(
            m,
            "auditd (pid 42) is registered as the audit daemon: only one process can receive \
             the kernel's unicast audit stream, so the agent falls back to the multicast group, \
             where that daemon's backlog and rate limits apply and every audit record is \
             handled twice. To stop and disable it, run as root: \
             `systemctl disable auditd.service`, then `service auditd stop`."
        );
    }

    #[test]
    fn journald_message_restarts_journald() {
        let c = AuditConsumer::journald_audit(None);
        assert_eq!(c.kind, ConsumerKind::JournaldAudit);
        let m = c.message();
        assert!(
            m.starts_with("systemd-journald-audit.socket is active: "),
            "{m}"
        );
        assert!(
            m.contains("`systemctl mask systemd-journald-audit.socket`, then `systemctl restart systemd-journald.service`"),
            "{m}"
        );
    }

    #[test]
    fn unknown_daemon_gets_no_guessed_commands() {
        let c = AuditConsumer::audit_daemon("other-agent", Some(7));
        assert!(c.commands.is_empty());
        assert!(c
            .message()
            .ends_with("Stop it and keep it from starting at boot."));
    }

    #[test]
    fn processes_are_found_by_exact_command_name() {
        let proc_root = fake_proc(&["bash", "auditdx", "auditd"]);
        assert_eq!(find_process(proc_root.path(), "auditd"), Some(102));
        assert_eq!(find_process(proc_root.path(), "audit"), None);
        assert_eq!(comm_of(proc_root.path(), 100).as_deref(), Some("bash"));
        assert_eq!(comm_of(proc_root.path(), 999), None);
        assert_eq!(find_process(Path::new("/nonexistent/proc"), "auditd"), None);
    }

    #[test]
    fn listeners_come_from_the_netlink_table_and_fd_links() {
        let proc_root = fake_proc(&["systemd-journal", "bash"]);
        let net = proc_root.path().join("net");
        std::fs::create_dir(&net).unwrap();
        std::fs::write(
            net.join("netlink"),
            "sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode\n\
             0000000000000000 9   100        00000001 0        0        0     2        0        5555\n\
             0000000000000000 9   101        00000000 0        0        0     2        0        6666\n\
             0000000000000000 0   101        00000001 0        0        0     2        0        7777\n",
        )
        .unwrap();
        #[cfg(unix)]
        for (pid, inode) in [(100, 5555), (101, 6666), (101, 7777)] {
            let fd = proc_root.path().join(format!("{pid}/fd"));
            std::fs::create_dir_all(&fd).unwrap();
            std::os::unix::fs::symlink(format!("socket:[{inode}]"), fd.join(inode.to_string()))
                .unwrap();
        }
        #[cfg(unix)]
        {
            assert_eq!(
                audit_multicast_listeners(proc_root.path()),
                vec![(100, "systemd-journal".to_owned())]
            );
            assert_eq!(journald_audit_listener(proc_root.path()), Some(100));
        }
    }
}
