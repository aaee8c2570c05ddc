//! systemd: the unit file and `systemctl` operations.
//!
//! The unit's hardening directives are documented one by one in `docs/service.md`; keep the
//! two in sync.

use std::path::{Path, PathBuf};

use crate::command;
use crate::fsutil;
use crate::{ServiceError, ServiceManager, ServiceSpec, ServiceState};

/// Where unit files written by the administrator (and installers) live.
pub const UNIT_DIR: &str = "/etc/systemd/system";

/// The `[Unit]`, `[Service]` and `[Install]` text of the agent's unit.
pub fn unit_file(spec: &ServiceSpec) -> String {
    let exec_start = std::iter::once(spec.program.to_string_lossy().into_owned())
        .chain(spec.args.iter().cloned())
        .map(|arg| quote_exec_arg(&arg))
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "\
[Unit]
Description={display_name}
Documentation=https://docs.sekoia.io/
Wants=network-online.target
After=network-online.target
StartLimitIntervalSec=0

[Service]
Type=simple
ExecStart={exec_start}
Restart=always
RestartSec=5s
TimeoutStopSec=30s
KillMode=mixed
UMask=0077
NoNewPrivileges=yes
ProtectSystem=full
ProtectHome=read-only
# No PrivateTmp: it would hide the log files under /tmp and /var/tmp that the agent is
# configured to tail (config check accepts them).
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
RestrictNamespaces=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_PACKET
CapabilityBoundingSet=CAP_AUDIT_CONTROL CAP_AUDIT_READ CAP_AUDIT_WRITE CAP_DAC_READ_SEARCH CAP_SYS_PTRACE CAP_NET_RAW

[Install]
WantedBy=multi-user.target
",
        display_name = spec.display_name,
    )
}

/// Quotes one `ExecStart=` word: `%` and `$` are specifiers/variables to systemd, and words with
/// blanks, quotes or backslashes need C-style double quoting.
fn quote_exec_arg(arg: &str) -> String {
    let escaped = arg.replace('%', "%%").replace('$', "$$");
    if escaped.is_empty()
        || escaped
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | ';'))
    {
        let mut quoted = String::with_capacity(escaped.len() + 2);
        quoted.push('"');
        for c in escaped.chars() {
            match c {
                '"' => quoted.push_str("\\\""),
                '\\' => quoted.push_str("\\\\"),
                c => quoted.push(c),
            }
        }
        quoted.push('"');
        quoted
    } else {
        escaped
    }
}

/// The agent's service under systemd, driven through `systemctl`.
#[derive(Debug, Clone)]
pub struct SystemdManager {
    spec: ServiceSpec,
    unit_dir: PathBuf,
}

impl SystemdManager {
    /// Manages `spec` with its unit file in [`UNIT_DIR`].
    pub fn new(spec: ServiceSpec) -> Self {
        Self::with_unit_dir(spec, UNIT_DIR)
    }

    /// Manages `spec` with its unit file in `unit_dir` (tests).
    pub fn with_unit_dir(spec: ServiceSpec, unit_dir: impl Into<PathBuf>) -> Self {
        Self {
            spec,
            unit_dir: unit_dir.into(),
        }
    }

    /// `<name>.service`.
    pub fn unit_name(&self) -> String {
        format!("{}.service", self.spec.name)
    }

    /// Full path of the unit file this manager writes.
    pub fn unit_path(&self) -> PathBuf {
        self.unit_dir.join(self.unit_name())
    }

    fn systemctl(&self, args: &[&str]) -> Result<std::process::Output, ServiceError> {
        command::run("systemctl", args)
    }

