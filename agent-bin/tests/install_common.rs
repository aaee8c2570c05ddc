//! Helpers of the temp-root install tests: a temporary root, the `agent` binary run against
//! it through `ENDPOINT_AGENT_ROOT`, and tree snapshots.
//!
//! Included by the `install_*` tests with `#[path]`; compiled on its own it is an empty test.
#![allow(dead_code, clippy::new_without_default)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// An intake key of the documented format.
pub const KEY: &str = "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY";
/// Another valid key.
pub const OTHER_KEY: &str = "Zz9yX8wV7uT6sR5qP4oN3mL2kJ1hG0fE";

/// A directory removed on drop, even when the test fails.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "endpoint-agent-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A temporary root to install into, and a separate working directory to run from (where a
/// seed config.yaml may be put).
#[derive(Debug)]
pub struct Sandbox {
    pub root: TempDir,
    pub cwd: TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            root: TempDir::new("root"),
            cwd: TempDir::new("cwd"),
        }
    }

    /// Runs `agent args...` with `ENDPOINT_AGENT_ROOT` set to the root, from the work dir.
    pub fn agent(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// The command [`Sandbox::agent`] runs, to customise.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_agent"));
        cmd.args(args)
            .current_dir(self.cwd.path())
            .env("ENDPOINT_AGENT_ROOT", self.root.path());
        for var in [
            "ENDPOINT_AGENT_BINARY",
            "ENDPOINT_AGENT_CONFIG",
            "ENDPOINT_AGENT_STATE_DIR",
            "ENDPOINT_AGENT_LOG_DIR",
        ] {
            cmd.env_remove(var);
        }
        cmd
    }

    /// Runs `agent args...` and panics with its output unless it succeeds.
    pub fn agent_ok(&self, args: &[&str]) -> Output {
        let out = self.agent(args);
        assert!(
            out.status.success(),
            "agent {args:?} failed:\n{}",
            describe(&out)
        );
        out
    }

    /// `<root>/<rel>`.
    pub fn at(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    pub fn tree(&self) -> Vec<String> {
        tree(self.root.path())
    }
}

pub fn describe(out: &Output) -> String {
    format!(
        "status: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every path under `dir`, relative and sorted, with its type and permission bits.
pub fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(base).unwrap().display().to_string();
            let kind = if meta.is_dir() { 'd' } else { 'f' };
            out.push(format!("{kind} {:o} {rel}", mode(&meta)));
            if meta.is_dir() {
                walk(base, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[cfg(unix)]
fn mode(meta: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn mode(_meta: &fs::Metadata) -> u32 {
    0
}
