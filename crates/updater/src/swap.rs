//! The installed binary and its replacement: staging a verified download beside it, the
//! journaled swap, the health confirmation and the rollback.
//!
//! Order of the swap, and what a crash (power loss, `kill -9`) at each point leaves:
//!
//! | step | on disk after it | a start after a crash here |
//! |---|---|---|
//! | 1. write and verify `agent.new` | old binary, maybe a partial `agent.new` | runs the old binary; the leftover is removed |
//! | 2. journal `staged` | old binary, complete `agent.new` | runs the old binary; journal → `rolled-back` (interrupted) |
//! | 3. `agent.previous` ← hard link of the binary | old binary, kept twice | same as 2 |
//! | 4. journal `swapped` (+ accepted release) | same | the old binary runs, sees `agent.new` still there: the swap never happened → `rolled-back`, accepted release restored |
//! | 5. rename `agent.new` → binary | new binary, old one as `agent.previous` | the new binary counts its starts until it confirms or rolls back |
//!
//! Rollback: rename `agent.previous` → binary, then journal `rolled-back`; a crash between
//! the two leaves the old binary running with a `swapped` journal, which the old binary
//! reads as "already rolled back" and records as such.
//!
//! Every rename is followed by an fsync of the directory and every journal write is
//! atomic and fsynced ([`agent_os::replace_file`]), so each step is durable before the next
//! one starts.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use semver::Version;
use sha2::{Digest as _, Sha256};

use crate::manifest::{hex, Target};
use crate::state::{unix_now, Accepted, Journal, StateError, Step, UpdateState, STATE_FILE};

/// How long the new binary's `--version` may take.
pub const VERSION_CHECK_TIMEOUT: Duration = Duration::from_secs(15);

/// The files of one installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The installed agent binary (what the service runs).
    pub binary: PathBuf,
    /// The updater's state file.
    pub state_file: PathBuf,
}

impl Layout {
    /// The installation of `binary`, with its update state in `state_dir`.
    pub fn new(binary: impl Into<PathBuf>, state_dir: &Path) -> Layout {
        Layout {
            binary: binary.into(),
            state_file: state_dir.join(STATE_FILE),
        }
    }

    /// Where a download is staged: `agent.new` (`agent.new.exe` on Windows), beside the
    /// binary so that the swap is a rename within one directory.
    pub fn staged(&self) -> PathBuf {
        sibling(&self.binary, "new")
    }

    /// Where the previous binary is kept: `agent.previous` (`agent.previous.exe`).
    pub fn previous(&self) -> PathBuf {
        sibling(&self.binary, "previous")
    }

    /// Loads the update state.
    pub fn load(&self) -> Result<UpdateState, StateError> {
        UpdateState::load(&self.state_file)
    }
}

fn sibling(binary: &Path, tag: &str) -> PathBuf {
    let stem = binary
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "agent".to_owned());
    let name = match binary.extension() {
        Some(ext) => format!("{stem}.{tag}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{tag}"),
    };
    binary.with_file_name(name)
}

