//! The Event Log events of the dialect samples (`testdata/dialect-samples`: `windows_auth`
//! 4624, `windows_auth2` 4625, `agent_logs_1` 4769, `agent_logs_2` 4698, `windows_defender`
//! 1151, `windows_5156`), reproduced from their own `action.properties`: the sample's
//! properties become the `EventData` of a rendered event (what `EvtRender` returns), its
//! header fields (`ProviderGuid`, `Keywords`, `Severity`, `SourceName`, `@timestamp`,
//! `action.id`) the `System` part, plus the few data fields the product moved into typed
//! fields (`ProcessId`, `ParentProcessId`, addresses...). The mapper must give back the
//! sample's `action.properties` exactly and every typed field of the sample with the same
//! value, and nothing more (`agent.*` and `host.*` are the pipeline's).

mod common;

use agent_etw::eventlog::{map_xml, Mapped};
use serde_json::Value;

use common::{level_of, sample};

/// XML text escaping, with `\r` as a character reference (as a writer of XML must, for
/// it to survive a parser).
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\r', "&#13;")
}

/// The rendered event behind a sample, on `channel`, with `moved` data fields added.
fn xml_of(msg: &Value, channel: &str, moved: &[(&str, &str)]) -> String {
    let props = msg["action"]["properties"].as_object().expect("properties");
    let meta = |k: &str| props[k].as_str().expect("meta property").to_owned();
    let mut data = String::new();
    for (k, v) in props {
        if matches!(
            k.as_str(),
            "Keywords" | "ProviderGuid" | "Severity" | "SourceName" | "EventType"
        ) {
            continue;
        }
        let v = v.as_str().expect("string property");
        data.push_str(&format!("<Data Name=\"{}\">{}</Data>\n", esc(k), esc(v)));
    }
    for (k, v) in moved {
        data.push_str(&format!("<Data Name=\"{k}\">{}</Data>\n", esc(v)));
    }
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event">
  <System>
    <Provider Name="{name}" Guid="{guid}"/>
    <EventID>{id}</EventID>
    <Version>0</Version>
    <Level>{level}</Level>
    <Task>0</Task>
    <Opcode>0</Opcode>
    <Keywords>{keywords}</Keywords>
    <TimeCreated SystemTime="{time}"/>
    <EventRecordID>1</EventRecordID>
    <Execution ProcessID="4" ThreadID="8"/>
    <Channel>{channel}</Channel>
    <Computer>example.com</Computer>
    <Security/>
  </System>
  <EventData>
{data}  </EventData>
</Event>"#,
        name = esc(&meta("SourceName")),
        guid = meta("ProviderGuid"),
        id = msg["action"]["id"],
        level = level_of(&meta("Severity")),
        keywords = meta("Keywords"),
        time = msg["@timestamp"].as_str().expect("@timestamp"),
    )
}

fn map(xml: &str) -> Value {
    match map_xml(xml).expect("readable XML") {
        Mapped::Event(e) => e.to_value().expect("serialize"),
        other => panic!("not mapped: {other:?}"),
    }
}

/// Every leaf of `expected` must be in `got` with the same value, except the leaves in
/// `differs` (checked by the caller).
fn compare(path: &str, expected: &Value, got: &Value, differs: &[&str], errors: &mut Vec<String>) {
    if differs.contains(&path.trim_start_matches('.')) {
        return;
    }
    match (expected, got) {
        (Value::Object(e), Value::Object(g)) => {
            for (k, ev) in e {
                let p = format!("{path}.{k}");
                match g.get(k) {
                    Some(gv) => compare(&p, ev, gv, differs, errors),
                    None => errors.push(format!("missing {p} (expected {ev})")),
                }
            }
        }
        _ if expected == got => {}
        _ => errors.push(format!("{path}: expected {expected}, got {got}")),
    }
}

