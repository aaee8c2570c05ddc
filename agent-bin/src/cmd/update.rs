//! `agent update`.

use std::process::ExitCode;

use argh::FromArgs;

/// update the agent to the latest release (not implemented yet)
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "update", help_triggers("-h", "--help", "help"))]
pub struct UpdateArgs {}

impl UpdateArgs {
    /// Runs the command.
    pub fn run(self) -> ExitCode {
        super::not_implemented("update")
    }
}
