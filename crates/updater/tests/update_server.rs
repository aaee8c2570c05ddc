//! End-to-end update checks against a real HTTPS server on 127.0.0.1 serving manifests and
//! signatures made by the real `minisign` tool (tests/fixtures). Each case asserts the
//! installed binary afterwards: replaced exactly by the release on success, byte-identical
//! (with nothing left beside it) after every refusal.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use agent_testkit::FileServer;
use agent_updater::policy::Request;
use agent_updater::swap::{confirm, on_start, Health};
use agent_updater::{
    manifest, HttpSettings, Layout, Outcome, Refusal, Step, SwapError, TrustError, TrustedKeys,
    UpdateError, UpdaterConfig,
};
use semver::Version;

const OLD_AGENT: &[u8] = b"#!/bin/sh\n[ \"$1\" = --version ] && echo v0.1.0+installed\nexit 0\n";
const DIR: &str = "/endpoint-agent/stable";

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn key(name: &str) -> String {
    String::from_utf8(fixture(&format!("keys/{name}.pub")))
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_owned()
}

struct Host {
    _root: tempfile::TempDir,
    binary: PathBuf,
    state_dir: PathBuf,
    server: FileServer,
    keys: Vec<&'static str>,
}

impl Host {
    /// An installed agent 0.1.0 and an update server that serves every artifact and the
    /// manifest `manifest` (with its signature).
    fn new(manifest: &str) -> Host {
        let root = tempfile::tempdir().unwrap();
        let bin_dir = root.path().join("opt/endpoint-agent");
        let state_dir = root.path().join("var/lib/endpoint-agent");
        std::fs::create_dir_all(&bin_dir).unwrap();
        std::fs::create_dir_all(&state_dir).unwrap();
        let binary = bin_dir.join("agent");
        std::fs::write(&binary, OLD_AGENT).unwrap();
        let server = FileServer::start().unwrap();
        for a in ["agent-0.2.0", "agent-0.3.0", "agent-0.0.9", "agent-liar"] {
            server.put(
                &format!("{DIR}/artifacts/{a}"),
                fixture(&format!("artifacts/{a}")),
            );
        }
        let host = Host {
            _root: root,
            binary,
            state_dir,
            server,
            keys: vec!["a"],
        };
        host.serve(manifest);
        host
    }

    fn serve(&self, manifest: &str) {
        self.server.put(
            &format!("{DIR}/manifest.json"),
            fixture(&format!("manifests/{manifest}.json")),
        );
        self.server.put(
            &format!("{DIR}/manifest.json.minisig"),
            fixture(&format!("manifests/{manifest}.json.minisig")),
        );
    }

    fn layout(&self) -> Layout {
        Layout::new(&self.binary, &self.state_dir)
    }

    fn config(&self, running: &str) -> UpdaterConfig {
        let keys: Vec<String> = self.keys.iter().map(|k| key(k)).collect();
        UpdaterConfig {
            endpoint: self.server.url().parse().unwrap(),
            channel: "stable".to_owned(),
            layout: self.layout(),
            running: Version::parse(running).unwrap(),
            keys: TrustedKeys::from_lines(&keys.join("\n")).unwrap(),
            http: HttpSettings {
                proxy: None,
                proxy_from_env: false,
                extra_ca_file: Some(self.server.ca_file().to_owned()),
                timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(10),
            },
            targets: manifest::target_names(),
        }
    }

    fn check(&self, request: &Request) -> Result<Outcome, UpdateError> {
        self.config("0.1.0").check_blocking(request)
    }

    fn installed(&self) -> Vec<u8> {
        std::fs::read(&self.binary).unwrap()
    }

    /// The installation is exactly as before: same binary, nothing staged or kept beside.
    fn assert_untouched(&self, case: &str) {
        assert_eq!(
            self.installed(),
            OLD_AGENT,
            "{case}: installed binary changed"
        );
        let layout = self.layout();
        assert!(
            !layout.staged().exists(),
            "{case}: a download was left beside the binary"
        );
        assert!(!layout.previous().exists(), "{case}: a swap started");
        let state = layout.load().unwrap();
        assert!(
            state.journal.is_none() && state.accepted.is_none(),
            "{case}: state written: {state:?}"
        );
    }

    fn artifact_requested(&self) -> bool {
        self.server
            .requests()
            .iter()
            .any(|p| p.contains("/artifacts/"))
    }
}

