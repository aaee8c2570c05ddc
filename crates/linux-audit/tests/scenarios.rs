//! End-to-end scenarios on the real kernel (root; CI runs as root): the collector with the
//! default rules (plus watches on temp paths), real commands, and the dialect events they
//! produce, asserted field by field. Every event received is also checked to survive the
//! dialect round trip (serialize → deserialize → serialize gives the same JSON).
//!
//! The tests share the kernel's audit state with `tests/kernel.rs`, so they take the same
//! locks (process mutex + flock on /tmp/agent-linux-audit-kernel-tests.lock) and restore
//! the rules and status found before, even when an assertion fails.
//!
//! The collector excludes its own pid, and here the collector runs in the test process:
//! everything that must be seen is therefore done by child processes.
#![cfg(target_os = "linux")]

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agent_event::Event;
use agent_linux_audit::collector::{Collector, CollectorConfig, RulesSource, DEFAULT_RULES};
use agent_linux_audit::netlink::AuditSocket;
use crossbeam_channel::Receiver;

mod common;
use common::KernelGuard;

/// A running collector (default rules + `extra` rules) and the events it sent so far.
struct Harness {
    collector: Option<Collector>,
    rx: Receiver<Box<Event>>,
    seen: Vec<Event>,
    // Declared last: dropped after the collector stopped.
    _guard: KernelGuard,
}

impl Harness {
    fn start(extra: &str) -> Harness {
        let guard = KernelGuard::take();
        let (tx, rx) =
            agent_pipeline::Sink::channel("audit", 100_000, agent_pipeline::Overflow::Drop);
        let cfg = CollectorConfig {
            rules: RulesSource::Text(format!("{DEFAULT_RULES}\n{extra}\n")),
            ..CollectorConfig::default()
        };
        let collector = Collector::start(cfg, tx).expect("collector start");
        Harness {
            collector: Some(collector),
            rx,
            seen: Vec::new(),
            _guard: guard,
        }
    }

    /// Waits (up to 10 s) for an event matching `pred`, checking every event's round trip.
    fn wait_for(&mut self, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        if let Some(e) = self.seen.iter().find(|e| pred(e)) {
            return e.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(e) = self.rx.recv_timeout(Duration::from_millis(100)) {
                round_trip(&e);
                let hit = pred(&e);
                self.seen.push(*e);
                if hit {
                    return self.seen[self.seen.len() - 1].clone();
                }
            }
        }
        let stats = self.collector.as_ref().map(Collector::stats);
        panic!(
            "no event for {what} within 10 s; stats {stats:?}; seen {} events, last: {:#?}",
            self.seen.len(),
            self.seen
                .iter()
                .rev()
                .take(5)
                .map(|e| e.to_json().unwrap())
                .collect::<Vec<_>>()
        );
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(c) = self.collector.take() {
            let stats = c.stop();
            if !std::thread::panicking() {
                let stats = stats.expect("collector stop");
                assert_eq!(stats.dropped, 0, "{stats:?}");
            }
        }
    }
}

fn round_trip(e: &Event) {
    let json = e.to_json().unwrap();
    let back = Event::from_json(&json).unwrap();
    assert_eq!(back.to_json().unwrap(), json, "dialect round trip");
    assert_eq!(&back, e);
}

/// Runs a command to completion; returns its pid and stdout.
fn run(cmd: &mut Command) -> (u32, String) {
    let child = cmd.stdout(Stdio::piped()).spawn().expect("spawn");
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {out:?}");
    (pid, String::from_utf8(out.stdout).unwrap())
}

fn empty_hashes() -> agent_host::FileHashes {
    agent_host::hash_reader(std::io::empty()).unwrap().0
}

#[test]
fn root_exec_of_id_is_process_created_with_user_parent_and_command_line_then_terminated() {
    let mut h = Harness::start("");
    let (pid, _) = run(Command::new("/usr/bin/id").arg("-u"));
    let e = h.wait_for("exec of id", |e| {
        e.event.action == "process-created" && e.process.pid == Some(pid)
    });
    assert_eq!(e.event.code, Some(1));
    assert_eq!(e.event.category.as_slice(), ["process"]);
    assert_eq!(e.event.types.as_slice(), ["creation"]);
    assert_eq!(e.event.outcome, "success");
    assert_eq!(e.event.provider, "SEKOIA-IO-Endpoint");
    assert_eq!(e.process.executable, "/usr/bin/id");
    assert_eq!(e.process.name, "id");
    assert_eq!(e.process.command_line, "/usr/bin/id -u");
    assert_eq!(e.process.args, ["/usr/bin/id", "-u"]);
    assert_eq!(
        e.process.working_directory,
        std::env::current_dir().unwrap().to_str().unwrap()
    );
    let eff = e.user.effective.as_deref().expect("user.effective");
    assert_eq!((eff.id.as_str(), eff.name.as_str()), ("0", "root"));
    assert_eq!(
        (eff.group.id.as_str(), eff.group.name.as_str()),
        ("0", "root")
    );
    // The login user: this session's loginuid, or the real user (root) when unset.
    let login = std::fs::read_to_string("/proc/self/loginuid").unwrap();
    let expected_login = if login.trim() == "4294967295" {
        "0"
    } else {
        login.trim()
    };
    assert_eq!(e.user.id, expected_login);
    if expected_login == "0" {
        assert_eq!(e.user.name, "root");
    }
    let parent = e.process.parent.as_deref().expect("process.parent");
    assert_eq!(parent.pid, Some(std::process::id()));
    assert_eq!(
        parent.executable,
        std::env::current_exe().unwrap().to_str().unwrap()
    );
    let own_cmdline = std::fs::read("/proc/self/cmdline").unwrap();
    let own: Vec<String> = own_cmdline
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert_eq!(parent.command_line, own.join(" "));
    assert_eq!(e.sekoiaio.process.guid.len(), 36);
    assert_eq!(e.sekoiaio.process.parent_guid.len(), 36);
    assert_eq!(e.tags, ["root-command"]);
    assert_eq!(e.action.properties["syscall"], "execve");
    // The pid lives in process.pid; properties do not repeat it.
    assert!(!e.action.properties.contains_key("pid"));

    let t = h.wait_for("exit of id", |e| {
        e.event.action == "process-terminated" && e.process.pid == Some(pid)
    });
    assert_eq!(t.event.code, Some(5));
    assert_eq!(t.event.types.as_slice(), ["end"]);
    assert_eq!(t.process.exit_code, Some(0));
    assert_eq!(t.process.executable, "/usr/bin/id");
    assert_eq!(t.process.command_line, "/usr/bin/id -u");
    assert_eq!(t.sekoiaio.process.guid, e.sekoiaio.process.guid);
    assert_eq!(
        t.process.parent.as_deref().unwrap().pid,
        Some(std::process::id())
    );
    assert_eq!(t.tags, ["process-exit"]);
}

