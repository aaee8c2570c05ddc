//! `agent install`.

use std::process::ExitCode;

use argh::FromArgs;

/// install the agent as a system service and start it
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "install")]
pub struct InstallArgs {}

impl InstallArgs {
    /// Runs the command.
    pub fn run(self) -> ExitCode {
        super::not_implemented("install")
    }
}
