//! `agent replay FILE`: the dialect events the Linux audit collector would emit for a
//! recorded audit log (`/var/log/audit/audit.log`, `ausearch --raw` output), one JSON
//! object per line on stdout, and where every record went on stderr.
//!
//! `agent replay --evtx FILE`: the same for an exported Windows Event Log file (`.evtx`),
//! through the Event Log collector's mapper (Sysmon duplicates dropped), on every OS.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use argh::FromArgs;

/// print the events the Linux audit collector would send for a recorded audit log
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "replay",
    help_triggers("-h", "--help", "help"),
    note = "Reads the raw log format auditd writes (RAW or ENRICHED) and `ausearch --raw` output; `-` reads stdin. Nothing is read from this host: names, hashes, file sizes and local socket addresses that the live collector adds are absent. With --evtx, reads a Windows Event Log file (.evtx, as exported by Event Viewer or wevtutil epl) and prints what the Event Log collector would send for its Security, Defender, Sysmon and System records; this works on every OS."
)]
pub struct ReplayArgs {
    /// the audit log to read, or `-` for stdin (with --evtx: the .evtx file)
    #[argh(positional)]
    file: PathBuf,

    /// read a Windows Event Log file (.evtx) instead of an audit log
    #[argh(switch)]
    evtx: bool,

    /// print only the accounting (records emitted, merged, skipped), not the events
    #[argh(switch)]
    summary: bool,
}

impl ReplayArgs {
    /// Runs the command: exit 0 when the log was read, 1 when it could not be.
    pub fn run(self) -> ExitCode {
        if self.evtx {
            return replay_evtx(&self.file, self.summary);
        }
        self.run_audit()
    }

    #[cfg(target_os = "linux")]
    fn run_audit(self) -> ExitCode {
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

    /// The audit normalizer is built for Linux only.
    #[cfg(not(target_os = "linux"))]
    fn run_audit(self) -> ExitCode {
        let _ = (self.file, self.summary);
        eprintln!(
            "agent: `replay FILE` (audit logs) is available in the Linux build of the agent; `replay --evtx FILE` works everywhere"
        );
        ExitCode::from(2)
    }
}

/// `agent replay --evtx FILE`: events on stdout, accounting on stderr.
fn replay_evtx(file: &Path, summary: bool) -> ExitCode {
    use std::io::Write;

    use agent_etw::eventlog::replay::replay;
    use agent_etw::eventlog::Mapped;

    let mut out = std::io::stdout().lock();
    let mut closed = false;
    let result = replay(file, |r| {
        let Ok(Mapped::Event(e)) = r.outcome else {
            return;
        };
        if summary || closed {
            return;
        }
        match e.to_json() {
            // A closed pipe (`agent replay --evtx f | head`) ends the output quietly.
            Ok(json) => closed = writeln!(out, "{json}").is_err(),
            Err(err) => eprintln!(
                "agent: the event of record {} could not be written: {err}",
                r.record_id
            ),
        }
    });
    let acc = match result {
        Ok(acc) => acc,
        Err(e) => {
            eprintln!("agent: cannot read {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "{} records: {} events emitted, {} dropped as Sysmon duplicates, {} skipped",
        acc.records,
        acc.mapped,
        acc.sysmon_duplicates,
        acc.skipped_total()
    );
    for (event, n) in &acc.mapped_by_event {
        eprintln!("  emitted {n}: {event}");
    }
    if acc.sysmon_duplicates > 0 {
        eprintln!(
            "  dropped {}: Sysmon duplicates of the agent's own events",
            acc.sysmon_duplicates
        );
    }
    for (reason, n) in &acc.skipped {
        eprintln!("  skipped {n}: {reason}");
    }
    for (event, n) in &acc.skipped_by_event {
        eprintln!("    not sent {n}: {event}");
    }
    for (reason, n) in &acc.unreadable {
        eprintln!("  unreadable {n}: {reason}");
    }
    ExitCode::SUCCESS
}
