//! Other consumers of the Linux kernel audit stream. Only one process can be the audit
//! daemon, and journald's audit socket duplicates every record into the journal; the
//! installer tells the administrator how to stop them, and never does it itself.

use std::path::Path;

use crate::ServiceManager;

/// One active audit consumer and the exact commands that stop and disable it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConflict {
    /// What is running (`auditd`, `systemd-journald-audit.socket`).
    pub what: &'static str,
    /// Why it matters, one sentence.
    pub why: &'static str,
    /// Shell commands, one per line, to run as root.
    pub commands: Vec<&'static str>,
}

/// The audit consumers active on this host: asks the service manager about their units and,
/// for auditd, also looks for the process (it may run without systemd).
pub fn audit_conflicts(manager: &dyn ServiceManager, proc_dir: &Path) -> Vec<AuditConflict> {
    let mut found = Vec::new();
    if manager.is_other_unit_active("auditd.service") || process_running(proc_dir, "auditd") {
        found.push(AuditConflict {
            what: "auditd",
            why: "auditd owns the kernel audit stream, so the agent would receive no audit events",
            // auditd.service refuses `systemctl stop` on several distributions
            // (RefuseManualStop=yes); `service auditd stop` is the documented way.
            commands: vec!["systemctl disable auditd.service", "service auditd stop"],
        });
    }
    if manager.is_other_unit_active("systemd-journald-audit.socket") {
        found.push(AuditConflict {
            what: "systemd-journald-audit.socket",
            why: "journald copies every audit record into the journal, doubling the audit cost",
            commands: vec![
                "systemctl stop systemd-journald-audit.socket",
                "systemctl mask systemd-journald-audit.socket",
                "systemctl restart systemd-journald.service",
            ],
        });
    }
    found
}

/// Whether a process whose command name is `comm` exists under `proc_dir` (`/proc`).
fn process_running(proc_dir: &Path, comm: &str) -> bool {
    let Ok(entries) = std::fs::read_dir(proc_dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        e.file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
            && std::fs::read_to_string(e.path().join("comm"))
                .map(|c| c.trim_end() == comm)
                .unwrap_or(false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NoServiceManager, ServiceError, ServiceState};

    #[derive(Debug)]
    struct ActiveUnits(&'static [&'static str]);

    impl ServiceManager for ActiveUnits {
        fn kind(&self) -> &'static str {
            "fake"
        }
        fn install(&self) -> Result<(), ServiceError> {
            Ok(())
        }
        fn uninstall(&self) -> Result<(), ServiceError> {
            Ok(())
        }
        fn start(&self) -> Result<(), ServiceError> {
            Ok(())
        }
        fn stop(&self) -> Result<(), ServiceError> {
            Ok(())
        }
        fn restart(&self) -> Result<(), ServiceError> {
            Ok(())
        }
        fn status(&self) -> Result<ServiceState, ServiceError> {
            Ok(ServiceState::NotInstalled)
        }
        fn is_other_unit_active(&self, unit: &str) -> bool {
            self.0.contains(&unit)
        }
        fn registration_files(&self) -> Vec<std::path::PathBuf> {
            Vec::new()
        }
    }

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
    fn nothing_active_nothing_reported() {
        let proc_dir = fake_proc(&["bash", "auditdx"]);
        assert!(audit_conflicts(&NoServiceManager, proc_dir.path()).is_empty());
    }

    #[test]
    fn auditd_process_is_reported_with_commands() {
        let proc_dir = fake_proc(&["bash", "auditd"]);
        let found = audit_conflicts(&NoServiceManager, proc_dir.path());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].what, "auditd");
        assert_eq!(
            found[0].commands,
            vec!["systemctl disable auditd.service", "service auditd stop"]
        );
    }

    #[test]
    fn journald_audit_socket_is_reported_with_commands() {
        let proc_dir = fake_proc(&[]);
        let m = ActiveUnits(&["systemd-journald-audit.socket", "auditd.service"]);
        let found = audit_conflicts(&m, proc_dir.path());
        let whats: Vec<_> = found.iter().map(|c| c.what).collect();
        assert_eq!(whats, vec!["auditd", "systemd-journald-audit.socket"]);
        assert!(found[1]
            .commands
            .contains(&"systemctl mask systemd-journald-audit.socket"));
    }
}
