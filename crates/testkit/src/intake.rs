//! The HTTPS intake server: start, stop, restart on the same port, faults, records.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::PrivateKeyDer;
use tokio_rustls::TlsAcceptor;

use crate::{io_err, protocol, Error, TestPki};

/// One accepted record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its intake key.
    pub key: String,
    /// The event's JSON text, or the raw log line.
    pub payload: Vec<u8>,
    /// The request path (`/plain/batch` for raw lines).
    pub path: String,
    /// Index of the request that carried it (arrival order, from 0).
    pub request: usize,
}

impl Record {
    /// The payload parsed as JSON (events), `None` for raw lines that are not JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.payload).ok()
    }
}

/// One request as the intake saw it (valid or not).
#[derive(Debug, Clone)]
pub struct RequestLog {
    /// Arrival order, from 0.
    pub index: usize,
    /// When it arrived.
    pub at: Instant,
    /// The request path.
    pub path: String,
    /// Records in it (0 when invalid).
    pub records: usize,
    /// The status answered; 0 when the connection was dropped.
    pub status: u16,
}

/// What the intake answers to valid requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Fault {
    /// Accept and record (200).
    #[default]
    None,
    /// Answer this status (e.g. 503) and record nothing.
    Status(u16),
    /// Close the connection after reading the request, record nothing.
    Reset,
}

#[derive(Debug, Default)]
struct State {
    records: Vec<Record>,
    requests: Vec<RequestLog>,
    violations: Vec<String>,
    fault: Fault,
}

struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

/// A real HTTPS intake on 127.0.0.1 (see the crate docs).
pub struct Intake {
    addr: SocketAddr,
    pki: TestPki,
    ca_file: PathBuf,
    state: Arc<Mutex<State>>,
    running: Option<Running>,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Intake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intake")
            .field("addr", &self.addr)
            .field("running", &self.running.is_some())
            .finish_non_exhaustive()
    }
}

impl Intake {
    /// Starts an intake on a free port of 127.0.0.1 with a fresh certificate.
    pub fn start() -> Result<Intake, Error> {
        Self::start_on(TestPki::new("intake")?, 0)
    }

    /// Starts an intake on `port` (0: any free port) serving `pki`'s certificate.
    pub fn start_on(pki: TestPki, port: u16) -> Result<Intake, Error> {
        let dir = tempfile::tempdir().map_err(io_err("creating a temporary directory"))?;
        let ca_file = dir.path().join("intake-ca.pem");
        std::fs::write(&ca_file, &pki.ca_pem).map_err(io_err("writing the CA file"))?;
        let listener = bind(port)?;
        let addr = listener
            .local_addr()
            .map_err(io_err("reading the bound address"))?;
        let mut intake = Intake {
            addr,
            pki,
            ca_file,
            state: Arc::new(Mutex::new(State::default())),
            running: None,
            _dir: dir,
        };
        intake.serve(listener)?;
        Ok(intake)
    }

    /// `https://127.0.0.1:PORT`, the base URL to configure (`IntakeURL`).
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// PEM file of the CA that signed the server certificate (`--extra-ca`).
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// Whether the server is accepting connections.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Stops the server: the listener and every open connection are closed, so clients
    /// see refused connections until [`Intake::restart`]. Records are kept.
    pub fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = r.stop.send(());
            let _ = r.thread.join();
        }
    }

    /// Starts the server again on the same port with the same certificate.
    pub fn restart(&mut self) -> Result<(), Error> {
        if self.running.is_some() {
            return Ok(());
        }
        // The old connections' sockets may linger in TIME_WAIT for a moment.
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match bind(self.addr.port()) {
                Ok(l) => break l,
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        self.serve(listener)
    }

    /// Sets what valid requests are answered from now on.
    pub fn set_fault(&self, fault: Fault) {
        self.lock().fault = fault;
    }

    /// Every accepted record so far, in arrival order.
    pub fn records(&self) -> Vec<Record> {
        self.lock().records.clone()
    }

    /// Accepted records under `key`, in arrival order.
    pub fn records_for(&self, key: &str) -> Vec<Record> {
        self.lock()
            .records
            .iter()
            .filter(|r| r.key == key)
            .cloned()
            .collect()
    }

    /// How many records were accepted so far.
    pub fn record_count(&self) -> usize {
        self.lock().records.len()
    }

    /// Every request seen so far.
    pub fn requests(&self) -> Vec<RequestLog> {
        self.lock().requests.clone()
    }

    /// Requests that broke the protocol, with why (should stay empty).
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    /// Polls `done` on the records every 50 ms until it holds or `timeout` passes;
    /// returns whether it held.
    pub fn wait_until(&self, timeout: Duration, mut done: impl FnMut(&[Record]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.lock().records) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn serve(&mut self, listener: std::net::TcpListener) -> Result<(), Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![self.pki.cert.clone()],
                PrivateKeyDer::Pkcs8(self.pki.key.clone_key()),
            )?;
        let acceptor = TlsAcceptor::from(Arc::new(tls));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io_err("building the intake runtime"))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = self.state.clone();
        let thread = std::thread::Builder::new()
            .name("test-intake".into())
            .spawn(move || {
                runtime.block_on(accept_loop(listener, acceptor, state, stopped));
                // Dropping the runtime here cancels every connection task: the clients
                // see their connections closed, as with a real outage.
                drop(runtime);
            })
            .map_err(io_err("spawning the intake thread"))?;
        self.running = Some(Running { stop, thread });
        Ok(())
    }
}

