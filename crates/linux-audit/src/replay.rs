//! Offline replay: a recorded audit log (the text `auditd` writes, or `ausearch --raw`
//! output) through the collector's own reassembly and normalization, giving the dialect
//! events the collector would have emitted for it.
//!
//! Nothing is read from the host that replays: the process table knows only the processes
//! the log shows (their executions), user and group names are those the log carries, no
//! file is hashed or `stat`ed and no `/proc` entry is looked at (see
//! [`Normalizer::offline`]). Events therefore carry ids where a live collector would add
//! names, and no `file.hash.*`, `file.size` or local socket address.
//!
//! Every record read is accounted for ([`Accounting`]): emitted as (the first record of)
//! an event, merged into an event (its other records, the `EOE` markers), or skipped with
//! a reason (the line did not parse, the event maps to nothing, ...), so that
//! `records == emitted + merged + skipped`.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::time::{Duration, Instant};

use agent_event::Event;

use crate::msgtype;
use crate::normalize::{Normalizer, Skip};
use crate::proctable::{Limits, ProcTable};
use crate::reassembly::{Config, Reassembler};
use crate::record::parse_line;
use crate::AuditEvent;

/// A `/proc` root that cannot exist (`/dev/null` is not a directory): the replay's process
/// table never reads the replaying host.
const NO_PROC: &str = "/dev/null/proc";

/// Where each record of a replayed log went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accounting {
    /// Non-empty lines read.
    pub records: u64,
    /// Records that became an event (one per event emitted).
    pub emitted: u64,
    /// Records folded into an emitted event (its other records, `EOE` markers).
    pub merged: u64,
    /// Records skipped, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// Audit events reassembled.
    pub audit_events: u64,
    /// The first few lines that did not parse: (1-based line number, error).
    pub parse_errors: Vec<(usize, String)>,
}

impl Accounting {
    /// All skipped records.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }

    /// Whether every record read is emitted, merged or skipped.
    pub fn balanced(&self) -> bool {
        self.records == self.emitted + self.merged + self.skipped_total()
    }

    fn skip(&mut self, reason: &str, n: u64) {
        if n > 0 {
            *self.skipped.entry(reason.to_owned()).or_default() += n;
        }
    }
}

/// Skip reason of records beyond an event's record limit (see [`Config`]).
const TOO_LARGE: &str = "beyond the records-per-event limit";

/// Parse errors kept in [`Accounting::parse_errors`] (all are counted).
const MAX_PARSE_ERRORS_KEPT: usize = 20;

/// Replays audit log lines, one at a time or from a reader; see the module documentation.
#[derive(Debug)]
pub struct Replay {
    reassembler: Reassembler,
    normalizer: Normalizer,
    accounting: Accounting,
    /// The log's clock as an `Instant`, so that reassembly timeouts follow the log's time.
    origin: Option<(Instant, u64)>,
    latest_ms: u64,
    line_no: usize,
}

impl Default for Replay {
    fn default() -> Self {
        Self::new()
    }
}

impl Replay {
    /// A replay with the collector's reassembly settings and an empty process table.
    pub fn new() -> Self {
        let procs = ProcTable::with_proc_root("replay", Limits::default(), NO_PROC);
        Replay {
            reassembler: Reassembler::new(Config::default()),
            normalizer: Normalizer::offline(procs),
            accounting: Accounting::default(),
            origin: None,
            latest_ms: 0,
            line_no: 0,
        }
    }

    /// Feeds one log line; returns the events it completed.
    pub fn push_line(&mut self, line: &str) -> Vec<Event> {
        self.line_no += 1;
        // `log_format = ENRICHED` appends the interpreted values after a 0x1d separator.
        let line = line.split('\u{1d}').next().unwrap_or(line).trim();
        if line.is_empty() {
            return Vec::new();
        }
        self.accounting.records += 1;
        let record = match parse_line(line) {
            Ok(r) => r,
            Err(e) => {
                self.accounting.skip("unparsable line", 1);
                if self.accounting.parse_errors.len() < MAX_PARSE_ERRORS_KEPT {
                    self.accounting
                        .parse_errors
                        .push((self.line_no, e.to_string()));
                }
                return Vec::new();
            }
        };
        if record.record_type == msgtype::AUDIT_EOE {
            // The marker closes its event (or arrives for one already closed).
            self.accounting.merged += 1;
        }
        let ms = record
            .timestamp
            .secs
            .saturating_mul(1000)
            .saturating_add(u64::from(record.timestamp.millis));
        let (origin, base) = *self.origin.get_or_insert((Instant::now(), ms));
        self.latest_ms = self.latest_ms.max(ms);
        let now = origin + Duration::from_millis(self.latest_ms.saturating_sub(base));
        let mut done = Vec::new();
        self.reassembler.push_at(record, now, &mut done);
        self.reassembler.tick_into(now, &mut done);
        self.normalize(done)
    }

