//! Parsing and reassembly over the real audit logs in `testdata/go-libaudit/audit-logs`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use agent_linux_audit::reassembly::{Config, Reassembler};
use agent_linux_audit::{parse_line, AuditEvent, ParseError, SockAddr, Value};

fn logs_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/go-libaudit/audit-logs"
    ))
}

fn read(name: &str) -> String {
    let p = logs_dir().join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reference log {}: {e}", p.display()))
}

/// Parses every line and reassembles with no timeout firing; returns events and stats.
fn reassemble(text: &str) -> (Vec<AuditEvent>, agent_linux_audit::Stats) {
    let mut r = Reassembler::default();
    let now = Instant::now();
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        r.push_at(parse_line(line).expect(line), now, &mut out);
    }
    out.extend(r.flush());
    (out, r.stats())
}

fn types(e: &AuditEvent) -> Vec<String> {
    e.records
        .iter()
        .map(|r| r.type_name().into_owned())
        .collect()
}

#[test]
fn every_reference_log_parses() {
    let dir = logs_dir();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reference logs missing at {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 11,
        "expected the 11 reference logs, found {files:?}"
    );
    let mut total = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let mut r = Reassembler::default();
        let mut records = 0;
        let mut events = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match parse_line(line) {
                Ok(rec) => {
                    assert!(
                        rec.field_count() > 0,
                        "{}: no fields in {line}",
                        f.display()
                    );
                    records += 1;
                    events.extend(r.push(rec));
                }
                // The one malformed line of the RHEL 7 log: a type with no audit() header.
                Err(ParseError::BadHeader) if line == "type=UNKNOWN[1329] msg=?" => {}
                Err(e) => panic!("{}: {e}: {line}", f.display()),
            }
        }
        events.extend(r.flush());
        let reassembled: usize = events.iter().map(|e| e.records.len()).sum();
        assert_eq!(
            reassembled,
            records,
            "{}: every record in one event",
            f.display()
        );
        total += records;
    }
    assert!(total > 100, "only {total} records");
}

#[test]
fn out_of_order_log_reassembles_by_serial() {
    let (events, stats) = reassemble(&read("out_of_order.log"));
    let serials: Vec<u32> = events.iter().map(|e| e.serial).collect();
    assert_eq!(serials, [58, 59, 60, 61, 62]);
    assert_eq!(stats.records, 17);
    assert_eq!(stats.lost, 0);
    assert_eq!(stats.out_of_order, 0);

    assert_eq!(types(&events[0]), ["SYSCALL", "SOCKADDR"]);
    assert_eq!(
        events[0].sockaddr(),
        Some(&SockAddr::Inet {
            addr: [169, 254, 169, 254].into(),
            port: 80
        })
    );
    let exe = events[0].syscall().unwrap().get("exe").unwrap();
    assert_eq!(exe, "/usr/bin/python2.7;58d1ccfb (deleted)");

    assert_eq!(
        types(&events[1]),
        ["SYSCALL", "EXECVE", "CWD", "PATH", "PATH"]
    );
    assert_eq!(
        events[1].execve_args().unwrap(),
        ["grep", "--color=auto", "mapping"]
    );
    assert_eq!(events[1].syscall().unwrap().get_u64("pid"), Some(13393));
    assert_eq!(events[1].keys(), ["user_commands"]);
    assert_eq!(events[1].syscall_name(), Some("execve"));
    assert_eq!(events[0].syscall_name(), Some("connect"));

    // Event 60's second PATH arrives after event 61's SYSCALL: it still joins 60.
    let e60 = &events[2];
    assert_eq!(types(e60), ["SYSCALL", "EXECVE", "CWD", "PATH", "PATH"]);
    assert_eq!(e60.execve_args().unwrap(), ["cat", "securitybeat"]);
    assert_eq!(e60.cwd().as_deref(), Some("/home/andrew_kroh"));
    let names: Vec<_> = e60
        .paths()
        .iter()
        .map(|p| p.get("name").unwrap().into_owned())
        .collect();
    assert_eq!(names, ["/usr/bin/cat", "/lib64/ld-linux-x86-64.so.2"]);

    // Event 61's PATH arrives after event 62's SYSCALL.
    assert_eq!(types(&events[3]), ["SYSCALL", "SOCKADDR", "CWD", "PATH"]);
    assert_eq!(
        events[3].sockaddr(),
        Some(&SockAddr::Unix {
            path: "public/pickup".into()
        })
    );
    assert_eq!(events[3].syscall().unwrap().get_id("auid"), Some(None));
    assert_eq!(types(&events[4]), ["SYSCALL"]);
    assert_eq!(events[4].syscall().unwrap().get_id("uid"), Some(Some(89)));
}

