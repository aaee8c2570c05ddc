//! Real Event Log records (`testdata/evtx/*.evtx`, the `evtx` crate's sample corpus) through
//! the Event Log mapper: every record is accounted for (mapped, dropped as a Sysmon
//! duplicate, or skipped with a reason), never a panic; the first record of each event ID
//! the collector maps gives the golden event of `tests/fixtures/evtx_golden.jsonl`; Sysmon
//! events the agent makes itself (1, 11, ...) are dropped, the others (10, 13, ...) sent.
//!
//! `UPDATE_GOLDEN=1 cargo test -p agent-etw --test evtx_records` rewrites the golden file
//! (review the diff: it is the expected output).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use agent_etw::eventlog::replay::replay;
use agent_etw::eventlog::{Accounting, Mapped};
use serde_json::Value;

fn evtx(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/evtx")
        .join(name)
}

const FILES: [&str; 5] = [
    "security.evtx",
    "Security_short_selected.evtx",
    "new-user-security.evtx",
    "sysmon.evtx",
    "system.evtx",
];

type Replayed = (Accounting, BTreeMap<String, Vec<(u64, Value)>>);

/// Replays `name` (once per test process): its accounting, and its events by
/// `"<provider> <id>"` (file order).
fn run(name: &str) -> Replayed {
    static CACHE: OnceLock<Mutex<HashMap<String, Replayed>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    if let Some(r) = cache.lock().expect("cache").get(name) {
        return r.clone();
    }
    let r = replay_file(name);
    cache
        .lock()
        .expect("cache")
        .insert(name.to_owned(), r.clone());
    r
}

fn replay_file(name: &str) -> Replayed {
    let mut events: BTreeMap<String, Vec<(u64, Value)>> = BTreeMap::new();
    let acc = replay(&evtx(name), |r| {
        if let Ok(Mapped::Event(e)) = r.outcome {
            let key = format!("{} {}", e.event.provider, e.event.code.unwrap_or(0));
            let v = e.to_value().expect("event serializes");
            events.entry(key).or_default().push((r.record_id, v));
        }
    })
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    (acc, events)
}

#[test]
fn every_record_is_accounted_for() {
    // (file, records, mapped, Sysmon duplicates, skipped, unreadable chunks)
    let expected = [
        ("security.evtx", 2261, 1158, 0, 1103, 0),
        ("Security_short_selected.evtx", 7, 5, 0, 2, 0),
        ("new-user-security.evtx", 4, 4, 0, 0, 0),
        // The file ends with 8 chunks that are not chunks (no `ElfChnk` magic): the copy
        // was taken while the log was written. Their bytes hold no record the parser finds.
        ("sysmon.evtx", 358, 95, 263, 0, 8),
        ("system.evtx", 1881, 81, 0, 1800, 0),
    ];
    for (name, records, mapped, dups, skipped, unreadable) in expected {
        let (acc, _) = run(name);
        assert!(acc.balanced(), "{name}: {acc:#?}");
        assert_eq!(
            (
                acc.records,
                acc.mapped,
                acc.sysmon_duplicates,
                acc.skipped_total(),
                acc.unreadable.values().sum::<u64>()
            ),
            (records, mapped, dups, skipped, unreadable),
            "{name}: {acc:#?}"
        );
        // Skipped records are never unreadable ones: every record's XML was read.
        assert!(
            acc.skipped
                .keys()
                .all(|k| k == "event ID not collected" || k == "provider not collected"),
            "{name}: {:?}",
            acc.skipped
        );
    }
}

#[test]
fn mapped_event_ids_per_file() {
    let ids = |name: &str| -> Vec<String> { run(name).1.keys().cloned().collect() };
    let sec = |ids: &[u32]| -> Vec<String> {
        ids.iter()
            .map(|i| format!("Microsoft-Windows-Security-Auditing {i}"))
            .collect()
    };
    assert_eq!(
        ids("security.evtx"),
        sec(&[4624, 4634, 4647, 4648, 4672, 4720, 4722, 4723, 4724, 4728, 4732, 4738])
    );
    assert_eq!(
        ids("Security_short_selected.evtx"),
        sec(&[4625, 4776, 5152, 5157])
    );
    assert_eq!(ids("new-user-security.evtx"), sec(&[4720, 4728, 4732]));
    assert_eq!(
        ids("system.evtx"),
        vec![
            "Service Control Manager 7040",
            "Service Control Manager 7045"
        ]
    );
}