/// Why an update could not be staged, swapped or rolled back.
#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    /// The server sent more bytes than the manifest's size.
    #[error("the download is larger than the {expected} bytes the manifest announces")]
    Oversize {
        /// The manifest's size.
        expected: u64,
    },
    /// The download ended before the manifest's size.
    #[error("the download ended after {got} of {expected} bytes")]
    Truncated {
        /// Bytes received.
        got: u64,
        /// The manifest's size.
        expected: u64,
    },
    /// The SHA-256 of the download differs from the manifest's.
    #[error("SHA-256 mismatch: the manifest says {expected}, the download is {got}")]
    Hash {
        /// The manifest's digest (hex).
        expected: String,
        /// The download's digest (hex).
        got: String,
    },
    /// The new binary does not run, or answers another version.
    #[error("the new binary fails its version check: {0}")]
    VersionCheck(String),
    /// An update is already swapped in and not yet confirmed or rolled back.
    #[error(
        "version {to} was installed and is not confirmed yet; wait for it to confirm or roll back"
    )]
    Unconfirmed {
        /// The version awaiting confirmation.
        to: Version,
    },
    /// A file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The journal could not be saved.
    #[error(transparent)]
    State(#[from] StateError),
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SwapError {
    let path = path.to_owned();
    move |source| SwapError::Io { what, path, source }
}

/// A download being written to the staging file, checked against the manifest's size
/// while it arrives and against its SHA-256 when it ends.
#[derive(Debug)]
pub struct Stager {
    file: Option<File>,
    path: PathBuf,
    hasher: Sha256,
    written: u64,
    target: Target,
}

impl Stager {
    /// Creates (truncates) the staging file of `layout` for `target`'s build.
    pub fn create(layout: &Layout, target: &Target) -> Result<Stager, SwapError> {
        let path = layout.staged();
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o700);
        }
        let file = options
            .open(&path)
            .map_err(io_err("cannot create", &path))?;
        Ok(Stager {
            file: Some(file),
            path,
            hasher: Sha256::new(),
            written: 0,
            target: target.clone(),
        })
    }

    /// The staging file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a chunk of the download; refuses to go past the manifest's size.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), SwapError> {
        let len = chunk.len() as u64;
        if self.written.saturating_add(len) > self.target.size {
            return Err(SwapError::Oversize {
                expected: self.target.size,
            });
        }
        let Some(file) = self.file.as_mut() else {
            return Err(SwapError::Io {
                what: "write after finish",
                path: self.path.clone(),
                source: io::Error::other("stager already finished"),
            });
        };
        file.write_all(chunk)
            .map_err(io_err("cannot write", &self.path))?;
        self.hasher.update(chunk);
        self.written += len;
        Ok(())
    }

    /// Checks size and SHA-256, makes the file durable and executable, then runs it with
    /// `--version` and checks it answers the manifest's version. On any failure the
    /// staging file is removed.
    pub fn finish(mut self) -> Result<PathBuf, SwapError> {
        let result = self.finish_inner();
        if result.is_err() {
            self.discard();
        }
        result.map(|()| self.path.clone())
    }

    fn finish_inner(&mut self) -> Result<(), SwapError> {
        if self.written < self.target.size {
            return Err(SwapError::Truncated {
                got: self.written,
                expected: self.target.size,
            });
        }
        let got: [u8; 32] = self.hasher.clone().finalize().into();
        if got != self.target.sha256 {
            return Err(SwapError::Hash {
                expected: hex(&self.target.sha256),
                got: hex(&got),
            });
        }
        if let Some(file) = self.file.take() {
            file.sync_all().map_err(io_err("cannot sync", &self.path))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                file.set_permissions(fs::Permissions::from_mode(0o755))
                    .map_err(io_err("cannot make executable", &self.path))?;
            }
        }
        check_version(&self.path, &self.target.version)
    }

    /// Removes the staging file (a refused or interrupted download).
    pub fn discard(&mut self) {
        self.file = None;
        if let Err(e) = fs::remove_file(&self.path) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot remove the refused download");
            }
        }
    }
}

/// Reads `v1.2.3+sha` (what `agent --version` prints) as a version.
pub fn parse_version_output(output: &str) -> Option<Version> {
    let line = output.lines().next()?.trim();
    let text = line.strip_prefix('v').unwrap_or(line);
    let text = text.split('+').next()?;
    Version::parse(text).ok()
}

/// Runs `binary --version` (with a timeout) and checks it prints `expected`.
pub fn check_version(binary: &Path, expected: &Version) -> Result<(), SwapError> {
    let mut child = Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| SwapError::VersionCheck(format!("cannot run it: {e}")))?;
    let deadline = Instant::now() + VERSION_CHECK_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(SwapError::VersionCheck(format!(
                    "no answer within {VERSION_CHECK_TIMEOUT:?}"
                )));
            }
            Err(e) => return Err(SwapError::VersionCheck(format!("cannot wait for it: {e}"))),
        }
    };
    let mut output = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = out.take(4096).read_to_string(&mut output);
    }
    if !status.success() {
        return Err(SwapError::VersionCheck(format!(
            "`--version` exited with {status}"
        )));
    }
    match parse_version_output(&output) {
        Some(v) if v == *expected => Ok(()),
        Some(v) => Err(SwapError::VersionCheck(format!(
            "it is version {v}, the manifest says {expected}"
        ))),
        None => Err(SwapError::VersionCheck(format!(
            "unreadable `--version` output `{}`",
            output.trim().chars().take(80).collect::<String>()
        ))),
    }
}

/// Points in the swap where a test can simulate a crash (see the module docs' table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Point {
    Staged,
    PreviousKept,
    SwappedJournal,
    Renamed,
    RollbackRenamed,
}