#[test]
fn a_process_exiting_with_a_status_is_a_terminated_event() {
    let mut h = Harness::start("");
    let child = Command::new("/bin/sh")
        .args(["-c", "exit 3"])
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let t = h.wait_for("exit of sh", |e| {
        e.event.action == "process-terminated" && e.process.pid == Some(pid)
    });
    assert_eq!(t.process.exit_code, Some(3));
    assert_eq!(t.process.command_line, "/bin/sh -c exit 3");
    assert_eq!(t.event.outcome, "success");
}

#[test]
fn touch_mv_rm_in_a_watched_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_owned();
    let mut h = Harness::start(&format!("-w {d} -p wa -k scenario-dir"));
    let a = format!("{d}/a");
    let b = format!("{d}/b");
    let (touch_pid, _) = run(Command::new("touch").arg(&a));
    let c = h.wait_for("created", |e| {
        e.event.action == "opened-file" && e.file.path == a && e.event.code == Some(11)
    });
    assert_eq!(c.event.category.as_slice(), ["file"]);
    assert_eq!(c.event.types.as_slice(), ["creation"]);
    assert_eq!(c.file.name, "a");
    assert_eq!(c.file.directory, d);
    assert_eq!(c.file.owner, "root");
    let meta = std::fs::metadata(&a).unwrap();
    assert_eq!(
        c.file.inode,
        std::os::unix::fs::MetadataExt::ino(&meta).to_string()
    );
    let empty = empty_hashes();
    assert_eq!(c.file.hash.md5, empty.md5);
    assert_eq!(c.file.hash.sha1, empty.sha1);
    assert_eq!(c.file.hash.sha256, empty.sha256);
    assert_eq!(c.process.pid, Some(touch_pid));
    assert_eq!(c.process.executable, "/usr/bin/touch");
    assert_eq!(c.tags, ["scenario-dir"]);

    run(Command::new("mv").args([&a, &b]));
    let r = h.wait_for("renamed", |e| {
        e.event.action == "renamed" && e.file.path == b
    });
    assert_eq!(r.file.ext.original.path, a);
    assert_eq!(r.file.ext.original.name, "a");
    assert_eq!(r.file.name, "b");
    assert_eq!(r.event.types.as_slice(), ["change"]);
    assert_eq!(r.tags, ["scenario-dir"]);
    assert_eq!(r.process.executable, "/usr/bin/mv");

    run(Command::new("rm").arg(&b));
    let x = h.wait_for("deleted", |e| {
        e.event.action == "deleted" && e.file.path == b
    });
    assert_eq!(x.event.code, Some(23));
    assert_eq!(x.event.types.as_slice(), ["deletion"]);
    assert_eq!(x.file.hash.sha256, "");
    assert_eq!(x.process.executable, "/usr/bin/rm");
    assert_eq!(x.tags, ["scenario-dir"]);
}

#[test]
fn tcp_connect_to_a_loopback_listener_and_python_and_perl_executions() {
    let mut h = Harness::start("");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!(
        "import socket,time\ns=socket.create_connection(('127.0.0.1',{port}))\n\
         print(s.getsockname()[1],flush=True)\ntime.sleep(1)\n"
    );
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let py_pid = child.id();
    let (_conn, _) = listener.accept().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let src_port: u16 = line.trim().parse().unwrap();
    assert!(child.wait().unwrap().success());

    let n = h.wait_for("connect", |e| {
        e.event.action == "connected-to" && e.process.pid == Some(py_pid)
    });
    assert_eq!(n.event.code, Some(3));
    assert_eq!(n.event.category.as_slice(), ["network"]);
    assert_eq!(n.event.types.as_slice(), ["connection", "start"]);
    assert_eq!(n.event.outcome, "success");
    assert_eq!(n.destination.ip, "127.0.0.1");
    assert_eq!(n.destination.port, Some(port));
    assert_eq!(n.source.ip, "127.0.0.1");
    assert_eq!(n.source.port, Some(src_port));
    assert_eq!(n.network.transport, "tcp");
    assert_eq!(n.network.direction, "internal");
    assert_eq!(n.tags, ["network-connect"]);
    let python = std::fs::canonicalize("/usr/bin/python3").unwrap();
    assert_eq!(n.process.executable, python.to_str().unwrap());

    let py = h.wait_for("python exec", |e| {
        e.event.action == "process-created" && e.process.pid == Some(py_pid)
    });
    assert_eq!(py.tags, ["python-exec"]);
    assert_eq!(py.process.args, ["/usr/bin/python3", "-c", script.as_str()]);

    let (perl_pid, out) = run(Command::new("/usr/bin/perl").args(["-e", "print 40+2"]));
    assert_eq!(out, "42");
    let pl = h.wait_for("perl exec", |e| {
        e.event.action == "process-created" && e.process.pid == Some(perl_pid)
    });
    assert_eq!(pl.tags, ["perl-exec"]);
    assert_eq!(pl.process.executable, "/usr/bin/perl");
    assert_eq!(pl.process.command_line, "/usr/bin/perl -e print 40+2");
    assert_eq!(
        pl.process.parent.as_deref().unwrap().pid,
        Some(std::process::id())
    );
}

