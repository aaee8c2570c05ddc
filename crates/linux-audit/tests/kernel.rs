//! Tests against the real kernel audit subsystem (root required; CI runs as root).
//!
//! They change global kernel state, so they are serialized (a process-wide mutex plus a
//! file lock against other processes) and a guard restores the rules and status found
//! before, even when an assertion fails. `auditctl` (auditd package, daemon not running)
//! cross-checks what our netlink client did.
#![cfg(target_os = "linux")]

use std::collections::{BTreeSet, HashSet};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use agent_linux_audit::netlink::{AuditSocket, NetlinkError, SavedState, StatusUpdate};
use agent_linux_audit::rule::{compile, parse_rule_file, Arch, RuleData, RuleLine};
use agent_linux_audit::session::{AuditSession, Mode, SessionConfig};
use agent_linux_audit::AuditEvent;

mod common;
use common::KernelGuard;

fn auditctl(args: &[&str]) -> String {
    let out = Command::new("auditctl")
        .args(args)
        .output()
        .expect("auditctl (package auditd) must be installed");
    assert!(out.status.success(), "auditctl {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// `auditctl -s` without the counters that move on their own.
fn auditctl_state() -> Vec<String> {
    auditctl(&["-s"])
        .lines()
        .filter(|l| {
            let k = l.split(' ').next().unwrap_or("");
            matches!(
                k,
                "enabled"
                    | "failure"
                    | "pid"
                    | "rate_limit"
                    | "backlog_limit"
                    | "backlog_wait_time"
            )
        })
        .map(str::to_owned)
        .collect()
}

fn auditctl_rules() -> Vec<String> {
    auditctl(&["-l"])
        .lines()
        .filter(|l| *l != "No rules")
        .map(str::to_owned)
        .collect()
}

fn arch() -> Arch {
    Arch::native().expect("x86_64 or aarch64")
}

fn rule(text: &str) -> RuleData {
    compile(text, arch()).unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn kernel_rules_load_and_unload_exactly_ours_and_restore_state() {
    let mut guard = KernelGuard::take();
    // Someone else's rule, loaded before us, must survive untouched.
    let foreign = "-a always,exit -F arch=b64 -S chmod -F key=foreign-test";
    auditctl(&[
        "-a",
        "always,exit",
        "-F",
        "arch=b64",
        "-S",
        "chmod",
        "-k",
        "foreign-test",
    ]);
    guard.extra_cleanup.push(format!("-d {}", &foreign[3..]));
    let rules_before = auditctl_rules();
    let state_before = auditctl_state();
    assert!(rules_before.iter().any(|l| l.contains("foreign-test")));

    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/rules/default.rules"))
        .expect("default rule file");
    let mut ours: Vec<RuleData> = parse_rule_file(&text, arch())
        .unwrap()
        .into_iter()
        .map(|l| match l {
            RuleLine::Rule { data, .. } => data,
            RuleLine::Control(c) => panic!("control line in default rules: {c:?}"),
        })
        .collect();
    // Also the foreign rule itself: already present, so not ours to remove.
    ours.push(rule(foreign));
    assert!(ours.len() > 10);

    let session = AuditSession::start(&SessionConfig::default(), &ours).unwrap();
    let during = auditctl_state();
    assert!(during.contains(&"enabled 1".to_string()), "{during:?}");
    assert!(
        during.contains(&format!("pid {}", std::process::id())),
        "registered as the audit daemon: {during:?}"
    );
    assert!(
        during.contains(&"backlog_limit 8192".to_string()),
        "{during:?}"
    );

    // auditctl lists the rules found before, then ours (own-pid exclusion first) in order:
    // compiling each listed line gives back exactly the bytes we loaded.
    let listed = auditctl_rules();
    let added = session.added_rules().to_vec();
    assert_eq!(
        added.len(),
        ours.len(),
        "exclusion added, foreign rule skipped"
    );
    assert_eq!(
        listed.len(),
        rules_before.len() + added.len(),
        "{listed:#?}"
    );
    assert_eq!(listed[..rules_before.len()], rules_before[..]);
    for (line, want) in listed[rules_before.len()..].iter().zip(&added) {
        assert_eq!(&rule(line), want, "auditctl lists {line:?}");
    }
    assert!(
        listed[rules_before.len()].ends_with(&format!("-F pid={}", std::process::id())),
        "own-pid exclusion first: {listed:#?}"
    );

    session.stop().unwrap();
    assert_eq!(auditctl_rules(), rules_before);
    assert_eq!(auditctl_state(), state_before);
}

/// Reads events in a thread while `work` runs, until `done(events)` or a deadline.
fn collect_while(
    rules: &[&str],
    work: impl FnOnce(),
    done: impl Fn(&[AuditEvent]) -> bool + Sync,
) -> Vec<AuditEvent> {
    collect_while_in(Mode::Unicast, rules, work, done)
}

fn collect_while_in(
    mode: Mode,
    rules: &[&str],
    work: impl FnOnce(),
    done: impl Fn(&[AuditEvent]) -> bool + Sync,
) -> Vec<AuditEvent> {
    let rules: Vec<RuleData> = rules.iter().map(|r| rule(r)).collect();
    collect_rules_while_in(mode, rules, work, done)
}

fn collect_rules_while_in(
    mode: Mode,
    rules: Vec<RuleData>,
    work: impl FnOnce(),
    done: impl Fn(&[AuditEvent]) -> bool + Sync,
) -> Vec<AuditEvent> {
    let cfg = SessionConfig {
        mode,
        ..SessionConfig::default()
    };
    let mut session = AuditSession::start(&cfg, &rules).unwrap();
    let stop = AtomicBool::new(false);
    let events = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut events = Vec::new();
            let mut deadline = None;
            loop {
                events.extend(session.recv(Duration::from_millis(100)).unwrap());
                if done(&events) {
                    break;
                }
                if stop.load(Ordering::SeqCst) {
                    let d = *deadline.get_or_insert(Instant::now() + Duration::from_secs(30));
                    if Instant::now() > d {
                        break;
                    }
                }
            }
            events
        });
        work();
        stop.store(true, Ordering::SeqCst);
        reader.join().unwrap()
    });
    let stats = session.stats();
    let mut events = events;
    events.extend(session.stop().unwrap());
    assert_eq!(stats.parse_errors, 0, "{stats:?}");
    events
}

