//! `agent update`, and the updater's part of `agent run` (the start check, the health
//! confirmation and the periodic check).

use std::path::PathBuf;
use std::process::ExitCode;

use agent_config::{Config, Paths};
use agent_updater::background::{Background, Running, Schedule};
use agent_updater::policy::Request;
use agent_updater::swap::{on_start, Health, Layout, StartAction};
use agent_updater::{Outcome, UpdateError, UpdaterConfig};
use argh::FromArgs;
use semver::Version;

/// check for a new release and install it now (signed, verified, with automatic rollback)
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "update",
    help_triggers("-h", "--help", "help"),
    note = "Downloads the release manifest from the region's update endpoint (or UpdateURL), checks its signature with the keys built into this agent, and installs a newer version if there is one; the agent then runs it from its next start and rolls it back if it does not run healthy. Installs made from a .deb or .rpm package are updated by the package manager instead.",
    example = "sudo agent update",
    example = "sudo agent update --allow-downgrade --version 1.2.0"
)]
pub struct UpdateArgs {
    /// allow installing an older version; needs --version
    #[argh(switch)]
    allow_downgrade: bool,

    /// install only this version (the release must offer it)
    #[argh(option)]
    version: Option<String>,

    /// config.yaml to use instead of the installed one
    #[argh(option)]
    config: Option<PathBuf>,

    /// extra PEM file of CA certificates to trust (corporate TLS inspection); also read
    /// from ENDPOINT_AGENT_EXTRA_CA
    #[argh(option)]
    extra_ca: Option<PathBuf>,
}

/// This build's version, as the updater compares it.
pub fn running_version() -> Version {
    Version::parse(env!("CARGO_PKG_VERSION")).unwrap_or_else(|_| Version::new(0, 0, 0))
}

fn fail(message: &str) -> ExitCode {
    eprintln!("agent update: {message}");
    ExitCode::FAILURE
}