#[test]
fn a_write_to_a_watched_sudoers_like_file_is_a_tagged_change() {
    let dir = tempfile::tempdir().unwrap();
    let file: PathBuf = dir.path().join("sudoers");
    std::fs::write(&file, "root ALL=(ALL:ALL) ALL\n").unwrap();
    let f = file.to_str().unwrap().to_owned();
    let mut h = Harness::start(&format!("-w {f} -p wa -k sudoers-change"));
    let (pid, _) = run(Command::new("/bin/sh").args([
        "-c",
        &format!("echo 'alice ALL=(ALL) NOPASSWD: ALL' >> {f}"),
    ]));
    let e = h.wait_for("sudoers change", |e| {
        e.file.path == f && e.process.pid == Some(pid)
    });
    assert_eq!(e.event.action, "opened-file");
    assert_eq!(e.event.category.as_slice(), ["file"]);
    assert_eq!(e.event.types.as_slice(), ["change"]);
    assert_eq!(e.tags, ["sudoers-change"]);
    assert_eq!(e.file.name, "sudoers");
    let sh = std::fs::canonicalize("/bin/sh").unwrap();
    assert_eq!(e.process.executable, sh.to_str().unwrap());
    let expected = agent_host::hash_reader(std::fs::File::open(&file).unwrap())
        .unwrap()
        .0;
    assert_eq!(e.file.hash.sha256, expected.sha256);
    assert_eq!(e.file.hash.md5, expected.md5);
    // success=yes becomes event.outcome; properties do not repeat it.
    assert_eq!(e.event.outcome, "success");
    assert!(!e.action.properties.contains_key("success"));
}

#[test]
fn su_produces_pam_authentication_and_session_events() {
    let mut h = Harness::start("");
    let (pid, out) =
        run(Command::new("/usr/bin/su").args(["-s", "/bin/sh", "-c", "id -un", "nobody"]));
    assert_eq!(out.trim(), "nobody");
    let acct = h.wait_for("su accounting", |e| {
        e.event.action == "was-authorized" && e.process.pid == Some(pid)
    });
    assert_eq!(acct.event.category.as_slice(), ["authentication"]);
    assert_eq!(acct.event.outcome, "success");
    assert_eq!(acct.process.executable, "/usr/bin/su");
    assert_eq!(acct.user.effective.as_deref().unwrap().name, "nobody");
    assert_eq!(acct.action.properties["acct"], "nobody");
    let start = h.wait_for("su session start", |e| {
        e.event.action == "started-session" && e.process.pid == Some(pid)
    });
    assert_eq!(start.event.category.as_slice(), ["session"]);
    assert_eq!(start.event.types.as_slice(), ["start"]);
    let end = h.wait_for("su session end", |e| {
        e.event.action == "ended-session" && e.process.pid == Some(pid)
    });
    assert_eq!(end.event.types.as_slice(), ["end"]);
    h.wait_for("su credentials", |e| {
        e.event.action == "acquired-credentials" && e.process.pid == Some(pid)
    });
}

#[test]
fn an_accepted_loopback_connection_is_inbound_with_both_ends() {
    let mut h = Harness::start("");
    let script = "import socket,time\nl=socket.socket()\nl.bind(('127.0.0.1',0))\nl.listen(1)\n\
                  print(l.getsockname()[1],flush=True)\nc,a=l.accept()\nprint(a[1],flush=True)\n\
                  time.sleep(1)\n";
    let mut server = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let server_pid = server.id();
    let mut out = std::io::BufReader::new(server.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let port: u16 = line.trim().parse().unwrap();
    let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let client_port = client.local_addr().unwrap().port();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim().parse::<u16>().unwrap(), client_port);
    assert!(server.wait().unwrap().success());

    let e = h.wait_for("accept", |e| {
        e.event.action == "accepted-connection-from" && e.process.pid == Some(server_pid)
    });
    assert_eq!(e.event.code, Some(3));
    assert_eq!(e.tags, ["network-accept"]);
    assert_eq!(e.source.ip, "127.0.0.1");
    assert_eq!(e.source.port, Some(client_port));
    assert_eq!(e.destination.ip, "127.0.0.1");
    assert_eq!(e.destination.port, Some(port));
    assert_eq!(e.network.transport, "tcp");
    assert_eq!(e.network.direction, "internal");
    // The client side ran in this (the agent's) process: excluded, so no connect event.
    assert!(!h
        .seen
        .iter()
        .any(|e| e.event.action == "connected-to" && e.process.pid == Some(std::process::id())));
}

