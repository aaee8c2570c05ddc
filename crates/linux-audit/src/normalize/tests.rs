//! Normalization of recorded audit events (text log lines), field by field.

use super::*;
use crate::proctable::Limits;
use crate::reassembly::Reassembler;
use crate::record::parse_line;

fn event(lines: &[&str]) -> AuditEvent {
    let mut r = Reassembler::default();
    let mut out = Vec::new();
    for l in lines {
        out.extend(r.push(parse_line(l).unwrap()));
    }
    out.extend(r.flush());
    assert_eq!(out.len(), 1, "{out:?}");
    out.remove(0)
}

fn normalizer() -> Normalizer {
    let dir = tempfile::tempdir().unwrap();
    // An empty /proc: everything comes from the events.
    let n = Normalizer::new(ProcTable::with_proc_root(
        "boot",
        Limits::default(),
        dir.path(),
    ));
    std::mem::forget(dir);
    n
}

fn round_trip(e: &Event) {
    let json = e.to_json().unwrap();
    let back = Event::from_json(&json).unwrap();
    assert_eq!(back.to_json().unwrap(), json);
}

#[test]
fn exec_then_exit_with_parent_from_the_table() {
    let mut n = normalizer();
    let parent = event(&[
        r#"type=SYSCALL msg=audit(1700000000.100:10): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=4 items=2 ppid=1 pid=100 auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=3 comm="bash" exe="/usr/bin/bash" key="process-start""#,
        r#"type=EXECVE msg=audit(1700000000.100:10): argc=1 a0="bash""#,
        r#"type=CWD msg=audit(1700000000.100:10): cwd="/root""#,
        "type=EOE msg=audit(1700000000.100:10): ",
    ]);
    let e = n.normalize(&parent).unwrap().into_event();
    assert_eq!(e.process.pid, Some(100));
    let child = event(&[
        r#"type=SYSCALL msg=audit(1700000001.250:11): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=4 items=2 ppid=100 pid=101 auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=3 comm="id" exe="/usr/bin/id" key="root-command""#,
        r#"type=EXECVE msg=audit(1700000001.250:11): argc=2 a0="id" a1="-u""#,
        r#"type=CWD msg=audit(1700000001.250:11): cwd="/tmp""#,
        r#"type=PATH msg=audit(1700000001.250:11): item=0 name="/usr/bin/id" inode=5 dev=08:01 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL"#,
        r#"type=PROCTITLE msg=audit(1700000001.250:11): proctitle=6964002D75"#,
        "type=EOE msg=audit(1700000001.250:11): ",
    ]);
    let e = n.normalize(&child).unwrap().into_event();
    round_trip(&e);
    assert_eq!(e.timestamp.unwrap().to_string(), "2023-11-14T22:13:21.250Z");
    assert_eq!(e.event.code, Some(1));
    assert_eq!(e.event.action, "process-created");
    assert_eq!(e.process.pid, Some(101));
    assert_eq!(e.process.executable, "/usr/bin/id");
    assert_eq!(e.process.name, "id");
    assert_eq!(e.process.command_line, "id -u");
    assert_eq!(e.process.args, ["id", "-u"]);
    assert_eq!(e.process.working_directory, "/tmp");
    let p = e.process.parent.as_deref().unwrap();
    assert_eq!(p.pid, Some(100));
    assert_eq!(p.executable, "/usr/bin/bash");
    assert_eq!(p.command_line, "bash");
    assert!(!e.sekoiaio.process.guid.is_empty());
    assert!(!e.sekoiaio.process.parent_guid.is_empty());
    assert_eq!(e.tags, ["root-command"]);
    assert_eq!(e.user.id, "1000");
    assert_eq!(e.user.effective.as_ref().unwrap().id, "0");
    assert_eq!(e.user.effective.as_ref().unwrap().name, "root");
    assert_eq!(e.action.properties["syscall"], "execve");
    assert_eq!(e.action.properties["arch"], "x86_64");
    // Raw fields stay; those carried by structured fields are not repeated.
    for k in ["a0", "exit", "tty", "uid", "ses", "comm"] {
        assert!(e.action.properties.contains_key(k), "{k} kept");
    }
    for k in [
        "pid", "ppid", "exe", "success", "items", "euid", "egid", "auid", "key",
    ] {
        assert!(!e.action.properties.contains_key(k), "{k} left out");
    }

    let exit = event(&[
        r#"type=SYSCALL msg=audit(1700000001.300:12): arch=c000003e syscall=231 a0=2 a1=3c a2=0 a3=0 items=0 ppid=100 pid=101 auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=3 comm="id" exe="/usr/bin/id" key="process-exit""#,
        "type=EOE msg=audit(1700000001.300:12): ",
    ]);
    let e = n.normalize(&exit).unwrap().into_event();
    round_trip(&e);
    assert_eq!(e.event.code, Some(5));
    assert_eq!(e.event.action, "process-terminated");
    assert_eq!(e.process.exit_code, Some(2));
    assert_eq!(e.process.command_line, "id -u");
    assert_eq!(e.process.parent.as_deref().unwrap().pid, Some(100));
    assert_eq!(e.tags, ["process-exit"]);
}

