//! `agent run`: the agent's main job, in the foreground (the service manager runs this).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use argh::FromArgs;

use crate::runtime::{self, RunOptions};

/// run the agent in the foreground: collect events and ship them (or print them with --console)
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "run", help_triggers("-h", "--help", "help"))]
pub struct RunArgs {
    /// print events as JSON lines on stdout instead of shipping them (no intake key needed)
    #[argh(switch)]
    console: bool,

    /// config.yaml to use instead of the installed one
    #[argh(option)]
    config: Option<PathBuf>,

    /// seconds between two stats events (default 300)
    #[argh(option, default = "300")]
    stats_interval: u64,

    /// extra PEM file of CA certificates to trust for the intake (corporate TLS inspection);
    /// also read from ENDPOINT_AGENT_EXTRA_CA
    #[argh(option)]
    extra_ca: Option<PathBuf>,
}

impl RunArgs {
    /// Runs the command.
    pub fn run(self) -> ExitCode {
        let opts = RunOptions {
            console: self.console,
            config: self.config,
            paths: agent_config::Paths::from_env(),
            stats_interval: Duration::from_secs(self.stats_interval.max(1)),
            extra_ca_file: self
                .extra_ca
                .or_else(|| std::env::var_os("ENDPOINT_AGENT_EXTRA_CA").map(PathBuf::from)),
        };

        #[cfg(windows)]
        if !opts.console {
            // Started by the SCM: the dispatcher runs the agent on its service thread.
            static OPTS: std::sync::OnceLock<RunOptions> = std::sync::OnceLock::new();
            let _ = OPTS.set(opts.clone());
            fn body(stop: std::sync::mpsc::Receiver<()>) -> u32 {
                let Some(opts) = OPTS.get().cloned() else {
                    return 1;
                };
                let (tx, rx) = crossbeam_channel::bounded(1);
                std::thread::spawn(move || {
                    let _ = stop.recv();
                    let _ = tx.send(());
                });
                let log_file = opts.paths.log_file.clone();
                match runtime::run(opts, rx) {
                    Ok(()) => 0,
                    Err(e) => {
                        log_early_error(&log_file, &e);
                        1
                    }
                }
            }
            match agent_service::windows::run_dispatcher(body) {
                Ok(agent_service::windows::Dispatch::RanAsService) => return ExitCode::SUCCESS,
                Ok(agent_service::windows::Dispatch::NotAService) => {}
                Err(e) => {
                    eprintln!("agent: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }

        let (stop_tx, stop_rx) = crossbeam_channel::bounded(1);
        if let Err(e) = runtime::signals::forward(stop_tx) {
            eprintln!("agent: cannot handle signals: {e}");
            return ExitCode::FAILURE;
        }
        let log_file = (!opts.console).then(|| opts.paths.log_file.clone());
        match runtime::run(opts, stop_rx) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("agent: {e}");
                match &log_file {
                    Some(path) => log_early_error(path, &e),
                    None => tracing::error!(error = %e, "agent stopped with an error"),
                }
                ExitCode::FAILURE
            }
        }
    }
}

/// Writes why the agent stopped to the agent log. Errors found before logging is set up
/// (an unusable config.yaml, a missing intake key) would otherwise reach stderr only,
/// and an operator reads agent.log, not the service manager's capture of stderr.
fn log_early_error(log_file: &std::path::Path, e: &runtime::RunError) {
    if tracing::dispatcher::has_been_set() {
        tracing::error!(error = %e, "agent stopped with an error");
        return;
    }
    let file = match agent_pipeline::agent_log::LogFile::open(log_file) {
        Ok(file) => file,
        Err(err) => {
            eprintln!("agent: cannot write to {}: {err}", log_file.display());
            return;
        }
    };
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || file.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        // One event per line of the message: a config error lists one problem a line.
        for line in e.to_string().lines() {
            tracing::error!("agent cannot start: {line}");
        }
    });
}
