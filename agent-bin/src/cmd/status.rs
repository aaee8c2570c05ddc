//! `agent status`: the running agent's state, from the status file it refreshes.

use std::process::ExitCode;

use argh::FromArgs;

use crate::runtime::status;

/// show the running agent's state: ring usage, last successful send, drops, collectors
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "status", help_triggers("-h", "--help", "help"))]
pub struct StatusArgs {
    /// print the raw status as JSON
    #[argh(switch)]
    json: bool,
}

impl StatusArgs {
    /// Runs the command: exit 0 when the agent runs and is healthy, 2 when it runs but
    /// is degraded (the ring cannot write, a component is being restarted: see the
    /// `degraded:` lines), 3 when it does not run (like `systemctl status`), 1 when no
    /// status can be read.
    pub fn run(self) -> ExitCode {
        let paths = agent_config::Paths::from_env();
        let s = match status::read(&paths.state_dir) {
            Ok(s) => s,
            Err(e) => {
                eprintln!(
                    "agent: no status in {} ({e}); is the agent running?",
                    status::path_in(&paths.state_dir).display()
                );
                return ExitCode::FAILURE;
            }
        };
        let now = status::unix_now();
        if self.json {
            match serde_json::to_string_pretty(&s) {
                Ok(text) => println!("{text}"),
                Err(e) => {
                    eprintln!("agent: {e}");
                    return ExitCode::FAILURE;
                }
            }
        } else {
            print!("{}", status::render(&s, now));
        }
        match (s.is_running(now), s.is_degraded()) {
            (true, false) => ExitCode::SUCCESS,
            (true, true) => ExitCode::from(2),
            (false, _) => ExitCode::from(3),
        }
    }
}
