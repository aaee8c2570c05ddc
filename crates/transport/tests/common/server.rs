//! A real HTTPS intake for tests and the benchmark: hyper + rustls on 127.0.0.1 with the
//! testkit's throw-away certificate. It checks every request with the testkit's protocol
//! checker, records accepted events, and answers what the test's fault script says (the
//! testkit's own intake has no per-request script, which these tests need).

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::PrivateKeyDer;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use agent_testkit::TestPki;

/// One request as the intake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Order of arrival, from 0.
    pub index: usize,
    pub at: Instant,
    pub path: String,
    /// Intake key of each record, in order.
    pub keys: Vec<String>,
    /// Each record: an event's JSON text or a raw line.
    pub records: Vec<Vec<u8>>,
    /// Status answered.
    pub status: u16,
    /// Bytes on the wire (gzip).
    pub wire_len: usize,
}

/// What to answer to a (valid) request.
#[derive(Debug, Clone)]
pub enum Action {
    Accept,
    Status(u16, Vec<(&'static str, String)>),
    /// Close the connection without answering, after reading the whole request.
    Reset,
    /// Say nothing for this long, then close the connection.
    Stall(std::time::Duration),
    /// Accept (records are counted at once), but answer only after this long: a slow
    /// intake, or a long round trip.
    AcceptAfter(std::time::Duration),
}

pub type Script = Box<dyn FnMut(&Seen) -> Action + Send>;

pub struct State {
    pub seen: Vec<Seen>,
    /// Accepted records, in order: (key, payload).
    pub accepted: Vec<(String, Vec<u8>)>,
    /// Requests that broke the protocol, with why.
    pub violations: Vec<String>,
    pub script: Script,
    pub started: Instant,
    /// Requests being handled now, and the most handled at once.
    pub concurrent: usize,
    pub max_concurrent: usize,
}

pub struct Intake {
    pub addr: SocketAddr,
    pub ca_file: PathBuf,
    pub state: Arc<Mutex<State>>,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Intake {
    /// Starts an intake trusting nobody's CA but its own (written to `ca_file`).
    pub fn start(script: Script) -> Self {
        Self::start_with(TestPki::new("intake").expect("test PKI"), script)
    }

    pub fn start_with(pki: TestPki, script: Script) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, &pki.ca_pem).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![pki.cert], PrivateKeyDer::Pkcs8(pki.key))
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(tls));
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            seen: Vec::new(),
            accepted: Vec::new(),
            violations: Vec::new(),
            script,
            started: Instant::now(),
            concurrent: 0,
            max_concurrent: 0,
        }));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).unwrap();
                loop {
                    let (tcp, _) = tokio::select! {
                        r = listener.accept() => match r { Ok(c) => c, Err(_) => continue },
                        _ = &mut stopped => break,
                    };
                    let acceptor = acceptor.clone();
                    let st = st.clone();
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let svc = hyper::service::service_fn(move |req| handle(st.clone(), req));
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tls), svc)
                            .await;
                    });
                }
            });
        });
        Intake {
            addr,
            ca_file,
            state,
            _dir: dir,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn accepted(&self) -> Vec<(String, Vec<u8>)> {
        self.state.lock().unwrap().accepted.clone()
    }

    pub fn accepted_count(&self) -> usize {
        self.state.lock().unwrap().accepted.len()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// The most requests the intake handled at once.
    pub fn max_concurrent(&self) -> usize {
        self.state.lock().unwrap().max_concurrent
    }

    pub fn violations(&self) -> Vec<String> {
        self.state.lock().unwrap().violations.clone()
    }
}

impl Drop for Intake {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Debug)]
struct Dropped;
impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose")
    }
}
impl std::error::Error for Dropped {}

fn reply(status: u16, headers: &[(&'static str, String)], body: String) -> Response<Full<Bytes>> {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    b.header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// Parses and checks one request with the shared protocol checker; `Err` is a protocol
/// violation. The agent is configured with the bare intake URL here, so only the exact
/// paths are valid (the checker accepts any prefix).
fn parse(
    path: &str,
    headers: &hyper::HeaderMap,
    body: &[u8],
) -> Result<(Vec<String>, Vec<Vec<u8>>), String> {
    if !matches!(path, "/batch" | "/array" | "/plain/batch") {
        return Err(format!("unknown path {path}"));
    }
    let plain_key = headers
        .get("x-sekoiaio-intake-key")
        .and_then(|k| k.to_str().ok());
    let encoding = headers.get("content-encoding").map(|v| v.as_bytes());
    let parsed = agent_testkit::parse_request(path, encoding, plain_key, body)?;
    Ok((parsed.keys, parsed.records))
}

async fn handle(
    state: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    {
        let mut st = state.lock().unwrap();
        st.concurrent += 1;
        st.max_concurrent = st.max_concurrent.max(st.concurrent);
    }
    let result = handle_counted(state.clone(), req).await;
    state.lock().unwrap().concurrent -= 1;
    result
}

async fn handle_counted(
    state: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let at = Instant::now();
    let path = req.uri().path().to_owned();
    let headers = req.headers().clone();
    let Ok(body) = req.into_body().collect().await else {
        return Err(Dropped);
    };
    let body = body.to_bytes();
    let (result, stall) = {
        let mut st = state.lock().unwrap();
        let (keys, records) = match parse(&path, &headers, &body) {
            Ok(v) => v,
            Err(why) => {
                st.violations.push(why.clone());
                return Ok(reply(422, &[], format!("{{\"message\":{why:?}}}")));
            }
        };
        let mut seen = Seen {
            index: st.seen.len(),
            at,
            path,
            keys,
            records,
            status: 0,
            wire_len: body.len(),
        };
        let action = (st.script)(&seen);
        let result = match &action {
            Action::Accept | Action::AcceptAfter(_) => {
                seen.status = 200;
                let n = seen.records.len();
                for (k, r) in seen.keys.iter().zip(&seen.records) {
                    st.accepted.push((k.clone(), r.clone()));
                }
                let ids: Vec<String> = (0..n)
                    .map(|i| format!("\"id-{}-{i}\"", seen.index))
                    .collect();
                Ok(reply(
                    200,
                    &[],
                    format!("{{\"event_ids\":[{}]}}", ids.join(",")),
                ))
            }
            Action::Status(code, hdrs) => {
                seen.status = *code;
                Ok(reply(*code, hdrs, "{\"message\":\"injected\"}".to_owned()))
            }
            Action::Reset | Action::Stall(_) => {
                seen.status = 0;
                Err(Dropped)
            }
        };
        st.seen.push(seen);
        let stall = match action {
            Action::Stall(d) | Action::AcceptAfter(d) => Some(d),
            _ => None,
        };
        (result, stall)
    };
    if let Some(d) = stall {
        tokio::time::sleep(d).await;
    }
    result
}

/// Counts per key, handy in assertions.
pub fn per_key(records: &[(String, Vec<u8>)]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for (k, _) in records {
        *m.entry(k.clone()).or_default() += 1;
    }
    m
}
