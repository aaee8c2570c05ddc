//! `agent run`.

use std::process::ExitCode;

use argh::FromArgs;

/// run the agent in the foreground (not implemented yet)
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "run", help_triggers("-h", "--help", "help"))]
pub struct RunArgs {
    /// print events as JSON lines on stdout instead of shipping them
    #[argh(switch)]
    console: bool,
}

impl RunArgs {
    /// Runs the command.
    pub fn run(self) -> ExitCode {
        let what = if self.console { "run --console" } else { "run" };
        super::not_implemented(what)
    }
}