#[test]
fn a_full_channel_counts_drops_and_the_reader_keeps_going() {
    let guard = KernelGuard::take();
    // Capacity 1, never read: everything after the first event is dropped, not waited for.
    let (tx, rx) = agent_pipeline::Sink::channel("audit", 1, agent_pipeline::Overflow::Drop);
    let collector = Collector::start(CollectorConfig::default(), tx).unwrap();
    for _ in 0..20 {
        run(&mut Command::new("/bin/true"));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while collector.stats().dropped < 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(collector.is_running());
    let stats = collector.stop().unwrap();
    assert!(stats.dropped >= 20, "{stats:?}");
    assert_eq!(stats.emitted, 1, "{stats:?}");
    assert_eq!(stats.kernel_lost, 0, "{stats:?}");
    assert_eq!(rx.len(), 1);
    // stop() put the kernel back as found: same rules, same enabled flag, no daemon.
    let mut s = AuditSocket::open().unwrap();
    assert_eq!(s.list_rules().unwrap(), guard.saved.rules());
    let now = s.get_status().unwrap();
    assert_eq!((now.enabled, now.pid), (guard.saved.status().enabled, 0));
    assert_eq!(now.backlog_limit, guard.saved.status().backlog_limit);
    drop(guard);
}

#[test]
fn rules_this_host_cannot_load_are_skipped_not_fatal() {
    let mut h = Harness::start(
        "-w /nonexistent-agent-test-dir/x -p wa -k missing-parent\n\
         -a always,exit -F arch=b64 -S execve -F exe=/nonexistent-agent-test-dir/bin -k refused\n\
         -a always,exit -F arch=b64 -S nosuchsyscall -k bad",
    );
    let c = h.collector.as_ref().unwrap();
    let reasons: Vec<(&str, &str)> = c
        .skipped_rules()
        .iter()
        .map(|s| (s.text.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons[0].0.contains("missing-parent") && reasons[0].1.contains("does not exist"));
    assert!(reasons[1].0.contains("nosuchsyscall"), "{reasons:?}");
    assert!(reasons[2].0.contains("-k refused") && reasons[2].1.contains("refused by the kernel"));
    // The rest works.
    let (pid, _) = run(&mut Command::new("/bin/true"));
    h.wait_for("exec of true", |e| {
        e.event.action == "process-created" && e.process.pid == Some(pid)
    });
}

// --- Issue 15: exact values --------------------------------------------------------------

fn inode_of(path: &str) -> String {
    std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).unwrap()).to_string()
}

#[test]
fn rename_over_an_existing_file_names_the_moved_file_as_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_owned();
    let mut h = Harness::start(&format!("-w {d} -p wa -k scenario-dir"));
    let (a, b) = (format!("{d}/x-a"), format!("{d}/x-b"));
    std::fs::write(&a, "a\n").unwrap();
    std::fs::write(&b, "b\n").unwrap();
    let moved_inode = inode_of(&a);
    let replaced_inode = inode_of(&b);
    let (pid, _) = run(Command::new("mv").args([&a, &b]));
    // (mv first tries renameat2(RENAME_NOREPLACE), which fails: a failed "renamed".)
    let r = h.wait_for("rename over x-b", |e| {
        e.event.action == "renamed" && e.process.pid == Some(pid) && e.event.outcome == "success"
    });
    assert_eq!(r.file.path, b);
    assert_eq!(r.file.inode, moved_inode);
    assert_eq!(r.file.ext.original.path, a);
    assert_eq!(r.file.ext.original.name, "x-a");
    // The old name where an ECS-only intake keeps it, and in the raw properties.
    assert_eq!(r.other["labels"]["original_path"], a.as_str());
    assert_eq!(r.action.properties["original_path"], a.as_str());
    assert_eq!(
        r.action.properties["replaced_inode"],
        replaced_inode.as_str()
    );
    // The moved file's content ("a\n"), not the replaced one's.
    let expected = agent_host::hash_reader(&b"a\n"[..]).unwrap().0;
    assert_eq!(r.file.hash.sha256, expected.sha256);
    assert_eq!(r.file.size, Some(2));
}

#[test]
fn chmod_and_chown_report_the_new_mode_and_owner_with_size_and_created() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_owned();
    let f = format!("{d}/f");
    std::fs::write(&f, "hello").unwrap();
    let mut h = Harness::start(&format!("-w {d} -p wa -k scenario-dir"));
    let (pid, _) = run(Command::new("chmod").args(["600", &f]));
    let c = h.wait_for("chmod", |e| e.process.pid == Some(pid) && e.file.path == f);
    assert_eq!(c.event.action, "changed-file-permissions-of");
    assert_eq!(c.file.mode, "0600");
    assert_eq!(c.file.size, Some(5));
    let (pid, _) = run(Command::new("chown").args(["nobody:nogroup", &f]));
    let o = h.wait_for("chown", |e| e.process.pid == Some(pid) && e.file.path == f);
    assert_eq!(o.event.action, "changed-file-ownership-of");
    assert_eq!(
        (o.file.owner.as_str(), o.file.group.as_str()),
        ("nobody", "nogroup")
    );
    assert_eq!(o.file.mode, "0600");
    // A file created by the call: its creation time is the event's.
    let n = format!("{d}/new");
    let (pid, _) = run(Command::new("touch").arg(&n));
    let t = h.wait_for("create", |e| e.process.pid == Some(pid) && e.file.path == n);
    assert_eq!(t.file.created, t.timestamp.unwrap().to_string());
    assert_eq!(t.file.size, Some(0));
}

