//! The updater's start check in the real `agent run`: an updated binary on probation that is
//! killed (`kill -9`) before it confirms itself counts its starts, and the start after the
//! last allowed one puts the previous binary back and exits, so that the service manager
//! starts the restored version. Runs on an installation under a temporary root, without a
//! service manager (the systemd container scenarios are not written yet).
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agent_testkit::Intake;
use agent_updater::{Journal, Step, UpdateState};
use semver::Version;

const PREVIOUS: &[u8] = b"#!/bin/sh\n[ \"$1\" = --version ] && echo v0.0.9+previous\nexit 0\n";

struct Root {
    dir: tempfile::TempDir,
    _intake: Intake,
}

impl Root {
    fn new() -> Root {
        let dir = tempfile::tempdir().unwrap();
        let intake = Intake::start().unwrap();
        let bin = dir.path().join("opt/endpoint-agent");
        std::fs::create_dir_all(&bin).unwrap();
        // The "new" version is this build; the previous one a stand-in.
        std::fs::copy(env!("CARGO_BIN_EXE_agent"), bin.join("agent")).unwrap();
        std::fs::write(bin.join("agent.previous"), PREVIOUS).unwrap();
        std::fs::set_permissions(
            bin.join("agent.previous"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let etc = dir.path().join("etc/endpoint-agent");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(
            etc.join("config.yaml"),
            format!(
                "IntakeKey: aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY\nIntakeURL: {}\nAutoUpdate: false\nroles: [compliance-collector]\n",
                intake.url()
            ),
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("var/lib/endpoint-agent")).unwrap();
        std::fs::create_dir_all(dir.path().join("var/log/endpoint-agent")).unwrap();
        let root = Root {
            dir,
            _intake: intake,
        };
        let binary = root.binary();
        UpdateState {
            accepted: None,
            journal: Some(Journal {
                step: Step::Swapped,
                from: Version::new(0, 0, 9),
                to: Version::parse(env!("CARGO_PKG_VERSION")).unwrap(),
                serial: 2,
                staged: binary.with_file_name("agent.new"),
                previous: binary.with_file_name("agent.previous"),
                binary,
                prior_accepted: None,
                starts: 0,
                first_start: None,
                updated: 0,
                reason: None,
                reported: false,
            }),
        }
        .save(&root.state_file())
        .unwrap();
        root
    }

    fn binary(&self) -> PathBuf {
        self.dir.path().join("opt/endpoint-agent/agent")
    }

    fn state_file(&self) -> PathBuf {
        self.dir
            .path()
            .join("var/lib/endpoint-agent/update-state.json")
    }

    fn journal(&self) -> Journal {
        UpdateState::load(&self.state_file())
            .unwrap()
            .journal
            .unwrap()
    }

    fn agent_run(&self) -> Command {
        let mut cmd = Command::new(self.binary());
        cmd.arg("run")
            .env("ENDPOINT_AGENT_ROOT", self.dir.path())
            .env("ENDPOINT_AGENT_EXTRA_CA", self._intake.ca_file())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

#[test]
fn a_new_version_killed_before_confirming_is_rolled_back_at_the_start_after_the_third() {
    let root = Root::new();
    let new_binary = bytes(&root.binary());
    for start in 1..=3 {
        let mut agent = root.agent_run().spawn().unwrap();
        wait_for(
            &format!("start {start} to be counted"),
            Duration::from_secs(30),
            || root.journal().starts == start,
        );
        // The agent is up (its start is durable in the journal); kill -9 before the grace
        // period ends.
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            agent.try_wait().unwrap().is_none(),
            "start {start}: the agent exited on its own"
        );
        agent.kill().unwrap();
        agent.wait().unwrap();
        assert_eq!(
            bytes(&root.binary()),
            new_binary,
            "start {start}: binary changed"
        );
        assert_eq!(root.journal().step, Step::Swapped);
    }

    // The fourth start gives up on it: previous binary back, journal rolled-back, exit 1.
    let out = root.agent_run().output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("rolled back to 0.0.9"), "{stderr}");
    assert_eq!(bytes(&root.binary()), PREVIOUS);
    let journal = root.journal();
    assert_eq!(journal.step, Step::RolledBack);
    assert!(
        !journal.reported,
        "reported by the restored version at its start"
    );
    assert!(journal.reason.unwrap().contains("3 starts"));
    // What the service manager would start next is the restored binary.
    let version = Command::new(root.binary())
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        "v0.0.9+previous"
    );
}
