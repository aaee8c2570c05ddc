//! Shared by the tests that touch the kernel's audit state (`kernel.rs`, `scenarios.rs`):
//! serialization against each other (a process mutex plus a flock on
//! /tmp/agent-linux-audit-kernel-tests.lock across test binaries) and restoration of the
//! rules and status found before, even when an assertion fails.

use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use agent_linux_audit::netlink::{AuditSocket, SavedState};

static SERIAL: Mutex<()> = Mutex::new(());

/// Holds the test lock and restores the kernel's audit rules and status on drop.
pub struct KernelGuard {
    _lock: MutexGuard<'static, ()>,
    _file: std::fs::File,
    /// The rules and status found before the test, restored on drop.
    pub saved: SavedState,
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
        // A test process killed while registered: let the kernel drop it.
        let status = s.clear_stale_daemon().unwrap();
        assert_eq!(
            status.pid, 0,
            "an audit daemon (pid {}) is registered: stop auditd before running these tests",
            status.pid
        );
        KernelGuard {
            _lock: lock,
            _file: file,
            saved: SavedState::capture(&mut s).unwrap(),
            extra_cleanup: Vec::new(),
        }
    }
}

impl Drop for KernelGuard {
    fn drop(&mut self) {
        for args in &self.extra_cleanup {
            let _ = Command::new("auditctl").args(args.split(' ')).output();
        }
        // Best effort: a drop during a panic must not panic again.
        if let Ok(mut s) = AuditSocket::open() {
            let _ = self.saved.restore(&mut s);
        }
    }
}