    fn load_state(&self) -> Result<String, ServiceError> {
        let unit = self.unit_name();
        let out = self.systemctl(&["show", "--property=LoadState", "--value", &unit])?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

impl ServiceManager for SystemdManager {
    fn kind(&self) -> &'static str {
        "systemd"
    }

    fn check_available(&self) -> Result<(), ServiceError> {
        if is_booted(Path::new("/")) {
            Ok(())
        } else {
            Err(ServiceError::ManagerNotRunning("systemd"))
        }
    }

    fn install(&self) -> Result<(), ServiceError> {
        let unit = self.unit_name();
        agent_os::replace_file(&self.unit_path(), unit_file(&self.spec).as_bytes(), 0o644)?;
        self.systemctl(&["daemon-reload"])?;
        self.systemctl(&["enable", &unit])?;
        // `restart` rather than `start`: a forced reinstall must run the new binary.
        self.systemctl(&["restart", &unit])?;
        Ok(())
    }

    fn uninstall(&self) -> Result<(), ServiceError> {
        let unit = self.unit_name();
        let path = self.unit_path();
        let loaded = self.load_state()? != "not-found";
        if loaded {
            // Stop first so that nothing writes logs or state while the files go away.
            self.systemctl(&["disable", "--now", &unit])?;
        }
        fsutil::remove_file_if_exists(&path)?;
        if loaded {
            self.systemctl(&["daemon-reload"])?;
            // Forget a failed state so `systemctl status` does not show a ghost unit;
            // it fails harmlessly when there is nothing to reset.
            let _ = command::output("systemctl", &["reset-failed", &unit]);
        }
        Ok(())
    }

    fn start(&self) -> Result<(), ServiceError> {
        self.systemctl(&["start", &self.unit_name()]).map(drop)
    }

    fn stop(&self) -> Result<(), ServiceError> {
        self.systemctl(&["stop", &self.unit_name()]).map(drop)
    }

    fn restart(&self) -> Result<(), ServiceError> {
        self.systemctl(&["restart", &self.unit_name()]).map(drop)
    }

    fn status(&self) -> Result<ServiceState, ServiceError> {
        if self.load_state()? == "not-found" {
            return Ok(ServiceState::NotInstalled);
        }
        // `is-active` exits non-zero for anything but active; its stdout is the answer.
        let out = command::output("systemctl", &["is-active", &self.unit_name()])?;
        let state = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Ok(match state.as_str() {
            "active" => ServiceState::Running,
            "inactive" => ServiceState::Stopped,
            _ => ServiceState::Other(state),
        })
    }

    fn is_other_unit_active(&self, unit: &str) -> bool {
        command::output("systemctl", &["is-active", "--quiet", unit])
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    fn registration_files(&self) -> Vec<PathBuf> {
        vec![self.unit_path()]
    }
}

/// True when `dir` looks like a running systemd's runtime directory (`/run/systemd/system`),
/// the check `sd_booted()` makes.
pub fn is_booted(root: &Path) -> bool {
    root.join("run/systemd/system").is_dir()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_start_quotes_only_what_needs_quoting() {
        assert_eq!(
            quote_exec_arg("/opt/endpoint-agent/agent"),
            "/opt/endpoint-agent/agent"
        );
        assert_eq!(
            quote_exec_arg("/opt/my agent/agent"),
            "\"/opt/my agent/agent\""
        );
        assert_eq!(quote_exec_arg("100%"), "100%%");
        assert_eq!(quote_exec_arg("$HOME"), "$$HOME");
        assert_eq!(quote_exec_arg(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote_exec_arg(""), "\"\"");
    }

    #[test]
    fn unit_runs_the_installed_binary_with_run_and_restarts_it() {
        let unit = unit_file(&ServiceSpec::agent("/opt/endpoint-agent/agent"));
        let lines: Vec<&str> = unit.lines().collect();
        assert!(lines.contains(&"ExecStart=/opt/endpoint-agent/agent run"));
        assert!(lines.contains(&"Restart=always"));
        assert!(lines.contains(&"WantedBy=multi-user.target"));
        assert!(lines.contains(&"Description=SEKOIA.IO Endpoint Agent"));
        // The audit collector needs its netlink family and audit capabilities.
        assert!(lines
            .iter()
            .any(|l| l.starts_with("RestrictAddressFamilies=") && l.contains("AF_NETLINK")));
        assert!(lines.iter().any(|l| l.starts_with("CapabilityBoundingSet=")
            && l.contains("CAP_AUDIT_CONTROL")
            && l.contains("CAP_AUDIT_READ")));
    }

    /// A private /tmp would hide the log files under /tmp that `config check` accepts.
    #[test]
    fn the_service_sees_the_shared_tmp() {
        let unit = unit_file(&ServiceSpec::agent("/opt/endpoint-agent/agent"));
        assert!(
            !unit.lines().any(|l| l.starts_with("PrivateTmp=")),
            "{unit}"
        );
    }

    #[test]
    fn every_hardening_directive_is_documented() {
        let doc = include_str!("../../../docs/service.md");
        let unit = unit_file(&ServiceSpec::agent("/opt/endpoint-agent/agent"));
        let service = unit
            .split("[Service]")
            .nth(1)
            .and_then(|s| s.split("[Install]").next())
            .unwrap_or_default();
        for line in service
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let key = line.split('=').next().unwrap_or_default();
            assert!(
                doc.contains(&format!("`{key}=")),
                "docs/service.md does not document `{key}=`"
            );
        }
    }
}
