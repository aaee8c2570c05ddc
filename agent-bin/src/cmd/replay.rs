//! `agent replay FILE`: the dialect events the Linux audit collector would emit for a
//! recorded audit log (`/var/log/audit/audit.log`, `ausearch --raw` output), one JSON
//! object per line on stdout, and where every record went on stderr.

use std::path::PathBuf;
use std::process::ExitCode;

use argh::FromArgs;

/// print the events the Linux audit collector would send for a recorded audit log
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "replay",
    help_triggers("-h", "--help", "help"),
    note = "Reads the raw log format auditd writes (RAW or ENRICHED) and `ausearch --raw` output; `-` reads stdin. Nothing is read from this host: names, hashes, file sizes and local socket addresses that the live collector adds are absent."
)]
pub struct ReplayArgs {
    /// the audit log to read, or `-` for stdin
    #[argh(positional)]
    file: PathBuf,

    /// print only the accounting (records emitted, merged, skipped), not the events
    #[argh(switch)]
    summary: bool,
}

impl ReplayArgs {
    /// Runs the command: exit 0 when the log was read, 1 when it could not be.
    #[cfg(target_os = "linux")]
    pub fn run(self) -> ExitCode {
        use std::io::{BufReader, Write};

        let result = if self.file.as_os_str() == "-" {
            agent_linux_audit::replay::replay(std::io::stdin().lock())
        } else {
            match std::fs::File::open(&self.file) {
                Ok(f) => agent_linux_audit::replay::replay(BufReader::new(f)),
                Err(e) => {
                    eprintln!("agent: cannot read {}: {e}", self.file.display());
                    return ExitCode::FAILURE;
                }
            }
        };
        let (events, acc) = match result {
            Ok(r) => r,
            Err(e) => {
                eprintln!("agent: reading {}: {e}", self.file.display());
                return ExitCode::FAILURE;
            }
        };
        if !self.summary {
            let mut out = std::io::stdout().lock();
            for e in &events {
                let written = match e.to_json() {
                    Ok(json) => writeln!(out, "{json}"),
                    Err(err) => {
                        eprintln!("agent: an event could not be written: {err}");
                        continue;
                    }
                };
                // A closed pipe (`agent replay log | head`) ends the output quietly.
                if written.is_err() {
                    break;
                }
            }
        }
        eprintln!(
            "{} records: {} events emitted, {} records merged into them, {} skipped ({} audit events)",
            acc.records,
            acc.emitted,
            acc.merged,
            acc.skipped_total(),
            acc.audit_events
        );
        for (reason, n) in &acc.skipped {
            eprintln!("  skipped {n}: {reason}");
        }
        for (line, err) in &acc.parse_errors {
            eprintln!("  line {line}: {err}");
        }
        ExitCode::SUCCESS
    }

    /// Runs the command: the audit normalizer is built for Linux only.
    #[cfg(not(target_os = "linux"))]
    pub fn run(self) -> ExitCode {
        let _ = (self.file, self.summary);
        eprintln!("agent: `replay` is available in the Linux build of the agent");
        ExitCode::from(2)
    }
}
