//! The Windows events of the dialect samples (`testdata/dialect-samples`), reproduced from
//! their own `action.properties`: the sample's properties, plus the few the product moved
//! into typed fields (`ProcessId`, `CommandLine`, addresses...), and a header read back from
//! the sample (`ProviderGuid`, `Keywords`, `Severity`, `@timestamp`, `action.id`), go through
//! the mapper. It must give back the sample's `action.properties` exactly and every typed
//! field of the sample with the same value.
//!
//! Not compared: `agent.*` and `host.*` (the pipeline fills them) and the values of
//! `sekoiaio.*guid` (the product derives them from inputs we cannot know; ours must be
//! UUIDs). Fields the mapper adds beyond the sample are listed per sample, with the reason.

mod common;

use agent_etw::record::{EtwRecord, Extra, Header, Prop};
use agent_event::Timestamp;
use serde_json::{json, Map, Value};

use common::{level_of, sample};

/// The record behind a sample: its properties (meta fields turned back into the header),
/// plus `moved` (the properties the product carried in typed fields).
fn record_of(
    msg: &Value,
    id: u16,
    opcode: u8,
    pid: u32,
    tid: u32,
    moved: &[(&str, Prop)],
) -> EtwRecord {
    let props = msg["action"]["properties"].as_object().expect("properties");
    let meta = |k: &str| props[k].as_str().expect("meta property").to_owned();
    let header = Header {
        provider: meta("ProviderGuid").parse().expect("ProviderGuid"),
        id,
        opcode,
        version: 0,
        level: level_of(&meta("Severity")),
        keywords: u64::from_str_radix(meta("Keywords").trim_start_matches("0x"), 16).expect("hex"),
        pid,
        tid,
        timestamp: msg["@timestamp"]
            .as_str()
            .expect("@timestamp")
            .parse()
            .expect("time"),
    };
    let mut properties: Vec<(String, Prop)> = props
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "Keywords" | "ProviderGuid" | "Severity" | "SourceName"
            )
        })
        .map(|(k, v)| {
            (
                k.clone(),
                Prop::Str(v.as_str().expect("string property").to_owned()),
            )
        })
        .collect();
    properties.extend(moved.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    EtwRecord {
        header,
        properties,
        extra: Extra::default(),
    }
}

/// Every leaf of `expected` must be in `got` with the same value (`guid` leaves: any UUID).
/// Returns the leaves of `got` not in `expected`.
fn compare(path: &str, expected: &Value, got: &Value, errors: &mut Vec<String>) {
    match (expected, got) {
        (Value::Object(e), Value::Object(g)) => {
            for (k, ev) in e {
                let p = format!("{path}.{k}");
                match g.get(k) {
                    Some(gv) => compare(&p, ev, gv, errors),
                    None => errors.push(format!("missing {p} (expected {ev})")),
                }
            }
        }
        (Value::String(_), Value::String(g)) if path.ends_with("guid") => {
            if uuid_like(g).is_none() {
                errors.push(format!("{path}: {g} is not a UUID"));
            }
        }
        _ if expected == got => {}
        _ => errors.push(format!("{path}: expected {expected}, got {got}")),
    }
}

