//! The status file: the running agent's state, refreshed every few seconds, read by
//! `agent status` (no socket, so it works without root wherever the file mode allows).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// File name of the status file in the state directory.
pub const STATUS_FILE: &str = "status.json";

/// A status older than this means the agent is not running (it refreshes every 2 s).
pub const STALE_AFTER: Duration = Duration::from_secs(15);

/// The ring's part of the status.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RingStatus {
    /// Bytes of segment files on disk.
    pub bytes_on_disk: u64,
    /// The ring's capacity.
    pub capacity: u64,
    /// Records written and not yet acknowledged by the intake.
    pub records_pending: u64,
    /// Records dropped because the ring was full (oldest first).
    pub records_dropped: u64,
    /// Bytes dropped because the ring was full.
    pub bytes_dropped: u64,
    /// Damaged places skipped (a record or a region of any number of records).
    pub corrupt_skipped: u64,
    /// Records missing from the ring (damaged, emptied or deleted segment files),
    /// counted exactly from the records' sequence numbers.
    #[serde(default)]
    pub records_lost: u64,
    /// Segment files that could not be deleted (left out of the ring, retried).
    #[serde(default)]
    pub leftover_segments: u64,
    /// Why the ring cannot write right now (disk full, I/O errors); `None` when it can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_error: Option<String>,
}

/// The shipper's part of the status.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShipperStatus {
    /// Records the intake accepted.
    pub events_sent: u64,
    /// Request bodies before gzip.
    pub bytes_plain: u64,
    /// Request bodies as sent.
    pub bytes_gzip: u64,
    /// Retried attempts.
    pub retries: u64,
    /// Records refused for good.
    pub rejected: u64,
    /// Unix time of the last accepted request.
    pub last_success_unix: Option<u64>,
    /// The last failure (never holds a password).
    pub last_error: Option<String>,
}

/// One collector's state (see [`crate::collector::Report`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CollectorStatus {
    /// `starting`, `running`, `stopped` or `failed: ...`.
    pub state: String,
    /// Events or lines produced.
    pub produced: u64,
    /// Events dropped by the agent (queue full).
    pub dropped: u64,
    /// Events the source lost before the collector saw them (kernel, ETW, ES counters).
    #[serde(default)]
    pub source_lost: u64,
    /// How the collector runs, when it has more than one way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// Everything `agent status` shows.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Status {
    /// The agent's process id.
    pub pid: u32,
    /// `v<semver>+<sha>`.
    pub version: String,
    /// `console` or `ship`.
    pub mode: String,
    /// Unix time the agent started.
    pub started_unix: u64,
    /// Unix time of this snapshot.
    pub updated_unix: u64,
    /// Events and lines the writer put in the ring.
    pub written_events: u64,
    /// Log lines the writer put in the ring.
    pub written_lines: u64,
    /// The ring, when shipping.
    pub ring: Option<RingStatus>,
    /// The shipper, when shipping.
    pub shipper: Option<ShipperStatus>,
    /// Collectors by name.
    pub collectors: BTreeMap<String, CollectorStatus>,
    /// Set by the last write of an orderly stop: the agent is not running even though
    /// the file is fresh.
    #[serde(default)]
    pub stopped: bool,
    /// What keeps the running agent from doing its job right now (the ring cannot
    /// write, a component is being restarted...). Empty when healthy; `agent status`
    /// exits non-zero while it is not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub degraded: Vec<String>,
}

impl Status {
    /// Whether the agent that wrote this status is running at `now_unix`.
    pub fn is_running(&self, now_unix: u64) -> bool {
        !self.stopped && now_unix.saturating_sub(self.updated_unix) <= STALE_AFTER.as_secs()
    }

    /// Whether the agent runs but cannot do its whole job (see [`Status::degraded`]).
    pub fn is_degraded(&self) -> bool {
        !self.degraded.is_empty()
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    unix(SystemTime::now())
}

/// Seconds since the Unix epoch of `t` (0 before it).
pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Path of the status file in `state_dir`.
pub fn path_in(state_dir: &Path) -> PathBuf {
    state_dir.join(STATUS_FILE)
}

/// The status file is padded with spaces (valid trailing JSON whitespace) to a multiple
/// of this, so that a new status usually has the size of the old one.
const PAD_TO: usize = 4096;

/// Writes the status atomically (temporary file, rename), mode 0644: it holds no secret,
/// and `agent status` may run without root. Not fsynced: it is rewritten every 2 s and
/// describes a running process, so after a power loss it only has to be readable or
/// absent until the agent's first write (two disk flushes every 2 s, idle or not, bought
/// nothing).
///
/// When the disk is full the atomic replacement fails; the status is then written over
/// the existing file in place (padded to its length, so no new disk block is needed),
/// because a full disk is exactly when `agent status` must tell the truth.
pub fn write(state_dir: &Path, status: &Status) -> std::io::Result<()> {
    let mut json = serde_json::to_vec_pretty(status).map_err(std::io::Error::other)?;
    json.push(b'\n');
    json.resize(json.len().div_ceil(PAD_TO) * PAD_TO, b' ');
    let path = path_in(state_dir);
    match agent_os::replace_file_unsynced(&path, &json, 0o644) {
        Ok(()) => Ok(()),
        Err(err) => overwrite_in_place(&path, json).map_err(|_| std::io::Error::other(err)),
    }
}

/// Writes `json` over the existing file, padded to its length; fails if it is longer.
fn overwrite_in_place(path: &Path, mut json: Vec<u8>) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
    let len = usize::try_from(file.metadata()?.len()).map_err(std::io::Error::other)?;
    if json.len() > len {
        return Err(std::io::Error::other(
            "the new status is longer than the file",
        ));
    }
    json.resize(len, b' ');
    file.write_all(&json)?;
    file.sync_data()
}

