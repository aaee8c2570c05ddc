//! A private network namespace with a real dnsmasq serving a zone the test writes, and
//! `dig` to query it. Root is needed (unshare, AF_PACKET); the tests fail, never skip,
//! without it or without the tools (Debian: dnsmasq-base, bind9-dnsutils, iproute2).

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Fails the test unless it runs as root with dnsmasq, dig and ip installed.
pub fn require_root_and_tools() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the DNS capture tests need root (network namespaces, AF_PACKET); run them as root"
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

/// Moves the calling thread (and the processes it starts) into a new network namespace
/// with only loopback, up, at MTU 1280 so that a large TCP answer spans segments. The
/// namespace goes away with the thread and its children.
pub fn enter_private_netns() {
    // SAFETY: unshare with CLONE_NEWNET only changes the calling thread's namespace; no
    // pointers are involved.
    let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        r,
        0,
        "unshare(CLONE_NEWNET): {}",
        std::io::Error::last_os_error()
    );
    run("ip", &["link", "set", "lo", "up", "mtu", "1280"]);
}

/// Runs a command to success.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Number of A records of `big.test`: far more than fit a 1232-byte UDP answer.
pub const BIG: u32 = 300;

/// The zone: A/AAAA, a CNAME chain, TXT, PTR (from the host records), NXDOMAIN for any
/// other name under `test`, and a large answer that forces TCP.
pub fn zone() -> String {
    let mut z = String::from(
        "no-resolv\nno-hosts\nbind-interfaces\nlisten-address=127.0.0.1,::1\nlocal=/test/\n\
         host-record=a.test,10.0.0.1\nhost-record=a.test,fd00::1\n\
         cname=www.test,mid.test\ncname=mid.test,a.test\n\
         txt-record=txt.test,\"v=spf1 -all\"\n",
    );
    for i in 0..BIG {
        z.push_str(&format!(
            "host-record=big.test,10.1.{}.{}\n",
            i / 256,
            i % 256
        ));
    }
    z
}

/// dnsmasq in the foreground, killed on drop.
pub struct Dnsmasq {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Dnsmasq {
    /// Starts dnsmasq on 127.0.0.1 and ::1 port 53 and waits until it answers.
    pub fn start() -> Dnsmasq {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("dnsmasq.conf");
        std::fs::write(&conf, zone()).unwrap();
        let child = Command::new("dnsmasq")
            .arg("--keep-in-foreground")
            .arg(format!("--conf-file={}", conf.display()))
            .arg("--pid-file=")
            .arg("--user=root")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let d = Dnsmasq { child, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = Command::new("dig")
                .args(["@127.0.0.1", "+short", "+time=1", "+tries=1", "a.test", "A"])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&out.stdout).trim() == "10.0.0.1" {
                break;
            }
            assert!(Instant::now() < deadline, "dnsmasq did not answer");
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `dig` against the namespace's dnsmasq; returns its output.
pub fn dig(args: &[&str]) -> String {
    let mut all = vec!["+time=2", "+tries=1"];
    all.extend_from_slice(args);
    run("dig", &all)
}

/// Runs `f` in a fresh thread (so that the namespace dies with it) and returns its result.
pub fn in_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match std::thread::spawn(f).join() {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e),
    }
}