impl Drop for Intake {
    fn drop(&mut self) {
        self.stop();
    }
}

fn bind(port: u16) -> Result<std::net::TcpListener, Error> {
    let l = std::net::TcpListener::bind(("127.0.0.1", port))
        .map_err(io_err(format!("binding 127.0.0.1:{port}")))?;
    l.set_nonblocking(true)
        .map_err(io_err("making the listener non-blocking"))?;
    Ok(l)
}

async fn accept_loop(
    listener: std::net::TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<Mutex<State>>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let tcp = tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, _)) => tcp,
                Err(_) => continue,
            },
            _ = &mut stopped => return,
        };
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let svc = hyper::service::service_fn(move |req| handle(state.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), svc)
                .await;
        });
    }
}

/// The error that makes hyper drop a connection without answering.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose")
    }
}

impl std::error::Error for Dropped {}

fn reply(status: u16, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

async fn handle(
    state: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let at = Instant::now();
    let path = req.uri().path().to_owned();
    let encoding = req
        .headers()
        .get(hyper::header::CONTENT_ENCODING)
        .map(|v| v.as_bytes().to_vec());
    let plain_key = req
        .headers()
        .get("x-sekoiaio-intake-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = req
        .into_body()
        .collect()
        .await
        .map_err(|_| Dropped)?
        .to_bytes();
    let parsed = protocol::parse_request(&path, encoding.as_deref(), plain_key.as_deref(), &body);
    let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
    let index = st.requests.len();
    let mut log = RequestLog {
        index,
        at,
        path: path.clone(),
        records: 0,
        status: 0,
    };
    let parsed = match parsed {
        Ok(p) => p,
        Err(why) => {
            st.violations.push(why.clone());
            log.status = 422;
            st.requests.push(log);
            return Ok(reply(
                422,
                serde_json::json!({ "message": why }).to_string(),
            ));
        }
    };
    log.records = parsed.records.len();
    let answer = match st.fault.clone() {
        Fault::None => {
            log.status = 200;
            let n = parsed.records.len();
            for (key, payload) in parsed.keys.into_iter().zip(parsed.records) {
                st.records.push(Record {
                    key,
                    payload,
                    path: path.clone(),
                    request: index,
                });
            }
            let ids: Vec<String> = (0..n).map(|i| format!("id-{index}-{i}")).collect();
            Ok(reply(
                200,
                serde_json::json!({ "event_ids": ids }).to_string(),
            ))
        }
        Fault::Status(code) => {
            log.status = code;
            Ok(reply(code, r#"{"message":"injected"}"#.to_owned()))
        }
        Fault::Reset => Err(Dropped),
    };
    st.requests.push(log);
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};

    #[test]
    fn stops_and_restarts_on_the_same_port() {
        let mut intake = Intake::start().unwrap();
        let addr = intake.addr();
        assert!(std::net::TcpStream::connect(addr).is_ok());
        intake.stop();
        assert!(std::net::TcpStream::connect(addr).is_err());
        intake.restart().unwrap();
        assert_eq!(intake.addr(), addr);
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        // Not TLS: the handshake fails and the server closes the connection.
        let _ = s.write_all(b"GET / HTTP/1.1\r\n\r\n");
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        assert!(intake.records().is_empty());
    }
}