fn uuid_like(s: &str) -> Option<()> {
    let parts: Vec<&str> = s.split('-').collect();
    (parts.len() == 5 && s.len() == 36 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
        .then_some(())
}

fn extra_leaves(path: &str, expected: &Value, got: &Value, out: &mut Vec<String>) {
    match (expected, got) {
        (Value::Object(e), Value::Object(g)) => {
            for (k, gv) in g {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match e.get(k) {
                    Some(ev) => extra_leaves(&p, ev, gv, out),
                    None => out.push(p),
                }
            }
        }
        (Value::Null, _) => out.push(path.to_owned()),
        _ => {}
    }
}

fn check(name: &str, msg: &Value, got: &Value, allowed_extra: &[&str]) {
    let mut expected = msg.clone();
    let obj = expected.as_object_mut().expect("object");
    obj.remove("agent");
    obj.remove("host");
    let mut errors = Vec::new();
    compare("", &expected, got, &mut errors);
    let mut extra = Vec::new();
    extra_leaves("", &expected, got, &mut extra);
    extra.retain(|p| !allowed_extra.contains(&p.as_str()));
    assert!(errors.is_empty(), "{name}: {errors:#?}\ngot {got}");
    assert!(
        extra.is_empty(),
        "{name}: fields beyond the sample: {extra:?}\ngot {got}"
    );
}

fn map(mapper: &mut agent_etw::mapper::Mapper, rec: &EtwRecord) -> Vec<Value> {
    let mut out = Vec::new();
    mapper.map(rec, &mut out);
    out.iter()
        .map(|e| e.to_value().expect("serialize"))
        .collect()
}

/// A process start seen before the sample's event (fills the table).
fn started(
    pid: u32,
    ppid: u32,
    cmd: &str,
    image: &str,
    at: &str,
    image_path: Option<&str>,
) -> EtwRecord {
    let ts: Timestamp = at.parse().expect("time");
    EtwRecord {
        header: Header {
            provider: agent_etw::providers::Provider::KernelProcessClassic.guid(),
            id: 0,
            opcode: 1,
            version: 4,
            level: 0,
            keywords: 0,
            pid: ppid,
            tid: 0,
            timestamp: ts,
        },
        properties: vec![
            ("ProcessId".into(), Prop::UInt(u64::from(pid))),
            ("ParentId".into(), Prop::UInt(u64::from(ppid))),
            ("ImageFileName".into(), Prop::Str(image.into())),
            ("CommandLine".into(), Prop::Str(cmd.into())),
        ],
        extra: Extra {
            create_time: Some(ts),
            image_path: image_path.map(str::to_owned),
        },
    }
}

#[test]
fn process_start_sample_round_trips() {
    let msg = sample("process_start");
    let mut m = common::mapper();
    // The parent, started earlier: its args and command line are in the sample's parent.
    map(
        &mut m,
        &started(
            8088,
            7000,
            "\"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe\" ",
            "powershell.exe",
            "2024-01-02T13:40:00.5Z",
            None,
        ),
    );
    let rec = record_of(&msg, 0, 1, 8088, 0, &[
        ("ProcessId", Prop::UInt(8432)),
        ("ParentId", Prop::UInt(8088)),
        (
            "CommandLine",
            Prop::Str("\"C:\\Windows\\system32\\cmd.exe\" /c \"C:\\Windows\\system32\\net.exe view /all\"".into()),
        ),
    ]);
    let got = map(&mut m, &rec);
    assert_eq!(got.len(), 1);
    check("process_start", &msg, &got[0], &[]);
    assert_eq!(got[0]["action"]["properties"], msg["action"]["properties"]);
}

#[test]
fn remote_thread_sample_round_trips() {
    let msg = sample("remote_thread");
    let mut m = common::mapper();
    map(
        &mut m,
        &started(
            1356,
            656,
            "C:\\Windows\\system32\\svchost.exe -k LocalSystemNetworkRestricted -p -s SysMain",
            "svchost.exe",
            "2022-07-13T17:30:00Z",
            None,
        ),
    );
    // The System process, from the rundown: the target's GUID needs its start time.
    let mut system = started(4, 0, "", "System", "2022-07-13T08:00:00Z", None);
    system.header.opcode = 3;
    map(&mut m, &system);
    let rec = record_of(
        &msg,
        3,
        1,
        1356,
        1480,
        &[("ProcessID", Prop::UInt(4)), ("ThreadID", Prop::UInt(5096))],
    );
    let got = map(&mut m, &rec);
    assert_eq!(got.len(), 1);
    // The table knows the System process's name, which the product left out.
    check(
        "remote_thread",
        &msg,
        &got[0],
        &[
            "sekoiaio.target_process.executable",
            "sekoiaio.target_process.name",
        ],
    );
    assert_eq!(got[0]["action"]["properties"], msg["action"]["properties"]);
    assert_eq!(got[0]["event"]["type"], json!("creation"));
}

#[test]
fn windows_4104_sample_round_trips() {
    let msg = sample("windows_4104");
    let mut m = common::mapper();
    // powershell started with a relative program: the executable is the image path the
    // binding found (native form, mapped to C:).
    map(&mut m, &started(
        9144,
        0,
        "powershell  -ExecutionPolicy Unrestricted -File script0.ps1",
        "powershell.exe",
        "2025-06-06T11:33:10Z",
        Some("\\Device\\HarddiskVolume3\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"),
    ));
    let rec = record_of(&msg, 4104, 15, 9144, 8248, &[]);
    let got = map(&mut m, &rec);
    assert_eq!(got.len(), 1);
    check("windows_4104", &msg, &got[0], &[]);
    assert_eq!(got[0]["action"]["properties"], msg["action"]["properties"]);
}

#[test]
fn windows_5156_sample_round_trips() {
    let msg = sample("windows_5156");
    let mut m = common::mapper();
    let rec = record_of(
        &msg,
        5156,
        0,
        4,
        0,
        &[
            ("ProcessID", Prop::UInt(2184)),
            ("SourceAddress", Prop::Str("5.6.7.8".into())),
            ("SourcePort", Prop::UInt(2)),
            ("DestAddress", Prop::Str("1.2.3.4".into())),
            ("DestPort", Prop::UInt(1)),
            ("Protocol", Prop::UInt(6)),
        ],
    );
    let got = map(&mut m, &rec);
    assert_eq!(got.len(), 1);
    check("windows_5156", &msg, &got[0], &[]);
    assert_eq!(got[0]["action"]["properties"], msg["action"]["properties"]);
}

#[test]
fn sample_properties_survive_in_their_own_order_of_keys() {
    // The product writes properties sorted by name; so do we.
    let msg = sample("windows_4104");
    let mut m = common::mapper();
    let got = map(&mut m, &record_of(&msg, 4104, 15, 9144, 8248, &[]));
    let keys: Vec<&String> = got[0]["action"]["properties"]
        .as_object()
        .map(Map::keys)
        .into_iter()
        .flatten()
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
}
