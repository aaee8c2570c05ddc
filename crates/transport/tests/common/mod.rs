//! Shared test fixtures: the HTTPS intake, a tinyproxy instance, record helpers, a
//! shipper driver and log capture.

#![allow(dead_code)]

pub mod server;

use std::io::Write as _;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent_pipeline::{RecordKind, RoutedRecord};
use agent_transport::{Counters, MemorySource, Shipper, TransportConfig};

pub use server::{Action, Intake};

/// A routed event record `{"seq":N,"msg":"..."}` under `key`.
pub fn event(key: &str, seq: usize) -> Vec<u8> {
    let payload = format!(
        r#"{{"seq":{seq},"msg":"event \"{seq}\" with\ttabs and a path C:\\tmp","process":{{"pid":{seq}}}}}"#
    );
    RoutedRecord {
        kind: RecordKind::Event,
        intake_key: key,
        payload: payload.as_bytes(),
    }
    .encode()
    .unwrap()
}

/// The sequence number of an accepted event payload.
pub fn seq_of(payload: &[u8]) -> usize {
    let v: serde_json::Value = serde_json::from_slice(payload).unwrap();
    v["seq"].as_u64().unwrap() as usize
}

/// A routed raw log line.
pub fn line(key: &str, bytes: &[u8]) -> Vec<u8> {
    RoutedRecord {
        kind: RecordKind::LogLine,
        intake_key: key,
        payload: bytes,
    }
    .encode()
    .unwrap()
}

/// Test settings: the intake's CA trusted, no proxy from the environment, short delays.
pub fn config(intake: &Intake) -> TransportConfig {
    let mut cfg = TransportConfig::new(intake.url().parse().unwrap());
    cfg.extra_ca_file = Some(intake.ca_file.clone());
    cfg.proxy_from_env = false;
    cfg.batch_max_delay = Duration::from_millis(200);
    cfg.request_timeout = Duration::from_secs(10);
    cfg.shutdown_grace = Duration::from_millis(500);
    cfg
}

/// Runs a shipper on a current-thread runtime until `done()` or `limit`, whichever first.
/// Returns the counters and the elapsed time.
pub fn ship_until(
    cfg: TransportConfig,
    source: &MemorySource,
    limit: Duration,
    done: impl Fn() -> bool,
) -> (Arc<Counters>, Duration) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let counters = Arc::new(Counters::default());
    let mut shipper = Shipper::new(cfg, counters.clone()).unwrap();
    let mut src = source.clone();
    let start = Instant::now();
    rt.block_on(async {
        let stop = async {
            while !done() && start.elapsed() < limit {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        shipper.run(&mut src, stop).await.unwrap();
    });
    (counters, start.elapsed())
}

/// Captures `tracing` output of the current thread into a string.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    pub fn install() -> (Self, tracing::subscriber::DefaultGuard) {
        let cap = LogCapture::default();
        let writer = cap.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        let guard = tracing::subscriber::set_default(sub);
        (cap, guard)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A tinyproxy started for one test, with Basic authentication; killed on drop.
pub struct Tinyproxy {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tinyproxy {
    pub fn start(user: &str, password: &str) -> Self {
        let bin = ["/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect(
                "tinyproxy is not installed: the proxy tests need it (apt-get install tinyproxy)",
            );
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.path().join("tinyproxy.log");
        let conf = dir.path().join("tinyproxy.conf");
        let mut f = std::fs::File::create(&conf).unwrap();
        write!(
            f,
            "Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile \"{}\"\nLogLevel Info\n\
             MaxClients 16\nAllow 127.0.0.1\nBasicAuth {user} {password}\nDisableViaHeader Yes\n",
            log.display()
        )
        .unwrap();
        drop(f);
        let child = Command::new(bin)
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start tinyproxy");
        let mut proxy = Tinyproxy {
            child,
            port,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = proxy.child.try_wait() {
                panic!(
                    "tinyproxy exited at start ({status}); log:\n{}",
                    proxy.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "tinyproxy did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        proxy
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP CONNECT proxy on loopback that admits only `Basic <user:password>` and
/// pipes admitted tunnels to their target; for credentials tinyproxy cannot be given.
pub struct AuthProxy {
    pub port: u16,
    tunnels: Arc<Mutex<usize>>,
    refused: Arc<Mutex<Vec<String>>>,
}

impl AuthProxy {
    pub fn start(credentials: &str) -> Self {
        use base64::Engine as _;
        use std::io::{BufRead as _, BufReader};
        let expected = format!(
            "proxy-authorization: basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        )
        .to_ascii_lowercase();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let tunnels = Arc::new(Mutex::new(0));
        let refused = Arc::new(Mutex::new(Vec::new()));
        let (t, r) = (tunnels.clone(), refused.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { return };
                let mut reader = BufReader::new(client.try_clone().unwrap());
                let mut head = Vec::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push(line.trim_end().to_owned());
                }
                let target = head
                    .first()
                    .and_then(|l| l.strip_prefix("CONNECT "))
                    .and_then(|l| l.split(' ').next())
                    .unwrap_or_default()
                    .to_owned();
                if !head.iter().any(|h| h.to_ascii_lowercase() == expected) {
                    r.lock().unwrap().push(head.join(" | "));
                    let _ = client.write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n");
                    continue;
                }
                let upstream = TcpStream::connect(&target).unwrap();
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .unwrap();
                *t.lock().unwrap() += 1;
                let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                let mut upstream = upstream;
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut reader, &mut upstream);
                    let _ = upstream.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut u2, &mut c2);
                    let _ = c2.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        AuthProxy {
            port,
            tunnels,
            refused,
        }
    }

    /// Tunnels opened with the right credentials.
    pub fn tunnels(&self) -> usize {
        *self.tunnels.lock().unwrap()
    }

    /// Request heads refused for wrong or missing credentials.
    pub fn refused(&self) -> Vec<String> {
        self.refused.lock().unwrap().clone()
    }
}
