//! `tags[]` on macOS: the keys of the Linux audit rules (`crates/linux-audit/rules/default.rules`),
//! computed from the events instead of matched by the kernel.
//!
//! Endpoint Security reports real paths (`/private/etc/sudoers` for `/etc/sudoers`, the
//! interpreter for a `#!` script with the script beside it), so matching is on the path
//! with `/private` taken off, and on file names rather than on a fixed list of paths: the
//! same tool lives in `/usr/bin`, `/usr/local/bin`, `/opt/homebrew/Cellar/...` or an `.app`.
//!
//! Differences from Linux, where the kernel stops at the first matching rule: an
//! execution as root keeps `root-command` beside its specific key (`curl` run by root is
//! `suspicious-tool` and `root-command`), and `pip` run through its interpreter is
//! `package-install`, not `python-exec`.

/// A program started (no more specific key).
pub const PROCESS_START: &str = "process-start";
/// A process ended.
pub const PROCESS_EXIT: &str = "process-exit";
/// A program started with effective uid 0.
pub const ROOT_COMMAND: &str = "root-command";
/// A Python interpreter started.
pub const PYTHON_EXEC: &str = "python-exec";
/// A Perl interpreter started.
pub const PERL_EXEC: &str = "perl-exec";
/// A network or capture tool often used for discovery, exfiltration or reverse shells.
pub const SUSPICIOUS_TOOL: &str = "suspicious-tool";
/// A package manager or installer (`pip`, `brew`, `installer`, `port`).
pub const PACKAGE_INSTALL: &str = "package-install";
/// An account management command (`passwd`, `dscl`, `sysadminctl`, ...).
pub const ACCOUNT_COMMAND: &str = "account-command";
/// A job scheduling command (`crontab`, `at`, `batch`).
pub const SCHEDULING_COMMAND: &str = "scheduling-command";
/// `/etc/sudoers` or a file of `/etc/sudoers.d` changed.
pub const SUDOERS_CHANGE: &str = "sudoers-change";
/// Local accounts or groups changed: the directory-services records under
/// `/var/db/dslocal/nodes/*/{users,groups}` (and the legacy `/etc/passwd`, `/etc/group`,
/// `/etc/master.passwd`).
pub const ACCOUNTS_CHANGE: &str = "accounts-change";
/// root's SSH keys (`/var/root/.ssh`).
pub const SSH_KEYS_CHANGE: &str = "ssh-keys-change";
/// cron configuration (`/etc/crontab`).
pub const CRON_CONFIG_CHANGE: &str = "cron-config-change";
/// User crontabs and at jobs (`/var/at/tabs`, `/var/at/jobs`).
pub const SCHEDULED_JOB_CHANGE: &str = "scheduled-job-change";
/// launchd jobs, the macOS counterpart of `systemd-unit-change`
/// (`/Library/LaunchDaemons`, `/Library/LaunchAgents`, `~/Library/LaunchAgents`).
pub const LAUNCHD_CHANGE: &str = "launchd-change";
/// Anything else under `/etc`.
pub const ETC_CHANGE: &str = "etc-change";
/// System binary directories.
pub const BIN_CHANGE: &str = "bin-change";

/// The tags of an execution of `executable` (and `script`, for a `#!` script) with
/// effective uid `euid`.
pub fn exec_tags(executable: &str, script: Option<&str>, euid: u32) -> Vec<String> {
    let mut tags = Vec::with_capacity(2);
    if let Some(tag) = program_tag(executable, script) {
        tags.push(tag.to_owned());
    }
    if euid == 0 {
        tags.push(ROOT_COMMAND.to_owned());
    }
    if tags.is_empty() {
        tags.push(PROCESS_START.to_owned());
    }
    tags
}

/// The specific key of a program, if any. The script decides first: `pip` is a Python
/// script, `brew` a shell script.
fn program_tag(executable: &str, script: Option<&str>) -> Option<&'static str> {
    if let Some(tag) = script.and_then(|s| name_tag(s, base_name(s))) {
        return Some(tag);
    }
    name_tag(executable, base_name(executable))
}

