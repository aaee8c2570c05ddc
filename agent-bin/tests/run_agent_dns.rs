//! `agent run` with `EnableDNSResolutions`: the real agent binary, a real dnsmasq and a real
//! HTTPS intake, all in a private network namespace made by the test (loopback only). With
//! the setting on, every query's answer reaches the intake once; with it off, the agent
//! opens no packet socket. Needs root, dnsmasq (dnsmasq-base), dig (bind9-dnsutils) and ip
//! (iproute2): the test fails, never skips, without them.

#![cfg(target_os = "linux")]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agent_testkit::{Intake, Record};
use serde_json::Value;

const KEY: &str = "dns-key-1";

fn require_root_and_tools() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the agent DNS tests need root (network namespaces, AF_PACKET)"
    );
    for tool in ["dnsmasq", "dig", "ip"] {
        let found = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .any(|d| Path::new(d).join(tool).exists());
        assert!(
            found,
            "`{tool}` is missing: install the Debian packages dnsmasq-base, bind9-dnsutils and iproute2"
        );
    }
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Children killed and reaped on drop (the namespace dies with them and the thread).
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Moves this thread into a new network namespace with loopback up, and starts dnsmasq
/// there with a small zone.
fn namespace_with_dnsmasq(dir: &Path) -> Kill {
    // SAFETY: CLONE_NEWNET only changes the calling thread's namespace.
    let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "unshare: {}", std::io::Error::last_os_error());
    run("ip", &["link", "set", "lo", "up"]);
    let conf = dir.join("dnsmasq.conf");
    std::fs::write(
        &conf,
        "no-resolv\nno-hosts\nbind-interfaces\nlisten-address=127.0.0.1\nlocal=/test/\n\
         host-record=a.test,10.0.0.1\ncname=www.test,a.test\ntxt-record=txt.test,\"hello\"\n",
    )
    .unwrap();
    let child = Command::new("dnsmasq")
        .arg("--keep-in-foreground")
        .arg(format!("--conf-file={}", conf.display()))
        .arg("--pid-file=")
        .arg("--user=root")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let dnsmasq = Kill(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while run(
        "dig",
        &["@127.0.0.1", "+short", "+time=1", "+tries=1", "a.test"],
    )
    .trim()
        != "10.0.0.1"
    {
        assert!(Instant::now() < deadline, "dnsmasq did not answer");
        std::thread::sleep(Duration::from_millis(50));
    }
    dnsmasq
}

fn spawn_agent(dir: &Path, intake: &Intake, dns: bool) -> Kill {
    let (config, state, logs) = (dir.join("config.yaml"), dir.join("state"), dir.join("log"));
    for d in [&state, &logs] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(
        &config,
        format!(
            "IntakeKey: {KEY}\nIntakeURL: {}\nAutoUpdate: false\nroles: [compliance-collector]\nEnableDNSResolutions: {dns}\n",
            intake.url()
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_agent"))
        .args(["run", "--stats-interval", "1", "--config"])
        .arg(&config)
        .arg("--extra-ca")
        .arg(intake.ca_file())
        .env("ENDPOINT_AGENT_ROOT", dir)
        .env("ENDPOINT_AGENT_STATE_DIR", &state)
        .env("ENDPOINT_AGENT_LOG_DIR", &logs)
        .env("ENDPOINT_AGENT_CONFIG", &config)
        .env("ENDPOINT_AGENT_BATCH_DELAY_MS", "100")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("agent.out")).unwrap())
        .stderr(std::fs::File::create(dir.join("agent.err")).unwrap())
        .spawn()
        .unwrap();
    Kill(child)
}

fn events(records: &[Record]) -> Vec<Value> {
    records.iter().filter_map(Record::json).collect()
}

fn dns_events(records: &[Record]) -> Vec<Value> {
    events(records)
        .into_iter()
        .filter(|e| e["event"]["code"] == 22)
        .collect()
}

/// Waits for the agent's first stats event: it runs, its collectors started.
fn wait_running(intake: &Intake, dir: &Path) {
    let ok = intake.wait_until(Duration::from_secs(30), |r| {
        events(r).iter().any(|e| e["event"]["action"] == "stats")
    });
    assert!(
        ok,
        "the agent sent no stats event; stderr:\n{}",
        std::fs::read_to_string(dir.join("agent.err")).unwrap_or_default()
    );
}