/// A crash injected by a test: the operation stops right there, as `kill -9` would.
#[derive(Debug)]
pub(crate) struct Crash;

type Hook<'a> = &'a mut dyn FnMut(Point) -> Result<(), Crash>;

/// What a swap needs to know about the release.
#[derive(Debug, Clone)]
pub struct Release {
    /// Version running now.
    pub from: Version,
    /// Version being installed.
    pub to: Version,
    /// The manifest's serial.
    pub serial: u64,
}

/// Swaps the verified staged binary in (journal `staged` then `swapped`), keeping the
/// previous binary beside it. Refused while a previous update is unconfirmed.
pub fn swap(layout: &Layout, release: &Release) -> Result<(), SwapError> {
    let result = match swap_with(layout, release, &mut |_| Ok(())) {
        Ok(r) => r,
        Err(Crash) => Ok(()),
    };
    if result.is_err() {
        // Whatever failed, the binary was not replaced: the download goes.
        remove_leftover(&layout.staged());
    }
    result
}

pub(crate) fn swap_with(
    layout: &Layout,
    release: &Release,
    hook: Hook<'_>,
) -> Result<Result<(), SwapError>, Crash> {
    let mut state = match layout.load() {
        Ok(s) => s,
        Err(e) => return Ok(Err(e.into())),
    };
    if let Some(j) = &state.journal {
        if j.step == Step::Swapped {
            return Ok(Err(SwapError::Unconfirmed { to: j.to.clone() }));
        }
    }
    let staged = layout.staged();
    let previous = layout.previous();
    let mut journal = Journal {
        step: Step::Staged,
        from: release.from.clone(),
        to: release.to.clone(),
        serial: release.serial,
        binary: layout.binary.clone(),
        staged: staged.clone(),
        previous: previous.clone(),
        prior_accepted: state.accepted.clone(),
        starts: 0,
        first_start: None,
        updated: unix_now(),
        reason: None,
        reported: false,
    };
    state.journal = Some(journal.clone());
    if let Err(e) = state.save(&layout.state_file) {
        return Ok(Err(e.into()));
    }
    tracing::info!(from = %release.from, to = %release.to, "update staged");
    hook(Point::Staged)?;

    if let Err(e) = keep_previous(&layout.binary, &previous) {
        return Ok(Err(e));
    }
    hook(Point::PreviousKept)?;

    journal.step = Step::Swapped;
    journal.updated = unix_now();
    state.journal = Some(journal);
    state.accepted = Some(Accepted {
        serial: release.serial,
        version: release.to.clone(),
    });
    if let Err(e) = state.save(&layout.state_file) {
        return Ok(Err(e.into()));
    }
    hook(Point::SwappedJournal)?;

    if let Err(e) = install(&staged, &layout.binary) {
        // Not swapped: say so in the journal, so the next start does not count starts of
        // a binary that never changed.
        let _ = record_rollback(
            layout,
            &mut state,
            &format!("the swap failed: {e}"),
            true,
            true,
        );
        return Ok(Err(e));
    }
    hook(Point::Renamed)?;
    tracing::info!(from = %release.from, to = %release.to, binary = %layout.binary.display(), "update swapped in; the previous binary is kept beside it");
    Ok(Ok(()))
}

/// `previous` becomes another name of the installed binary (a hard link, else a copy),
/// replaced atomically.
fn keep_previous(binary: &Path, previous: &Path) -> Result<(), SwapError> {
    let tmp = sibling(previous, "tmp");
    let _ = fs::remove_file(&tmp);
    if fs::hard_link(binary, &tmp).is_err() {
        copy_durably(binary, &tmp)?;
    }
    fs::rename(&tmp, previous).map_err(io_err("cannot keep the previous binary as", previous))?;
    sync_parent(previous)
}

fn copy_durably(from: &Path, to: &Path) -> Result<(), SwapError> {
    fs::copy(from, to).map_err(io_err("cannot copy the binary to", to))?;
    File::open(to)
        .and_then(|f| f.sync_all())
        .map_err(io_err("cannot sync", to))
}

fn sync_parent(path: &Path) -> Result<(), SwapError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    agent_os::atomic::sync_dir(dir).map_err(io_err("cannot sync the directory", dir))
}

