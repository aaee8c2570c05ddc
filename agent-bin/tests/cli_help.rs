//! `agent --version`, `agent -h` and the honest exit status of unimplemented commands,
//! through the real binary.

use std::process::Command;

const AGENT: &str = env!("CARGO_BIN_EXE_agent");

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(AGENT).args(args).output().unwrap();
    (
        out.status.code().expect("agent was killed by a signal"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn version_is_v_semver_plus_git_sha() {
    let (code, out, _) = run(&["--version"]);
    assert_eq!(code, 0);
    let line = out.trim();
    let rest = line
        .strip_prefix(concat!("v", env!("CARGO_PKG_VERSION")))
        .unwrap_or_else(|| panic!("not v<semver>: {line}"));
    match rest.strip_prefix('+') {
        Some(sha) => {
            assert_eq!(sha.len(), 40, "{line}");
            assert!(sha.bytes().all(|b| b.is_ascii_hexdigit()), "{line}");
        }
        // No suffix is only right for a build outside a git checkout.
        None => {
            assert!(rest.is_empty(), "{line}");
            let in_git = Command::new("git")
                .args(["rev-parse", "HEAD"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()
                .is_ok_and(|o| o.status.success());
            assert!(!in_git, "built inside git but no +sha: {line}");
        }
    }
}

#[test]
fn help_lists_every_command() {
    for flag in ["-h", "--help"] {
        let (code, out, _) = run(&[flag]);
        assert_eq!(code, 0, "{flag}");
        for cmd in [
            "install",
            "update",
            "uninstall",
            "run",
            "config",
            "config check",
        ] {
            assert!(out.contains(cmd), "{flag}: `{cmd}` missing from\n{out}");
        }
    }
}

#[test]
fn each_command_has_its_own_help() {
    for (args, expect) in [
        (&["install", "-h"][..], "Usage: agent install"),
        (&["update", "-h"][..], "Usage: agent update"),
        (&["uninstall", "-h"][..], "Usage: agent uninstall"),
        (&["service", "-h"][..], "Usage: agent service"),
        (&["run", "-h"][..], "Usage: agent run"),
        (&["config", "-h"][..], "Usage: agent config"),
        (&["config", "check", "-h"][..], "Usage: agent config check"),
        (
            &["config", "check", "--help"][..],
            "Usage: agent config check",
        ),
    ] {
        let (code, out, err) = run(args);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(out.starts_with(expect), "{args:?}:\n{out}");
    }
}

#[test]
fn service_commands_list_their_real_options_and_subcommands() {
    for flag in ["-h", "--help"] {
        let (code, out, err) = run(&["install", flag]);
        assert_eq!(code, 0, "{err}");
        for option in [
            "--intake-key",
            "--region",
            "--intake-url",
            "--disable-auto-update",
            "--force",
            "-h, --help",
        ] {
            assert!(
                out.contains(option),
                "install {flag}: `{option}` missing from\n{out}"
            );
        }

        let (code, out, err) = run(&["service", flag]);
        assert_eq!(code, 0, "{err}");
        assert!(out.starts_with("Usage: agent service <command>"), "{out}");
        for sub in ["start ", "stop ", "restart ", "status ", "-h, --help"] {
            assert!(
                out.contains(sub),
                "service {flag}: `{sub}` missing from\n{out}"
            );
        }
        let (code, out, _) = run(&["service", "status", flag]);
        assert_eq!(code, 0);
        assert!(out.contains("exit 0 when running, 3 otherwise"), "{out}");

        // uninstall has no option: its help says what it removes instead.
        let (code, out, err) = run(&["uninstall", flag]);
        assert_eq!(code, 0, "{err}");
        for what in ["-h, --help", "config.yaml", "state and log directories"] {
            assert!(
                out.contains(what),
                "uninstall {flag}: `{what}` missing from\n{out}"
            );
        }
    }
    // A wrong action is a usage error that names it.
    let (code, _, err) = run(&["service", "reload"]);
    assert_eq!(code, 2);
    assert!(err.contains("reload"), "{err}");
}

#[test]
fn update_downgrade_without_a_version_is_a_usage_error() {
    let (code, out, err) = run(&["update", "--allow-downgrade"]);
    assert_eq!(code, 2);
    assert!(err.contains("--version"), "{err}");
    assert!(out.is_empty(), "{out}");
}

#[test]
fn run_without_an_intake_key_explains_how_to_install_or_use_console() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "EnableDNSResolutions: true\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_agent"))
        .args(["run", "--config"])
        .arg(&config)
        .env("ENDPOINT_AGENT_ROOT", dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no IntakeKey"), "{err}");
    assert!(err.contains("agent install --intake-key"), "{err}");
    assert!(err.contains("--console"), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    let (code, _, err) = run(&["frobnicate"]);
    assert_eq!(code, 2);
    assert!(err.contains("Unrecognized argument"), "{err}");
    let (code, _, err) = run(&[]);
    assert_eq!(code, 2);
    assert!(err.contains("--help"), "{err}");
}