    /// Completes the events still waiting for records; returns them.
    pub fn finish(&mut self) -> Vec<Event> {
        let rest = self.reassembler.flush();
        let out = self.normalize(rest);
        let dropped = self.reassembler.stats().dropped_records;
        let counted = self.accounting.skipped.get(TOO_LARGE).copied().unwrap_or(0);
        self.accounting
            .skip(TOO_LARGE, dropped.saturating_sub(counted));
        out
    }

    /// The accounting so far.
    pub fn accounting(&self) -> &Accounting {
        &self.accounting
    }

    fn normalize(&mut self, events: Vec<AuditEvent>) -> Vec<Event> {
        let mut out = Vec::new();
        for ev in events {
            self.accounting.audit_events += 1;
            let n = ev
                .records
                .iter()
                .filter(|r| r.record_type != msgtype::AUDIT_EOE)
                .count() as u64;
            match self.normalizer.normalize(&ev) {
                Ok(normalized) => {
                    self.accounting.emitted += 1;
                    self.accounting.merged += n.saturating_sub(1);
                    out.push(normalized.into_event());
                }
                Err(skip) => {
                    let reason = match skip {
                        Skip::Unmapped => format!(
                            "unmapped: {}",
                            ev.syscall_name().map_or_else(
                                || ev.records.first().map_or_else(
                                    || "empty".to_owned(),
                                    |r| r.type_name().into_owned()
                                ),
                                |s| format!("syscall {s}")
                            )
                        ),
                        other => other.reason().to_owned(),
                    };
                    self.accounting.skip(&reason, n);
                }
            }
        }
        out
    }
}

/// Replays a whole log: the events, in the order the collector would emit them (file
/// events are not held back for hashes here), and the accounting.
pub fn replay(reader: impl BufRead) -> std::io::Result<(Vec<Event>, Accounting)> {
    let mut r = Replay::new();
    let mut events = Vec::new();
    for line in reader.split(b'\n') {
        let line = line?;
        events.extend(r.push_line(&String::from_utf8_lossy(&line)));
    }
    events.extend(r.finish());
    Ok((events, r.accounting().clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_emitted_merged_or_skipped() {
        let log = "\
type=SYSCALL msg=audit(1700000000.100:10): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=4 items=1 ppid=1 pid=100 auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=3 comm=\"id\" exe=\"/usr/bin/id\" key=\"root-command\"
type=EXECVE msg=audit(1700000000.100:10): argc=1 a0=\"id\"
type=EOE msg=audit(1700000000.100:10): 
garbage line
type=CONFIG_CHANGE msg=audit(1700000000.200:11): auid=0 ses=1 op=add_rule key=\"k\" list=4 res=1

type=USER_LOGIN msg=audit(1700000000.300:12): pid=1750 uid=0 auid=4294967295 ses=4294967295 msg='op=login acct=\"root\" exe=\"/usr/sbin/sshd\" hostname=? addr=192.0.2.7 terminal=ssh res=failed'\u{1d}UID=\"root\" AUID=\"unset\"
";
        let (events, acc) = replay(log.as_bytes()).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event.action, "process-created");
        assert_eq!(events[1].event.action, "logged-in");
        assert_eq!(acc.records, 6);
        assert_eq!(acc.emitted, 2);
        assert_eq!(acc.merged, 2);
        assert_eq!(acc.skipped["unparsable line"], 1);
        assert_eq!(acc.skipped["unmapped: CONFIG_CHANGE"], 1);
        assert_eq!(acc.parse_errors.len(), 1);
        assert_eq!(acc.parse_errors[0].0, 4);
        assert!(acc.balanced(), "{acc:?}");
    }
}