#[test]
fn fchmod_and_fchown_name_the_file_not_null() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_owned();
    let f = format!("{d}/f");
    std::fs::write(&f, "x").unwrap();
    let mut h = Harness::start(&format!("-w {d} -p wa -k scenario-dir"));
    let script = format!(
        "import os\nfd=os.open({f:?}, os.O_RDWR)\nos.fchmod(fd, 0o640)\nos.fchown(fd, 65534, 65534)\n"
    );
    let (pid, _) = run(Command::new("/usr/bin/python3").args(["-c", &script]));
    let m = h.wait_for("fchmod", |e| {
        e.process.pid == Some(pid) && e.event.action == "changed-file-permissions-of"
    });
    assert_eq!(m.file.path, f);
    assert_eq!(m.file.name, "f");
    assert_eq!(m.file.mode, "0640");
    assert_eq!(m.action.properties["syscall"], "fchmod");
    let o = h.wait_for("fchown", |e| {
        e.process.pid == Some(pid) && e.event.action == "changed-file-ownership-of"
    });
    assert_eq!(o.file.path, f);
    assert_eq!(o.file.owner, "nobody");
    assert!(!h.seen.iter().any(|e| e.file.path.contains("(null)")));
}

/// Removes a test account even when the test fails.
struct Account(&'static str);
impl Drop for Account {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(self.0).output();
        let _ = Command::new("groupdel").arg(self.0).output();
    }
}

#[test]
fn useradd_names_the_actor_and_the_new_account_with_its_uid() {
    let name = "h9-audit-test";
    let _ = Command::new("userdel").arg(name).output();
    let mut h = Harness::start("");
    let account = Account(name);
    let (pid, _) = run(Command::new("useradd").args(["-M", "-N", "-s", "/bin/false", name]));
    let (_, uid) = run(Command::new("id").args(["-u", name]));
    let e = h.wait_for("ADD_USER", |e| {
        e.event.action == "added-user-account" && e.process.pid == Some(pid)
    });
    assert_eq!(e.event.category.as_slice(), ["iam"]);
    assert_eq!(e.event.types.as_slice(), ["user", "creation"]);
    assert_eq!(e.event.outcome, "success");
    // The actor: this session's login user, or root (the real uid) when none is set.
    let login = std::fs::read_to_string("/proc/self/loginuid").unwrap();
    if login.trim() == "4294967295" {
        assert_eq!((e.user.id.as_str(), e.user.name.as_str()), ("0", "root"));
    } else {
        assert_eq!(e.user.id, login.trim());
    }
    let target = e.user.target.as_deref().expect("user.target");
    assert_eq!(
        (target.id.as_str(), target.name.as_str()),
        (uid.trim(), name)
    );
    let eff = e.user.effective.as_deref().expect("user.effective");
    assert_eq!(eff.name, name);
    assert_eq!(e.process.executable, "/usr/sbin/useradd");
    drop(account);
}

#[test]
fn without_a_login_user_su_names_root_as_actor_and_the_account_as_effective() {
    let mut h = Harness::start("");
    // A process without login uid (a service, or su at boot).
    let (su_pid, _) = run(Command::new("/bin/sh").args([
        "-c",
        "echo 4294967295 > /proc/self/loginuid && exec /usr/bin/su -s /bin/sh -c true nobody",
    ]));
    let acct = h.wait_for("su accounting without auid", |e| {
        e.event.action == "was-authorized" && e.process.pid == Some(su_pid)
    });
    assert_eq!(
        (acct.user.id.as_str(), acct.user.name.as_str()),
        ("0", "root")
    );
    let eff = acct.user.effective.as_deref().expect("user.effective");
    assert_eq!(eff.name, "nobody");
    assert_eq!(acct.event.outcome, "success");
    assert_eq!(acct.action.properties["auid"], "unset");
}

#[test]
fn writing_loginuid_is_changed_login_id_to() {
    let mut h = Harness::start("");
    let (pid, _) = run(Command::new("/usr/bin/python3")
        .args(["-c", "open('/proc/self/loginuid','w').write('1001')"]));
    let e = h.wait_for("LOGIN", |e| {
        e.event.action == "changed-login-id-to" && e.process.pid == Some(pid)
    });
    assert_eq!(e.event.category.as_slice(), ["authentication"]);
    assert_eq!(e.event.types.as_slice(), ["start"]);
    assert_eq!(e.event.outcome, "success");
    // As in the dialect sample linux_auth2: the actor (uid 0) and the new login id.
    assert_eq!((e.user.id.as_str(), e.user.name.as_str()), ("0", "root"));
    assert_eq!(e.user.effective.as_deref().unwrap().id, "1001");
    assert_eq!(e.action.properties["old-auid"], "unset");
    let python = std::fs::canonicalize("/usr/bin/python3").unwrap();
    assert_eq!(e.process.executable, python.to_str().unwrap());
}

#[test]
fn short_lived_tcp_and_udp_connections_have_their_transport() {
    let mut h = Harness::start("");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!(
        "import socket\ns=socket.create_connection(('127.0.0.1',{port}))\ns.close()\n\
         u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nu.connect(('127.0.0.1',53))\nu.close()\n"
    );
    let (pid, _) = run(Command::new("/usr/bin/python3").args(["-c", &script]));
    let t = h.wait_for("tcp connect", |e| {
        e.event.action == "connected-to"
            && e.process.pid == Some(pid)
            && e.destination.port == Some(port)
    });
    assert_eq!(t.network.transport, "tcp");
    assert_eq!(t.network.net_type, "ipv4");
    assert_eq!(t.destination.ip, "127.0.0.1");
    assert_eq!(t.network.direction, "internal");
    let u = h.wait_for("udp connect", |e| {
        e.event.action == "connected-to"
            && e.process.pid == Some(pid)
            && e.destination.port == Some(53)
    });
    assert_eq!(u.network.transport, "udp");
    assert_eq!(u.network.net_type, "ipv4");
    assert_eq!(u.event.outcome, "success");
    // socket() calls feed the table and are not events themselves.
    assert!(!h
        .seen
        .iter()
        .any(|e| e.tags.iter().any(|t| t == "socket-type")));
    drop(listener);
}

