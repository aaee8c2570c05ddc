//! `agent service start|stop|restart|status`.

use std::process::ExitCode;

use agent_config::paths::Paths;
use agent_service::{lifecycle, privileges, ServiceState};
use argh::FromArgs;

/// start, stop, restart or query the installed service
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "service",
    help_triggers("-h", "--help", "help"),
    note = "Drives the service the host's service manager runs (systemd, the Windows SCM, launchd). start, stop and restart need root / Administrator and print the resulting state.",
    example = "sudo agent service restart",
    example = "agent service status"
)]
pub struct ServiceArgs {
    #[argh(subcommand)]
    action: ActionArgs,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum ActionArgs {
    Start(StartArgs),
    Stop(StopArgs),
    Restart(RestartArgs),
    Status(StatusArgs),
}

/// start the service (needs root / Administrator)
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "start", help_triggers("-h", "--help", "help"))]
struct StartArgs {}

/// stop the service (needs root / Administrator)
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "stop", help_triggers("-h", "--help", "help"))]
struct StopArgs {}

/// stop then start the service (needs root / Administrator)
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "restart", help_triggers("-h", "--help", "help"))]
struct RestartArgs {}

/// print the service state; exit 0 when running, 3 otherwise (as `systemctl status`)
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "status", help_triggers("-h", "--help", "help"))]
struct StatusArgs {}

/// What to do with the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start it.
    Start,
    /// Stop it.
    Stop,
    /// Stop then start it.
    Restart,
    /// Print its state.
    Status,
}

impl From<&ActionArgs> for Action {
    fn from(args: &ActionArgs) -> Self {
        match args {
            ActionArgs::Start(_) => Action::Start,
            ActionArgs::Stop(_) => Action::Stop,
            ActionArgs::Restart(_) => Action::Restart,
            ActionArgs::Status(_) => Action::Status,
        }
    }
}

impl ServiceArgs {
    /// Runs the command. `status` exits 0 when running and 3 otherwise (the LSB convention
    /// `systemctl status` also follows).
    pub fn run(self) -> ExitCode {
        let action = Action::from(&self.action);
        let paths = Paths::from_env();
        let manager = match lifecycle::manager_for(&paths) {
            Ok(m) => m,
            Err(e) => return fail(&e.to_string()),
        };
        let name = agent_service::SERVICE_NAME;
        if let Err(e) = manager.check_available() {
            return fail(&e.to_string());
        }
        if action != Action::Status {
            if let Err(e) = privileges::require_privileges() {
                return fail(&e.to_string());
            }
        }
        let done = match action {
            Action::Start => manager.start(),
            Action::Stop => manager.stop(),
            Action::Restart => manager.restart(),
            Action::Status => {
                return match manager.status() {
                    Ok(state) => {
                        println!("{name}: {state}");
                        if state == ServiceState::Running {
                            ExitCode::SUCCESS
                        } else {
                            ExitCode::from(3)
                        }
                    }
                    Err(e) => fail(&e.to_string()),
                };
            }
        };
        match done.and_then(|()| manager.status()) {
            Ok(state) => {
                println!("{name}: {state}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e.to_string()),
        }
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("agent service: error: {message}");
    ExitCode::FAILURE
}
