//! Model test of install / uninstall: random sequences of installs (valid or bad key, same or
//! other key, with or without --force), agent activity, binary replacement (what an update
//! does) and uninstalls, against a temporary root that starts with a random set of the usual
//! directories. Checked after every step against a tiny model: which operations must
//! succeed, that a refused operation changes nothing, and that uninstall always returns the
//! root to exactly its initial state. Runs the real code with the "none" service manager.
//! Needs root (install checks it).
#![cfg(unix)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use agent_config::paths::{Os, Paths};
use agent_service::config_file::ConfigRequest;
use agent_service::lifecycle::{install, uninstall, InstallOptions};
use agent_service::NoServiceManager;
use proptest::prelude::*;

const KEYS: [&str; 2] = [
    "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY",
    "Zz9yX8wV7uT6sR5qP4oN3mL2kJ1hG0fE",
];

#[derive(Debug, Clone)]
enum Op {
    /// Install with KEYS[key], or a malformed key when `bad`.
    Install {
        key: usize,
        bad: bool,
        force: bool,
    },
    /// The running agent writes its log and ring.
    AgentActivity,
    /// The installed binary is replaced by another build (auto-update).
    ReplaceBinary,
    Uninstall,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2usize, prop::bool::weighted(0.15), any::<bool>())
            .prop_map(|(key, bad, force)| Op::Install { key, bad, force }),
        2 => Just(Op::AgentActivity),
        1 => Just(Op::ReplaceBinary),
        3 => Just(Op::Uninstall),
    ]
}

/// Directories a host may already have.
const HOST_DIRS: [&str; 6] = ["etc", "opt", "var/log", "var/lib", "var/log/apt", "etc/ssh"];

fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap().flatten() {
            let path = e.path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(base).unwrap().display().to_string();
            let mode = meta.permissions().mode() & 0o7777;
            let content = if meta.is_file() {
                fnv1a(&fs::read(&path).unwrap())
            } else {
                0
            };
            out.push(format!("{rel} {mode:o} {content:x}"));
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

/// FNV-1a: enough to notice a changed file in a snapshot.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

struct Model {
    /// Key of the current installation.
    installed: Option<usize>,
    /// The installed binary differs from the one being installed.
    binary_replaced: bool,
}

fn run(host_dirs: Vec<bool>, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    fs::create_dir(&root).unwrap();
    for (dir, present) in HOST_DIRS.iter().zip(&host_dirs) {
        if *present {
            fs::create_dir_all(root.join(dir)).unwrap();
        }
    }
    fs::write(root.join("host-file"), b"not ours").unwrap();
    let source = tmp.path().join("agent-build");
    fs::write(&source, b"\x7fELF build 1").unwrap();

    let paths = Paths::for_os(Os::Linux).with_root(&root);
    let initial = tree(&root);
    let mut model = Model {
        installed: None,
        binary_replaced: false,
    };

    for op in ops {
        let before = tree(&root);
        match op {
            Op::Install { key, bad, force } => {
                let intake_key = if bad {
                    format!("{} bad", KEYS[key])
                } else {
                    KEYS[key].to_owned()
                };
                let opts = InstallOptions {
                    config: ConfigRequest {
                        intake_key,
                        region: None,
                        intake_url: None,
                        auto_update: None,
                    },
                    force,
                    source_binary: source.clone(),
                    seed_config: None,
                };
                let expect_ok = !bad
                    && (force
                        || model.installed.is_none()
                        || (model.installed == Some(key) && !model.binary_replaced));
                let result = install(&opts, &paths, &NoServiceManager);
                prop_assert_eq!(result.is_ok(), expect_ok, "{:?}: {:?}", op, result.err());
                if expect_ok {
                    model.installed = Some(key);
                    model.binary_replaced = false;
                    let config = fs::read_to_string(&paths.config_file).unwrap();
                    prop_assert!(config.contains(KEYS[key]));
                    prop_assert_eq!(mode(&paths.config_file), 0o600);
                    prop_assert_eq!(mode(&paths.binary), 0o755);
                    prop_assert_eq!(fs::read(&paths.binary).unwrap(), fs::read(&source).unwrap());
                } else {
                    prop_assert_eq!(tree(&root), before, "refused install changed files");
                }
            }
            Op::AgentActivity => {
                if model.installed.is_some() {
                    fs::write(&paths.log_file, b"agent started\n").unwrap();
                    let ring = paths.state_dir.join("ring");
                    fs::create_dir_all(&ring).unwrap();
                    fs::write(ring.join("0001.seg"), [7u8; 32]).unwrap();
                }
            }
            Op::ReplaceBinary => {
                if model.installed.is_some() {
                    fs::write(&paths.binary, b"\x7fELF build 2").unwrap();
                    model.binary_replaced = true;
                }
            }
            Op::Uninstall => {
                let done = uninstall(&paths, &NoServiceManager).unwrap();
                prop_assert_eq!(done.was_installed, model.installed.is_some());
                prop_assert_eq!(
                    tree(&root),
                    initial.clone(),
                    "uninstall did not restore the root"
                );
                model.installed = None;
                model.binary_replaced = false;
            }
        }
    }
    uninstall(&paths, &NoServiceManager).unwrap();
    prop_assert_eq!(tree(&root), initial);
    Ok(())
}

fn mode(p: &PathBuf) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn install_uninstall_sequences_match_the_model(
        host_dirs in prop::collection::vec(any::<bool>(), HOST_DIRS.len()),
        ops in prop::collection::vec(op(), 1..12),
    ) {
        run(host_dirs, ops)?;
    }
}
