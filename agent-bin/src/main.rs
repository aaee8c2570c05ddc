//! `agent`: the endpoint agent's command line. Wiring only: every capability lives in a
//! library crate; this binary parses arguments, calls them and turns errors into messages
//! and exit codes.

mod cmd;
mod runtime;

use std::process::ExitCode;

use argh::FromArgs;

/// The shipped Linux agent (static musl) allocates with jemalloc rather than musl's malloc,
/// which made an exec storm cost about 1.4 times the CPU per exec (docs/bench/README.md,
/// "The allocator of the static Linux agent"). glibc builds keep glibc's malloc (not measured against jemalloc yet).
/// aarch64 builds give jemalloc a 64 KiB page size (`.cargo/config.toml`) so that the same
/// binary runs on 4 KiB and 64 KiB page kernels.
#[cfg(all(target_os = "linux", target_env = "musl"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read once at its start-up (`_RJEM_MALLOC_CONF` in the environment
/// overrides them): one arena for the agent's few threads instead of four per CPU, and freed
/// pages given back after one second instead of ten. Each arena keeps its own free pages:
/// with the defaults the agent peaked at 15.7 MiB in a saturated exec storm (musl's malloc:
/// 11.7 MiB), with these at 13.8–14.2 MiB, still using about 0.7× musl's CPU.
#[cfg(all(target_os = "linux", target_env = "musl"))]
#[export_name = "_rjem_malloc_conf"]
static JEMALLOC_CONF: &u8 = &b"narenas:1,dirty_decay_ms:1000\0"[0];

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
