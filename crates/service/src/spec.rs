//! What a service is, independent of the service manager that runs it.

use std::path::PathBuf;

/// Service name on every OS: systemd `SEKOIAEndpointAgent.service`, SCM `SEKOIAEndpointAgent`,
/// launchd `system/SEKOIAEndpointAgent`. Users and existing tooling look for exactly this name.
pub const SERVICE_NAME: &str = "SEKOIAEndpointAgent";

/// Human-readable name (systemd `Description=`, SCM display name).
pub const DISPLAY_NAME: &str = "SEKOIA.IO Endpoint Agent";

/// The service to register: which program to run, with which arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Service name (see [`SERVICE_NAME`]).
    pub name: String,
    /// Human-readable name.
    pub display_name: String,
    /// One-sentence description shown by the service manager.
    pub description: String,
    /// Absolute path of the installed agent binary.
    pub program: PathBuf,
    /// Arguments the service manager passes to the binary (`["run"]`).
    pub args: Vec<String>,
}

impl ServiceSpec {
    /// The agent's service: `<program> run` under [`SERVICE_NAME`].
    pub fn agent(program: impl Into<PathBuf>) -> Self {
        Self {
            name: SERVICE_NAME.to_owned(),
            display_name: DISPLAY_NAME.to_owned(),
            description: "Collects security events on this host and ships them to SEKOIA.IO."
                .to_owned(),
            program: program.into(),
            args: vec!["run".to_owned()],
        }
    }
}