/// Inodes of the packet sockets of the namespace `pid` is in, and of `pid`'s sockets.
fn packet_sockets(pid: u32) -> (Vec<u64>, Vec<u64>) {
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/packet")).unwrap();
    // Columns: sk RefCnt Type Proto Iface R Rmem User Inode
    let packet: Vec<u64> = table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(8)?.parse().ok())
        .collect();
    let own: Vec<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|fd| {
            let t = std::fs::read_link(fd.path()).ok()?;
            t.to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect();
    (packet, own)
}

#[test]
fn with_dns_resolutions_every_answer_is_shipped_once() {
    require_root_and_tools();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let (dns, sockets) = std::thread::spawn(move || {
        let _dnsmasq = namespace_with_dnsmasq(&root);
        let intake = Intake::start().unwrap();
        let agent = spawn_agent(&root, &intake, true);
        wait_running(&intake, &root);
        let sockets = packet_sockets(agent.0.id());

        for q in [
            ["@127.0.0.1", "a.test", "A"],
            ["@127.0.0.1", "www.test", "A"],
            ["@127.0.0.1", "txt.test", "TXT"],
            ["@127.0.0.1", "nx.test", "A"],
        ] {
            run("dig", &q);
        }
        intake.wait_until(Duration::from_secs(20), |r| dns_events(r).len() >= 4);
        // Nothing more comes (no loopback duplicate, no late repeat).
        std::thread::sleep(Duration::from_secs(3));
        (dns_events(&intake.records()), sockets)
    })
    .join()
    .unwrap();

    let (packet, own) = sockets;
    assert_eq!(
        packet.len(),
        1,
        "one packet socket in the namespace: {packet:?}"
    );
    assert!(own.contains(&packet[0]), "and it is the agent's");

    let mut got: Vec<(String, String, String, Vec<String>, u64)> = dns
        .iter()
        .map(|e| {
            (
                e["dns"]["question"]["name"].as_str().unwrap().to_owned(),
                e["dns"]["question"]["type"].as_str().unwrap().to_owned(),
                e["dns"]["response_code"].as_str().unwrap().to_owned(),
                e["dns"]["answers"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|x| {
                                format!(
                                    "{} {}",
                                    x["type"].as_str().unwrap(),
                                    x["data"].as_str().unwrap()
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                e["sekoiaio"]["repeat"]["count"].as_u64().unwrap(),
            )
        })
        .collect();
    got.sort();
    let t = |n: &str, ty: &str, c: &str, a: &[&str]| {
        (
            n.to_owned(),
            ty.to_owned(),
            c.to_owned(),
            a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
            1,
        )
    };
    assert_eq!(
        got,
        vec![
            t("a.test", "A", "No Error", &["A 10.0.0.1"]),
            t("nx.test", "A", "Non-Existent Domain", &[]),
            t("txt.test", "TXT", "No Error", &["TXT hello"]),
            t("www.test", "A", "No Error", &["CNAME a.test", "A 10.0.0.1"]),
        ]
    );
    for e in &dns {
        assert_eq!(e["event"]["action"], "dns-query-result");
        assert_eq!(e["event"]["provider"], "SEKOIA-IO-Endpoint");
        assert_eq!(e["network"]["protocol"], "dns");
        assert_eq!(e["source"]["port"], 53);
        assert_eq!(e["host"]["os"]["type"], "linux", "{e}");
    }
}

#[test]
fn without_dns_resolutions_no_capture_socket_is_opened() {
    require_root_and_tools();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let (dns, sockets) = std::thread::spawn(move || {
        let _dnsmasq = namespace_with_dnsmasq(&root);
        let intake = Intake::start().unwrap();
        let agent = spawn_agent(&root, &intake, false);
        wait_running(&intake, &root);
        let sockets = packet_sockets(agent.0.id());
        run("dig", &["@127.0.0.1", "a.test", "A"]);
        std::thread::sleep(Duration::from_secs(3));
        (dns_events(&intake.records()), sockets)
    })
    .join()
    .unwrap();
    assert_eq!(
        sockets.0,
        Vec::<u64>::new(),
        "no packet socket in the namespace"
    );
    assert!(dns.is_empty(), "{dns:?}");
}
