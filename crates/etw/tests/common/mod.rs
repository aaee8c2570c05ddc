//! Reads recorded ETW property sets (JSON fixtures) into `EtwRecord`s.
//!
//! A record is written as:
//! `{"provider": "<GUID>", "id": 12, "opcode": 0, "version": 1, "level": 4,
//!   "keywords": "0x80", "pid": 1, "tid": 2, "timestamp": "<RFC 3339>",
//!   "create_time": "<RFC 3339>", "image_path": "...", "properties": {"Name": value, ...}}`
//! Property values: a string is a string property, a number an unsigned (or, if negative,
//! signed) integer, a boolean a boolean, `{"ptr": "0x…"}` a pointer, `{"bytes": "hex"}`
//! binary. Properties keep the order they are written in.
#![allow(dead_code)]

use agent_etw::mapper::{Mapper, MapperConfig};
use agent_etw::paths::DeviceMap;
use agent_etw::record::{EtwRecord, Extra, Header, Prop};
use agent_event::Timestamp;
use serde_json::Value;

/// The boot id of every fixture's process GUIDs.
pub const BOOT_ID: &str = "fixture-boot-17";
/// The agent's pid in fixtures (its events must vanish).
pub const OWN_PID: u32 = 4242;

pub fn prop(v: &Value) -> Prop {
    match v {
        Value::String(s) => Prop::Str(s.clone()),
        Value::Bool(b) => Prop::Bool(*b),
        Value::Number(n) => match n.as_u64() {
            Some(u) => Prop::UInt(u),
            None => Prop::Int(n.as_i64().expect("integer property")),
        },
        Value::Object(m) if m.contains_key("ptr") => {
            let s = m["ptr"].as_str().expect("ptr is a string");
            Prop::Ptr(u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex ptr"))
        }
        Value::Object(m) if m.contains_key("bytes") => {
            let s = m["bytes"].as_str().expect("bytes is a string");
            Prop::Bytes(
                (0..s.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex bytes"))
                    .collect(),
            )
        }
        other => panic!("unsupported property value {other}"),
    }
}

pub fn record(v: &Value) -> EtwRecord {
    let num = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    let ts = |k: &str| -> Option<Timestamp> {
        v.get(k)
            .and_then(Value::as_str)
            .map(|s| s.parse().expect("RFC 3339 time"))
    };
    let keywords = v
        .get("keywords")
        .and_then(Value::as_str)
        .map(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex keywords"))
        .unwrap_or(0);
    let header = Header {
        provider: v["provider"]
            .as_str()
            .expect("provider")
            .parse()
            .expect("provider GUID"),
        id: num("id") as u16,
        opcode: num("opcode") as u8,
        version: num("version") as u8,
        level: num("level") as u8,
        keywords,
        pid: num("pid") as u32,
        tid: num("tid") as u32,
        timestamp: ts("timestamp").expect("timestamp"),
    };
    let properties = v
        .get("properties")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), prop(v))).collect())
        .unwrap_or_default();
    EtwRecord {
        header,
        properties,
        extra: Extra {
            create_time: ts("create_time"),
            image_path: v
                .get("image_path")
                .and_then(Value::as_str)
                .map(str::to_owned),
        },
    }
}

/// The drive table every fixture uses (what `QueryDosDeviceW` gives on a typical host).
pub fn devices() -> DeviceMap {
    let mut d = DeviceMap::new();
    d.insert("C:", r"\Device\HarddiskVolume3");
    d.insert("D:", r"\Device\HarddiskVolume5");
    d
}

pub fn mapper() -> Mapper {
    Mapper::new(MapperConfig {
        boot_id: BOOT_ID.to_owned(),
        own_pid: Some(OWN_PID),
        devices: devices(),
        ..MapperConfig::default()
    })
}

/// Maps every record of a fixture, then closes the DNS windows.
pub fn map_all(mapper: &mut Mapper, records: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for r in records {
        mapper.map(&record(r), &mut out);
    }
    mapper.flush_all(&mut out);
    out.iter()
        .map(|e| e.to_value().expect("event serializes"))
        .collect()
}

/// The `message` of the dialect sample named `name` (`testdata/dialect-samples`).
pub fn sample(name: &str) -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/dialect-samples/endpoint-agent-events.jsonl"
    );
    let text = std::fs::read_to_string(path).expect("dialect samples in testdata");
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["sample"] == name)
        .map(|v| v["message"].clone())
        .unwrap_or_else(|| panic!("sample {name} not found"))
}

/// The Windows event level of a dialect `Severity` name.
pub fn level_of(severity: &str) -> u8 {
    match severity {
        "LOG_ALWAYS" => 0,
        "CRITICAL" => 1,
        "ERROR" => 2,
        "WARNING" => 3,
        "INFO" => 4,
        _ => 5,
    }
}
