//! `agent replay --evtx FILE` through the real binary, on every OS: the dialect events of a
//! Windows Event Log file on stdout (one JSON object per line, Sysmon duplicates dropped),
//! where every record went on stderr.

use std::process::Command;

use serde_json::Value;

const AGENT: &str = env!("CARGO_BIN_EXE_agent");

fn evtx(name: &str) -> String {
    format!("{}/../testdata/evtx/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn replay(args: &[&str]) -> (Option<i32>, Vec<Value>, String) {
    let out = Command::new(AGENT)
        .arg("replay")
        .args(args)
        .output()
        .expect("run agent");
    let events = String::from_utf8(out.stdout)
        .expect("utf-8 stdout")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
        .collect();
    (
        out.status.code(),
        events,
        String::from_utf8(out.stderr).expect("utf-8 stderr"),
    )
}

#[test]
fn security_log_gives_the_logon_events() {
    let (code, events, stderr) = replay(&["--evtx", &evtx("Security_short_selected.evtx")]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(events.len(), 5);
    assert!(
        stderr
            .starts_with("7 records: 5 events emitted, 0 dropped as Sysmon duplicates, 2 skipped"),
        "{stderr}"
    );
    assert!(
        stderr.contains("  skipped 2: event ID not collected"),
        "{stderr}"
    );
    assert!(stderr.contains("    not sent 1: Security 4673"), "{stderr}");
    let failed = events
        .iter()
        .find(|e| e["event"]["code"] == 4625)
        .expect("the failed logon");
    assert_eq!(
        failed["event"]["provider"],
        "Microsoft-Windows-Security-Auditing"
    );
    assert_eq!(failed["action"]["id"], 4625);
    assert_eq!(failed["action"]["properties"]["EventType"], "AUDIT_FAILURE");
    assert_eq!(failed["action"]["properties"]["Status"], "0xC000006D");
    assert_eq!(failed["source"]["ip"], "23.94.153.202");
    assert_eq!(failed["process"]["name"], "winlogon.exe");
    assert_eq!(failed["user"]["target"]["name"], "Administrator");
}

#[test]
fn sysmon_duplicates_are_dropped() {
    let (code, events, stderr) = replay(&["--evtx", &evtx("sysmon.evtx")]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.starts_with(
            "358 records: 95 events emitted, 263 dropped as Sysmon duplicates, 0 skipped"
        ),
        "{stderr}"
    );
    assert_eq!(events.len(), 95);
    let codes: std::collections::BTreeSet<u64> = events
        .iter()
        .map(|e| e["event"]["code"].as_u64().expect("code"))
        .collect();
    assert!(codes.contains(&10) && codes.contains(&13), "{codes:?}");
    assert!(!codes.contains(&1) && !codes.contains(&11), "{codes:?}");
    assert!(stderr.contains("    not sent 227: Microsoft-Windows-Sysmon/Operational 1"));
    assert!(stderr.contains("    not sent 34: Microsoft-Windows-Sysmon/Operational 11"));
    // The file's 8 damaged chunks are reported, not fatal.
    assert_eq!(stderr.matches("  unreadable 1: ").count(), 8, "{stderr}");
}

#[test]
fn every_file_is_read_and_summary_prints_no_events() {
    for (name, first) in [
        ("security.evtx", "2261 records: 1158 events emitted"),
        ("new-user-security.evtx", "4 records: 4 events emitted"),
        ("system.evtx", "1881 records: 81 events emitted"),
    ] {
        let (code, events, stderr) = replay(&["--evtx", "--summary", &evtx(name)]);
        assert_eq!(code, Some(0), "{name}: {stderr}");
        assert!(events.is_empty(), "{name}");
        assert!(stderr.starts_with(first), "{name}: {stderr}");
    }
}

#[test]
fn a_missing_or_foreign_file_fails() {
    let (code, events, stderr) = replay(&["--evtx", "/nonexistent/x.evtx"]);
    assert_eq!(code, Some(1));
    assert!(events.is_empty());
    assert!(
        stderr.starts_with("agent: cannot read /nonexistent/x.evtx"),
        "{stderr}"
    );
    // Not an EVTX file (a Linux audit log).
    let audit = format!(
        "{}/../testdata/go-libaudit/audit-logs/audit-rhel7.log",
        env!("CARGO_MANIFEST_DIR")
    );
    let (code, _, stderr) = replay(&["--evtx", &audit]);
    assert_eq!(code, Some(1), "{stderr}");
}
