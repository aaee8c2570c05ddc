//! `agent update` end to end: the real binary against a local HTTPS update server serving
//! minisign-signed fixtures (crates/updater/tests/fixtures), on an installation under a
//! temporary root. The fixtures' test key is trusted through the debug-build-only
//! ENDPOINT_AGENT_UPDATE_TEST_KEY; release builds trust the compiled-in release keys only.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::Command;

use agent_testkit::FileServer;

const OLD_AGENT: &[u8] = b"#!/bin/sh\n[ \"$1\" = --version ] && echo v0.1.0+installed\nexit 0\n";
const DIR: &str = "/endpoint-agent/stable";

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../crates/updater/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

struct Install {
    root: tempfile::TempDir,
    server: FileServer,
}

impl Install {
    fn new(manifest: &str) -> Install {
        let root = tempfile::tempdir().unwrap();
        let bin = root.path().join("opt/endpoint-agent");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("agent"), OLD_AGENT).unwrap();
        let server = FileServer::start().unwrap();
        let etc = root.path().join("etc/endpoint-agent");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(
            etc.join("config.yaml"),
            format!("UpdateURL: {}\n", server.url()),
        )
        .unwrap();
        server.put(
            &format!("{DIR}/artifacts/agent-0.2.0"),
            fixture("artifacts/agent-0.2.0"),
        );
        server.put(
            &format!("{DIR}/manifest.json"),
            fixture(&format!("manifests/{manifest}.json")),
        );
        server.put(
            &format!("{DIR}/manifest.json.minisig"),
            fixture(&format!("manifests/{manifest}.json.minisig")),
        );
        Install { root, server }
    }

    fn binary(&self) -> PathBuf {
        self.root.path().join("opt/endpoint-agent/agent")
    }

    fn update(&self, args: &[&str]) -> (i32, String, String) {
        let key = String::from_utf8(fixture("keys/a.pub")).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_agent"))
            .arg("update")
            .args(args)
            .env("ENDPOINT_AGENT_ROOT", self.root.path())
            .env("ENDPOINT_AGENT_EXTRA_CA", self.server.ca_file())
            .env(
                "ENDPOINT_AGENT_UPDATE_TEST_KEY",
                key.lines().nth(1).unwrap(),
            )
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn exists(p: &Path) -> bool {
    p.exists()
}

#[test]
fn agent_update_installs_a_signed_release_and_says_so() {
    let install = Install::new("good");
    let (code, out, err) = install.update(&[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("updated 0.1.0 -> 0.2.0"), "{out}");
    assert!(out.contains("runs from the next start"), "{out}");
    assert_eq!(
        std::fs::read(install.binary()).unwrap(),
        fixture("artifacts/agent-0.2.0")
    );
    let previous = install.binary().with_file_name("agent.previous");
    assert_eq!(std::fs::read(previous).unwrap(), OLD_AGENT);
}

#[test]
fn agent_update_refusals_change_nothing() {
    for manifest in ["bad-signature", "unknown-key", "expired", "older"] {
        let install = Install::new(manifest);
        let (code, out, err) = install.update(&[]);
        assert_eq!(code, 1, "{manifest}: {out}\n{err}");
        assert!(err.contains("nothing was changed"), "{manifest}: {err}");
        assert_eq!(
            std::fs::read(install.binary()).unwrap(),
            OLD_AGENT,
            "{manifest}"
        );
        assert!(
            !exists(&install.binary().with_file_name("agent.new")),
            "{manifest}"
        );
        assert!(
            !install
                .server
                .requests()
                .iter()
                .any(|p| p.contains("artifacts")),
            "{manifest}: artifact downloaded"
        );
    }
    let install = Install::new("equal");
    let (code, out, _) = install.update(&[]);
    assert_eq!(code, 0);
    assert!(out.contains("up to date"), "{out}");
    assert_eq!(std::fs::read(install.binary()).unwrap(), OLD_AGENT);
}

#[test]
fn a_packaged_install_is_left_to_the_package_manager() {
    let install = Install::new("good");
    std::fs::write(install.binary().with_file_name(".packaged"), b"deb\n").unwrap();
    let (code, out, err) = install.update(&[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("installed from a package"), "{out}");
    assert!(install.server.requests().is_empty());
    assert_eq!(std::fs::read(install.binary()).unwrap(), OLD_AGENT);
}
