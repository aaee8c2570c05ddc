//! `agent`: the endpoint agent's command line. Wiring only: every capability lives in a
//! library crate; this binary parses arguments, calls them and turns errors into messages
//! and exit codes.

mod cmd;

use std::process::ExitCode;

use argh::FromArgs;

/// Endpoint security agent: collects security events and ships them to the intake.
#[derive(FromArgs, Debug)]
struct Cli {
    /// print the version and exit
    #[argh(switch)]
    version: bool,

    #[argh(subcommand)]
    command: Option<Command>,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum Command {
    Install(cmd::install::InstallArgs),
    Update(cmd::update::UpdateArgs),
    Uninstall(cmd::uninstall::UninstallArgs),
    Run(cmd::run::RunArgs),
    Config(cmd::config::ConfigArgs),
    Service(cmd::service::ServiceArgs),
}

/// `v<semver>+<git sha>`, or `v<semver>` when built outside git.
pub fn version_string() -> String {
    let sha = env!("AGENT_GIT_SHA");
    if sha.is_empty() {
        format!("v{}", env!("CARGO_PKG_VERSION"))
    } else {
        format!("v{}+{}", env!("CARGO_PKG_VERSION"), sha)
    }
}

fn main() -> ExitCode {
    let cli: Cli = argh::from_env();
    if cli.version {
        println!("{}", version_string());
        return ExitCode::SUCCESS;
    }
    match cli.command {
        None => {
            eprintln!("agent: no command given; run `agent --help` for the list of commands");
            ExitCode::from(2)
        }
        Some(Command::Install(args)) => args.run(),
        Some(Command::Update(args)) => args.run(),
        Some(Command::Uninstall(args)) => args.run(),
        Some(Command::Run(args)) => args.run(),
        Some(Command::Config(args)) => args.run(),
        Some(Command::Service(args)) => args.run(),
    }
}
