//! A real HTTPS intake for tests and the benchmark: hyper + rustls on 127.0.0.1 with an
//! rcgen certificate. It decodes gzip, validates every request's shape and key, records
//! accepted events, and answers what the test's fault script says.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A CA and a server certificate for 127.0.0.1 signed by it.
pub struct TestPki {
    pub ca_pem: String,
    pub cert: CertificateDer<'static>,
    pub key: PrivatePkcs8KeyDer<'static>,
}

impl TestPki {
    pub fn new(name: &str) -> Self {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        TestPki {
            ca_pem: ca.pem(),
            cert: leaf.der().clone(),
            key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
        }
    }
}

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
        Self::start_with(TestPki::new("intake"), script)
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

/// Parses and checks one request; `Err` is a protocol violation.
fn parse(
    path: &str,
    headers: &hyper::HeaderMap,
    body: &[u8],
) -> Result<(Vec<String>, Vec<Vec<u8>>), String> {
    if headers.get("content-encoding").map(|v| v.as_bytes()) != Some(b"gzip") {
        return Err("missing Content-Encoding: gzip".into());
    }
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut plain)
        .map_err(|e| format!("not gzip: {e}"))?;
    let check_event = |s: &str| -> Result<Vec<u8>, String> {
        match serde_json::from_str::<serde_json::Value>(s) {
            Ok(serde_json::Value::Object(_)) => Ok(s.as_bytes().to_vec()),
            _ => Err(format!("event is not a JSON object: {s:.80}")),
        }
    };
    let key_ok = |k: &str| !k.is_empty() && k.chars().all(|c| c.is_ascii_graphic());
    match path {
        "/batch" => {
            let v: serde_json::Value =
                serde_json::from_slice(&plain).map_err(|e| format!("/batch not JSON: {e}"))?;
            let obj = v.as_object().ok_or("/batch body not an object")?;
            if obj.len() != 2 {
                return Err("/batch must have exactly intake_key and jsons".into());
            }
            let key = obj
                .get("intake_key")
                .and_then(|k| k.as_str())
                .filter(|k| key_ok(k))
                .ok_or("/batch bad intake_key")?;
            let jsons = obj
                .get("jsons")
                .and_then(|j| j.as_array())
                .ok_or("/batch jsons not an array")?;
            if jsons.is_empty() {
                return Err("/batch with no event".into());
            }
            let mut recs = Vec::new();
            for j in jsons {
                recs.push(check_event(
                    j.as_str().ok_or("/batch jsons item not a string")?,
                )?);
            }
            Ok((vec![key.to_owned(); recs.len()], recs))
        }
        "/array" => {
            let v: serde_json::Value =
                serde_json::from_slice(&plain).map_err(|e| format!("/array not JSON: {e}"))?;
            let arr = v.as_array().ok_or("/array body not an array")?;
            if arr.is_empty() {
                return Err("/array with no event".into());
            }
            let mut keys = Vec::new();
            let mut recs = Vec::new();
            for item in arr {
                let obj = item.as_object().ok_or("/array item not an object")?;
                if obj.len() != 2 {
                    return Err("/array item must have exactly intake_key and json".into());
                }
                let key = obj
                    .get("intake_key")
                    .and_then(|k| k.as_str())
                    .filter(|k| key_ok(k))
                    .ok_or("/array bad intake_key")?;
                let json = obj
                    .get("json")
                    .and_then(|j| j.as_str())
                    .ok_or("/array json not a string")?;
                keys.push(key.to_owned());
                recs.push(check_event(json)?);
            }
            Ok((keys, recs))
        }
        "/plain/batch" => {
            let key = headers
                .get("x-sekoiaio-intake-key")
                .and_then(|k| k.to_str().ok())
                .filter(|k| key_ok(k))
                .ok_or("/plain/batch without X-SEKOIAIO-INTAKE-KEY")?;
            let recs: Vec<Vec<u8>> = plain.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
            Ok((vec![key.to_owned(); recs.len()], recs))
        }
        other => Err(format!("unknown path {other}")),
    }
}

async fn handle(
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
            Action::Accept => {
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
            Action::Stall(d) => Some(d),
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