#[test]
fn rename_with_relative_names_uses_the_cwd() {
    let mut n = normalizer();
    let ev = event(&[
        r#"type=SYSCALL msg=audit(1700000000.000:20): arch=c000003e syscall=316 success=yes exit=0 a0=ffffff9c a1=7ffd a2=ffffff9c a3=7ffe items=4 ppid=1 pid=200 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="mv" exe="/usr/bin/mv" key="watch""#,
        r#"type=CWD msg=audit(1700000000.000:20): cwd="/tmp/w""#,
        r#"type=PATH msg=audit(1700000000.000:20): item=0 name="/tmp/w" inode=1 dev=00:1f mode=040755 ouid=0 ogid=0 rdev=00:00 nametype=PARENT"#,
        r#"type=PATH msg=audit(1700000000.000:20): item=1 name="/tmp/w" inode=1 dev=00:1f mode=040755 ouid=0 ogid=0 rdev=00:00 nametype=PARENT"#,
        r#"type=PATH msg=audit(1700000000.000:20): item=2 name="a" inode=7 dev=00:1f mode=0100600 ouid=0 ogid=0 rdev=00:00 nametype=DELETE"#,
        r#"type=PATH msg=audit(1700000000.000:20): item=3 name="b" inode=7 dev=00:1f mode=0100600 ouid=0 ogid=0 rdev=00:00 nametype=CREATE"#,
        "type=EOE msg=audit(1700000000.000:20): ",
    ]);
    let Normalized::NeedsHash { event: e, path } = n.normalize(&ev).unwrap() else {
        panic!("a renamed regular file is hashed");
    };
    round_trip(&e);
    assert_eq!(path, PathBuf::from("/tmp/w/b"));
    assert_eq!(e.event.action, "renamed");
    assert_eq!(e.file.path, "/tmp/w/b");
    assert_eq!(e.file.ext.original.path, "/tmp/w/a");
    assert_eq!(e.file.mode, "0600");
    assert_eq!(e.file.owner, "root");
    // No login user: the real user stands in.
    assert_eq!(e.user.id, "0");
}

#[test]
fn connect_to_loopback_and_unix_socket() {
    let mut n = normalizer();
    let ev = event(&[
        r#"type=SYSCALL msg=audit(1700000000.000:30): arch=c000003e syscall=42 success=yes exit=0 a0=3 a1=7ffd a2=10 a3=0 items=0 ppid=1 pid=300 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm="curl" exe="/usr/bin/curl" key="network-connect""#,
        r#"type=SOCKADDR msg=audit(1700000000.000:30): saddr=020000507F0000010000000000000000"#,
        "type=EOE msg=audit(1700000000.000:30): ",
    ]);
    let e = n.normalize(&ev).unwrap().into_event();
    round_trip(&e);
    assert_eq!(e.event.code, Some(3));
    assert_eq!(e.event.action, "connected-to");
    assert_eq!(e.destination.ip, "127.0.0.1");
    assert_eq!(e.destination.port, Some(80));
    assert_eq!(e.network.direction, "internal");
    assert_eq!(e.event.outcome, "success");

    let ev = event(&[
        r#"type=SYSCALL msg=audit(1700000000.000:31): arch=c000003e syscall=42 success=no exit=-115 a0=3 a1=7ffd a2=10 a3=0 items=0 ppid=1 pid=300 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm="x" exe="/usr/bin/x" key="k""#,
        r#"type=SOCKADDR msg=audit(1700000000.000:31): saddr=01002F72756E2F7800"#,
        "type=EOE msg=audit(1700000000.000:31): ",
    ]);
    let e = n.normalize(&ev).unwrap().into_event();
    assert_eq!(e.network.transport, "unix");
    assert_eq!(e.destination.address, "/run/x");
    assert_eq!(e.destination.ip, "");
    assert_eq!(e.event.outcome, "unknown");
}

#[test]
fn user_login_is_an_authentication_event() {
    let mut n = normalizer();
    let ev = event(&[
        r#"type=USER_LOGIN msg=audit(1700000000.000:40): pid=1750 uid=0 auid=4294967295 ses=4294967295 msg='op=login acct="root" exe="/usr/sbin/sshd" hostname=? addr=192.0.2.7 terminal=ssh res=failed'"#,
    ]);
    let e = n.normalize(&ev).unwrap().into_event();
    round_trip(&e);
    assert_eq!(e.event.action, "logged-in");
    assert_eq!(e.event.category.as_slice(), ["authentication"]);
    assert_eq!(e.event.types.as_slice(), ["start"]);
    assert_eq!(e.event.outcome, "failure");
    assert_eq!(e.user.name, "root");
    assert_eq!(e.process.executable, "/usr/sbin/sshd");
    assert_eq!(e.process.pid, Some(1750));
    assert_eq!(e.source.ip, "192.0.2.7");
    assert_eq!(e.network.direction, "ingress");
    assert_eq!(e.action.properties["terminal"], "ssh");

    let ev = event(&[
        r#"type=USER_START msg=audit(1700000000.000:41): pid=1750 uid=0 auid=1000 ses=5 msg='op=PAM:session_open grantors=pam_unix acct="alice" exe="/usr/sbin/sshd" hostname=h addr=::1 terminal=ssh res=success'"#,
    ]);
    let e = n.normalize(&ev).unwrap().into_event();
    assert_eq!(e.event.action, "started-session");
    assert_eq!(e.event.outcome, "success");
    assert_eq!(e.user.id, "1000");
    assert_eq!(e.user.effective.as_ref().unwrap().name, "alice");
    assert_eq!(e.network.direction, "internal");
}

