//! `agent replay FILE` through the real binary: events on stdout, one JSON object per
//! line; where every record went on stderr.
#![cfg(target_os = "linux")]

use std::process::Command;

const AGENT: &str = env!("CARGO_BIN_EXE_agent");

fn log(name: &str) -> String {
    format!("{}/../testdata/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn replay_prints_the_events_and_the_accounting() {
    let out = Command::new(AGENT)
        .args([
            "replay",
            &log("linux-audit/debian12-kernel6.18-scenarios.log"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let renamed = events
        .iter()
        .find(|e| e["event"]["action"] == "renamed" && e["event"]["outcome"] == "success")
        .expect("the rename");
    assert_eq!(renamed["file"]["path"], "/tmp/h9-cap/w/x-b");
    assert_eq!(renamed["labels"]["original_path"], "/tmp/h9-cap/w/x-a");
    let first = stderr.lines().next().unwrap();
    assert!(
        first.starts_with(&format!("124 records: {} events emitted", events.len())),
        "{stderr}"
    );
}

#[test]
fn replay_summary_only_and_a_missing_file() {
    let out = Command::new(AGENT)
        .args([
            "replay",
            "--summary",
            &log("go-libaudit/audit-logs/audit-rhel7.log"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.starts_with("50 records: "), "{stderr}");
    assert!(stderr.contains("skipped 1: unparsable line"), "{stderr}");
    assert!(stderr.contains("line 31: "), "{stderr}");

    let out = Command::new(AGENT)
        .args(["replay", "/nonexistent/audit.log"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/audit.log"));
}
