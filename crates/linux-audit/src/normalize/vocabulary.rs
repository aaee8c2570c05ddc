//! The `event.action` / `category` / `type` vocabulary for syscalls and user-space record
//! types, after `reference/audit-normalizations.yaml` (go-libaudit's table). Kept as code so
//! the binary needs no data file; a test checks every entry against the YAML.

/// How one syscall or record type is described in the dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vocab {
    /// `event.action`.
    pub action: &'static str,
    /// `event.category`.
    pub category: &'static [&'static str],
    /// `event.type`.
    pub types: &'static [&'static str],
}

const fn v(
    action: &'static str,
    category: &'static [&'static str],
    types: &'static [&'static str],
) -> Vocab {
    Vocab {
        action,
        category,
        types,
    }
}

const FILE: &[&str] = &["file"];
const PROCESS: &[&str] = &["process"];
const NETWORK: &[&str] = &["network"];
const AUTH: &[&str] = &["authentication"];
const SESSION: &[&str] = &["session"];
const IAM: &[&str] = &["iam"];
const HOST: &[&str] = &["host"];

/// `event.action` of `mkdir`: the dialect's (and DESIGN's) `directory-created`, where the
/// reference table says `created-directory` — the one deliberate deviation from it.
pub const DIRECTORY_CREATED: &str = "directory-created";

/// Actions where the dialect deliberately differs from the reference table:
/// `(name in the table, table's action, ours)`.
pub const DEVIATIONS: &[(&str, &str, &str)] = &[
    ("mkdir", "created-directory", DIRECTORY_CREATED),
    ("mkdirat", "created-directory", DIRECTORY_CREATED),
];

/// Syscall name → vocabulary. Syscalls not listed are `process` / `info` with the syscall
/// name as the action (the YAML's catch-all has no action).
pub fn syscall(name: &str) -> Option<Vocab> {
    Some(match name {
        "creat" => v("opened-file", FILE, &["creation"]),
        "fallocate" | "truncate" | "ftruncate" => v("opened-file", FILE, &["change"]),
        "open" | "openat" | "openat2" | "readlink" | "readlinkat" => {
            v("opened-file", FILE, &["info"])
        }
        "write" => v("wrote-to-file", FILE, &["change"]),
        "setxattr" | "fsetxattr" | "lsetxattr" | "removexattr" | "fremovexattr"
        | "lremovexattr" => v("changed-file-attributes-of", FILE, &["change"]),
        "chmod" | "fchmod" | "fchmodat" => v("changed-file-permissions-of", FILE, &["change"]),
        "chown" | "fchown" | "fchownat" | "lchown" => {
            v("changed-file-ownership-of", FILE, &["change"])
        }
        "mkdir" | "mkdirat" => v(DIRECTORY_CREATED, FILE, &["creation"]),
        "mount" | "move_mount" => v("mounted", FILE, &["creation"]),
        "umount" | "umount2" => v("unmounted", FILE, &["deletion"]),
        "settimeofday" | "clock_settime" | "stime" | "adjtimex" | "clock_adjtime" => {
            v("changed-system-time", HOST, &["change"])
        }
        "sethostname" | "setdomainname" => v("changed-system-name", HOST, &["change"]),
        "rename" | "renameat" | "renameat2" => v("renamed", FILE, &["change"]),
        "link" | "linkat" => v("linked", FILE, &["creation"]),
        "symlink" | "symlinkat" => v("symlinked", FILE, &["creation"]),
        "rmdir" | "unlink" | "unlinkat" => v("deleted", FILE, &["deletion"]),
        "utime" | "utimes" | "futimesat" | "futimens" | "utimensat" => {
            v("changed-timestamp-of", FILE, &["info"])
        }
        "mknod" | "mknodat" => v("make-device", FILE, &["creation"]),
        "execve" | "execveat" => v("executed", PROCESS, &["start"]),
        "exit_group" => v("end", PROCESS, &["end"]),
        "kill" | "tkill" | "tgkill" => v("killed-pid", PROCESS, &["end"]),
        "connect" => v("connected-to", NETWORK, &["connection", "start"]),
        "accept" | "accept4" => v(
            "accepted-connection-from",
            NETWORK,
            &["connection", "start"],
        ),
        "bind" => v("bound-socket", NETWORK, &["start"]),
        "listen" => v("listen-for-connections", NETWORK, &["start"]),
        "finit_module" | "init_module" => v("loaded-kernel-module", &["driver"], &["start"]),
        "delete_module" => v("unloaded-kernel-module", &["driver"], &["end"]),
        "setuid" | "seteuid" | "setfsuid" | "setreuid" | "setgid" | "setegid" | "setfsgid"
        | "setregid" | "setresuid" | "setresgid" => v("changed-identity-of", PROCESS, &["change"]),
        _ => return None,
    })
}