/// Reads the status file (again, briefly, if it is caught in the middle of an in-place
/// rewrite).
pub fn read(state_dir: &Path) -> std::io::Result<Status> {
    let mut tries = 0;
    loop {
        let bytes = std::fs::read(path_in(state_dir))?;
        match serde_json::from_slice(&bytes) {
            Ok(status) => return Ok(status),
            Err(_) if tries < 3 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(std::io::Error::other(e)),
        }
    }
}

/// Human-readable rendering for `agent status`.
pub fn render(s: &Status, now_unix: u64) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let age = now_unix.saturating_sub(s.updated_unix);
    let running = s.is_running(now_unix);
    let _ = writeln!(
        out,
        "agent {} (pid {}, mode {}): {}",
        s.version,
        s.pid,
        s.mode,
        if running && s.is_degraded() {
            format!(
                "DEGRADED, running for {}s",
                now_unix.saturating_sub(s.started_unix)
            )
        } else if running {
            format!("running for {}s", now_unix.saturating_sub(s.started_unix))
        } else {
            format!(
                "NOT RUNNING ({} {age}s ago)",
                if s.stopped {
                    "stopped"
                } else {
                    "status last refreshed"
                }
            )
        }
    );
    if running {
        for problem in &s.degraded {
            let _ = writeln!(out, "degraded: {problem}");
        }
    }
    let _ = writeln!(
        out,
        "written: {} events, {} log lines",
        s.written_events, s.written_lines
    );
    if let Some(r) = &s.ring {
        let pct = if r.capacity > 0 {
            r.bytes_on_disk as f64 * 100.0 / r.capacity as f64
        } else {
            0.0
        };
        let _ = writeln!(
            out,
            "ring: {} bytes of {} ({pct:.1}%), {} records pending, {} dropped ({} bytes), {} corrupt skipped",
            r.bytes_on_disk, r.capacity, r.records_pending, r.records_dropped, r.bytes_dropped, r.corrupt_skipped
        );
        if r.records_lost > 0 {
            let _ = writeln!(
                out,
                "ring: {} records lost (damaged, emptied or deleted segment files)",
                r.records_lost
            );
        }
        if r.leftover_segments > 0 {
            let _ = writeln!(
                out,
                "ring: {} segment files cannot be deleted",
                r.leftover_segments
            );
        }
    }
    if let Some(t) = &s.shipper {
        let last = t.last_success_unix.map_or("never".to_owned(), |u| {
            format!("{}s ago", now_unix.saturating_sub(u))
        });
        let _ = writeln!(
            out,
            "shipper: {} sent ({} bytes, {} gzipped), {} retries, {} rejected, last success {last}",
            t.events_sent, t.bytes_plain, t.bytes_gzip, t.retries, t.rejected
        );
        if let Some(e) = &t.last_error {
            let _ = writeln!(out, "shipper last error: {e}");
        }
    }
    for (name, c) in &s.collectors {
        let _ = write!(
            out,
            "collector {name}: {} ({} produced, {} dropped, {} lost at the source)",
            c.state, c.produced, c.dropped, c.source_lost
        );
        match &c.mode {
            Some(mode) => {
                let _ = writeln!(out, ", {mode}");
            }
            None => out.push('\n'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_renders_staleness() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Status {
            pid: 42,
            version: "v0.1.0".into(),
            mode: "ship".into(),
            started_unix: 1000,
            updated_unix: 1010,
            ring: Some(RingStatus {
                bytes_on_disk: 50,
                capacity: 100,
                records_pending: 3,
                ..RingStatus::default()
            }),
            ..Status::default()
        };
        s.collectors.insert(
            "logfile".into(),
            CollectorStatus {
                state: "running".into(),
                produced: 7,
                ..CollectorStatus::default()
            },
        );
        write(dir.path(), &s).unwrap();
        assert_eq!(read(dir.path()).unwrap(), s);
        // Padded, so that a full disk can still take the next status in place.
        let len = std::fs::metadata(path_in(dir.path())).unwrap().len();
        assert_eq!(len % PAD_TO as u64, 0);
        overwrite_in_place(&path_in(dir.path()), serde_json::to_vec(&s).unwrap()).unwrap();
        assert_eq!(std::fs::metadata(path_in(dir.path())).unwrap().len(), len);
        assert_eq!(read(dir.path()).unwrap(), s);
        let live = render(&s, 1012);
        assert!(live.contains("running for 12s"), "{live}");
        assert!(live.contains("(50.0%), 3 records pending"), "{live}");
        assert!(
            live.contains("collector logfile: running (7 produced"),
            "{live}"
        );
        assert!(render(&s, 1100).contains("NOT RUNNING"));
        s.stopped = true;
        assert!(render(&s, 1012).contains("NOT RUNNING (stopped 2s ago)"));
    }

    #[test]
    fn degraded_is_shown_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Status {
            started_unix: 1000,
            updated_unix: 1010,
            ring: Some(RingStatus {
                records_lost: 7,
                write_error: Some("No space left on device".into()),
                ..RingStatus::default()
            }),
            degraded: vec!["the ring cannot write: No space left on device (for 5s)".into()],
            ..Status::default()
        };
        assert!(s.is_degraded());
        write(dir.path(), &s).unwrap();
        assert_eq!(read(dir.path()).unwrap(), s);
        let text = render(&s, 1012);
        assert!(text.contains("DEGRADED, running for 12s"), "{text}");
        assert!(text.contains("degraded: the ring cannot write"), "{text}");
        assert!(text.contains("7 records lost"), "{text}");
        s.degraded.clear();
        assert!(!s.is_degraded());
        assert!(render(&s, 1012).contains(": running for 12s"));
    }
}
