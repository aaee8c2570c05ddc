//! The "none" service manager: registers nothing, starts nothing.
//!
//! Selected whenever a root prefix is set (`ENDPOINT_AGENT_ROOT`), so that the complete
//! install and uninstall can run against a temporary directory without ever touching the
//! host's systemd, SCM or launchd.

use std::path::PathBuf;

use crate::{ServiceError, ServiceManager, ServiceState};

/// A service manager that does nothing and reports the service as not installed.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoServiceManager;

impl ServiceManager for NoServiceManager {
    fn kind(&self) -> &'static str {
        "none"
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

    fn registration_files(&self) -> Vec<PathBuf> {
        Vec::new()
    }
}
