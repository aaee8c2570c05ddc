//! The `.deb` that `cargo xtask dist` built, on a real systemd: a Debian container booted
//! with systemd-nspawn (the service tests' container, `agent-bin/tests`).
//!
//! `dpkg -i` installs the unit without starting it (no intake key yet);
//! `agent install --intake-key K` configures and starts it, and it ships to an HTTPS intake
//! on the host's loopback; `dpkg --purge` leaves nothing of the agent behind.
//!
//! Needs the `dist/` output (`ENDPOINT_AGENT_DIST_DIR`, default `<repo>/dist`), root,
//! systemd-nspawn and debootstrap: run by `.ci/extra/80-dist.sh` after `cargo xtask dist`,
//! or by hand with `cargo test -p xtask --test deb_systemd -- --ignored`.
#![cfg(target_os = "linux")]

#[path = "../../agent-bin/tests/systemd_nspawn_support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use agent_testkit::Intake;
use support::{tree, Container};

const UNIT: &str = "SEKOIAEndpointAgent.service";
const KEY: &str = "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY";

fn dist_dir() -> PathBuf {
    std::env::var_os("ENDPOINT_AGENT_DIST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist"))
}

/// The amd64 `.deb` of the dist output.
fn deb() -> PathBuf {
    let dir = dist_dir();
    let found = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}: run `cargo xtask dist` first", dir.display()))
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("endpoint-agent_") && n.ends_with("_amd64.deb"))
        });
    found.unwrap_or_else(|| panic!("no endpoint-agent_*_amd64.deb in {}", dir.display()))
}

/// The parts of the container's tree the package or the agent may touch.
fn snapshot(root: &Path) -> Vec<String> {
    [
        "etc",
        "opt",
        "usr/lib/systemd/system",
        "var/lib/endpoint-agent",
        "var/log/endpoint-agent",
    ]
    .iter()
    .flat_map(|d| {
        tree(&root.join(d))
            .into_iter()
            .map(move |line| format!("{d}: {line}"))
    })
    .collect()
}

fn state(c: &Container, what: &str) -> String {
    let out = c.exec(&["systemctl", what, UNIT]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn wait_for_active(c: &Container) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = state(c, "is-active");
        if s == "active" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{UNIT} is {s:?}, not active; journal:\n{}",
            c.journal(UNIT)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
#[ignore = "needs `cargo xtask dist` output and root: run by .ci/extra/80-dist.sh"]
fn deb_installs_without_starting_runs_once_configured_and_purges_clean() {
    let deb = deb();
    let share = tempfile::Builder::new()
        .prefix("endpoint-agent-deb-")
        .tempdir_in("/var/tmp")
        .unwrap();
    std::fs::copy(&deb, share.path().join("agent.deb")).unwrap();
    let intake = Intake::start().unwrap();
    std::fs::copy(intake.ca_file(), share.path().join("ca.pem")).unwrap();

    let c = Container::boot(share.path());
    let before = snapshot(c.root());

    // Install: files and unit in place, the unit known to systemd, but nothing runs.
    let out = c.exec_ok(&["dpkg", "-i", "/mnt/share/agent.deb"]);
    assert!(
        out.contains("agent install --intake-key"),
        "postinst does not say how to configure the agent:\n{out}"
    );
    for rel in [
        "opt/endpoint-agent/agent",
        "opt/endpoint-agent/.packaged",
        "usr/lib/systemd/system/SEKOIAEndpointAgent.service",
    ] {
        assert!(
            c.root().join(rel).is_file(),
            "the package did not install {rel}"
        );
    }
    assert_eq!(c.unit_property(UNIT, "LoadState"), "loaded");
    assert_eq!(state(&c, "is-active"), "inactive", "started without a key");
    assert_eq!(state(&c, "is-enabled"), "disabled");
    let version = c.exec_ok(&["/opt/endpoint-agent/agent", "--version"]);
    let deb_name = deb.file_name().unwrap().to_string_lossy().into_owned();
    let package_version = deb_name.split('_').nth(1).unwrap();
    assert!(
        version.starts_with(&format!("v{package_version}")),
        "the packaged agent says {version}, the package is {deb_name}"
    );

    // Configure: the agent's own install command, pointed at the host's loopback intake
    // (the container shares the host's network), trusting the test CA.
    std::fs::create_dir_all(c.root().join("etc/ssl/certs")).unwrap();
    std::fs::copy(
        intake.ca_file(),
        c.root().join("etc/ssl/certs/ca-certificates.crt"),
    )
    .unwrap();
    let url = intake.url();
    c.exec_ok(&[
        "/opt/endpoint-agent/agent",
        "install",
        "--intake-key",
        KEY,
        "--intake-url",
        &url,
        "--disable-auto-update",
    ]);
    wait_for_active(&c);
    assert_eq!(state(&c, "is-enabled"), "enabled");
    let shipped = intake.wait_until(Duration::from_secs(60), |records| {
        records.iter().any(|r| r.key == KEY)
    });
    assert!(
        shipped,
        "nothing reached the intake with the configured key; journal:\n{}",
        c.journal(UNIT)
    );

    // Reinstalling the same package (an upgrade path) keeps it running.
    c.exec_ok(&["dpkg", "-i", "/mnt/share/agent.deb"]);
    wait_for_active(&c);

    // Purge: stopped, unit gone, no file of ours left, the tree as before (the CA we
    // planted aside).
    c.exec_ok(&["dpkg", "--purge", "endpoint-agent"]);
    assert_eq!(c.unit_property(UNIT, "LoadState"), "not-found");
    // (No procps in the container: read the executables of its processes directly.)
    let exes = c.exec(&[
        "sh",
        "-c",
        "for p in /proc/[0-9]*; do readlink \"$p/exe\"; done 2>/dev/null",
    ]);
    let exes = String::from_utf8_lossy(&exes.stdout).into_owned();
    assert!(
        !exes.contains("/opt/endpoint-agent/agent"),
        "the agent still runs after purge:\n{exes}"
    );
    std::fs::remove_file(c.root().join("etc/ssl/certs/ca-certificates.crt")).unwrap();
    let after: Vec<String> = snapshot(c.root())
        .into_iter()
        .filter(|l| !l.starts_with("etc: d 755 ssl"))
        .collect();
    let before: Vec<String> = before
        .into_iter()
        .filter(|l| !l.starts_with("etc: d 755 ssl"))
        .collect();
    assert_eq!(after, before, "purge left the tree changed");
    let status = c.exec(&["dpkg", "-s", "endpoint-agent"]);
    assert!(!status.status.success(), "dpkg still knows the package");
}
