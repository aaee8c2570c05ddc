//! Property: any JSON object, including ones that reuse the dialect's key names with other
//! types, shapes and number spellings, is written back as the same JSON value.

use agent_event::Event;
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Keys the model types, at every level, plus a few it does not.
const KEYS: &[&str] = &[
    "@timestamp",
    "agent",
    "event",
    "host",
    "process",
    "file",
    "source",
    "destination",
    "network",
    "user",
    "group",
    "dns",
    "action",
    "log",
    "error",
    "sekoiaio",
    "tags",
    "id",
    "version",
    "kind",
    "provider",
    "code",
    "category",
    "type",
    "outcome",
    "reason",
    "start",
    "end",
    "hostname",
    "os",
    "ip",
    "uptime",
    "pid",
    "executable",
    "name",
    "args",
    "parent",
    "thread",
    "path",
    "hash",
    "size",
    "Ext",
    "original",
    "port",
    "effective",
    "target",
    "question",
    "answers",
    "ttl",
    "properties",
    "cpu_usage",
    "memory_total",
    "guid",
    "exit_code",
    "unknown",
    "Z",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        // Spellings an f64 or integer would not reproduce.
        prop_oneof![
            Just("18446744073709551616"),
            Just("12.340"),
            Just("1e3"),
            Just("-0"),
            Just("7.0"),
        ]
        .prop_map(|s| serde_json::from_str::<Value>(s).unwrap()),
        prop_oneof![
            Just(String::new()),
            Just("2024-01-02T13:51:48.1394289Z".to_owned()),
            Just("2024-01-02T13:51:48+02:00".to_owned()),
            Just("2024-01-02T13:51:48.0000000000Z".to_owned()),
            "[a-z0-9 ]{0,8}",
        ]
        .prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn any_object_round_trips(entries in prop::collection::vec((prop::sample::select(KEYS), value()), 0..10)) {
        let original = Value::Object(entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
        let text = serde_json::to_string(&original).unwrap();
        let event = Event::from_json(&text).unwrap();
        let written = event.to_json().unwrap();
        let back: Value = serde_json::from_str(&written).unwrap();
        prop_assert_eq!(&back, &original, "written: {}", written);
        prop_assert_eq!(Event::from_json(&written).unwrap(), event);
    }
}