fn has_key(e: &AuditEvent, key: &str) -> bool {
    e.keys().iter().any(|k| k == key)
}

#[test]
fn kernel_execve_of_bin_true_1000_times_gives_1000_complete_events() {
    let _guard = KernelGuard::take();
    const N: usize = 1000;
    let me = std::process::id();
    let key = "agent-test-exec";
    let rule = format!("-a always,exit -F arch=b64 -S execve -F ppid={me} -k {key}");
    let mut pids = BTreeSet::new();
    let events = collect_while(
        &[&rule],
        || {
            for _ in 0..N {
                let mut c = Command::new("/bin/true").spawn().expect("spawn /bin/true");
                pids.insert(c.id());
                assert!(c.wait().unwrap().success());
            }
        },
        |ev| ev.iter().filter(|e| has_key(e, key)).count() >= N,
    );
    let ours: Vec<&AuditEvent> = events.iter().filter(|e| has_key(e, key)).collect();
    assert_eq!(ours.len(), N, "one event per exec");
    let mut seen = BTreeSet::new();
    for e in &ours {
        assert!(e.complete, "closed by EOE: {e:?}");
        let types: HashSet<String> = e
            .records
            .iter()
            .map(|r| r.type_name().into_owned())
            .collect();
        for t in ["SYSCALL", "EXECVE", "CWD", "PATH", "PROCTITLE"] {
            assert!(types.contains(t), "{t} missing in {types:?}");
        }
        let sc = e.syscall().unwrap();
        assert_eq!(sc.get("success").as_deref(), Some("yes"));
        assert_eq!(sc.get_u64("ppid"), Some(u64::from(me)));
        let pid = sc.get_u64("pid").unwrap() as u32;
        assert!(seen.insert(pid), "pid {pid} twice");
        assert_eq!(e.execve_args().unwrap(), ["/bin/true"]);
        assert_eq!(e.proctitle().unwrap(), ["/bin/true"]);
        assert_eq!(e.paths()[0].get("name").as_deref(), Some("/bin/true"));
        assert_eq!(
            e.cwd(),
            std::env::current_dir().unwrap().to_str().map(str::to_owned)
        );
    }
    assert_eq!(seen, pids, "exactly the children we spawned");
}

