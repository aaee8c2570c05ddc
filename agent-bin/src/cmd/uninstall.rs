//! `agent uninstall`.

use std::process::ExitCode;

use argh::FromArgs;

/// stop and remove the service and everything the agent installed
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "uninstall")]
pub struct UninstallArgs {}

impl UninstallArgs {
    /// Runs the command.
    pub fn run(self) -> ExitCode {
        super::not_implemented("uninstall")
    }
}
