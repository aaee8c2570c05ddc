//! The updater's persisted state: the last accepted release (for replay and downgrade
//! protection) and the journal of the update in progress, in one small JSON file written
//! atomically (temporary file, fsync, rename, fsync of the directory) at every step, so a
//! power loss leaves either the previous or the next state, never a mix.

use std::io;
use std::path::{Path, PathBuf};

use semver::Version;
use serde::{Deserialize, Serialize};

/// File name of the state file in the agent's state directory.
pub const STATE_FILE: &str = "update-state.json";

/// The last release this agent accepted (swapped in). A manifest must have a larger serial
/// and version to be installed again without `--allow-downgrade`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// Manifest serial.
    pub serial: u64,
    /// The version installed from it.
    pub version: Version,
}

/// Where an update is: `staged → swapped → confirmed | rolled-back`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// The new binary is downloaded and verified beside the installed one; nothing swapped.
    Staged,
    /// The new binary is (or is about to be, see the swap order) the installed one; the
    /// previous one is kept beside it. Not yet confirmed healthy.
    Swapped,
    /// The new binary ran healthy for the grace period.
    Confirmed,
    /// The previous binary is back (or the swap never happened).
    RolledBack,
}

impl Step {
    /// The name used in the state file and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Staged => "staged",
            Step::Swapped => "swapped",
            Step::Confirmed => "confirmed",
            Step::RolledBack => "rolled-back",
        }
    }
}

/// The journal of the last update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// Current step.
    pub step: Step,
    /// Version that was running before.
    pub from: Version,
    /// Version being installed.
    pub to: Version,
    /// Manifest serial of the release.
    pub serial: u64,
    /// The installed binary.
    pub binary: PathBuf,
    /// The staged new binary (before the swap).
    pub staged: PathBuf,
    /// The previous binary, kept beside the new one.
    pub previous: PathBuf,
    /// What [`UpdateState::accepted`] was before this update (restored when the swap
    /// never happened, so the release can be tried again).
    pub prior_accepted: Option<Accepted>,
    /// Starts of the new binary since the swap without a confirmation.
    pub starts: u32,
    /// Unix time of the new binary's first start.
    pub first_start: Option<i64>,
    /// Unix time of the last step change.
    pub updated: i64,
    /// Why it was rolled back.
    pub reason: Option<String>,
    /// Whether a start after the rollback reported it (the rolled-back binary exits before
    /// its log is set up; the restored one tells the agent log and the intake).
    #[serde(default)]
    pub reported: bool,
}

/// Everything the updater persists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateState {
    /// The last accepted release.
    pub accepted: Option<Accepted>,
    /// The last update's journal.
    pub journal: Option<Journal>,
}

/// The state file failed to load or save.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading failed (other than "does not exist").
    #[error("cannot read the update state {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The atomic write failed; the previous state is intact.
    #[error("cannot save the update state {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The error.
        source: agent_os::ReplaceError,
    },
}

impl UpdateState {
    /// Loads the state; a missing file is the empty state. A file that is not valid JSON
    /// (it cannot be half-written, so only outside damage does this) is logged and read
    /// as empty: the version checks still refuse anything not newer than the running one.
    pub fn load(path: &Path) -> Result<UpdateState, StateError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(UpdateState::default()),
            Err(source) => {
                return Err(StateError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        match serde_json::from_slice(&bytes) {
            Ok(state) => Ok(state),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "update state file is damaged; starting from an empty update state");
                Ok(UpdateState::default())
            }
        }
    }

    /// Saves the state atomically and durably.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        if let Some(dir) = path.parent() {
            // A missing state directory is created; failing that, the write reports it.
            let _ = std::fs::create_dir_all(dir);
        }
        agent_os::replace_file(path, &bytes, 0o600).map_err(|source| StateError::Write {
            path: path.to_owned(),
            source,
        })
    }
}

/// Seconds since the Unix epoch, for the journal.
pub fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_tolerates_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        assert_eq!(UpdateState::load(&path).unwrap(), UpdateState::default());
        let state = UpdateState {
            accepted: Some(Accepted {
                serial: 3,
                version: Version::new(1, 2, 3),
            }),
            journal: Some(Journal {
                step: Step::RolledBack,
                from: Version::new(1, 2, 2),
                to: Version::new(1, 2, 3),
                serial: 3,
                binary: "/opt/endpoint-agent/agent".into(),
                staged: "/opt/endpoint-agent/agent.new".into(),
                previous: "/opt/endpoint-agent/agent.previous".into(),
                prior_accepted: None,
                starts: 3,
                first_start: Some(1),
                updated: 2,
                reason: Some("not confirmed".into()),
                reported: false,
            }),
        };
        state.save(&path).unwrap();
        assert_eq!(UpdateState::load(&path).unwrap(), state);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"rolled-back\""), "{text}");
        std::fs::write(&path, b"{\"accepted\": {\"ser").unwrap();
        assert_eq!(UpdateState::load(&path).unwrap(), UpdateState::default());
    }
}