#[test]
fn sysmon_duplicates_are_dropped_and_the_rest_forwarded() {
    let (acc, events) = run("sysmon.evtx");
    let sysmon = "Microsoft-Windows-Sysmon/Operational";
    // In the file: 1 (process created), 3 (network), 11 (file created): dropped.
    assert_eq!(acc.skipped_by_event[&format!("{sysmon} 1")], 227);
    assert_eq!(acc.skipped_by_event[&format!("{sysmon} 11")], 34);
    assert_eq!(acc.skipped_by_event[&format!("{sysmon} 3")], 2);
    assert_eq!(acc.sysmon_duplicates, 227 + 34 + 2);
    // 10 (process access), 12, 13 (registry), 15 (stream hash), 16 (config change): sent.
    let counts: Vec<(String, usize)> = events.iter().map(|(k, v)| (k.clone(), v.len())).collect();
    assert_eq!(
        counts,
        [
            ("Microsoft-Windows-Sysmon 10", 60),
            ("Microsoft-Windows-Sysmon 12", 8),
            ("Microsoft-Windows-Sysmon 13", 24),
            ("Microsoft-Windows-Sysmon 15", 2),
            ("Microsoft-Windows-Sysmon 16", 1),
        ]
        .map(|(k, n)| (k.to_owned(), n))
    );
    for v in events.values().flatten() {
        let code = v.1["event"]["code"].as_u64().expect("code");
        assert!(![1, 3, 5, 8, 11, 22, 23, 26].contains(&code));
    }
}

/// The first event of each mapped ID in each file, keyed `"<file> <provider> <id>"`.
fn firsts() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for name in FILES {
        for (key, evs) in run(name).1 {
            let (record_id, v) = &evs[0];
            let mut v = v.clone();
            v["_record"] = Value::from(*record_id);
            out.insert(format!("{name} {key}"), v);
        }
    }
    out
}

#[test]
fn golden_events() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/evtx_golden.jsonl");
    let got = firsts();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let mut text = String::new();
        for (k, v) in &got {
            let line = serde_json::json!({"key": k, "event": v});
            text.push_str(&line.to_string());
            text.push('\n');
        }
        std::fs::write(&path, text).expect("write golden");
    }
    let text = std::fs::read_to_string(&path).expect("golden file");
    let golden: BTreeMap<String, Value> = text
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("golden line");
            (
                v["key"].as_str().expect("key").to_owned(),
                v["event"].clone(),
            )
        })
        .collect();
    assert_eq!(
        golden.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>()
    );
    for (k, v) in &golden {
        assert_eq!(&got[k], v, "{k}");
    }
}

#[test]
fn typed_fields_of_real_records() {
    let all = firsts();
    let ev = |k: &str| all.get(k).unwrap_or_else(|| panic!("no {k}"));
    // 4624: the logged-on account is the target; the acting account the subject.
    let logon = ev("security.evtx Microsoft-Windows-Security-Auditing 4624");
    assert_eq!(logon["user"]["target"]["name"], "SYSTEM");
    assert_eq!(logon["user"]["target"]["domain"], "NT AUTHORITY");
    assert_eq!(logon["process"]["pid"], 4);
    assert!(logon["action"]["properties"].get("ProcessId").is_none());
    assert_eq!(logon["action"]["properties"]["EventType"], "AUDIT_SUCCESS");
    assert_eq!(
        logon["action"]["properties"]["ProviderGuid"],
        "{54849625-5478-4994-A5BA-3E3B0328C30D}"
    );
    // 4625: a failure.
    let failed = ev("Security_short_selected.evtx Microsoft-Windows-Security-Auditing 4625");
    assert_eq!(failed["action"]["properties"]["EventType"], "AUDIT_FAILURE");
    // 5157, 5152: the filtering platform's connection, with its process.
    for id in [5152, 5157] {
        let wfp = ev(&format!(
            "Security_short_selected.evtx Microsoft-Windows-Security-Auditing {id}"
        ));
        assert!(wfp["source"]["ip"].is_string(), "{wfp}");
        assert!(wfp["destination"]["port"].is_u64(), "{wfp}");
        assert!(wfp["network"]["transport"].is_string(), "{wfp}");
        assert!(wfp["action"]["properties"].get("SourceAddress").is_none());
    }
    // Process id 0 (the 5152's idle process): no process.
    let dropped = ev("Security_short_selected.evtx Microsoft-Windows-Security-Auditing 5152");
    assert!(dropped.get("process").is_none(), "{dropped}");
    let blocked = ev("Security_short_selected.evtx Microsoft-Windows-Security-Auditing 5157");
    assert_eq!(blocked["process"]["pid"], 4);
    // Sysmon 10: the acting process is the source of the access.
    let access = ev("sysmon.evtx Microsoft-Windows-Sysmon 10");
    assert_eq!(
        access["process"]["executable"],
        access["action"]["properties"]["SourceImage"]
    );
    // 7045: the service is in the properties.
    let svc = ev("system.evtx Service Control Manager 7045");
    assert!(svc["action"]["properties"]["ServiceName"].is_string());
    assert!(svc["action"]["properties"]["ImagePath"].is_string());
}