#[test]
fn mkdir_is_directory_created() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_owned();
    let mut h = Harness::start(&format!("-w {d} -p wa -k scenario-dir"));
    let sub = format!("{d}/sub");
    let (pid, _) = run(Command::new("mkdir").arg(&sub));
    let e = h.wait_for("mkdir", |e| {
        e.process.pid == Some(pid) && e.file.path == sub
    });
    assert_eq!(e.event.action, "directory-created");
    assert_eq!(e.event.category.as_slice(), ["file"]);
    assert_eq!(e.event.types.as_slice(), ["creation"]);
    assert_eq!(e.file.created, e.timestamp.unwrap().to_string());
}

#[test]
fn an_executable_deleted_while_running_is_named_without_the_suffix_and_tagged() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("sleepy");
    std::fs::copy("/usr/bin/sleep", &exe).unwrap();
    let exe = exe.to_str().unwrap().to_owned();
    let mut h = Harness::start("");
    let mut child = Command::new(&exe).arg("0.5").spawn().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    std::fs::remove_file(&exe).unwrap();
    let pid = child.id();
    assert!(child.wait().unwrap().success());
    let t = h.wait_for("exit of the deleted binary", |e| {
        e.event.action == "process-terminated" && e.process.pid == Some(pid)
    });
    assert_eq!(t.process.executable, exe);
    assert_eq!(t.process.name, "sleepy");
    assert!(
        t.tags.iter().any(|t| t == "executable-deleted"),
        "{:?}",
        t.tags
    );
}

// --- Issue 15: coverage ------------------------------------------------------------------

#[test]
fn kernel_module_load_and_unload_attempts_are_events() {
    let mut h = Harness::start("");
    let (pid, _) = run(Command::new("/usr/bin/python3").args([
        "-c",
        "import ctypes\nlibc=ctypes.CDLL(None, use_errno=True)\n\
         libc.init_module(None, 0, b'')\nlibc.delete_module(b'h9_no_such_module', 0)\n",
    ]));
    let l = h.wait_for("init_module", |e| {
        e.process.pid == Some(pid) && e.event.action == "loaded-kernel-module"
    });
    assert_eq!(l.tags, ["kernel-module"]);
    assert_eq!(l.event.category.as_slice(), ["driver"]);
    assert_eq!(l.event.types.as_slice(), ["start"]);
    // Not a valid module (and maybe no module support): the attempt still shows.
    assert_eq!(l.event.outcome, "failure");
    let u = h.wait_for("delete_module", |e| {
        e.process.pid == Some(pid) && e.event.action == "unloaded-kernel-module"
    });
    assert_eq!(u.tags, ["kernel-module"]);
    assert_eq!(u.event.types.as_slice(), ["end"]);
}

/// Unmounts at drop, so a failed assertion leaves no mount behind.
struct Mounted(String);
impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).output();
    }
}

#[test]
fn mount_and_umount_are_file_system_events() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().to_str().unwrap().to_owned();
    let mut h = Harness::start("");
    let (pid, _) = run(Command::new("mount").args(["-t", "tmpfs", "h9-test", &m]));
    let guard = Mounted(m.clone());
    let e = h.wait_for("mount", |e| {
        e.process.pid == Some(pid) && e.event.action == "mounted"
    });
    assert_eq!(e.tags, ["mount"]);
    assert_eq!(e.file.path, m);
    assert_eq!(e.event.category.as_slice(), ["file"]);
    assert_eq!(e.event.types.as_slice(), ["creation"]);
    assert_eq!(e.event.outcome, "success");
    let (pid, _) = run(Command::new("umount").arg(&m));
    std::mem::forget(guard);
    let u = h.wait_for("umount", |e| {
        e.process.pid == Some(pid) && e.event.action == "unmounted"
    });
    assert_eq!(u.tags, ["mount"]);
    assert_eq!(u.file.path, m);
    assert_eq!(u.event.types.as_slice(), ["deletion"]);
}

#[test]
fn ptrace_attach_is_an_event_naming_the_request() {
    let mut h = Harness::start("");
    let mut target = Command::new("/usr/bin/sleep").arg("5").spawn().unwrap();
    let tpid = target.id();
    let script = format!(
        "import ctypes,os\nlibc=ctypes.CDLL(None)\nassert libc.ptrace(16,{tpid},0,0)==0\n\
         os.waitpid({tpid},0)\nlibc.ptrace(17,{tpid},0,0)\n"
    );
    let (pid, _) = run(Command::new("/usr/bin/python3").args(["-c", &script]));
    let _ = target.kill();
    let _ = target.wait();
    let e = h.wait_for("ptrace", |e| {
        e.process.pid == Some(pid) && e.tags == ["ptrace"]
    });
    assert_eq!(e.event.action, "ptrace");
    assert_eq!(e.event.outcome, "success");
    assert_eq!(e.action.properties["syscall"], "ptrace");
    // PTRACE_ATTACH (16 = 0x10) on the target pid.
    assert_eq!(e.action.properties["a0"], "10");
    assert_eq!(e.action.properties["a1"], format!("{tpid:x}").as_str());
}

