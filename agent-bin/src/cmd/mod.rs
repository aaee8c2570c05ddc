//! One module per subcommand; each owns its argument struct and its `run`.

pub mod config;
pub mod install;
pub mod replay;
pub mod run;
pub mod service;
pub mod status;
pub mod uninstall;
pub mod update;