fn name_tag(path: &str, name: &str) -> Option<&'static str> {
    if is_package_tool(name) {
        return Some(PACKAGE_INSTALL);
    }
    if is_versioned(name, "python") || (name == "Python" && path.contains("/Python.framework/")) {
        return Some(PYTHON_EXEC);
    }
    if is_versioned(name, "perl") {
        return Some(PERL_EXEC);
    }
    match name {
        "curl" | "wget" | "nc" | "ncat" | "netcat" | "socat" | "nmap" | "wireshark"
        | "Wireshark" | "tshark" | "dumpcap" | "tcpdump" => Some(SUSPICIOUS_TOOL),
        "passwd" | "chpass" | "chsh" | "chfn" | "dscl" | "dseditgroup" | "sysadminctl"
        | "pwpolicy" | "createhomedir" | "dsimport" => Some(ACCOUNT_COMMAND),
        "crontab" | "at" | "batch" => Some(SCHEDULING_COMMAND),
        _ => None,
    }
}

fn is_package_tool(name: &str) -> bool {
    matches!(
        name,
        "brew" | "installer" | "port" | "pip" | "pip2" | "pip3"
    ) || name
        .strip_prefix("pip")
        .is_some_and(|v| is_version_suffix(v) && !v.is_empty())
}

/// `python`, `python3`, `python3.12`, `perl5.34`: the name and a version made of digits
/// and dots.
fn is_versioned(name: &str, program: &str) -> bool {
    name.strip_prefix(program).is_some_and(is_version_suffix)
}

fn is_version_suffix(v: &str) -> bool {
    v.chars().all(|c| c.is_ascii_digit() || c == '.') && !v.starts_with('.')
}

/// The tag of a file event on `path` (first match, like the Linux watch rules).
pub fn file_tag(path: &str) -> Option<&'static str> {
    let p = without_private(path);
    let under = |dir: &str| {
        p.strip_prefix(dir)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    if under("/etc/sudoers") || under("/etc/sudoers.d") {
        return Some(SUDOERS_CHANGE);
    }
    if p.strip_prefix("/var/db/dslocal/nodes/")
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(_, rest)| rest.starts_with("users/") || rest.starts_with("groups/"))
        || ["/etc/passwd", "/etc/group", "/etc/master.passwd"]
            .iter()
            .any(|f| under(f))
    {
        return Some(ACCOUNTS_CHANGE);
    }
    if under("/var/root/.ssh") {
        return Some(SSH_KEYS_CHANGE);
    }
    if under("/etc/crontab") {
        return Some(CRON_CONFIG_CHANGE);
    }
    if under("/var/at/tabs") || under("/var/at/jobs") || under("/usr/lib/cron/tabs") {
        return Some(SCHEDULED_JOB_CHANGE);
    }
    if under("/Library/LaunchDaemons")
        || under("/Library/LaunchAgents")
        || p.strip_prefix("/Users/")
            .and_then(|rest| rest.split_once('/'))
            .is_some_and(|(_, rest)| {
                rest == "Library/LaunchAgents" || rest.starts_with("Library/LaunchAgents/")
            })
    {
        return Some(LAUNCHD_CHANGE);
    }
    if under("/etc") {
        return Some(ETC_CHANGE);
    }
    if [
        "/usr/bin",
        "/usr/sbin",
        "/bin",
        "/sbin",
        "/usr/local/bin",
        "/usr/local/sbin",
        "/opt/homebrew/bin",
        "/opt/homebrew/sbin",
    ]
    .iter()
    .any(|d| under(d))
    {
        return Some(BIN_CHANGE);
    }
    None
}

/// `/private/etc/x` → `/etc/x` (and `/private/var`, `/private/tmp`): the names users and
/// rules know.
fn without_private(path: &str) -> &str {
    match path.strip_prefix("/private") {
        Some(rest)
            if ["/etc", "/var", "/tmp"].iter().any(|d| {
                rest.strip_prefix(d)
                    .is_some_and(|r| r.is_empty() || r.starts_with('/'))
            }) =>
        {
            rest
        }
        _ => path,
    }
}