#[test]
fn kernel_watched_directory_yields_create_rename_unlink() {
    let _guard = KernelGuard::take();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().canonicalize().unwrap();
    let d = d.to_str().unwrap().to_owned();
    let key = "agent-test-dir";
    let events = collect_while(
        &[&format!("-w {d} -p wa -k {key}")],
        || {
            // Our own pid is excluded: this write must not show up.
            std::fs::write(format!("{d}/self.txt"), b"x").unwrap();
            let script = format!("echo hi > {d}/a.txt && mv {d}/a.txt {d}/b.txt && rm {d}/b.txt");
            assert!(Command::new("sh")
                .args(["-c", &script])
                .status()
                .unwrap()
                .success());
        },
        |ev| {
            ev.iter().filter(|e| has_key(e, key)).any(|e| {
                e.paths().iter().any(|p| {
                    p.get("name").is_some_and(|n| n.ends_with("b.txt"))
                        && p.get("nametype").as_deref() == Some("DELETE")
                        && e.paths().len() == 2
                })
            })
        },
    );
    let ours: Vec<&AuditEvent> = events.iter().filter(|e| has_key(e, key)).collect();
    let syscall_names = |e: &AuditEvent| {
        let sc = e.syscall().unwrap();
        let arch = u32::from_str_radix(&sc.get("arch").unwrap(), 16).unwrap();
        let nr = sc.get_u64("syscall").unwrap() as u32;
        agent_linux_audit::rule::syscall_name(arch, nr)
            .unwrap()
            .to_owned()
    };
    let path_ops = |e: &AuditEvent| -> Vec<(String, String)> {
        e.paths()
            .iter()
            .filter_map(|p| {
                let name = p.get("name")?.into_owned();
                let file = name.rsplit('/').next()?.to_owned();
                Some((file, p.get("nametype")?.into_owned()))
            })
            .collect()
    };
    let find = |calls: &[&str], file: &str, nametype: &str| {
        ours.iter().any(|e| {
            calls.contains(&syscall_names(e).as_str())
                && path_ops(e).contains(&(file.to_owned(), nametype.to_owned()))
        })
    };
    let summary: Vec<_> = ours
        .iter()
        .map(|e| (syscall_names(e), path_ops(e)))
        .collect();
    assert!(
        find(&["open", "openat", "creat"], "a.txt", "CREATE"),
        "{summary:#?}"
    );
    assert!(
        find(&["rename", "renameat", "renameat2"], "a.txt", "DELETE"),
        "{summary:#?}"
    );
    assert!(
        find(&["rename", "renameat", "renameat2"], "b.txt", "CREATE"),
        "{summary:#?}"
    );
    assert!(
        find(&["unlink", "unlinkat"], "b.txt", "DELETE"),
        "{summary:#?}"
    );
    assert!(
        !summary
            .iter()
            .any(|(_, p)| p.iter().any(|(f, _)| f == "self.txt")),
        "the agent's own activity is excluded: {summary:#?}"
    );
    for e in &ours {
        assert_ne!(
            e.syscall().unwrap().get_u64("pid"),
            Some(u64::from(std::process::id()))
        );
    }
}

#[test]
fn kernel_multicast_mode_receives_without_registering() {
    let _guard = KernelGuard::take();
    let me = std::process::id();
    let key = "agent-test-mcast";
    let rule = format!("-a always,exit -F arch=b64 -S execve -F ppid={me} -k {key}");
    let events = collect_while_in(
        Mode::Multicast,
        &[&rule],
        || {
            let mut s = AuditSocket::open().unwrap();
            assert_eq!(
                s.get_status().unwrap().pid,
                0,
                "multicast does not register"
            );
            for _ in 0..10 {
                assert!(Command::new("/bin/true").status().unwrap().success());
            }
        },
        |ev| ev.iter().filter(|e| has_key(e, key)).count() >= 10,
    );
    assert_eq!(events.iter().filter(|e| has_key(e, key)).count(), 10);
}

/// Not a test by itself: with `AGENT_AUDIT_FAKE_DAEMON=1` (set by
/// `kernel_registered_daemon_is_reported_and_multicast_runs_beside_it`), registers as the
/// audit daemon and stays registered until stdin closes.
#[test]
fn helper_fake_audit_daemon() {
    if std::env::var_os("AGENT_AUDIT_FAKE_DAEMON").is_none() {
        return;
    }
    let mut s = AuditSocket::open().unwrap();
    s.register().unwrap();
    let mut sink = Vec::new();
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    let _ = s.unregister();
}