fn path_of(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn a_valid_update_is_installed_confirmed_and_the_previous_binary_kept() {
    let host = Host::new("good");
    let out = host.check(&Request::default()).unwrap();
    assert_eq!(
        out,
        Outcome::Installed {
            from: Version::new(0, 1, 0),
            to: Version::new(0, 2, 0),
            serial: 2,
            downgrade: false
        }
    );
    assert_eq!(host.installed(), fixture("artifacts/agent-0.2.0"));
    let layout = host.layout();
    assert_eq!(std::fs::read(layout.previous()).unwrap(), OLD_AGENT);
    assert!(!layout.staged().exists());
    let state = layout.load().unwrap();
    assert_eq!(state.journal.as_ref().unwrap().step, Step::Swapped);
    assert_eq!(state.accepted.as_ref().unwrap().serial, 2);

    // A second check before the new version confirmed: refused, nothing downloaded.
    let requests = host.server.requests().len();
    assert!(matches!(
        host.check(&Request::default()),
        Err(UpdateError::Unconfirmed { .. })
    ));
    assert_eq!(host.server.requests().len(), requests);

    // The new binary starts, runs healthy, confirms.
    let v2 = Version::new(0, 2, 0);
    let action = on_start(&layout, &v2, &Health::default()).unwrap();
    assert!(
        matches!(
            action,
            agent_updater::StartAction::ConfirmAfterGrace { start: 1, .. }
        ),
        "{action:?}"
    );
    assert!(confirm(&layout, &v2).unwrap());
    assert_eq!(
        layout.load().unwrap().journal.unwrap().step,
        Step::Confirmed
    );

    // The same manifest again: up to date.
    let again = host
        .config("0.2.0")
        .check_blocking(&Request::default())
        .unwrap();
    assert_eq!(
        again,
        Outcome::UpToDate {
            version: v2,
            serial: 2
        }
    );
    assert_eq!(host.installed(), fixture("artifacts/agent-0.2.0"));
}

#[test]
fn untrusted_manifests_are_refused_before_any_download() {
    for (manifest, want) in [
        ("bad-signature", "BadSignature"),
        ("unknown-key", "UnknownKey"),
        ("comment-mismatch", "CommentMismatch"),
    ] {
        let host = Host::new(manifest);
        let err = host.check(&Request::default()).unwrap_err();
        let ok = match &err {
            UpdateError::Trust(TrustError::BadSignature) => want == "BadSignature",
            UpdateError::Trust(TrustError::UnknownKey) => want == "UnknownKey",
            UpdateError::Trust(TrustError::CommentMismatch(_)) => want == "CommentMismatch",
            _ => false,
        };
        assert!(ok, "{manifest}: {err}");
        assert!(!host.artifact_requested(), "{manifest}");
        host.assert_untouched(manifest);
    }
}

#[test]
fn artifacts_that_differ_from_the_manifest_are_refused() {
    let good = fixture("artifacts/agent-0.2.0");
    let artifact = format!("{DIR}/artifacts/agent-0.2.0");

    let host = Host::new("good");
    let mut tampered = good.clone();
    let i = tampered.len() - 3;
    tampered[i] ^= 0x01;
    host.server.put(&artifact, tampered);
    let err = host.check(&Request::default()).unwrap_err();
    assert!(
        matches!(err, UpdateError::Swap(SwapError::Hash { .. })),
        "tampered: {err}"
    );
    host.assert_untouched("tampered");

    let host = Host::new("good");
    let mut oversize = good.clone();
    oversize.extend_from_slice(b"echo extra\n");
    host.server.put(&artifact, oversize);
    let err = host.check(&Request::default()).unwrap_err();
    assert!(
        matches!(err, UpdateError::Swap(SwapError::Oversize { .. })),
        "oversize: {err}"
    );
    host.assert_untouched("oversize");

    let host = Host::new("good");
    host.server.put(&artifact, good[..good.len() - 5].to_vec());
    let err = host.check(&Request::default()).unwrap_err();
    assert!(
        matches!(err, UpdateError::Swap(SwapError::Truncated { .. })),
        "truncated: {err}"
    );
    host.assert_untouched("truncated");

    // The connection dies mid-download.
    let host = Host::new("good");
    host.server.put_cut(&artifact, good.clone(), 20);
    let err = host.check(&Request::default()).unwrap_err();
    assert!(
        matches!(
            err,
            UpdateError::Fetch {
                what: "artifact",
                ..
            }
        ),
        "cut: {err}"
    );
    host.assert_untouched("network failure mid-download");

    // The right bytes, but the binary answers another version.
    let host = Host::new("liar");
    let err = host.check(&Request::default()).unwrap_err();
    assert!(
        matches!(err, UpdateError::Swap(SwapError::VersionCheck(_))),
        "liar: {err}"
    );
    host.assert_untouched("version check");
}

#[test]
fn expired_older_and_replayed_manifests_are_refused_equal_is_up_to_date() {
    let host = Host::new("expired");
    let err = host.check(&Request::default()).unwrap_err();
    assert!(
        matches!(err, UpdateError::Refused(Refusal::Expired { .. })),
        "{err}"
    );
    host.assert_untouched("expired");

    let host = Host::new("older");
    let err = host.check(&Request::default()).unwrap_err();
    assert!(
        matches!(err, UpdateError::Refused(Refusal::Older { .. })),
        "{err}"
    );
    host.assert_untouched("older");

    let host = Host::new("equal");
    let out = host.check(&Request::default()).unwrap();
    assert!(matches!(out, Outcome::UpToDate { .. }), "{out:?}");
    assert!(!host.artifact_requested());
    host.assert_untouched("equal");

    // A replay of serial 2 to an agent that already accepted serial 5.
    let host = Host::new("good");
    agent_updater::UpdateState {
        accepted: Some(agent_updater::Accepted {
            serial: 5,
            version: Version::new(0, 1, 0),
        }),
        journal: None,
    }
    .save(&host.layout().state_file)
    .unwrap();
    let err = host.check(&Request::default()).unwrap_err();
    assert!(
        matches!(
            err,
            UpdateError::Refused(Refusal::StaleSerial {
                offered: 2,
                accepted: 5
            })
        ),
        "{err}"
    );
    assert_eq!(host.installed(), OLD_AGENT);
    assert!(!host.layout().staged().exists());
}

#[test]
fn downgrade_only_with_the_flag_and_the_version() {
    let host = Host::new("older");
    let flag_only = Request {
        version: None,
        allow_downgrade: true,
    };
    assert!(host.check(&flag_only).is_err());
    host.assert_untouched("flag without version");
    let both = Request {
        version: Some(Version::new(0, 0, 9)),
        allow_downgrade: true,
    };
    let out = host.check(&both).unwrap();
    assert!(
        matches!(
            out,
            Outcome::Installed {
                downgrade: true,
                ..
            }
        ),
        "{out:?}"
    );
    assert_eq!(host.installed(), fixture("artifacts/agent-0.0.9"));
}

#[test]
fn key_rotation_release_by_the_new_key_once_the_agent_knows_it() {
    let mut host = Host::new("rotated");
    let err = host.check(&Request::default()).unwrap_err();
    assert!(
        matches!(err, UpdateError::Trust(TrustError::UnknownKey)),
        "{err}"
    );
    host.assert_untouched("new key unknown");
    host.keys = vec!["a", "b"];
    let out = host.check(&Request::default()).unwrap();
    assert!(
        matches!(&out, Outcome::Installed { to, .. } if *to == Version::new(0, 3, 0)),
        "{out:?}"
    );
    assert_eq!(host.installed(), fixture("artifacts/agent-0.3.0"));
}

#[test]
fn packaged_installs_and_unreachable_servers_change_nothing() {
    let host = Host::new("good");
    let marker = agent_updater::packaged_marker(&host.binary);
    std::fs::write(&marker, b"").unwrap();
    let err = host.check(&Request::default()).unwrap_err();
    assert!(matches!(err, UpdateError::PackageManaged { .. }), "{err}");
    assert!(err.to_string().contains(&path_of(&marker)), "{err}");
    assert!(
        host.server.requests().is_empty(),
        "a packaged install made a request"
    );
    std::fs::remove_file(&marker).unwrap();
    host.assert_untouched("packaged");

    // Nothing listens on the port any more.
    let host = Host::new("good");
    let cfg = host.config("0.1.0");
    drop(host.server);
    let err = cfg.check_blocking(&Request::default()).unwrap_err();
    assert!(
        matches!(
            err,
            UpdateError::Fetch {
                what: "manifest",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(std::fs::read(&host.binary).unwrap(), OLD_AGENT);
    assert!(!cfg.layout.staged().exists());
}

#[test]
fn background_checks_only_with_auto_update_and_confirms_a_healthy_version() {
    use agent_updater::background::{Background, Schedule};
    use std::sync::mpsc;

    let fast = Schedule {
        first_check: Duration::from_millis(10),
        interval: Duration::from_secs(3600),
        jitter: Duration::from_millis(50),
    };

    // AutoUpdate: false: no request at all.
    let host = Host::new("good");
    let off = Background {
        layout: host.layout(),
        running: Version::new(0, 1, 0),
        probation: None,
        updater: None,
        schedule: fast.clone(),
    };
    let running = off
        .clone()
        .spawn(|| true, |_| panic!("no restart without updates"))
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    running.stop();
    assert!(
        host.server.requests().is_empty(),
        "{:?}",
        host.server.requests()
    );
    host.assert_untouched("AutoUpdate false");

    // AutoUpdate: true: checks right after start, installs, asks for a restart.
    let on = Background {
        updater: Some(host.config("0.1.0")),
        ..off
    };
    let (tx, rx) = mpsc::channel();
    let running = on
        .spawn(|| true, move |why| tx.send(why.to_owned()).unwrap())
        .unwrap();
    let why = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    running.stop();
    assert!(why.contains("0.2.0"), "{why}");
    assert_eq!(host.installed(), fixture("artifacts/agent-0.2.0"));

    // The new version starts on probation and confirms itself after the grace period
    // once healthy.
    let v2 = Version::new(0, 2, 0);
    let health = Health {
        grace: Duration::from_millis(100),
        ..Health::default()
    };
    assert!(matches!(
        on_start(&host.layout(), &v2, &health).unwrap(),
        agent_updater::StartAction::ConfirmAfterGrace { .. }
    ));
    let probation = Background {
        layout: host.layout(),
        running: v2,
        probation: Some(health),
        updater: None,
        schedule: fast,
    };
    let running = probation.spawn(|| true, |_| panic!("healthy")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while host.layout().load().unwrap().journal.unwrap().step != Step::Confirmed {
        assert!(std::time::Instant::now() < deadline, "not confirmed");
        std::thread::sleep(Duration::from_millis(20));
    }
    running.stop();
}
