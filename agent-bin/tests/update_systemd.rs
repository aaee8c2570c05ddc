//! The updater's rollback under a real systemd (a Debian container booted with
//! systemd-nspawn, as the service tests do): the installed agent is put on probation as a
//! freshly swapped-in version, with a stand-in previous version beside it, then
//!
//! - it exits 1 at every start (its config has no intake key): systemd restarts it, each
//!   start is counted, and the fourth restores the previous binary, which systemd then runs;
//! - it is killed with SIGKILL before it confirms: systemd restarts it and it runs again,
//!   still on probation;
//!
//! and with `AutoUpdate: false` the running agent makes no request to the update server on
//! the host (while with `AutoUpdate: true` it asks within seconds, the check being moved
//! to right after the start).
//!
//! Needs root, systemd-nspawn, debootstrap and the Debian mirror (first run only).
#![cfg(target_os = "linux")]

#[path = "systemd_nspawn_support.rs"]
mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use agent_testkit::FileServer;
use agent_updater::{Journal, Step, UpdateState};
use semver::Version;
use support::{Container, Share};

const UNIT: &str = "SEKOIAEndpointAgent.service";
const KEY: &str = "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY";
/// A previous version that stays up when run, like a working agent.
const PREVIOUS: &[u8] =
    b"#!/bin/sh\n[ \"$1\" = --version ] && { echo v0.0.9+previous; exit 0; }\nexec sleep infinity\n";

/// One container at a time: the machine has two cores and each boot is a full systemd.
static SERIAL: Mutex<()> = Mutex::new(());

fn state_file(c: &Container) -> std::path::PathBuf {
    c.root().join("var/lib/endpoint-agent/update-state.json")
}

fn journal(c: &Container) -> Journal {
    UpdateState::load(&state_file(c)).unwrap().journal.unwrap()
}