#[test]
fn config_change_is_not_an_event() {
    let mut n = normalizer();
    let ev = event(&[
        r#"type=CONFIG_CHANGE msg=audit(1700000000.000:50): auid=0 ses=1 op=add_rule key="k" list=4 res=1"#,
    ]);
    assert_eq!(n.normalize(&ev), Err(Skip::Unmapped));
}

#[test]
fn vocabulary_matches_the_reference_normalizations() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/go-libaudit/audit-normalizations.yaml"
    );
    let text =
        std::fs::read_to_string(path).expect("testdata/go-libaudit/audit-normalizations.yaml");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let mut actions = std::collections::HashMap::new();
    for n in doc["normalizations"].as_sequence().unwrap() {
        let Some(action) = n["action"].as_str() else {
            continue;
        };
        for k in ["syscalls", "record_types"] {
            let names: Vec<String> = match &n[k] {
                serde_yaml::Value::String(s) => vec![s.clone()],
                serde_yaml::Value::Sequence(s) => s
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect(),
                _ => vec![],
            };
            for name in names {
                actions.insert(name, action.to_owned());
            }
        }
    }
    for s in vocabulary::SYSCALLS
        .iter()
        .chain(vocabulary::EXTENSIONS.iter().map(|e| &e.0))
    {
        let v = vocabulary::syscall(s).unwrap();
        let expected = match vocabulary::DEVIATIONS.iter().find(|d| d.0 == *s) {
            Some(&(_, table, ours)) => {
                assert_eq!(actions.get(*s).map(String::as_str), Some(table), "{s}");
                ours.to_owned()
            }
            None => {
                let of = vocabulary::EXTENSIONS
                    .iter()
                    .find(|e| e.0 == *s)
                    .map_or(*s, |e| e.1);
                actions[of].clone()
            }
        };
        assert_eq!(v.action, expected, "{s}");
    }
    for t in vocabulary::RECORD_TYPES {
        let v = vocabulary::record_type(t).unwrap();
        assert_eq!(Some(&v.action.to_owned()), actions.get(*t), "{t}");
    }
}

#[test]
fn old_kernels_objtype_is_read_like_nametype() {
    let mut n = normalizer();
    let ev = event(&[
        r#"type=SYSCALL msg=audit(1700000000.000:21): arch=c000003e syscall=82 success=yes exit=0 a0=7ffd a1=7ffe a2=0 a3=0 items=5 ppid=1 pid=201 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="mv" exe="/bin/mv" key="watch""#,
        r#"type=CWD msg=audit(1700000000.000:21):  cwd="/etc""#,
        r#"type=PATH msg=audit(1700000000.000:21): item=0 name="/etc/" inode=1 dev=08:01 mode=040755 ouid=0 ogid=0 rdev=00:00 objtype=PARENT"#,
        r#"type=PATH msg=audit(1700000000.000:21): item=1 name="/etc/" inode=1 dev=08:01 mode=040755 ouid=0 ogid=0 rdev=00:00 objtype=PARENT"#,
        r#"type=PATH msg=audit(1700000000.000:21): item=2 name="passwd+" inode=7 dev=08:01 mode=0100644 ouid=0 ogid=0 rdev=00:00 objtype=DELETE"#,
        r#"type=PATH msg=audit(1700000000.000:21): item=3 name="passwd" inode=6 dev=08:01 mode=0100644 ouid=0 ogid=0 rdev=00:00 objtype=DELETE"#,
        r#"type=PATH msg=audit(1700000000.000:21): item=4 name="passwd" inode=7 dev=08:01 mode=0100644 ouid=0 ogid=0 rdev=00:00 objtype=CREATE"#,
        "type=EOE msg=audit(1700000000.000:21): ",
    ]);
    let e = n.normalize(&ev).unwrap().into_event();
    assert_eq!(e.event.action, "renamed");
    assert_eq!(e.file.path, "/etc/passwd");
    assert_eq!(e.file.inode, "7");
    assert_eq!(e.file.ext.original.path, "/etc/passwd+");
    assert_eq!(e.action.properties["replaced_inode"], "6");
}

#[test]
fn guids_are_written_as_to_string_writes_them() {
    for g in [
        uuid::Uuid::nil(),
        crate::proctable::process_guid("b", 1, 2),
        uuid::Uuid::from_u128(u128::MAX),
    ] {
        assert_eq!(guid_text(g), g.to_string());
    }
}