#[test]
fn setting_the_clock_is_a_time_change_even_when_refused() {
    let mut h = Harness::start("");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // As nobody the kernel refuses (EPERM): the clock is untouched, the attempt is seen.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "date",
            "-s",
        ])
        .arg(format!("@{now}"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = h.wait_for("settime", |e| {
        e.tags == ["time-change"] && e.user.effective.as_deref().is_some_and(|u| u.id == "65534")
    });
    assert_eq!(e.event.action, "changed-system-time");
    assert_eq!(e.event.category.as_slice(), ["host"]);
    assert_eq!(e.event.types.as_slice(), ["change"]);
    assert_eq!(e.event.outcome, "failure");
    assert_eq!(e.process.executable, "/usr/bin/date");
}

#[test]
fn promiscuous_mode_in_a_network_namespace_is_an_event() {
    let mut h = Harness::start("");
    // A namespace of its own: only its loopback changes, and it goes away with the command.
    let (pid, _) = run(Command::new("unshare").args([
        "-n",
        "sh",
        "-c",
        "ip link set lo promisc on && ip link set lo promisc off",
    ]));
    let _ = pid;
    let e = h.wait_for("ANOM_PROMISCUOUS", |e| {
        e.event.action == "changed-promiscuous-mode-on-device"
            && e.action.properties.get("prom").is_some_and(|p| p != "0")
    });
    assert_eq!(e.tags, ["promiscuous-mode"]);
    assert_eq!(e.event.category.as_slice(), ["intrusion_detection"]);
    assert_eq!(e.event.types.as_slice(), ["info", "change"]);
    assert_eq!(e.action.properties["dev"], "lo");
    assert_eq!(e.process.executable, "/usr/bin/ip");
    assert_eq!(e.event.outcome, "success");
}

#[test]
fn a_crash_is_crashed_program() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start("");
    let child = Command::new("/bin/sh")
        .args(["-c", "kill -SEGV $$"])
        .current_dir(dir.path())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let e = h.wait_for("ANOM_ABEND", |e| {
        e.event.action == "crashed-program" && e.process.pid == Some(pid)
    });
    assert_eq!(e.tags, ["process-crash"]);
    assert_eq!(
        e.event.category.as_slice(),
        ["process", "intrusion_detection"]
    );
    assert_eq!(e.action.properties["sig"], "11");
    assert_eq!(e.process.exit_code, Some(-11));
    let sh = std::fs::canonicalize("/bin/sh").unwrap();
    assert_eq!(e.process.executable, sh.to_str().unwrap());
}

/// Deletes the test's nftables table at drop.
struct NftTable;
impl Drop for NftTable {
    fn drop(&mut self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", "h9_audit_test"])
            .output();
    }
}

#[test]
fn a_firewall_change_is_loaded_firewall_rule_to() {
    let mut h = Harness::start("");
    let (pid, _) = run(Command::new("nft").args(["add", "table", "inet", "h9_audit_test"]));
    let table = NftTable;
    let e = h.wait_for("NETFILTER_CFG", |e| {
        e.event.action == "loaded-firewall-rule-to" && e.process.pid == Some(pid)
    });
    assert_eq!(e.tags, ["firewall-change"]);
    assert_eq!(e.event.category.as_slice(), ["configuration"]);
    assert_eq!(e.event.types.as_slice(), ["change"]);
    assert_eq!(e.event.outcome, "success");
    assert_eq!(e.action.properties["op"], "nft_register_table");
    assert!(e.action.properties["table"]
        .as_str()
        .unwrap()
        .starts_with("h9_audit_test"));
    drop(table);
}

#[test]
fn service_start_and_stop_records_are_service_events() {
    let mut h = Harness::start("");
    // What systemd sends through libaudit: a user message of type SERVICE_START (1130) /
    // SERVICE_STOP (1131); the kernel adds the sender's pid, uids and session.
    let script = "import socket,struct,os\n\
        s=socket.socket(socket.AF_NETLINK,socket.SOCK_RAW,9)\n\
        for t in (1130,1131):\n\
        \x20   m=b'unit=h9-test.service comm=\"systemd\" exe=\"/usr/lib/systemd/systemd\" hostname=? addr=? terminal=? res=success\\0'\n\
        \x20   s.sendto(struct.pack('=IHHII',16+len(m),t,5,1,0)+m,(0,0))\n\
        \x20   s.recv(4096)\n";
    let (pid, _) = run(Command::new("/usr/bin/python3").args(["-c", script]));
    let start = h.wait_for("SERVICE_START", |e| {
        e.event.action == "started-service" && e.process.pid == Some(pid)
    });
    assert_eq!(start.tags, ["service-change"]);
    assert_eq!(start.event.category.as_slice(), ["process"]);
    assert_eq!(start.event.types.as_slice(), ["start"]);
    assert_eq!(start.event.outcome, "success");
    assert_eq!(start.action.properties["unit"], "h9-test.service");
    let stop = h.wait_for("SERVICE_STOP", |e| {
        e.event.action == "stopped-service" && e.process.pid == Some(pid)
    });
    assert_eq!(stop.event.types.as_slice(), ["end"]);
    assert_eq!(stop.tags, ["service-change"]);
}

