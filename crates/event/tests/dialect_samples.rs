//! Every sample of the real dialect survives deserialize → serialize unchanged, and lands
//! in the typed fields (not only in the catch-all maps).

use agent_event::{Event, Node};
use serde_json::Value;

const SAMPLES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/dialect-samples/endpoint-agent-events.jsonl"
);

/// `(sample name, event JSON text)` for every line; panics if the file is missing or empty.
fn samples() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(SAMPLES)
        .unwrap_or_else(|e| panic!("dialect samples missing at {SAMPLES}: {e}"));
    let out: Vec<_> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, line)| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("line {}: not JSON: {e}", n + 1));
            let name = v["sample"].as_str().unwrap_or("?").to_owned();
            let message = v
                .get("message")
                .unwrap_or_else(|| panic!("line {}: no `message`", n + 1));
            (name, serde_json::to_string(message).unwrap())
        })
        .collect();
    assert!(!out.is_empty(), "{SAMPLES} has no samples");
    out
}

#[test]
fn every_sample_round_trips_to_the_same_json_value() {
    let samples = samples();
    assert!(
        samples.len() >= 21,
        "expected the 21 reference samples, got {}",
        samples.len()
    );
    for (name, text) in samples {
        let original: Value = serde_json::from_str(&text).unwrap();
        let event = Event::from_json(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let written = event.to_json().unwrap();
        let back: Value = serde_json::from_str(&written).unwrap();
        assert_eq!(
            back, original,
            "{name}: round trip changed the event\n{written}"
        );
        // Also through a second pass (what a relay re-sending our output would do).
        assert_eq!(Event::from_json(&written).unwrap(), event, "{name}");
    }
}

#[test]
fn action_properties_keep_their_order() {
    for (name, text) in samples() {
        let original: Value = serde_json::from_str(&text).unwrap();
        let Some(props) = original
            .pointer("/action/properties")
            .and_then(Value::as_object)
        else {
            continue;
        };
        let event = Event::from_json(&text).unwrap();
        let keys: Vec<_> = event.action.properties.keys().collect();
        let expected: Vec<_> = props.keys().collect();
        assert_eq!(keys, expected, "{name}");
        let written: Value = serde_json::from_str(&event.to_json().unwrap()).unwrap();
        let written_keys: Vec<_> = written["action"]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(written_keys, expected, "{name}");
    }
}

#[test]
fn huge_integers_keep_their_exact_value() {
    let (_, text) = samples()
        .into_iter()
        .find(|(name, _)| name == "bytes_total")
        .expect("the bytes_total sample");
    let event = Event::from_json(&text).unwrap();
    let written = event.to_json().unwrap();
    assert!(
        written.contains(r#""BytesTotal":18446744073709551615"#),
        "{written}"
    );
}

#[test]
fn samples_land_in_typed_fields() {
    for (name, text) in samples() {
        let e = Event::from_json(&text).unwrap();
        let mut leftovers = Vec::new();
        e.untyped_paths("", &mut leftovers);
        let allowed = [
            "timestamp",               // dns sample: a second, non-ECS timestamp
            "rule",                    // yara sample
            "threat",                  // yara sample
            "sekoiaio.source_process", // remote thread
            "sekoiaio.target_process", // remote thread
            "sekoiaio.repeat",         // dns repeat counter
        ];
        let unexpected: Vec<_> = leftovers
            .iter()
            .filter(|k| !allowed.contains(&k.as_str()))
            .collect();
        assert!(
            unexpected.is_empty(),
            "{name}: untyped fields {unexpected:?}"
        );
        assert!(!e.is_empty(), "{name}");
    }
}

#[test]
fn typed_values_are_read() {
    let all = samples();
    let get = |n: &str| {
        let (_, t) = all.iter().find(|(name, _)| name == n).unwrap();
        Event::from_json(t).unwrap()
    };
    let p = get("process_start");
    assert_eq!(p.event.code, Some(1));
    assert_eq!(p.process.pid, Some(8432));
    assert_eq!(p.process.parent.as_ref().unwrap().pid, Some(8088));
    assert_eq!(p.process.args.len(), 3);
    assert_eq!(p.timestamp.unwrap().precision(), 7);
    let s = get("endpoint_stats_event");
    assert_eq!(s.sekoiaio.host.memory_total, Some(16_961_064_960));
    assert_eq!(s.sekoiaio.agent.cpu_usage, Some(0.26030037));
    assert_eq!(s.event.category.as_slice(), ["host"]);
    let f = get("event_with_tags");
    assert_eq!(f.file.hash.sha256.len(), 64);
    assert_eq!(f.user.effective.as_ref().unwrap().group.name, "root");
    assert_eq!(f.tags, ["rootkit_preload"]);
    let d = get("dns_results_without_ip");
    assert_eq!(d.dns.answers[0].ttl, Some(71));
    assert_eq!(d.destination.port, Some(49878));
}