#[test]
fn kernel_registered_daemon_is_reported_and_multicast_runs_beside_it() {
    let _guard = KernelGuard::take();
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            drop(self.0.stdin.take());
            let _ = self.0.wait();
        }
    }
    let mut child = Reap(spawn_fake_daemon());
    let pid = child.0.id();

    let err = AuditSession::start(&SessionConfig::default(), &[]).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("(pid {pid}) is registered as the audit daemon")),
        "{msg}"
    );
    // An unknown daemon: no guessed commands, the generic instruction.
    assert!(msg.contains("Stop it"), "{msg}");
    assert_eq!(AuditSocket::open().unwrap().get_status().unwrap().pid, pid);

    let me = std::process::id();
    let key = "agent-test-beside";
    let rule = format!("-a always,exit -F arch=b64 -S execve -F ppid={me} -k {key}");
    let events = collect_while_in(
        Mode::Multicast,
        &[&rule],
        || {
            for _ in 0..5 {
                assert!(Command::new("/bin/true").status().unwrap().success());
            }
        },
        |ev| ev.iter().filter(|e| has_key(e, key)).count() >= 5,
    );
    assert_eq!(events.iter().filter(|e| has_key(e, key)).count(), 5);
    // Our session left the other daemon registered.
    assert_eq!(AuditSocket::open().unwrap().get_status().unwrap().pid, pid);
    drop(child.0.stdin.take());
    assert!(child.0.wait().unwrap().success());
}