impl UpdateArgs {
    /// Runs the command.
    pub fn run(self) -> ExitCode {
        let version = match self.version.as_deref().map(Version::parse).transpose() {
            Ok(v) => v,
            Err(e) => return fail(&format!("--version: {e}")),
        };
        if self.allow_downgrade && version.is_none() {
            eprintln!(
                "agent update: --allow-downgrade needs --version X (the version to go back to)"
            );
            return ExitCode::from(2);
        }
        let paths = Paths::from_env();
        let config_file = self.config.unwrap_or_else(|| paths.config_file.clone());
        let config = match Config::load(&config_file) {
            Ok((config, _warnings)) => config,
            Err(e) => return fail(&e.to_string()),
        };
        let extra_ca = self
            .extra_ca
            .or_else(|| std::env::var_os("ENDPOINT_AGENT_EXTRA_CA").map(PathBuf::from));
        let updater = match UpdaterConfig::from_agent_config(
            &config,
            paths.binary.clone(),
            &paths.state_dir,
            running_version(),
            extra_ca,
        ) {
            Ok(u) => u,
            Err(e) => return fail(&e.to_string()),
        };
        let request = Request {
            version,
            allow_downgrade: self.allow_downgrade,
        };
        println!(
            "agent update: checking {} (channel {}) for {}, running {}",
            updater.endpoint,
            updater.channel,
            paths.binary.display(),
            updater.running
        );
        match updater.check_blocking(&request) {
            Ok(Outcome::UpToDate { version, serial }) => {
                println!("agent update: up to date: {version} is the current release (manifest serial {serial})");
                ExitCode::SUCCESS
            }
            Ok(Outcome::Installed {
                from,
                to,
                serial,
                downgrade,
            }) => {
                let verb = if downgrade { "downgraded" } else { "updated" };
                println!(
                    "agent update: {verb} {from} -> {to} (manifest serial {serial}); the previous binary is kept as {}",
                    updater.layout.previous().display()
                );
                restart_service(&paths, &to);
                ExitCode::SUCCESS
            }
            Err(e @ UpdateError::PackageManaged { .. }) => {
                println!("agent update: {e}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&format!("{e}; nothing was changed")),
        }
    }
}

/// Restarts the service so that the new version runs now; without a running service,
/// says the new version runs from the next start.
fn restart_service(paths: &Paths, to: &Version) {
    let running = agent_service::lifecycle::manager_for(paths)
        .ok()
        .filter(|m| matches!(m.status(), Ok(agent_service::ServiceState::Running)));
    match running {
        Some(manager) => match manager.restart() {
            Ok(()) => println!("agent update: service restarted; {to} confirms itself once it has run healthy, or is rolled back"),
            Err(e) => println!("agent update: restarting the service failed ({e}); {to} runs from the next start"),
        },
        None => println!("agent update: the service is not running; {to} runs from the next start of the agent"),
    }
}

/// The updater's work at the start of `agent run` (service mode), before anything else
/// (config included, so that a new version that cannot even read it still counts its
/// starts): settles an interrupted update, counts the starts of a version on probation,
/// rolls it back when it had its chances (then `Err`: the agent exits so the service
/// manager starts the restored binary, which reports the rollback). `Ok` carries the
/// probation's health settings and a note to log once logging is set up.
pub fn at_start(paths: &Paths) -> Result<(Option<Health>, Option<String>), String> {
    let layout = Layout::new(paths.binary.clone(), &paths.state_dir);
    let health = Health::default();
    match on_start(&layout, &running_version(), &health) {
        Ok(StartAction::ConfirmAfterGrace { version, start }) => Ok((
            Some(health),
            Some(format!("updated version {version} on probation (start {start}): it confirms itself after {:?} of healthy running", health.grace)),
        )),
        Ok(StartAction::RolledBack {
            failed,
            restored,
            reason,
        }) => Err(format!(
            "update to {failed} rolled back to {restored} ({reason}); exiting so that {restored} starts"
        )),
        Ok(StartAction::Settled { note }) => Ok((None, Some(note))),
        Ok(StartAction::Run) => Ok((None, None)),
        Err(e) => Ok((None, Some(format!("the update journal could not be read or settled: {e}")))),
    }
}

/// Environment variable: seconds until the first automatic check, without jitter (tests,
/// and operators who want an update check right after a start).
pub const FIRST_CHECK_ENV: &str = "ENDPOINT_AGENT_UPDATE_FIRST_CHECK_SECS";

fn schedule_from_env() -> Schedule {
    let first = std::env::var(FIRST_CHECK_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok());
    match first {
        Some(secs) => Schedule {
            first_check: std::time::Duration::from_secs(secs),
            jitter: std::time::Duration::ZERO,
            ..Schedule::default()
        },
        None => Schedule::default(),
    }
}

/// Starts the updater thread of `agent run`: confirms a version on probation once
/// `healthy` holds after the grace period; with `AutoUpdate: true` checks at start and
/// every few hours; calls `restart` when the agent must restart into another binary.
pub fn spawn_background(
    config: &Config,
    paths: &Paths,
    extra_ca: Option<PathBuf>,
    probation: Option<Health>,
    healthy: impl Fn() -> bool + Send + 'static,
    restart: impl FnOnce(&str) + Send + 'static,
) -> Option<Running> {
    let updater = if config.auto_update {
        match UpdaterConfig::from_agent_config(
            config,
            paths.binary.clone(),
            &paths.state_dir,
            running_version(),
            extra_ca,
        ) {
            Ok(u) => Some(u),
            Err(e) => {
                tracing::warn!(error = %e, "automatic updates cannot run");
                None
            }
        }
    } else {
        None
    };
    let background = Background {
        layout: Layout::new(paths.binary.clone(), &paths.state_dir),
        running: running_version(),
        probation,
        updater,
        schedule: schedule_from_env(),
    };
    match background.spawn(healthy, restart) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the updater thread");
            None
        }
    }
}
