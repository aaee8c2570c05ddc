//! Shared by the tests that touch the kernel's audit state (`kernel.rs`, `scenarios.rs`):
//! serialization against each other (a process mutex plus a flock on
//! /tmp/agent-linux-audit-kernel-tests.lock across test binaries) and restoration of the
//! rules and status found before, even when an assertion fails.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use agent_linux_audit::netlink::{AuditSocket, Status, StatusUpdate};
use agent_linux_audit::rule::RuleData;

static SERIAL: Mutex<()> = Mutex::new(());

/// Holds the test lock and restores the kernel's audit rules and status on drop.
pub struct KernelGuard {
    _lock: MutexGuard<'static, ()>,
    _file: std::fs::File,
    /// The rules found before the test, restored on drop.
    pub rules: Vec<RuleData>,
    /// The status found before the test, restored on drop.
    pub status: Status,
    /// `auditctl` argument strings run on drop, before the rules are restored (rules
    /// loaded behind our back, e.g. by auditctl itself).
    pub extra_cleanup: Vec<String>,
}

impl KernelGuard {
    /// Takes the locks (waiting for other tests), checks root and that no audit daemon is
    /// registered, and records the state to restore.
    pub fn take() -> KernelGuard {
        let lock = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "the kernel audit tests need root (CI runs them as root)"
        );
        let file = std::fs::File::create("/tmp/agent-linux-audit-kernel-tests.lock").unwrap();
        // SAFETY: flock on a descriptor we own; blocks until other processes release it.
        assert_eq!(unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) }, 0);
        let mut s = AuditSocket::open().expect("open NETLINK_AUDIT (kernel built with audit?)");
        let mut status = s.get_status().unwrap();
        if status.pid != 0 && !Path::new(&format!("/proc/{}", status.pid)).exists() {
            // A test process killed while registered: registering makes the kernel notice
            // the dead daemon and replace it; then unregister.
            s.register().unwrap();
            s.unregister().unwrap();
            status = s.get_status().unwrap();
        }
        assert_eq!(
            status.pid, 0,
            "an audit daemon (pid {}) is registered: stop auditd before running these tests",
            status.pid
        );
        KernelGuard {
            _lock: lock,
            _file: file,
            rules: s.list_rules().unwrap(),
            status,
            extra_cleanup: Vec::new(),
        }
    }
}

impl Drop for KernelGuard {
    fn drop(&mut self) {
        for args in &self.extra_cleanup {
            let _ = Command::new("auditctl").args(args.split(' ')).output();
        }
        let Ok(mut s) = AuditSocket::open() else {
            return;
        };
        if let Ok(now) = s.list_rules() {
            for r in now.iter().filter(|r| !self.rules.contains(r)) {
                let _ = s.delete_rule(r);
            }
        }
        let st = self.status;
        let _ = s.set_status(&StatusUpdate {
            enabled: Some(st.enabled),
            failure: Some(st.failure),
            rate_limit: Some(st.rate_limit),
            backlog_limit: Some(st.backlog_limit),
            ..StatusUpdate::default()
        });
        if let Ok(cur) = s.get_status() {
            if cur.pid == std::process::id() {
                let _ = s.set_status(&StatusUpdate {
                    pid: Some(0),
                    ..StatusUpdate::default()
                });
            }
        }
    }
}
