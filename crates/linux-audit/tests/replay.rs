//! `agent replay`'s library part over every recorded audit log in `testdata/`: no panic,
//! every record accounted for, and hand-checked events for a handful of records.

use std::path::{Path, PathBuf};

use agent_event::Event;
use agent_linux_audit::replay::{replay, Accounting};

fn testdata() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata"))
}

fn replay_file(path: &Path) -> (Vec<Event>, Accounting) {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    replay(std::io::BufReader::new(f)).unwrap()
}

fn logs() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["go-libaudit/audit-logs", "linux-audit"] {
        for e in std::fs::read_dir(testdata().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "log") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_reference_log_replays_with_every_record_accounted_for() {
    let files = logs();
    assert!(files.len() >= 12, "{files:?}");
    for f in &files {
        let (events, acc) = replay_file(f);
        let lines = std::fs::read_to_string(f)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count() as u64;
        assert_eq!(acc.records, lines, "{}", f.display());
        assert!(acc.balanced(), "{}: {acc:?}", f.display());
        assert_eq!(acc.emitted, events.len() as u64, "{}", f.display());
        // A line that does not parse is skipped with its reason, never lost silently
        // (audit-rhel7.log has one truncated header).
        assert_eq!(
            acc.parse_errors.len() as u64,
            acc.skipped.get("unparsable line").copied().unwrap_or(0),
            "{}",
            f.display()
        );
        for e in &events {
            let json = e.to_json().unwrap();
            assert_eq!(Event::from_json(&json).unwrap().to_json().unwrap(), json);
        }
    }
}

fn find<'a>(events: &'a [Event], what: &str, pred: impl Fn(&Event) -> bool) -> &'a Event {
    events
        .iter()
        .find(|e| pred(e))
        .unwrap_or_else(|| panic!("no event for {what}"))
}

#[test]
fn rhel7_login_service_and_account_records() {
    let (events, _) = replay_file(&testdata().join("go-libaudit/audit-logs/audit-rhel7.log"));
    let login = find(&events, "LOGIN", |e| {
        e.event.action == "changed-login-id-to"
    });
    assert_eq!(login.user.id, "0");
    assert_eq!(login.user.effective.as_deref().unwrap().id, "1000");
    assert_eq!(login.event.outcome, "success");
    let svc = find(&events, "SERVICE_START", |e| {
        e.event.action == "started-service"
    });
    assert_eq!(svc.tags, ["service-change"]);
    assert_eq!(svc.process.executable, "/usr/lib/systemd/systemd");
    let add = find(&events, "ADD_USER", |e| {
        e.event.action == "added-user-account"
    });
    assert_eq!(add.user.id, "0");
    assert_eq!(add.user.target.as_deref().unwrap().id, "1000");
    assert_eq!(add.event.category.as_slice(), ["iam"]);
}

#[test]
fn debian12_scenarios_give_the_hand_checked_values() {
    let (events, acc) =
        replay_file(&testdata().join("linux-audit/debian12-kernel6.18-scenarios.log"));
    assert!(acc.balanced());
    let w = "/tmp/h9-cap/w";
    // mv x-a over x-b: the moved file is x-a (not the replaced x-b).
    let r = find(&events, "rename", |e| {
        e.event.action == "renamed" && e.event.outcome == "success"
    });
    assert_eq!(r.file.path, format!("{w}/x-b"));
    assert_eq!(r.file.inode, "10035608");
    assert_eq!(r.file.ext.original.path, format!("{w}/x-a"));
    assert_eq!(
        r.other["labels"]["original_path"],
        format!("{w}/x-a").as_str()
    );
    assert_eq!(r.action.properties["replaced_inode"], "10035609");
    // mkdir
    let d = find(&events, "mkdir", |e| e.event.action == "directory-created");
    assert_eq!(d.file.path, format!("{w}/newdir"));
    assert_eq!(d.file.created, "2026-12-02T19:51:12.525Z");
    // chmod 600 then chown nobody:nogroup: the values after the calls (ids: no names
    // offline).
    let m = find(&events, "chmod", |e| {
        e.action
            .properties
            .get("syscall")
            .is_some_and(|s| s == "fchmodat")
    });
    assert_eq!(m.file.mode, "0600");
    let o = find(&events, "chown", |e| {
        e.action
            .properties
            .get("syscall")
            .is_some_and(|s| s == "fchownat")
    });
    assert_eq!(
        (o.file.owner.as_str(), o.file.group.as_str()),
        ("65534", "65534")
    );
    // fchmod through a descriptor (PATH name=(null)): named from the open before it.
    let f = find(&events, "fchmod", |e| {
        e.action
            .properties
            .get("syscall")
            .is_some_and(|s| s == "fchmod")
    });
    assert_eq!(f.file.path, format!("{w}/x-b"));
    assert_eq!(f.file.mode, "0640");
    // LOGIN with the write syscall.
    let l = find(&events, "LOGIN", |e| {
        e.event.action == "changed-login-id-to"
    });
    assert_eq!(l.user.effective.as_deref().unwrap().id, "1001");
    assert_eq!(l.process.pid, Some(27703));
    // ADD_USER: the actor root (uid, no login user) and the new uid.
    let a = find(&events, "ADD_USER", |e| {
        e.event.action == "added-user-account"
    });
    assert_eq!(a.user.id, "0");
    assert_eq!(a.user.target.as_deref().unwrap().id, "1001");
    // The binary deleted while running.
    let x = find(&events, "deleted exe", |e| {
        e.event.action == "process-terminated" && e.process.pid == Some(27862)
    });
    assert_eq!(x.process.executable, format!("{w}/sleepy"));
    assert_eq!(x.process.name, "sleepy");
    assert!(x.tags.iter().any(|t| t == "executable-deleted"));
    // A crash, a firewall change, a refused module load, mount/umount.
    let c = find(&events, "ANOM_ABEND", |e| {
        e.event.action == "crashed-program"
    });
    assert_eq!(c.process.exit_code, Some(-11));
    assert_eq!(c.process.pid, Some(28071));
    let n = find(&events, "NETFILTER_CFG", |e| {
        e.event.action == "loaded-firewall-rule-to"
    });
    assert_eq!(n.action.properties["op"], "nft_register_table");
    assert_eq!(n.event.outcome, "success");
    assert_eq!(n.process.executable, "/usr/sbin/nft");
    let k = find(&events, "init_module", |e| {
        e.event.action == "loaded-kernel-module"
    });
    assert_eq!(k.event.outcome, "failure");
    let u = find(&events, "umount", |e| e.event.action == "unmounted");
    assert_eq!(u.file.path, format!("{w}/newdir"));
}
