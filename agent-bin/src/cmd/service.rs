//! `agent service start|stop|restart|status`.

use std::process::ExitCode;
use std::str::FromStr;

use agent_config::paths::Paths;
use agent_service::{lifecycle, privileges, ServiceState};
use argh::FromArgs;

/// start, stop, restart or query the installed service
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "service")]
pub struct ServiceArgs {
    /// start, stop, restart or status
    #[argh(positional)]
    action: Action,
}

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

impl FromStr for Action {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "start" => Ok(Action::Start),
            "stop" => Ok(Action::Stop),
            "restart" => Ok(Action::Restart),
            "status" => Ok(Action::Status),
            other => Err(format!(
                "unknown action `{other}`: expected start, stop, restart or status"
            )),
        }
    }
}

impl ServiceArgs {
    /// Runs the command. `status` exits 0 when running and 3 otherwise (the LSB convention
    /// `systemctl status` also follows).
    pub fn run(self) -> ExitCode {
        let paths = Paths::from_env();
        let manager = match lifecycle::manager_for(&paths) {
            Ok(m) => m,
            Err(e) => return fail(&e.to_string()),
        };
        let name = agent_service::SERVICE_NAME;
        if let Err(e) = manager.check_available() {
            return fail(&e.to_string());
        }
        if self.action != Action::Status {
            if let Err(e) = privileges::require_privileges() {
                return fail(&e.to_string());
            }
        }
        let done = match self.action {
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
