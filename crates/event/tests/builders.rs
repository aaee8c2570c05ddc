//! What the builders put on the wire, byte for byte.

use agent_event::{
    AgentUsage, DnsAnswer, Endpoint, Event, File, HostUsage, LogLevel, Outcome, Process, Strings,
    Timestamp, User,
};
use serde_json::{json, Value};

fn ts() -> Timestamp {
    "2024-01-02T13:51:48.1394289Z".parse().unwrap()
}

fn wire(e: &Event) -> Value {
    let text = e.to_json().unwrap();
    // Whatever we write, we read back identically.
    assert_eq!(&Event::from_json(&text).unwrap(), e, "{text}");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn process_created_matches_the_product_shape_and_skips_empty_fields() {
    let mut e = Event::process_created(
        ts(),
        Process {
            pid: Some(8432),
            executable: "/usr/bin/id".into(),
            name: "id".into(),
            args: vec!["id".into(), "-u".into()],
            parent: Some(Box::new(Process {
                pid: Some(1),
                ..Process::default()
            })),
            ..Process::default()
        },
    );
    e.action
        .properties
        .insert("syscall".into(), json!("execve"));
    e.action.properties.insert("a0".into(), json!("55d1"));
    e.action.properties.insert("exit".into(), json!("0"));
    let text = e.to_json().unwrap();
    assert_eq!(
        text,
        r#"{"@timestamp":"2024-01-02T13:51:48.1394289Z","event":{"provider":"SEKOIA-IO-Endpoint","code":1,"action":"process-created","category":["process"],"type":["creation"],"outcome":"success"},"process":{"pid":8432,"executable":"/usr/bin/id","name":"id","args":["id","-u"],"parent":{"pid":1}},"action":{"properties":{"syscall":"execve","a0":"55d1","exit":"0"}}}"#
    );
    wire(&e);
}

#[test]
fn every_builder_sets_its_event_fields() {
    let cases: Vec<(Event, i64, &str, &str, Value)> = vec![
        (
            Event::process_terminated(ts(), Process::default()),
            5,
            "process-terminated",
            "process",
            json!(["end"]),
        ),
        (
            Event::file_created(ts(), File::from_path("/etc/x")),
            11,
            "opened-file",
            "file",
            json!(["creation"]),
        ),
        (
            Event::file_changed(ts(), File::from_path("/etc/x")),
            -1,
            "opened-file",
            "file",
            json!(["change"]),
        ),
        (
            Event::file_deleted(ts(), File::from_path("/etc/x")),
            23,
            "deleted",
            "file",
            json!(["deletion"]),
        ),
        (
            Event::file_renamed(ts(), "/etc/a", File::from_path("/etc/b")),
            -1,
            "renamed",
            "file",
            json!(["change"]),
        ),
        (
            Event::directory_created(ts(), File::from_path("/etc/d")),
            -1,
            "created-directory",
            "file",
            json!(["creation"]),
        ),
        (
            Event::network_connection(ts(), Endpoint::default(), Endpoint::default(), "tcp", false),
            3,
            "connected-to",
            "network",
            json!(["connection", "start"]),
        ),
        (
            Event::dns_query(ts(), "example.com", vec![]),
            22,
            "dns-query-result",
            "network",
            json!(["connection", "protocol"]),
        ),
        (
            Event::authentication(ts(), "logged-in", Outcome::Failure, User::default()),
            -1,
            "logged-in",
            "authentication",
            json!(["start"]),
        ),
    ];
    for (e, code, action, category, types) in cases {
        let v = wire(&e);
        let ev = &v["event"];
        assert_eq!(ev["action"], action);
        assert_eq!(ev["provider"], "SEKOIA-IO-Endpoint");
        assert_eq!(ev["category"], json!([category]), "{action}");
        assert_eq!(ev["type"], types, "{action}");
        if code < 0 {
            assert!(ev.get("code").is_none(), "{action}: {ev}");
        } else {
            assert_eq!(ev["code"], code, "{action}");
        }
    }
}

#[test]
fn file_paths_split_and_renames_keep_the_old_path() {
    let f = File::from_path("/var/log/syslog");
    assert_eq!(
        (f.directory.as_str(), f.name.as_str()),
        ("/var/log", "syslog")
    );
    assert_eq!(File::from_path("/x").directory, "/");
    assert_eq!(File::from_path(r"C:\Windows\a.exe").name, "a.exe");
    let v = wire(&Event::file_renamed(
        ts(),
        "/tmp/a",
        File::from_path("/tmp/b"),
    ));
    assert_eq!(
        v["file"],
        json!({"path": "/tmp/b", "name": "b", "directory": "/tmp",
               "Ext": {"original": {"path": "/tmp/a", "name": "a"}}})
    );
}

#[test]
fn network_and_dns_fill_their_objects() {
    let src = Endpoint {
        ip: "127.0.0.1".into(),
        port: Some(40000),
        ..Endpoint::default()
    };
    let dst = Endpoint {
        ip: "127.0.0.1".into(),
        port: Some(443),
        ..Endpoint::default()
    };
    let v = wire(&Event::network_connection(ts(), src, dst, "tcp", true));
    assert_eq!(v["event"]["action"], "accepted-connection-from");
    assert_eq!(
        v["network"],
        json!({"transport": "tcp", "direction": "ingress"})
    );
    assert_eq!(v["destination"], json!({"ip": "127.0.0.1", "port": 443}));

    let answers = vec![
        DnsAnswer {
            name: "example.com".into(),
            record_type: "CNAME".into(),
            data: "b.example".into(),
            ..DnsAnswer::default()
        },
        DnsAnswer {
            record_type: "A".into(),
            data: "192.0.2.1".into(),
            ttl: Some(60),
            ..DnsAnswer::default()
        },
    ];
    let v = wire(&Event::dns_query(ts(), "example.com", answers));
    assert_eq!(
        v["dns"]["question"],
        json!({"name": "example.com", "size_in_char": 11})
    );
    assert_eq!(v["dns"]["resolved_ip"], json!(["192.0.2.1"]));
    assert_eq!(
        v["dns"]["answers"][1],
        json!({"type": "A", "data": "192.0.2.1", "ttl": 60})
    );
}

#[test]
fn agent_stats_and_log_match_the_samples() {
    let e = Event::agent_stats(
        ts(),
        AgentUsage {
            cpu_usage: Some(0.26030037),
            memory_usage: Some(0.14199863),
            ..AgentUsage::default()
        },
        HostUsage {
            cpu_usage: Some(12.285156),
            memory_total: Some(16961064960),
            memory_available: Some(8049606656),
            memory_usage: Some(52),
            ..HostUsage::default()
        },
        Some(17899),
    );
    let v = wire(&e);
    assert_eq!(
        v["event"],
        json!({"kind": "metric", "provider": "SEKOIA-IO-Endpoint", "action": "stats", "category": "host", "type": ["info"]})
    );
    assert_eq!(v["host"], json!({"uptime": 17899}));
    assert_eq!(
        v["sekoiaio"],
        json!({"agent": {"cpu_usage": 0.26030037, "memory_usage": 0.14199863},
               "host": {"cpu_usage": 12.285156, "memory_total": 16961064960u64, "memory_available": 8049606656u64, "memory_usage": 52}})
    );

    let v = wire(&Event::agent_log(
        ts(),
        LogLevel::Warning,
        "intake unreachable",
        Some("connection refused"),
    ));
    assert_eq!(
        v["log"],
        json!({"level": "warning", "logger": "SEKOIA-IO-Endpoint"})
    );
    assert_eq!(v["event"]["reason"], "intake unreachable");
    assert_eq!(v["error"], json!({"message": "connection refused"}));
    let v = wire(&Event::agent_log(ts(), LogLevel::Info, "started", None));
    assert!(v.get("error").is_none());
}

#[test]
fn empty_fields_are_not_written() {
    let mut e = Event::at(ts());
    e.process.name = String::new();
    e.process.parent = Some(Box::default());
    e.user.effective = Some(Box::default());
    e.tags = vec![];
    assert_eq!(
        e.to_json().unwrap(),
        r#"{"@timestamp":"2024-01-02T13:51:48.1394289Z"}"#
    );
    assert_eq!(Event::default().to_json().unwrap(), "{}");
}

#[test]
fn fields_of_an_unexpected_type_survive_untouched() {
    let text = r#"{"process":{"pid":"1234","args":"one string","thread":{"id":1.5}},
        "event":{"code":"4624","category":7,"start":"yesterday"},
        "sekoiaio":{"agent":{"cpu_usage":12.340}},
        "file":{"size":-1,"name":""},"host":{"ip":[1,"a"]},"tags":[],"agent":{},"x":null}"#;
    let e = Event::from_json(text).unwrap();
    assert_eq!(e.process.pid, None);
    assert_eq!(e.process.other["pid"], "1234");
    assert_eq!(e.event.category, Strings::default());
    let back: Value = serde_json::from_str(&e.to_json().unwrap()).unwrap();
    let orig: Value = serde_json::from_str(text).unwrap();
    assert_eq!(back, orig);
    assert!(e.to_json().unwrap().contains("12.340"));
}

#[test]
fn builder_timestamps_are_utc_with_nanoseconds() {
    let e = Event::at(Timestamp::from_unix(1_700_000_000, 123_456_789));
    assert_eq!(
        e.to_json().unwrap(),
        r#"{"@timestamp":"2023-11-14T22:13:20.123456789Z"}"#
    );
    let now = Timestamp::now().to_string();
    assert!(now.ends_with('Z') && now.len() >= 24, "{now}");
}

#[test]
fn non_objects_are_rejected() {
    assert!(Event::from_json("[1]").is_err());
    assert!(Event::from_json("{").is_err());
    assert!(Event::from_value(&json!("x")).is_err());
}
