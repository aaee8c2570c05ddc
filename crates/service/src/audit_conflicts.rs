//! Other consumers of the Linux kernel audit stream, found at install. Only one process can
//! be the audit daemon, and journald's audit socket duplicates every record into the journal;
//! the installer tells the administrator how to stop them, and never does it itself. What to
//! tell is [`AuditConsumer`]'s, the same message the audit collector gives when it starts.

use std::path::Path;

pub use agent_os::audit_consumers::AuditConsumer;
use agent_os::audit_consumers::{
    find_process, journald_audit_listener, AUDITD_UNIT, JOURNALD_AUDIT_UNIT,
};

use crate::ServiceManager;

/// The audit consumers active on this host: asks the service manager about their units and
/// also looks at the processes (auditd may run without systemd; journald may still hold the
/// audit socket after its unit stopped).
pub fn audit_conflicts(manager: &dyn ServiceManager, proc_dir: &Path) -> Vec<AuditConsumer> {
    let mut found = Vec::new();
    let auditd = find_process(proc_dir, "auditd");
    if manager.is_other_unit_active(AUDITD_UNIT) || auditd.is_some() {
        found.push(AuditConsumer::audit_daemon("auditd", auditd));
    }
    let journald = journald_audit_listener(proc_dir);
    if manager.is_other_unit_active(JOURNALD_AUDIT_UNIT) || journald.is_some() {
        found.push(AuditConsumer::journald_audit(journald));
    }
    found
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

    #[test]
    fn nothing_active_nothing_reported() {
        let proc_dir = tempfile::tempdir().unwrap();
        assert!(audit_conflicts(&NoServiceManager, proc_dir.path()).is_empty());
    }

    /// auditd running without systemd knowing is still found (process finding itself is
    /// agent-os's, tested there).
    #[test]
    fn auditd_process_is_reported_with_commands() {
        let proc_dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(proc_dir.path().join("4242")).unwrap();
        std::fs::write(proc_dir.path().join("4242/comm"), "auditd\n").unwrap();
        let found = audit_conflicts(&NoServiceManager, proc_dir.path());
        assert_eq!(
            found,
            vec![AuditConsumer::audit_daemon("auditd", Some(4242))]
        );
        assert_eq!(
            found[0].commands,
            vec!["systemctl disable auditd.service", "service auditd stop"]
        );
    }

    #[test]
    fn journald_audit_socket_is_reported_with_commands() {
        let proc_dir = tempfile::tempdir().unwrap();
        let m = ActiveUnits(&["systemd-journald-audit.socket", "auditd.service"]);
        let found = audit_conflicts(&m, proc_dir.path());
        let whats: Vec<_> = found.iter().map(|c| c.what.as_str()).collect();
        assert_eq!(whats, vec!["auditd", "systemd-journald-audit.socket"]);
        assert!(found[1]
            .commands
            .contains(&"systemctl mask systemd-journald-audit.socket"));
    }
}