/// Starts `helper_fake_audit_daemon` in a child process and waits until the kernel shows
/// it as the audit daemon (it unregisters and exits when its stdin closes).
fn spawn_fake_daemon() -> std::process::Child {
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "helper_fake_audit_daemon", "--test-threads=1"])
        .env("AGENT_AUDIT_FAKE_DAEMON", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut ctl = AuditSocket::open().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ctl.get_status().unwrap().pid != child.id() {
        assert!(Instant::now() < deadline, "helper never registered");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// `SavedState` puts back what a run changed: a rule found before and deleted comes back,
/// a rule added goes, the five status fields return to their values, this process's
/// registration is let go; a live daemon registered meanwhile is reported (and left),
/// a dead one is cleared. `auditctl` checks the result independently.
#[test]
fn kernel_saved_state_restores_rules_status_and_daemon() {
    let mut guard = KernelGuard::take();
    let found = "-a always,exit -F arch=b64 -S fchown -k agent-test-saved";
    auditctl(&found[..].split(' ').collect::<Vec<_>>());
    guard.extra_cleanup.push(format!("-d {}", &found[3..]));
    let (rules_before, state_before) = (auditctl_rules(), auditctl_state());
    assert!(rules_before.iter().any(|l| l.contains("agent-test-saved")));

    let mut s = AuditSocket::open().unwrap();
    let saved = SavedState::capture(&mut s).unwrap();
    let was = saved.status();
    s.delete_rule(&rule(found)).unwrap();
    s.add_rule(&rule(
        "-a always,exit -F arch=b64 -S fchmod -k agent-test-saved-extra",
    ))
    .unwrap();
    let other = |v: u32, d: u32| if v >= d { v - d } else { v + d };
    s.set_status(&StatusUpdate {
        enabled: Some(u32::from(was.enabled == 0)),
        failure: Some(u32::from(was.failure != 1)),
        rate_limit: Some(other(was.rate_limit, 1000)),
        backlog_limit: Some(other(was.backlog_limit, 100)),
        backlog_wait_time: Some(other(was.backlog_wait_time, 1000)),
        pid: None,
    })
    .unwrap();
    s.register().unwrap();
    assert_ne!(auditctl_state(), state_before);
    assert_ne!(auditctl_rules(), rules_before);

    saved.restore(&mut s).unwrap();
    assert_eq!(auditctl_rules(), rules_before);
    assert_eq!(auditctl_state(), state_before);
    assert_eq!(s.list_rules().unwrap(), saved.rules());

    // A live daemon registered meanwhile: reported, not touched.
    let mut daemon = spawn_fake_daemon();
    let err = saved.restore(&mut s).unwrap_err();
    assert!(
        matches!(&err, NetlinkError::Conflict(m) if m.contains(&format!("pid {}", daemon.id()))),
        "{err}"
    );
    assert_eq!(s.get_status().unwrap().pid, daemon.id());
    // The same daemon killed (still registered until the kernel notices): cleared.
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    saved.restore(&mut s).unwrap();
    assert_eq!(auditctl_state(), state_before);
    assert_eq!(auditctl_rules(), rules_before);
}

#[test]
fn kernel_adopting_leftover_rules_removes_them_on_stop() {
    let mut guard = KernelGuard::take();
    // A rule left behind by a previous run that died.
    auditctl(&[
        "-a",
        "always,exit",
        "-F",
        "arch=b64",
        "-S",
        "fchmod",
        "-k",
        "agent-test-leftover",
    ]);
    guard
        .extra_cleanup
        .push("-d always,exit -F arch=b64 -S fchmod -k agent-test-leftover".into());
    let before = auditctl_rules();
    let leftover = rule("-a always,exit -F arch=b64 -S fchmod -k agent-test-leftover");
    let cfg = SessionConfig {
        adopt_existing: true,
        exclude_self: false,
        ..SessionConfig::default()
    };
    let session = AuditSession::start(&cfg, std::slice::from_ref(&leftover)).unwrap();
    assert_eq!(session.added_rules(), [leftover]);
    session.stop().unwrap();
    let after = auditctl_rules();
    assert_eq!(after.len(), before.len() - 1, "{after:?}");
    assert!(!after.iter().any(|l| l.contains("agent-test-leftover")));
}

/// Refuses what a kernel without `saddr_fam` (before 5.3: RHEL/CentOS 7) refuses, and
/// loads the rest on the real kernel.
struct KernelWithoutSaddrFam(AuditSocket);

impl agent_linux_audit::collector::RuleLoader for KernelWithoutSaddrFam {
    fn add_rule(&mut self, r: &RuleData) -> Result<(), agent_linux_audit::netlink::NetlinkError> {
        if r.has_field(113) {
            return Err(agent_linux_audit::netlink::NetlinkError::Kernel {
                op: "add rule",
                errno: libc::EINVAL,
            });
        }
        self.0.add_rule(r)
    }
    fn delete_rule(
        &mut self,
        r: &RuleData,
    ) -> Result<(), agent_linux_audit::netlink::NetlinkError> {
        self.0.delete_rule(r)
    }
}

#[test]
fn kernel_network_rules_refused_for_saddr_fam_degrade_and_still_report_connects() {
    let _guard = KernelGuard::take();
    let arch = Arch::native().unwrap();
    let me = std::process::id();
    let text = format!(
        "-a always,exit -F arch=b64 -S connect -F saddr_fam=2 -F ppid={me} -F key=agent-test-net\n\
         -a always,exit -F arch=b64 -S connect -F saddr_fam=10 -F ppid={me} -F key=agent-test-net\n"
    );
    let (mut rules, skipped) = agent_linux_audit::collector::compile_lines(&text, arch);
    assert!(skipped.is_empty());
    let mut old = KernelWithoutSaddrFam(AuditSocket::open().unwrap());
    let refused = agent_linux_audit::collector::probe_rules(&mut old, &mut rules, arch).unwrap();
    assert!(refused.is_empty(), "{refused:?}");
    assert_eq!(
        rules.len(),
        1,
        "one rule without saddr_fam, not two, not none"
    );
    assert!(rules[0].0.reason.contains("without saddr_fam"));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let events = collect_rules_while_in(
        Mode::Unicast,
        vec![rules[0].1.clone()],
        || {
            let ok = Command::new("/usr/bin/python3")
                .args([
                    "-c",
                    &format!("import socket; socket.create_connection(('127.0.0.1', {port}))"),
                ])
                .status()
                .unwrap();
            assert!(ok.success());
        },
        |ev| ev.iter().any(|e| has_key(e, "agent-test-net")),
    );
    let e = events
        .iter()
        .find(|e| has_key(e, "agent-test-net"))
        .expect("a connect event through the degraded rule");
    assert_eq!(e.syscall_name(), Some("connect"));
    drop(listener);
}
