//! `agent uninstall`.

use std::process::ExitCode;

use agent_config::paths::Paths;
use agent_service::lifecycle;
use argh::FromArgs;

/// stop and remove the service and everything the agent installed (needs root / Administrator)
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "uninstall",
    help_triggers("-h", "--help", "help"),
    note = "Stops the service and removes its registration, then removes the binary, config.yaml, the state and log directories, and the directories the install created that are now empty; files the install did not create stay. Running it again succeeds and says nothing is installed. ENDPOINT_AGENT_ROOT and the other ENDPOINT_AGENT_* variables move the paths, as for install. See docs/service.md.",
    example = "sudo /opt/endpoint-agent/agent uninstall"
)]
pub struct UninstallArgs {}

impl UninstallArgs {
    /// Runs the command.
    pub fn run(self) -> ExitCode {
        let paths = Paths::from_env();
        #[cfg(windows)]
        {
            // Windows cannot delete a running executable: continue from a temporary copy.
            match agent_service::relaunch::from_temp_copy_if_running(&paths.binary) {
                Ok(Some(code)) => return ExitCode::from(code),
                Ok(None) => {}
                Err(e) => return fail(&e.to_string()),
            }
        }
        let manager = match lifecycle::manager_for(&paths) {
            Ok(m) => m,
            Err(e) => return fail(&e.to_string()),
        };
        match lifecycle::uninstall(&paths, manager.as_ref()) {
            Ok(done) if done.was_installed => {
                println!("Uninstalled the endpoint agent.");
                ExitCode::SUCCESS
            }
            Ok(_) => {
                println!("The endpoint agent is not installed; nothing to do.");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e.to_string()),
        }
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("agent uninstall: error: {message}");
    ExitCode::FAILURE
}