pub(crate) fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_keys_follow_the_program_name_wherever_it_lives() {
        let t = |exe: &str| exec_tags(exe, None, 501);
        assert_eq!(t("/usr/bin/curl"), [SUSPICIOUS_TOOL]);
        assert_eq!(
            t("/opt/homebrew/Cellar/wget/1.24.5/bin/wget"),
            [SUSPICIOUS_TOOL]
        );
        assert_eq!(
            t("/Applications/Wireshark.app/Contents/MacOS/Wireshark"),
            [SUSPICIOUS_TOOL]
        );
        assert_eq!(
            t("/opt/homebrew/Cellar/python@3.12/3.12.2/Frameworks/Python.framework/Versions/3.12/bin/python3.12"),
            [PYTHON_EXEC]
        );
        assert_eq!(
            t("/Library/Frameworks/Python.framework/Versions/3.12/Resources/Python.app/Contents/MacOS/Python"),
            [PYTHON_EXEC]
        );
        assert_eq!(t("/usr/bin/perl5.34"), [PERL_EXEC]);
        assert_eq!(t("/usr/sbin/installer"), [PACKAGE_INSTALL]);
        assert_eq!(t("/usr/bin/dscl"), [ACCOUNT_COMMAND]);
        assert_eq!(t("/usr/bin/crontab"), [SCHEDULING_COMMAND]);
        assert_eq!(t("/bin/ls"), [PROCESS_START]);
        // Names that only start like a program are not it.
        assert_eq!(t("/usr/local/bin/pythonista"), [PROCESS_START]);
        assert_eq!(t("/usr/bin/perldoc"), [PROCESS_START]);
        assert_eq!(t("/usr/bin/pipx"), [PROCESS_START]);
    }

    #[test]
    fn the_script_decides_before_its_interpreter() {
        let python = "/opt/homebrew/Cellar/python@3.12/3.12.2/Frameworks/Python.framework/Versions/3.12/bin/python3.12";
        assert_eq!(
            exec_tags(python, Some("/opt/homebrew/bin/pip3.12"), 501),
            [PACKAGE_INSTALL]
        );
        assert_eq!(
            exec_tags(
                "/bin/bash",
                Some("/opt/homebrew/Library/Homebrew/brew.sh"),
                501
            ),
            [PROCESS_START]
        );
        assert_eq!(
            exec_tags("/bin/bash", Some("/opt/homebrew/bin/brew"), 501),
            [PACKAGE_INSTALL]
        );
        assert_eq!(exec_tags(python, Some("/Users/a/x.py"), 501), [PYTHON_EXEC]);
    }

    #[test]
    fn root_keeps_its_key_beside_the_specific_one() {
        assert_eq!(exec_tags("/bin/ls", None, 0), [ROOT_COMMAND]);
        assert_eq!(
            exec_tags("/usr/bin/curl", None, 0),
            [SUSPICIOUS_TOOL, ROOT_COMMAND]
        );
    }

    #[test]
    fn file_keys_by_area_first_match() {
        assert_eq!(file_tag("/private/etc/sudoers"), Some(SUDOERS_CHANGE));
        assert_eq!(file_tag("/etc/sudoers.d/10-admin"), Some(SUDOERS_CHANGE));
        assert_eq!(file_tag("/private/etc/sudoers~"), Some(ETC_CHANGE));
        assert_eq!(
            file_tag("/private/var/db/dslocal/nodes/Default/users/alice.plist"),
            Some(ACCOUNTS_CHANGE)
        );
        assert_eq!(
            file_tag("/private/var/db/dslocal/nodes/Default/groups/admin.plist"),
            Some(ACCOUNTS_CHANGE)
        );
        assert_eq!(
            file_tag("/private/var/db/dslocal/nodes/Default/aliases/x"),
            None
        );
        assert_eq!(
            file_tag("/private/etc/master.passwd"),
            Some(ACCOUNTS_CHANGE)
        );
        assert_eq!(
            file_tag("/private/var/root/.ssh/authorized_keys"),
            Some(SSH_KEYS_CHANGE)
        );
        assert_eq!(file_tag("/private/etc/crontab"), Some(CRON_CONFIG_CHANGE));
        assert_eq!(
            file_tag("/private/var/at/tabs/alice"),
            Some(SCHEDULED_JOB_CHANGE)
        );
        assert_eq!(
            file_tag("/Library/LaunchDaemons/com.evil.plist"),
            Some(LAUNCHD_CHANGE)
        );
        assert_eq!(
            file_tag("/Users/alice/Library/LaunchAgents/com.evil.plist"),
            Some(LAUNCHD_CHANGE)
        );
        assert_eq!(file_tag("/private/etc/hosts"), Some(ETC_CHANGE));
        assert_eq!(file_tag("/usr/local/bin/tool"), Some(BIN_CHANGE));
        assert_eq!(file_tag("/Users/alice/notes.txt"), None);
        assert_eq!(file_tag("/private/etcetera/x"), None);
        assert_eq!(file_tag("/privateer/etc/x"), None);
    }
}
