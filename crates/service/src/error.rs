//! The crate's error type.

use std::path::PathBuf;

/// Why a service-manager or install/uninstall operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A file or directory operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What we were doing ("write", "remove", ...).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be replaced atomically (the step and the OS error are inside).
    #[error(transparent)]
    Replace(#[from] agent_os::ReplaceError),
    /// A service-manager command (`systemctl`, `launchctl`) could not be run or failed.
    #[error("`{command}` failed ({status}){}", stderr_suffix(.stderr))]
    Command {
        /// The command line, for the message.
        command: String,
        /// Exit status, or why it could not be started.
        status: String,
        /// What the command printed on stderr, trimmed.
        stderr: String,
    },
    /// The Windows service control manager refused an operation.
    #[error("service control manager: {0}")]
    Scm(String),
    /// Installing or managing services needs administrator rights.
    #[error("this command must be run as root (Linux, macOS) or as Administrator (Windows)")]
    NotPrivileged,
    /// The OS's service manager is not running (e.g. a container without systemd as PID 1).
    #[error("{0} is not running on this host, so the service cannot be registered")]
    ManagerNotRunning(&'static str),
    /// No supported service manager on this OS.
    #[error("no supported service manager on this operating system")]
    Unsupported,
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

impl ServiceError {
    /// Wraps an I/O error with the action and path it concerns.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
