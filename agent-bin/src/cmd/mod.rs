//! One module per subcommand; each owns its argument struct and its `run`.

pub mod config;
pub mod install;
pub mod replay;
pub mod run;
pub mod service;
pub mod status;
pub mod uninstall;
pub mod update;

use std::process::ExitCode;

/// Exit status of a command that a later release implements: 2, with a plain message.
pub fn not_implemented(what: &str) -> ExitCode {
    eprintln!("agent: `{what}` is not implemented yet");
    ExitCode::from(2)
}
