//! `agent service`.

use std::process::ExitCode;

use argh::FromArgs;

/// start, stop, restart or query the installed service
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "service")]
pub struct ServiceArgs {}

impl ServiceArgs {
    /// Runs the command.
    pub fn run(self) -> ExitCode {
        super::not_implemented("service")
    }
}
