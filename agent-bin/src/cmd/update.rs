//! `agent update`.

use std::process::ExitCode;

use argh::FromArgs;

/// update the agent to the latest release
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "update")]
pub struct UpdateArgs {}

impl UpdateArgs {
    /// Runs the command.
    pub fn run(self) -> ExitCode {
        super::not_implemented("update")
    }
}