/// Installs the agent, stops it, and makes the installed binary a swapped-in update on
/// probation (from 0.0.9, kept as `agent.previous`).
fn install_on_probation(c: &Container) {
    c.exec_ok(&["/mnt/share/agent", "install", "--intake-key", KEY]);
    c.exec_ok(&["systemctl", "stop", UNIT]);
    let bin = c.root().join("opt/endpoint-agent");
    std::fs::write(bin.join("agent.previous"), PREVIOUS).unwrap();
    std::fs::set_permissions(
        bin.join("agent.previous"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let inside = Path::new("/opt/endpoint-agent");
    UpdateState {
        accepted: None,
        journal: Some(Journal {
            step: Step::Swapped,
            from: Version::new(0, 0, 9),
            to: Version::parse(env!("CARGO_PKG_VERSION")).unwrap(),
            serial: 2,
            binary: inside.join("agent"),
            staged: inside.join("agent.new"),
            previous: inside.join("agent.previous"),
            prior_accepted: None,
            starts: 0,
            first_start: None,
            updated: 0,
            reason: None,
            reported: false,
        }),
    }
    .save(&state_file(c))
    .unwrap();
}

/// The command line of the unit's main process.
fn main_command(c: &Container) -> String {
    let pid = c.unit_property(UNIT, "MainPID");
    let out = c.exec(&["cat", &format!("/proc/{pid}/cmdline")]);
    String::from_utf8_lossy(&out.stdout).replace('\0', " ")
}

fn wait_for(c: &Container, what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; journal:\n{}",
            c.journal(UNIT)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn systemd_an_update_that_exits_1_at_start_is_rolled_back_and_the_previous_version_runs() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let share = Share::with_agent();
    let c = Container::boot(&share.dir);
    install_on_probation(&c);
    // The new version cannot run on this host: no intake key, `agent run` exits 1.
    std::fs::write(
        c.root().join("etc/endpoint-agent/config.yaml"),
        "AutoUpdate: false\n",
    )
    .unwrap();
    c.exec_ok(&["systemctl", "start", UNIT]);

    // Three failing starts (5 s apart, the unit's RestartSec), then the rollback, then the
    // previous version stays up.
    let installed = c.root().join("opt/endpoint-agent/agent");
    wait_for(
        &c,
        "the previous version to run",
        Duration::from_secs(90),
        || {
            std::fs::read(&installed).is_ok_and(|b| b == PREVIOUS)
                && c.unit_property(UNIT, "ActiveState") == "active"
                && c.unit_property(UNIT, "SubState") == "running"
                && main_command(&c).contains("sleep")
        },
    );
    let j = journal(&c);
    assert_eq!(j.step, Step::RolledBack, "{j:?}");
    assert_eq!(j.starts, 3, "{j:?}");
    let log = c.journal(UNIT);
    assert!(log.contains("rolled back to 0.0.9"), "{log}");
    // It stays up.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(c.unit_property(UNIT, "ActiveState"), "active");
}

#[test]
fn systemd_an_update_killed_before_it_confirms_runs_again_after_the_restart() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let share = Share::with_agent();
    let c = Container::boot(&share.dir);
    install_on_probation(&c);
    let new_binary = std::fs::read(c.root().join("opt/endpoint-agent/agent")).unwrap();
    c.exec_ok(&["systemctl", "start", UNIT]);
    wait_for(
        &c,
        "the first start to be counted",
        Duration::from_secs(30),
        || journal(&c).starts == 1 && c.unit_property(UNIT, "ActiveState") == "active",
    );
    let pid = c.unit_property(UNIT, "MainPID");

    // kill -9 between the swap and the confirmation.
    c.exec_ok(&["systemctl", "kill", "--signal=SIGKILL", UNIT]);
    wait_for(&c, "the restart", Duration::from_secs(30), || {
        let now = c.unit_property(UNIT, "MainPID");
        now != pid && now != "0" && c.unit_property(UNIT, "ActiveState") == "active"
    });
    wait_for(
        &c,
        "the second start to be counted",
        Duration::from_secs(30),
        || journal(&c).starts == 2,
    );
    // A working agent: the same new binary, running, still on probation.
    assert_eq!(
        std::fs::read(c.root().join("opt/endpoint-agent/agent")).unwrap(),
        new_binary
    );
    assert_eq!(journal(&c).step, Step::Swapped);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(c.unit_property(UNIT, "ActiveState"), "active");
    assert_eq!(c.unit_property(UNIT, "SubState"), "running");
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../crates/updater/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Points the installed service at `server` (its CA, the fixtures' test key, the first
/// check one second after start) with `AutoUpdate: auto`, and restarts it.
fn configure_updates(c: &Container, server: &FileServer, auto: bool) {
    std::fs::copy(
        server.ca_file(),
        c.root().join("etc/endpoint-agent/update-ca.pem"),
    )
    .unwrap();
    let key = String::from_utf8(fixture("keys/a.pub")).unwrap();
    let dropin = c
        .root()
        .join("etc/systemd/system")
        .join(format!("{UNIT}.d"));
    std::fs::create_dir_all(&dropin).unwrap();
    std::fs::write(
        dropin.join("update-test.conf"),
        format!(
            "[Service]\nEnvironment=ENDPOINT_AGENT_UPDATE_FIRST_CHECK_SECS=1\nEnvironment=ENDPOINT_AGENT_EXTRA_CA=/etc/endpoint-agent/update-ca.pem\nEnvironment=ENDPOINT_AGENT_UPDATE_TEST_KEY={}\n",
            key.lines().nth(1).unwrap()
        ),
    )
    .unwrap();
    std::fs::write(
        c.root().join("etc/endpoint-agent/config.yaml"),
        format!(
            "IntakeKey: {KEY}\nUpdateURL: {}\nAutoUpdate: {auto}\n",
            server.url()
        ),
    )
    .unwrap();
    c.exec_ok(&["systemctl", "daemon-reload"]);
    c.exec_ok(&["systemctl", "restart", UNIT]);
}

#[test]
fn systemd_auto_update_false_makes_no_request() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = FileServer::start().unwrap();
    // The running version: a check finds it up to date and installs nothing.
    server.put(
        "/endpoint-agent/stable/manifest.json",
        fixture("manifests/equal.json"),
    );
    server.put(
        "/endpoint-agent/stable/manifest.json.minisig",
        fixture("manifests/equal.json.minisig"),
    );
    let share = Share::with_agent();
    let c = Container::boot(&share.dir);
    c.exec_ok(&["/mnt/share/agent", "install", "--intake-key", KEY]);

    configure_updates(&c, &server, false);
    std::thread::sleep(Duration::from_secs(15));
    assert_eq!(
        c.unit_property(UNIT, "ActiveState"),
        "active",
        "{}",
        c.journal(UNIT)
    );
    assert!(server.requests().is_empty(), "{:?}", server.requests());

    // The control: the same setup with AutoUpdate: true asks at once.
    configure_updates(&c, &server, true);
    wait_for(&c, "the update check", Duration::from_secs(30), || {
        server
            .requests()
            .iter()
            .any(|p| p.ends_with("/manifest.json"))
    });
    wait_for(
        &c,
        "the check's verdict in the agent log",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(c.root().join("var/log/endpoint-agent/agent.log"))
                .is_ok_and(|l| l.contains("update check: up to date"))
        },
    );
}
