//! `agent install` / `agent uninstall` against a temporary root (`ENDPOINT_AGENT_ROOT`): the
//! real code, real files and modes, and no service manager touched.
#![cfg(target_os = "linux")]

#[path = "install_common.rs"]
mod common;

use std::fs;

use common::{describe, Sandbox, KEY, OTHER_KEY};

/// The documented layout (docs/service.md) in an empty root.
const LAYOUT: &[&str] = &[
    "d 755 etc",
    "d 755 etc/endpoint-agent",
    "d 755 opt",
    "d 755 opt/endpoint-agent",
    "d 755 var",
    "d 755 var/lib",
    "d 700 var/lib/endpoint-agent",
    "d 755 var/log",
    "d 750 var/log/endpoint-agent",
    "f 600 etc/endpoint-agent/config.yaml",
    "f 600 var/lib/endpoint-agent/install-manifest",
    "f 755 opt/endpoint-agent/agent",
];

fn config_text(s: &Sandbox) -> String {
    fs::read_to_string(s.at("etc/endpoint-agent/config.yaml")).unwrap()
}

fn config_value(s: &Sandbox, key: &str) -> Option<String> {
    let text = config_text(s);
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().trim_matches(|c| c == '\'' || c == '"').to_owned())
}

#[test]
fn install_lays_out_exactly_the_documented_files_and_modes() {
    let s = Sandbox::new();
    let out = s.agent_ok(&["install", "--intake-key", KEY, "--region", "fra2"]);

    let mut expected: Vec<String> = LAYOUT.iter().map(|l| l.to_string()).collect();
    expected.sort();
    assert_eq!(s.tree(), expected);
    assert_eq!(
        fs::read(s.at("opt/endpoint-agent/agent")).unwrap(),
        fs::read(env!("CARGO_BIN_EXE_agent")).unwrap(),
        "the installed binary is a copy of the running one"
    );
    assert_eq!(config_value(&s, "IntakeKey").as_deref(), Some(KEY));
    assert_eq!(config_value(&s, "Region").as_deref(), Some("fra2"));
    assert_eq!(config_value(&s, "AutoUpdate").as_deref(), Some("true"));

    let stdout = String::from_utf8_lossy(&out.stdout);
    let config_path = s.at("etc/endpoint-agent/config.yaml");
    let log_path = s.at("var/log/endpoint-agent/agent.log");
    assert!(
        stdout.contains(&config_path.display().to_string()),
        "{stdout}"
    );
    assert!(stdout.contains(&log_path.display().to_string()), "{stdout}");
    assert!(stdout.contains("not registered"), "{stdout}");
}

#[test]
fn disable_auto_update_is_written() {
    let s = Sandbox::new();
    s.agent_ok(&["install", "--intake-key", KEY, "--disable-auto-update"]);
    assert_eq!(config_value(&s, "AutoUpdate").as_deref(), Some("false"));
}

#[test]
fn install_merges_the_config_yaml_of_the_current_directory() {
    let s = Sandbox::new();
    fs::write(
        s.cwd.path().join("config.yaml"),
        "HTTPProxyURL: \"http://user:pass@proxy.example:3128\"\n\
         logfiles:\n  - filepath: /var/log/nginx/*.log\n    intakekey: nginxkey\n",
    )
    .unwrap();
    s.agent_ok(&["install", "--intake-key", KEY]);
    let text = config_text(&s);
    assert_eq!(
        config_value(&s, "HTTPProxyURL").as_deref(),
        Some("http://user:pass@proxy.example:3128")
    );
    assert!(text.contains("/var/log/nginx/*.log"), "{text}");
    assert!(text.contains("nginxkey"), "{text}");
    assert_eq!(config_value(&s, "IntakeKey").as_deref(), Some(KEY));
}

#[test]
fn command_line_settings_win_over_the_seed_config() {
    let s = Sandbox::new();
    fs::write(
        s.cwd.path().join("config.yaml"),
        format!("IntakeKey: {OTHER_KEY}\nRegion: usa1\n"),
    )
    .unwrap();
    s.agent_ok(&["install", "--intake-key", KEY, "--region", "sgp1"]);
    assert_eq!(config_value(&s, "IntakeKey").as_deref(), Some(KEY));
    assert_eq!(config_value(&s, "Region").as_deref(), Some("sgp1"));
}