#[test]
fn lost_messages_log_reports_the_serial_gap() {
    let (events, stats) = reassemble(&read("lost_messages.log"));
    let serials: Vec<u32> = events.iter().map(|e| e.serial).collect();
    assert_eq!(serials, [49, 59, 60, 61, 62]);
    // Serials 50..=58 never arrived.
    assert_eq!(stats.lost, 9);
    assert_eq!(types(&events[0]), ["SYSCALL", "SOCKADDR"]);
    assert_eq!(events[2].records.len(), 5);
}

#[test]
fn lost_serials_are_reported_by_tick_after_the_timeout() {
    let mut r = Reassembler::new(Config {
        timeout: Duration::from_millis(100),
        ..Config::default()
    });
    let t0 = Instant::now();
    let mut out = Vec::new();
    for line in read("lost_messages.log").lines() {
        r.push_at(parse_line(line).unwrap(), t0, &mut out);
    }
    assert!(out.is_empty(), "no EOE in the log: nothing completes early");
    assert!(r.tick(t0 + Duration::from_millis(50)).is_empty());
    assert_eq!(r.stats().lost, 0, "gaps may still fill within the timeout");
    let done = r.tick(t0 + Duration::from_millis(100));
    assert_eq!(done.len(), 5);
    assert!(done.iter().all(|e| !e.complete));
    assert_eq!(r.stats().lost, 9);
    assert_eq!(r.in_flight(), 0);
}

#[test]
fn rollover_log_has_no_gap_across_the_serial_wrap() {
    let (events, stats) = reassemble(&read("rollover.log"));
    let serials: Vec<u32> = events.iter().map(|e| e.serial).collect();
    assert_eq!(serials, [4294967294, 4294967295, 0, 1, 2]);
    assert_eq!(stats.lost, 0);
}

#[test]
fn normal_and_rhel7_logs() {
    let (events, stats) = reassemble(&read("normal.log"));
    assert_eq!(events.len(), 5);
    assert_eq!(stats.lost, 0);

    // User-space records are whole events on their own.
    let (events, _) =
        reassemble(&read("audit-rhel7.log").replace("type=UNKNOWN[1329] msg=?\n", ""));
    let login = events
        .iter()
        .find(|e| e.records[0].type_name() == "USER_LOGIN")
        .unwrap();
    assert!(login.complete);
    let r = &login.records[0];
    assert_eq!(
        r.get("hostname").unwrap(),
        "pool-96-241-146-97.washdc.fios.verizon.net"
    );
    assert_eq!(r.get_id("auid"), Some(Some(1000)));
    let cmd = events
        .iter()
        .find(|e| e.records[0].type_name() == "USER_CMD")
        .unwrap();
    assert_eq!(
        cmd.records[0].get("cmd").unwrap(),
        "./metricbeat -c mb.dev.yml"
    );
    let inet6 = events
        .iter()
        .filter_map(|e| e.sockaddr())
        .find(|a| matches!(a, SockAddr::Inet6 { .. }))
        .unwrap();
    assert_eq!(inet6.to_string(), "[::]:22");
    let tty = events
        .iter()
        .flat_map(|e| &e.records)
        .find(|r| r.type_name() == "TTY")
        .unwrap();
    assert!(matches!(tty.field("data").unwrap().value, Value::Hex(_)));
    assert!(tty
        .get("data")
        .unwrap()
        .starts_with("eh\u{7f}\u{7f}echo test"));
}