/// User-space record type name → vocabulary, for the types turned into events.
pub fn record_type(name: &str) -> Option<Vocab> {
    Some(match name {
        "USER_LOGIN" => v("logged-in", AUTH, &["start"]),
        "USER_LOGOUT" => v("logged-out", AUTH, &["end"]),
        "LOGIN" => v("changed-login-id-to", AUTH, &["start"]),
        "USER_AUTH" => v("authenticated", AUTH, &["info"]),
        "USER_ACCT" => v("was-authorized", AUTH, &["info"]),
        "USER_ERR" => v("error", AUTH, &["info"]),
        "CRED_ACQ" => v("acquired-credentials", AUTH, &["info"]),
        "CRED_DISP" => v("disposed-credentials", AUTH, &["info"]),
        "CRED_REFR" => v("refreshed-credentials", AUTH, &["info"]),
        "GRP_AUTH" => v("authenticated-to-group", AUTH, &["info"]),
        "USER_START" => v("started-session", SESSION, &["start"]),
        "USER_END" => v("ended-session", SESSION, &["end"]),
        "USER_CMD" => v("ran-command", PROCESS, &["start"]),
        "ADD_USER" => v("added-user-account", IAM, &["user", "creation"]),
        "DEL_USER" => v("deleted-user-account", IAM, &["user", "deletion"]),
        "USER_MGMT" => v("modified-user-account", IAM, &["user", "change"]),
        "USER_CHAUTHTOK" => v("changed-password", IAM, &["user", "change"]),
        "ADD_GROUP" => v("added-group-account-to", IAM, &["group", "creation"]),
        "DEL_GROUP" => v("deleted-group-account-from", IAM, &["group", "deletion"]),
        "GRP_MGMT" => v("modified-group-account", IAM, &["group", "change"]),
        "ACCT_LOCK" => v("locked-account", IAM, &["user", "info"]),
        "ACCT_UNLOCK" => v("unlocked-account", IAM, &["user", "info"]),
        "GRP_CHAUTHTOK" => v("changed-group-password", IAM, &["group", "change"]),
        "SERVICE_START" => v("started-service", PROCESS, &["start"]),
        "SERVICE_STOP" => v("stopped-service", PROCESS, &["end"]),
        "NETFILTER_CFG" => v("loaded-firewall-rule-to", &["configuration"], &["change"]),
        "ANOM_PROMISCUOUS" => v(
            "changed-promiscuous-mode-on-device",
            &["intrusion_detection"],
            &["info", "change"],
        ),
        "ANOM_ABEND" => v(
            "crashed-program",
            &["process", "intrusion_detection"],
            &["end", "info"],
        ),
        _ => return None,
    })
}

/// The tag the normalizer gives events of record types that no rule selects (the kernel or
/// a daemon sends them whenever auditing is on), so they can be filtered like rule keys.
pub fn record_tag(name: &str) -> Option<&'static str> {
    Some(match name {
        "SERVICE_START" | "SERVICE_STOP" => "service-change",
        "NETFILTER_CFG" => "firewall-change",
        "ANOM_PROMISCUOUS" => "promiscuous-mode",
        "ANOM_ABEND" => "process-crash",
        _ => return None,
    })
}

/// Syscalls mapped beyond the reference table's own list, with the table entry they follow.
pub const EXTENSIONS: &[(&str, &str)] = &[("move_mount", "mount")];

/// Syscall names the table knows (for the consistency test).
#[cfg(test)]
pub(crate) const SYSCALLS: &[&str] = &[
    "creat",
    "fallocate",
    "truncate",
    "ftruncate",
    "open",
    "openat",
    "readlink",
    "readlinkat",
    "write",
    "setxattr",
    "fsetxattr",
    "lsetxattr",
    "removexattr",
    "fremovexattr",
    "lremovexattr",
    "chmod",
    "fchmod",
    "fchmodat",
    "chown",
    "fchown",
    "fchownat",
    "lchown",
    "mkdir",
    "mkdirat",
    "mount",
    "umount",
    "umount2",
    "settimeofday",
    "clock_settime",
    "stime",
    "adjtimex",
    "clock_adjtime",
    "sethostname",
    "setdomainname",
    "rename",
    "renameat",
    "renameat2",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "rmdir",
    "unlink",
    "unlinkat",
    "utime",
    "utimes",
    "futimesat",
    "futimens",
    "utimensat",
    "mknod",
    "mknodat",
    "execve",
    "execveat",
    "exit_group",
    "kill",
    "tkill",
    "tgkill",
    "connect",
    "accept",
    "accept4",
    "bind",
    "listen",
    "finit_module",
    "init_module",
    "delete_module",
    "setuid",
    "seteuid",
    "setfsuid",
    "setreuid",
    "setgid",
    "setegid",
    "setfsgid",
    "setregid",
    "setresuid",
    "setresgid",
];

/// Record types the table knows (for the consistency test).
#[cfg(test)]
pub(crate) const RECORD_TYPES: &[&str] = &[
    "USER_LOGIN",
    "USER_LOGOUT",
    "LOGIN",
    "USER_AUTH",
    "USER_ACCT",
    "USER_ERR",
    "CRED_ACQ",
    "CRED_DISP",
    "CRED_REFR",
    "GRP_AUTH",
    "USER_START",
    "USER_END",
    "USER_CMD",
    "ADD_USER",
    "DEL_USER",
    "USER_MGMT",
    "USER_CHAUTHTOK",
    "ADD_GROUP",
    "DEL_GROUP",
    "GRP_MGMT",
    "ACCT_LOCK",
    "ACCT_UNLOCK",
    "GRP_CHAUTHTOK",
    "SERVICE_START",
    "SERVICE_STOP",
    "NETFILTER_CFG",
    "ANOM_PROMISCUOUS",
    "ANOM_ABEND",
];
