//! `agent config check [PATH]`.

use std::path::PathBuf;
use std::process::ExitCode;

use agent_config::{Config, ConfigError, Paths};
use argh::FromArgs;

/// inspect the agent configuration: `agent config check [PATH]` validates a config.yaml
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "config", help_triggers("-h", "--help", "help"))]
pub struct ConfigArgs {
    #[argh(subcommand)]
    command: ConfigCommand,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum ConfigCommand {
    Check(CheckArgs),
}

/// validate a config.yaml: exit 0 when it is usable (warnings are printed), 1 with every
/// problem found (file, line and column) otherwise
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "check",
    help_triggers("-h", "--help", "help"),
    note = "Without PATH, checks the installed config.yaml (/etc/endpoint-agent/config.yaml on Linux and macOS); the ENDPOINT_AGENT_CONFIG and ENDPOINT_AGENT_ROOT environment variables change that location. See docs/config.md for the keys.",
    example = "agent config check /etc/endpoint-agent/config.yaml"
)]
struct CheckArgs {
    /// the file to check (default: the installed config.yaml)
    #[argh(positional)]
    path: Option<PathBuf>,
}

impl ConfigArgs {
    /// Runs the command.
    pub fn run(self) -> ExitCode {
        match self.command {
            ConfigCommand::Check(args) => check(args),
        }
    }
}

fn check(args: CheckArgs) -> ExitCode {
    let path = args.path.unwrap_or_else(|| Paths::from_env().config_file);
    match Config::load(&path) {
        Ok((config, warnings)) => {
            for w in &warnings {
                eprintln!("{w}");
            }
            // What the patterns match now that the agent would not follow: the agent logs
            // the same when it runs, once per path.
            for (i, lf) in config.logfiles.iter().enumerate() {
                for skipped in agent_logfile::unfollowable(&lf.filepath) {
                    eprintln!(
                        "{}: warning: logfiles[{i}].filepath `{}` matches {skipped}",
                        path.display(),
                        lf.filepath
                    );
                }
            }
            println!("{}: OK", path.display());
            ExitCode::SUCCESS
        }
        Err(e @ ConfigError::Read { .. }) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{e}");
            eprintln!("{}: invalid configuration", path.display());
            ExitCode::FAILURE
        }
    }
}
