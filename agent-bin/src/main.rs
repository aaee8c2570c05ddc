//! `agent`: the endpoint agent's command line. Wiring only: every capability lives in a
//! library crate; this binary parses arguments, calls them and turns errors into messages
//! and exit codes.

mod cmd;
mod runtime;

use std::process::ExitCode;

use argh::FromArgs;

/// Endpoint security agent: collects security events and ships them to the intake.
#[derive(FromArgs, Debug)]
#[argh(
    help_triggers("-h", "--help", "help"),
    note = "Run `agent <command> -h` for the help of a command; `agent config check -h` for the config checker.",
    error_code(0, "success"),
    error_code(1, "failure (for `config check`: the configuration is invalid)"),
    error_code(2, "usage error, or a command that is not implemented yet")
)]
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
    Status(cmd::status::StatusArgs),
    Replay(cmd::replay::ReplayArgs),
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

/// Parses the command line. Like `argh::from_env`, but `-h` is accepted everywhere as
/// `--help` (argh only knows `--help` and `help`), and a usage error exits with status 2.
fn parse_args() -> Cli {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut options_ended = false;
    let args: Vec<&str> = args
        .iter()
        .map(|a| {
            options_ended |= a == "--";
            if a == "-h" && !options_ended {
                "--help"
            } else {
                a.as_str()
            }
        })
        .collect();
    match Cli::from_args(&["agent"], &args) {
        Ok(cli) => cli,
        Err(argh::EarlyExit { output, status }) => match status {
            Ok(()) => {
                print!("{output}");
                std::process::exit(0)
            }
            Err(()) => {
                eprint!("{output}");
                std::process::exit(2)
            }
        },
    }
}

fn main() -> ExitCode {
    let cli = parse_args();
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
        Some(Command::Status(args)) => args.run(),
        Some(Command::Replay(args)) => args.run(),
    }
}