fn assert_rejected_without_writing(s: &Sandbox, args: &[&str], needle: &str) {
    let before = s.tree();
    let out = s.agent(args);
    assert!(
        !out.status.success(),
        "accepted {args:?}:\n{}",
        describe(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.to_lowercase().contains(&needle.to_lowercase()),
        "stderr does not mention {needle:?}: {stderr}"
    );
    assert_eq!(s.tree(), before, "a rejected install wrote files");
}

#[test]
fn bad_intake_key_is_rejected_before_anything_is_written() {
    let s = Sandbox::new();
    assert_rejected_without_writing(&s, &["install", "--intake-key", ""], "intake key");
    assert_rejected_without_writing(
        &s,
        &["install", "--intake-key", "has spaces in it"],
        "intake key",
    );
}

#[test]
fn bad_region_is_rejected_before_anything_is_written() {
    let s = Sandbox::new();
    assert_rejected_without_writing(
        &s,
        &["install", "--intake-key", KEY, "--region", "mars1"],
        "mars1",
    );
}

#[test]
fn broken_seed_config_is_rejected_before_anything_is_written() {
    let s = Sandbox::new();
    fs::write(
        s.cwd.path().join("config.yaml"),
        "HTTPProxyURL: [unclosed\n",
    )
    .unwrap();
    assert_rejected_without_writing(&s, &["install", "--intake-key", KEY], "config.yaml");
}

#[test]
fn a_different_install_is_not_replaced_without_force() {
    let s = Sandbox::new();
    s.agent_ok(&["install", "--intake-key", KEY]);
    let config_before = config_text(&s);

    let out = s.agent(&["install", "--intake-key", OTHER_KEY]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert_eq!(
        config_text(&s),
        config_before,
        "config changed without --force"
    );

    s.agent_ok(&["install", "--intake-key", OTHER_KEY, "--force"]);
    assert_eq!(config_value(&s, "IntakeKey").as_deref(), Some(OTHER_KEY));
}

#[test]
fn a_different_binary_is_not_replaced_without_force() {
    let s = Sandbox::new();
    s.agent_ok(&["install", "--intake-key", KEY]);
    fs::write(
        s.at("opt/endpoint-agent/agent"),
        b"#!/bin/sh\necho other build\n",
    )
    .unwrap();
    let out = s.agent(&["install", "--intake-key", KEY]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("binary"));
    s.agent_ok(&["install", "--intake-key", KEY, "--force"]);
    assert_eq!(
        fs::read(s.at("opt/endpoint-agent/agent")).unwrap(),
        fs::read(env!("CARGO_BIN_EXE_agent")).unwrap()
    );
}

#[test]
fn reinstalling_the_same_install_keeps_settings_added_since() {
    let s = Sandbox::new();
    s.agent_ok(&["install", "--intake-key", KEY]);
    let config = s.at("etc/endpoint-agent/config.yaml");
    let mut text = config_text(&s);
    text.push_str("HTTPProxyURL: http://proxy.example:3128\n");
    fs::write(&config, text).unwrap();
    let tree = s.tree();

    s.agent_ok(&["install", "--intake-key", KEY]);
    assert_eq!(s.tree(), tree);
    assert_eq!(
        config_value(&s, "HTTPProxyURL").as_deref(),
        Some("http://proxy.example:3128")
    );
}

#[test]
fn uninstall_leaves_an_empty_root_exactly_as_before() {
    let s = Sandbox::new();
    s.agent_ok(&["install", "--intake-key", KEY]);
    // What a running agent adds: its log, rotated logs, ring segments.
    fs::write(s.at("var/log/endpoint-agent/agent.log"), "started\n").unwrap();
    fs::write(s.at("var/log/endpoint-agent/agent.log.1"), "older\n").unwrap();
    fs::create_dir(s.at("var/lib/endpoint-agent/ring")).unwrap();
    fs::write(s.at("var/lib/endpoint-agent/ring/00000001.seg"), [0u8; 64]).unwrap();

    let out = s.agent_ok(&["uninstall"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Uninstalled"));
    assert_eq!(s.tree(), Vec::<String>::new());
}

#[test]
fn uninstall_leaves_a_populated_root_exactly_as_before_and_is_idempotent() {
    let s = Sandbox::new();
    // A host with the usual directories and files that are not ours.
    for dir in ["etc/ssh", "opt/other", "var/lib/dpkg", "var/log/apt"] {
        fs::create_dir_all(s.at(dir)).unwrap();
    }
    fs::write(s.at("etc/hostname"), "host\n").unwrap();
    fs::write(s.at("var/log/syslog"), "x\n").unwrap();
    let before = s.tree();

    s.agent_ok(&["install", "--intake-key", KEY]);
    assert_ne!(s.tree(), before);
    s.agent_ok(&["uninstall"]);
    assert_eq!(s.tree(), before);

    let again = s.agent_ok(&["uninstall"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("not installed"));
    assert_eq!(s.tree(), before);
}

#[test]
fn uninstall_keeps_files_it_did_not_create() {
    let s = Sandbox::new();
    s.agent_ok(&["install", "--intake-key", KEY]);
    fs::write(s.at("etc/endpoint-agent/notes.txt"), "admin's own file\n").unwrap();
    s.agent_ok(&["uninstall"]);
    assert!(s.at("etc/endpoint-agent/notes.txt").exists());
    assert!(!s.at("etc/endpoint-agent/config.yaml").exists());
    assert!(!s.at("opt/endpoint-agent").exists());
    assert!(!s.at("var/lib/endpoint-agent").exists());
    assert!(!s.at("var/log/endpoint-agent").exists());
}

#[test]
fn uninstall_works_from_a_copy_of_the_binary() {
    let s = Sandbox::new();
    s.agent_ok(&["install", "--intake-key", KEY]);
    let out = std::process::Command::new(s.at("opt/endpoint-agent/agent"))
        .arg("uninstall")
        .env("ENDPOINT_AGENT_ROOT", s.root.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(s.tree(), Vec::<String>::new());
}

#[test]
fn service_status_under_a_root_prefix_touches_no_service_manager() {
    let s = Sandbox::new();
    let out = s.agent(&["service", "status"]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("not installed"));
}

#[test]
fn install_and_uninstall_need_root() {
    let s = Sandbox::new();
    // A copy nobody can execute wherever the build tree lives.
    let bin_dir = common::TempDir::new("bin");
    let agent = bin_dir.path().join("agent");
    fs::copy(env!("CARGO_BIN_EXE_agent"), &agent).unwrap();
    for args in [
        &["install", "--intake-key", KEY][..],
        &["uninstall"][..],
        &["service", "restart"][..],
    ] {
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&agent)
            .args(args)
            .current_dir("/")
            .env("ENDPOINT_AGENT_ROOT", s.root.path())
            .output()
            .expect("setpriv (util-linux) is required");
        assert!(
            !out.status.success(),
            "{args:?} ran without root:\n{}",
            describe(&out)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("must be run as root"), "{args:?}: {stderr}");
    }
    assert_eq!(s.tree(), Vec::<String>::new());
}
