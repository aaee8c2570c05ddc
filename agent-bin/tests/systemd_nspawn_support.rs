//! A throw-away systemd container for the service tests: a cached Debian bookworm root file
//! system (debootstrap, once per machine), copied per test and booted with systemd-nspawn.
//! The host needs no systemd as PID 1 and no D-Bus; the container is always powered off and
//! deleted, even when the test fails (Drop).
//!
//! Included by the `systemd_*` tests with `#[path]`; compiled on its own it is an empty test.
#![allow(dead_code)]
#![cfg(target_os = "linux")]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Where the debootstrapped root is cached between runs (`ENDPOINT_AGENT_TEST_CACHE`).
fn cache_dir() -> PathBuf {
    std::env::var_os("ENDPOINT_AGENT_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/endpoint-agent-tests"))
}

/// The Debian mirror apt is configured with (debootstrap needs one; the CI machine reaches
/// only that one), overridable with `ENDPOINT_AGENT_DEBIAN_MIRROR`.
fn debian_mirror() -> String {
    if let Ok(m) = std::env::var("ENDPOINT_AGENT_DEBIAN_MIRROR") {
        return m;
    }
    let mut texts = Vec::new();
    if let Ok(entries) = fs::read_dir("/etc/apt/sources.list.d") {
        for e in entries.flatten() {
            texts.push(fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    texts.push(fs::read_to_string("/etc/apt/sources.list").unwrap_or_default());
    for text in &texts {
        for line in text.lines().map(str::trim) {
            let url = if let Some(rest) = line.strip_prefix("URIs:") {
                rest.split_whitespace().next()
            } else if let Some(rest) = line.strip_prefix("deb ") {
                rest.split_whitespace().find(|w| w.starts_with("http"))
            } else {
                None
            };
            if let Some(url) = url {
                let url = url.trim_end_matches('/');
                if url.ends_with("/debian") {
                    return url.to_owned();
                }
            }
        }
    }
    "http://deb.debian.org/debian".to_owned()
}

fn require_tool(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "prerequisite missing: `{tool}` (apt-get install systemd-container debootstrap util-linux)"
    );
}

fn require_root() {
    let uid = fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_default();
    assert_eq!(uid, "0", "the systemd container tests must run as root");
}

/// The cached bookworm root with systemd, creating it on first use (~40 s). `flock`
/// serialises concurrent first uses; the root only appears once debootstrap succeeded.
pub fn cached_rootfs() -> PathBuf {
    require_root();
    for tool in [
        "systemd-nspawn",
        "nsenter",
        "debootstrap",
        "flock",
        "timeout",
    ] {
        require_tool(tool);
    }
    let cache = cache_dir();
    fs::create_dir_all(&cache).unwrap();
    let root = cache.join("bookworm-rootfs");
    if root.join("usr/lib/systemd/systemd").exists() {
        return root;
    }
    let script = format!(
        "test -e '{root}/usr/lib/systemd/systemd' && exit 0; rm -rf '{root}.tmp' '{root}' && \
         debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm '{root}.tmp' '{mirror}' \
         >'{cache}/debootstrap.log' 2>&1 && mv '{root}.tmp' '{root}'",
        root = root.display(),
        cache = cache.display(),
        mirror = debian_mirror(),
    );
    let status = Command::new("flock")
        .arg(cache.join(".lock"))
        .args(["sh", "-c", &script])
        .status()
        .unwrap();
    assert!(
        status.success(),
        "debootstrap of the test container failed; see {}/debootstrap.log",
        cache.display()
    );
    root
}

/// A booted systemd container. Dropping it powers it off and deletes its file system.
#[derive(Debug)]
pub struct Container {
    nspawn: Child,
    pid1: u32,
    workdir: PathBuf,
    root: PathBuf,
}

impl Container {
    /// Copies the cached root, binds `share` read-only at `/mnt/share`, boots it and waits
    /// until systemd reports the boot finished.
    pub fn boot(share: &Path) -> Container {
        let cached = cached_rootfs();
        let workdir = PathBuf::from(format!(
            "/var/tmp/endpoint-agent-nspawn-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        let root = workdir.join("root");
        fs::create_dir_all(&workdir).unwrap();
        let cp = Command::new("cp")
            .args(["-a", "--reflink=auto"])
            .arg(&cached)
            .arg(&root)
            .status()
            .unwrap();
        assert!(cp.success(), "copying the cached container root failed");
        let log = fs::File::create(workdir.join("nspawn.log")).unwrap();
        let machine = format!("ea-test-{}", rand_suffix());
        let nspawn = Command::new("systemd-nspawn")
            .arg("-D")
            .arg(&root)
            .args([
                "--boot",
                "--register=no",
                "--keep-unit",
                "--console=passive",
                "--machine",
                &machine,
            ])
            .arg(format!("--bind-ro={}:/mnt/share", share.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut container = Container {
            nspawn,
            pid1: 0,
            workdir,
            root,
        };
        container.pid1 = container.wait_for_pid1();
        container.wait_for_boot();
        container
    }

    /// Waits until systemd says the boot finished. Right after PID 1 appears its bus socket
    /// does not exist yet and `systemctl` fails to connect, so this polls.
    fn wait_for_boot(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = self.exec(&["systemctl", "is-system-running", "--wait"]);
            let state = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if state == "running" || state == "degraded" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "container did not boot: state {state:?} ({}); nspawn log:\n{}",
                String::from_utf8_lossy(&out.stderr).trim(),
                self.nspawn_log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_for_pid1(&mut self) -> u32 {
        let deadline = Instant::now() + Duration::from_secs(20);
        let pid = self.nspawn.id();
        loop {
            if let Ok(Some(status)) = self.nspawn.try_wait() {
                panic!(
                    "systemd-nspawn exited early ({status}):\n{}",
                    self.nspawn_log()
                );
            }
            let children =
                fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
            for child in children.split_whitespace() {
                let comm = fs::read_to_string(format!("/proc/{child}/comm")).unwrap_or_default();
                if comm.trim() == "systemd" {
                    return child.parse().unwrap();
                }
            }
            assert!(
                Instant::now() < deadline,
                "container init never appeared:\n{}",
                self.nspawn_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The container's root as seen from the host.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Runs a command inside the container (all its namespaces), bounded to 90 s.
    pub fn exec(&self, args: &[&str]) -> Output {
        Command::new("timeout")
            .args(["90", "nsenter", "-t", &self.pid1.to_string()])
            .args(["-m", "-u", "-i", "-n", "-p", "--"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs a command inside the container and returns its stdout; panics with its output
    /// when it fails.
    pub fn exec_ok(&self, args: &[&str]) -> String {
        let out = self.exec(args);
        assert!(
            out.status.success(),
            "`{}` failed in the container ({}):\nstdout: {}\nstderr: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `systemctl show -p <prop> --value <unit>`.
    pub fn unit_property(&self, unit: &str, prop: &str) -> String {
        self.exec_ok(&["systemctl", "show", "-p", prop, "--value", unit])
            .trim()
            .to_owned()
    }

    /// The unit's journal, for failure messages.
    pub fn journal(&self, unit: &str) -> String {
        let out = self.exec(&["journalctl", "--no-pager", "-n", "50", "-u", unit]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn nspawn_log(&self) -> String {
        fs::read_to_string(self.workdir.join("nspawn.log")).unwrap_or_default()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if self.pid1 != 0 {
            let _ = self.exec(&["systemctl", "poweroff", "--no-block"]);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if matches!(self.nspawn.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if matches!(self.nspawn.try_wait(), Ok(None)) {
            // SIGKILL to nspawn tears the whole container down with it.
            let _ = self.nspawn.kill();
            let _ = self.nspawn.wait();
        }
        let _ = fs::remove_dir_all(&self.workdir);
    }
}

fn rand_suffix() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    t ^ std::process::id().rotate_left(16)
}

/// Every path under `dir` (relative, sorted) with its type and permission bits: a snapshot
/// to compare before install and after uninstall.
pub fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            let rel = path
                .strip_prefix(base)
                .unwrap_or(&path)
                .display()
                .to_string();
            let kind = if meta.is_dir() {
                'd'
            } else if meta.is_symlink() {
                'l'
            } else {
                'f'
            };
            out.push(format!(
                "{kind} {:o} {rel}",
                meta.permissions().mode() & 0o7777
            ));
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

/// A directory holding a copy of the freshly built `agent`, to bind into containers.
#[derive(Debug)]
pub struct Share {
    pub dir: PathBuf,
}

impl Share {
    pub fn with_agent() -> Share {
        let dir = PathBuf::from(format!(
            "/var/tmp/endpoint-agent-share-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        fs::create_dir_all(&dir).unwrap();
        // option_env!: this file is also included by tests of other packages (xtask's
        // package tests), which bring their own files and never call this.
        let Some(agent) = option_env!("CARGO_BIN_EXE_agent") else {
            panic!("Share::with_agent is for endpoint-agent's own tests");
        };
        fs::copy(agent, dir.join("agent")).unwrap();
        Share { dir }
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}
