//! `agent config check [PATH]`.

use std::process::ExitCode;

use argh::FromArgs;

/// inspect the agent configuration
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "config")]
pub struct ConfigArgs {
    #[argh(subcommand)]
    command: ConfigCommand,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum ConfigCommand {
    Check(CheckArgs),
}

/// validate a config.yaml and report every problem with its line and column
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "check")]
struct CheckArgs {
    /// the file to check (default: the installed config.yaml)
    #[argh(positional)]
    path: Option<std::path::PathBuf>,
}

impl ConfigArgs {
    /// Runs the command.
    pub fn run(self) -> ExitCode {
        match self.command {
            ConfigCommand::Check(_args) => super::not_implemented("config check"),
        }
    }
}