/// Puts `new` in place of `binary` (a rename; on Windows, the running executable is
/// replaced with the `self-replace` crate's method).
fn install(new: &Path, binary: &Path) -> Result<(), SwapError> {
    #[cfg(windows)]
    {
        let running = std::env::current_exe()
            .ok()
            .and_then(|p| fs::canonicalize(p).ok());
        if running.is_some() && running == fs::canonicalize(binary).ok() {
            self_replace::self_replace(new)
                .map_err(io_err("cannot replace the running binary with", new))?;
            let _ = fs::remove_file(new);
            return Ok(());
        }
    }
    fs::rename(new, binary).map_err(io_err("cannot rename the new binary onto", binary))?;
    sync_parent(binary)
}

fn record_rollback(
    layout: &Layout,
    state: &mut UpdateState,
    reason: &str,
    restore_accepted: bool,
    reported: bool,
) -> Result<(), SwapError> {
    if let Some(j) = state.journal.as_mut() {
        j.step = Step::RolledBack;
        j.updated = unix_now();
        j.reason = Some(reason.to_owned());
        j.reported = reported;
        if restore_accepted {
            state.accepted = j.prior_accepted.clone();
        }
    }
    state.save(&layout.state_file)?;
    Ok(())
}

/// When the new binary must confirm itself, and when it is given up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// How long the new binary must run healthy before it confirms itself.
    pub grace: Duration,
    /// Starts without a confirmation after which the next start rolls back.
    pub max_starts: u32,
    /// Time since the new binary's first start after which a start rolls back.
    pub max_unconfirmed: Duration,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            grace: Duration::from_secs(120),
            max_starts: 3,
            max_unconfirmed: Duration::from_secs(30 * 60),
        }
    }
}

/// What the agent must do after [`on_start`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartAction {
    /// Nothing pending: run normally.
    Run,
    /// This is a swapped-in version on probation: run, and call [`confirm`] once it has
    /// been healthy for [`Health::grace`].
    ConfirmAfterGrace {
        /// The version on probation (this one).
        version: Version,
        /// Which unconfirmed start this is (1 = first).
        start: u32,
    },
    /// The previous binary was put back: exit now (non-zero) so the service manager
    /// starts it. The agent logs this as an error (an agent-log event).
    RolledBack {
        /// The version that failed.
        failed: Version,
        /// The version restored.
        restored: Version,
        /// Why.
        reason: String,
    },
    /// The journal recorded an interrupted update and was settled; run normally.
    Settled {
        /// What happened.
        note: String,
    },
}

/// Called once at every start of the agent service, before anything else: settles an
/// interrupted update, counts starts of an unconfirmed one and rolls it back when it has
/// had its chances. `running` is this binary's version.
pub fn on_start(
    layout: &Layout,
    running: &Version,
    health: &Health,
) -> Result<StartAction, SwapError> {
    on_start_at(layout, running, health, unix_now(), &mut |_| Ok(()))
        .unwrap_or(Ok(StartAction::Run))
}