fn extra_leaves(path: &str, expected: &Value, got: &Value, out: &mut Vec<String>) {
    if let (Value::Object(e), Value::Object(g)) = (expected, got) {
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
}

fn check(name: &str, msg: &Value, got: &Value, differs: &[&str]) {
    let mut expected = msg.clone();
    let obj = expected.as_object_mut().expect("object");
    obj.remove("agent");
    obj.remove("host");
    let mut errors = Vec::new();
    compare("", &expected, got, differs, &mut errors);
    let mut extra = Vec::new();
    extra_leaves("", &expected, got, &mut extra);
    assert!(errors.is_empty(), "{name}: {errors:#?}\ngot {got}");
    assert!(
        extra.is_empty(),
        "{name}: fields beyond the sample: {extra:?}\ngot {got}"
    );
}

#[test]
fn windows_auth_4624_round_trips() {
    let msg = sample("windows_auth");
    // The process id (0x2a4 = 676) is a typed field only.
    let got = map(&xml_of(&msg, "Security", &[("ProcessId", "0x2a4")]));
    check("windows_auth", &msg, &got, &[]);
    assert_eq!(got["action"]["properties"], msg["action"]["properties"]);
}

#[test]
fn windows_auth2_4625_round_trips() {
    let msg = sample("windows_auth2");
    // Process id 0 and ProcessName `-`: no process fields.
    let got = map(&xml_of(&msg, "Security", &[("ProcessId", "0x0")]));
    check("windows_auth2", &msg, &got, &[]);
    assert_eq!(got["action"]["properties"], msg["action"]["properties"]);
}

#[test]
fn agent_logs_1_4769_round_trips() {
    let msg = sample("agent_logs_1");
    let got = map(&xml_of(&msg, "Security", &[]));
    // The sample was anonymised field by field, not consistently: its `source.ip` and
    // `source.address` differ from each other and from `IpAddress`, and `user.target.name`
    // from `TargetUserName`; its provider GUID is a made-up one in small letters. Ours come
    // from the properties themselves.
    let differs = [
        "source.ip",
        "source.address",
        "user.target.name",
        "action.properties.ProviderGuid",
    ];
    check("agent_logs_1", &msg, &got, &differs);
    assert_eq!(got["source"]["ip"], "10.0.30.42"); // ::ffff:10.0.30.42, IPv4-mapped
    assert_eq!(got["source"]["address"], "10.0.30.42");
    assert_eq!(got["user"]["target"]["name"], "user1");
    assert_eq!(
        got["action"]["properties"]["ProviderGuid"],
        "{9341BDD5-A0AA-4978-8F7B-36D0C7F5DE05}"
    );
    let mut props = got["action"]["properties"].clone();
    props["ProviderGuid"] = msg["action"]["properties"]["ProviderGuid"].clone();
    assert_eq!(props, msg["action"]["properties"]);
}

#[test]
fn agent_logs_2_4698_round_trips() {
    let msg = sample("agent_logs_2");
    // The task's XML keeps its \r\n; the parent process id is a typed field only.
    let got = map(&xml_of(&msg, "Security", &[("ParentProcessId", "1188")]));
    check("agent_logs_2", &msg, &got, &[]);
    assert_eq!(got["action"]["properties"], msg["action"]["properties"]);
    assert!(got["action"]["properties"]["TaskContent"]
        .as_str()
        .is_some_and(|t| t.contains("\r\n")));
}

#[test]
fn windows_defender_1151_round_trips() {
    let msg = sample("windows_defender");
    let got = map(&xml_of(
        &msg,
        "Microsoft-Windows-Windows Defender/Operational",
        &[],
    ));
    check("windows_defender", &msg, &got, &[]);
    assert_eq!(got["action"]["properties"], msg["action"]["properties"]);
}

#[test]
fn windows_5156_round_trips() {
    let msg = sample("windows_5156");
    let got = map(&xml_of(
        &msg,
        "Security",
        &[
            ("ProcessID", "2184"),
            ("SourceAddress", "5.6.7.8"),
            ("SourcePort", "2"),
            ("DestAddress", "1.2.3.4"),
            ("DestPort", "1"),
            ("Protocol", "6"),
        ],
    ));
    check("windows_5156", &msg, &got, &[]);
    assert_eq!(got["action"]["properties"], msg["action"]["properties"]);
}
