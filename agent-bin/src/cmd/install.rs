//! `agent install`.

use std::path::Path;
use std::process::ExitCode;

use agent_config::paths::Paths;
use agent_service::config_file::ConfigRequest;
use agent_service::lifecycle::{self, InstallOptions, Installed};
use argh::FromArgs;

/// install the agent as a system service and start it (needs root / Administrator)
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "install",
    help_triggers("-h", "--help", "help"),
    note = "A config.yaml in the current directory is merged into the installed one (this is how HTTPProxyURL and other settings are pre-seeded); it is checked like `agent config check` before anything is written. ENDPOINT_AGENT_ROOT and the other ENDPOINT_AGENT_* variables move the installed paths. See docs/service.md.",
    example = "sudo ./agent install --intake-key KEY --region fra2",
    example = "sudo ./agent install --intake-key KEY --intake-url https://relay.corp:8443/intake"
)]
pub struct InstallArgs {
    /// intake key the agent's events are sent with
    #[argh(option)]
    intake_key: String,

    /// intake region: fra1 (default), fra2, mco1, uae1, usa1 or sgp1
    #[argh(option)]
    region: Option<String>,

    /// custom intake base URL (an on-premises relay) instead of the region's
    #[argh(option)]
    intake_url: Option<String>,

    /// do not let the agent update itself
    #[argh(switch)]
    disable_auto_update: bool,

    /// replace an existing installation that has a different intake key or binary
    #[argh(switch)]
    force: bool,
}

impl InstallArgs {
    /// Runs the command.
    pub fn run(self) -> ExitCode {
        let paths = Paths::from_env();
        let source_binary = match std::env::current_exe() {
            Ok(p) => p,
            Err(e) => return fail(&format!("cannot find the running executable: {e}")),
        };
        let seed = Path::new("config.yaml");
        let opts = InstallOptions {
            config: ConfigRequest {
                intake_key: self.intake_key,
                region: self.region,
                intake_url: self.intake_url,
                auto_update: self.disable_auto_update.then_some(false),
            },
            force: self.force,
            source_binary,
            seed_config: seed.is_file().then(|| seed.to_path_buf()),
        };
        let manager = match lifecycle::manager_for(&paths) {
            Ok(m) => m,
            Err(e) => return fail(&e.to_string()),
        };
        match lifecycle::install(&opts, &paths, manager.as_ref()) {
            Ok(installed) => {
                print_summary(&installed, opts.seed_config.as_deref());
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e.to_string()),
        }
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("agent install: error: {message}");
    ExitCode::FAILURE
}

fn print_summary(installed: &Installed, seed: Option<&Path>) {
    let paths = &installed.paths;
    for warning in &installed.warnings {
        eprintln!("agent install: warning: {warning}");
    }
    println!("Installed the endpoint agent.");
    if let Some(seed) = seed {
        println!("  merged settings from {}", seed.display());
    }
    println!("  binary:  {}", paths.binary.display());
    println!("  config:  {}", paths.config_file.display());
    println!("  logs:    {}", paths.log_file.display());
    println!("  state:   {}", paths.state_dir.display());
    for file in &installed.registration {
        println!("  service definition: {}", file.display());
    }
    let name = agent_service::SERVICE_NAME;
    match installed.manager {
        "systemd" => {
            println!("  service: {name}.service (systemd), {}", installed.state);
            println!("Check it with: systemctl status {name}.service");
        }
        "scm" => {
            println!("  service: {name} (Windows services), {}", installed.state);
            println!("Check it with: Get-Service {name}");
        }
        "launchd" => {
            println!("  service: system/{name} (launchd), {}", installed.state);
            println!("Check it with: launchctl print system/{name}");
        }
        _ => println!("  service: not registered (root prefix set: no service manager is touched)"),
    }
    for conflict in &installed.audit_conflicts {
        println!();
        println!("Warning: {}", conflict.message());
    }
}