#[test]
fn interpreters_outside_the_fixed_paths_are_tagged_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let perl = dir.path().join("perl");
    std::fs::copy("/usr/bin/perl", &perl).unwrap();
    let python = dir.path().join("python3.11");
    std::fs::copy("/usr/bin/python3.11", &python).unwrap();
    let mut h = Harness::start("");
    let (ppid, out) = run(Command::new(&perl).args(["-e", "print 6*7"]));
    assert_eq!(out, "42");
    let p = h.wait_for("perl exec", |e| {
        e.event.action == "process-created" && e.process.pid == Some(ppid)
    });
    assert!(p.tags.iter().any(|t| t == "perl-exec"), "{:?}", p.tags);
    // The kernel rule's key stays first.
    assert_eq!(p.tags[0], "root-command");
    let (pypid, _) = run(Command::new(&python).args(["-c", "pass"]));
    let y = h.wait_for("python exec", |e| {
        e.event.action == "process-created" && e.process.pid == Some(pypid)
    });
    assert!(y.tags.iter().any(|t| t == "python-exec"), "{:?}", y.tags);
}

// --- Issue 15: beside auditd ------------------------------------------------------------

/// Debian's real auditd (`auditd -n`) writing to a temporary log, stopped at drop.
struct Auditd {
    child: std::process::Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Auditd {
    fn start() -> Auditd {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        let conf = std::fs::read_to_string("/etc/audit/auditd.conf")
            .expect("the auditd package (CI installs it)");
        let conf: String = conf
            .lines()
            .map(|l| match l.split('=').next().map(str::trim) {
                Some("log_file") => format!("log_file = {}", log.display()),
                Some("log_format") => "log_format = RAW".to_owned(),
                Some("log_group") => "log_group = root".to_owned(),
                _ => l.to_owned(),
            })
            .map(|l| l + "\n")
            .collect();
        std::fs::write(dir.path().join("auditd.conf"), conf).unwrap();
        std::fs::set_permissions(
            dir.path().join("auditd.conf"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let child = Command::new("auditd")
            .args(["-n", "-c"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("auditd");
        let a = Auditd {
            child,
            log,
            _dir: dir,
        };
        let mut ctl = AuditSocket::open().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while ctl.get_status().unwrap().pid != a.child.id() {
            assert!(Instant::now() < deadline, "auditd never registered");
            std::thread::sleep(Duration::from_millis(50));
        }
        a
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Auditd {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the pid of our own child, which we have not reaped yet.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn auditctl_list() -> Vec<String> {
    let out = Command::new("auditctl").arg("-l").output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn beside_a_running_auditd_the_collector_goes_multicast_and_leaves_auditd_intact() {
    let mut guard = KernelGuard::take();
    let auditd = Auditd::start();
    // auditd's own rule and settings, as a compliance setup would have them.
    let watched = tempfile::tempdir().unwrap();
    let w = watched.path().to_str().unwrap().to_owned();
    let out = Command::new("auditctl")
        .args(["-w", &w, "-p", "wa", "-k", "auditd-own"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    guard
        .extra_cleanup
        .push(format!("-W {w} -p wa -k auditd-own"));
    let rules_before = auditctl_list();
    let status_before = AuditSocket::open().unwrap().get_status().unwrap();

    let (tx, rx) = agent_pipeline::Sink::channel("audit", 100_000, agent_pipeline::Overflow::Drop);
    let report = std::sync::Arc::clone(tx.report());
    let collector = Collector::start(CollectorConfig::default(), tx).expect("start beside auditd");
    assert_eq!(collector.mode(), "multicast beside auditd");
    assert_eq!(
        report.snapshot().mode.as_deref(),
        Some("multicast beside auditd")
    );
    assert_eq!(collector.beside().unwrap().pid, Some(auditd.child.id()));
    // auditd is still the registered daemon, its limits untouched.
    let during = AuditSocket::open().unwrap().get_status().unwrap();
    assert_eq!(during.pid, auditd.child.id());
    assert_eq!(during.backlog_limit, status_before.backlog_limit);

    let (id_pid, _) = run(Command::new("/usr/bin/id").arg("-u"));
    let f = format!("{w}/f");
    let (touch_pid, _) = run(Command::new("touch").arg(&f));
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let want = |seen: &[Event]| {
        seen.iter()
            .any(|e| e.event.action == "process-created" && e.process.pid == Some(id_pid))
            && seen
                .iter()
                .any(|e| e.process.pid == Some(touch_pid) && e.tags == ["auditd-own"])
    };
    while !want(&seen) && Instant::now() < deadline {
        if let Ok(e) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.push(*e);
        }
    }
    assert!(want(&seen), "events seen: {}", seen.len());
    let stats = collector.stop().unwrap();
    assert_eq!((stats.dropped, stats.kernel_lost), (0, 0), "{stats:?}");

    // auditd got the same events: ours (keyed root-command) and its own.
    let deadline = Instant::now() + Duration::from_secs(10);
    let logged = |log: &str| {
        log.contains(&format!(" pid={id_pid} ")) && log.contains(&format!(" pid={touch_pid} "))
    };
    while !logged(&auditd.log()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = auditd.log();
    assert!(logged(&log), "auditd's log lacks the events");
    assert!(log.contains("key=\"auditd-own\""));
    // After the stop: auditd's rules exactly as before (ours removed), still registered.
    assert_eq!(auditctl_list(), rules_before);
    let after = AuditSocket::open().unwrap().get_status().unwrap();
    assert_eq!(after.pid, auditd.child.id());
    assert_eq!(after.backlog_limit, status_before.backlog_limit);
    drop(auditd);
    assert_eq!(
        AuditSocket::open().unwrap().get_status().unwrap().pid,
        0,
        "auditd stopped"
    );
}