pub(crate) fn on_start_at(
    layout: &Layout,
    running: &Version,
    health: &Health,
    now: i64,
    hook: Hook<'_>,
) -> Result<Result<StartAction, SwapError>, Crash> {
    let mut state = match layout.load() {
        Ok(s) => s,
        Err(e) => return Ok(Err(e.into())),
    };
    let Some(journal) = state.journal.clone() else {
        remove_leftover(&layout.staged());
        return Ok(Ok(StartAction::Run));
    };
    let settle = |state: &mut UpdateState, note: String, restore: bool| {
        record_rollback(layout, state, &note, restore, true).map(|()| {
            tracing::warn!(from = %journal.from, to = %journal.to, "{note}");
            StartAction::Settled { note }
        })
    };
    match journal.step {
        Step::RolledBack if !journal.reported => {
            remove_leftover(&layout.staged());
            let note = format!(
                "update to {} was rolled back ({}); {running} is running",
                journal.to,
                journal.reason.as_deref().unwrap_or("no reason recorded")
            );
            if let Some(j) = state.journal.as_mut() {
                j.reported = true;
            }
            if let Err(e) = state.save(&layout.state_file) {
                return Ok(Err(e.into()));
            }
            Ok(Ok(StartAction::Settled { note }))
        }
        Step::Confirmed | Step::RolledBack => {
            remove_leftover(&layout.staged());
            Ok(Ok(StartAction::Run))
        }
        Step::Staged => {
            remove_leftover(&journal.staged);
            Ok(settle(
                &mut state,
                format!(
                    "update to {} was interrupted before the swap; {} stays installed",
                    journal.to, journal.from
                ),
                true,
            ))
        }
        Step::Swapped if *running != journal.to => {
            // The old binary runs: either the rename never happened (the staged file is
            // still there) or a rollback renamed the previous binary back but stopped
            // before recording it.
            if journal.staged.exists() {
                remove_leftover(&journal.staged);
                Ok(settle(
                    &mut state,
                    format!(
                        "update to {} was interrupted before the swap; {} stays installed",
                        journal.to, journal.from
                    ),
                    true,
                ))
            } else {
                Ok(settle(
                    &mut state,
                    format!(
                        "update to {} was rolled back; {running} is running",
                        journal.to
                    ),
                    false,
                ))
            }
        }
        Step::Swapped => {
            let first = journal.first_start.unwrap_or(now);
            let elapsed =
                Duration::from_secs(u64::try_from(now.saturating_sub(first)).unwrap_or(0));
            let reason = if journal.starts >= health.max_starts {
                Some(format!(
                    "{} starts without becoming healthy for {:?}",
                    journal.starts, health.grace
                ))
            } else if journal.first_start.is_some() && elapsed >= health.max_unconfirmed {
                Some(format!(
                    "not confirmed healthy {} s after its first start",
                    elapsed.as_secs()
                ))
            } else {
                None
            };
            if let Some(reason) = reason {
                return rollback_at(layout, &mut state, &reason, hook);
            }
            let mut j = journal;
            j.starts += 1;
            j.first_start = Some(first);
            j.updated = now;
            let start = j.starts;
            let version = j.to.clone();
            state.journal = Some(j);
            if let Err(e) = state.save(&layout.state_file) {
                return Ok(Err(e.into()));
            }
            tracing::info!(version = %version, start, "updated version on probation: it confirms itself after running healthy");
            Ok(Ok(StartAction::ConfirmAfterGrace { version, start }))
        }
    }
}

fn rollback_at(
    layout: &Layout,
    state: &mut UpdateState,
    reason: &str,
    hook: Hook<'_>,
) -> Result<Result<StartAction, SwapError>, Crash> {
    let Some(journal) = state.journal.clone() else {
        return Ok(Ok(StartAction::Run));
    };
    if let Err(e) = install(&journal.previous, &journal.binary) {
        return Ok(Err(e));
    }
    hook(Point::RollbackRenamed)?;
    if let Err(e) = record_rollback(layout, state, reason, false, false) {
        return Ok(Err(e));
    }
    tracing::error!(failed = %journal.to, restored = %journal.from, reason, "update rolled back: the previous binary is restored");
    Ok(Ok(StartAction::RolledBack {
        failed: journal.to,
        restored: journal.from,
        reason: reason.to_owned(),
    }))
}

/// Records that the running version `running` ran healthy for the grace period: the
/// journal goes to `confirmed`. A no-op unless `running` is the version on probation.
pub fn confirm(layout: &Layout, running: &Version) -> Result<bool, SwapError> {
    let mut state = layout.load()?;
    let Some(j) = state.journal.as_mut() else {
        return Ok(false);
    };
    if j.step != Step::Swapped || j.to != *running {
        return Ok(false);
    }
    j.step = Step::Confirmed;
    j.updated = unix_now();
    state.save(&layout.state_file)?;
    tracing::info!(version = %running, "update confirmed: the new version ran healthy");
    Ok(true)
}

fn remove_leftover(staged: &Path) {
    match fs::remove_file(staged) {
        Ok(()) => tracing::info!(path = %staged.display(), "removed an unfinished update download"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(path = %staged.display(), error = %e, "cannot remove an unfinished update download")
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn sibling_names() {
        assert_eq!(
            sibling(Path::new("/opt/a/agent"), "new"),
            Path::new("/opt/a/agent.new")
        );
        assert_eq!(
            sibling(Path::new("/x/agent.exe"), "previous"),
            Path::new("/x/agent.previous.exe")
        );
    }

    #[test]
    fn version_output() {
        assert_eq!(
            parse_version_output("v0.2.0+abc\n"),
            Some(Version::new(0, 2, 0))
        );
        assert_eq!(parse_version_output("0.2.0"), Some(Version::new(0, 2, 0)));
        assert_eq!(
            parse_version_output("v1.0.0-rc.1\n"),
            Version::parse("1.0.0-rc.1").ok()
        );
        assert_eq!(parse_version_output("agent"), None);
        assert_eq!(parse_version_output(""), None);
    }
}
