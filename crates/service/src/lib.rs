//! Install, start, stop and uninstall the agent as a systemd, Windows SCM or launchd service.
//!
//! [`ServiceManager`] is the one interface over the three service managers;
//! [`platform_manager`] picks the host's, and [`NoServiceManager`] stands in when the agent is
//! installed under a root prefix (tests), so that nothing on the host is touched.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod audit_conflicts;
mod command;
pub mod config_file;
mod error;
pub mod fsutil;
pub mod launchd;
pub mod lifecycle;
mod none;
pub mod privileges;
pub mod relaunch;
pub mod scm;
mod spec;
pub mod systemd;
#[cfg(windows)]
pub mod windows;

use std::fmt;
use std::path::PathBuf;

pub use error::ServiceError;
pub use none::NoServiceManager;
pub use spec::{ServiceSpec, DISPLAY_NAME, SERVICE_NAME};

/// What a service manager reports about the agent's service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceState {
    /// Registered and running.
    Running,
    /// Registered, not running.
    Stopped,
    /// Not registered with the service manager.
    NotInstalled,
    /// Anything else, in the manager's own words (`activating`, `failed`, `StartPending`...).
    Other(String),
}

impl fmt::Display for ServiceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Running => f.write_str("running"),
            Self::Stopped => f.write_str("stopped"),
            Self::NotInstalled => f.write_str("not installed"),
            Self::Other(s) => f.write_str(s),
        }
    }
}

/// One service manager (systemd, SCM, launchd, or none) managing the agent's service.
pub trait ServiceManager: fmt::Debug {
    /// Short name for messages: `systemd`, `scm`, `launchd`, `none`.
    fn kind(&self) -> &'static str;
    /// Fails when this manager is not running on the host (checked before installing
    /// anything, so that a host without it gets a clear error and no half install).
    fn check_available(&self) -> Result<(), ServiceError> {
        Ok(())
    }
    /// Registers the service to start at boot and (re)starts it now.
    fn install(&self) -> Result<(), ServiceError>;
    /// Stops the service and removes its registration. Succeeds when it is not installed.
    fn uninstall(&self) -> Result<(), ServiceError>;
    /// Starts the service.
    fn start(&self) -> Result<(), ServiceError>;
    /// Stops the service (it still starts at the next boot).
    fn stop(&self) -> Result<(), ServiceError>;
    /// Stops then starts the service.
    fn restart(&self) -> Result<(), ServiceError>;
    /// The service's current state.
    fn status(&self) -> Result<ServiceState, ServiceError>;
    /// Whether another unit of this manager is active (the audit-conflict check asks about
    /// `auditd.service` and `systemd-journald-audit.socket`). False when unknown.
    fn is_other_unit_active(&self, _unit: &str) -> bool {
        false
    }
    /// Files the registration writes (unit file, property list), for reporting.
    fn registration_files(&self) -> Vec<PathBuf>;
}

/// The host's service manager for the agent's service, running `program`:
/// systemd on Linux, the SCM on Windows, launchd on macOS.
pub fn platform_manager(program: PathBuf) -> Result<Box<dyn ServiceManager>, ServiceError> {
    let spec = ServiceSpec::agent(program);
    #[cfg(target_os = "linux")]
    {
        Ok(Box::new(systemd::SystemdManager::new(spec)))
    }
    #[cfg(target_os = "macos")]
    {
        Ok(Box::new(launchd::LaunchdManager::new(spec)))
    }
    #[cfg(windows)]
    {
        Ok(Box::new(windows::ScmManager::new(spec)))
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
    {
        let _ = spec;
        Err(ServiceError::Unsupported)
    }
}
