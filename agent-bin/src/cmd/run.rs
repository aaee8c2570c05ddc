//! `agent run`.

use std::process::ExitCode;

use argh::FromArgs;

/// run the agent in the foreground
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "run")]
pub struct RunArgs {}

impl RunArgs {
    /// Runs the command.
    pub fn run(self) -> ExitCode {
        super::not_implemented("run")
    }
}
