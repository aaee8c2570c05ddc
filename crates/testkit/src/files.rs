//! A static HTTPS file server on 127.0.0.1 (update manifests, signatures, artifacts), with
//! the same throw-away PKI as the intake and an injectable cut of the connection mid-body.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::PrivateKeyDer;
use tokio_rustls::TlsAcceptor;

use crate::{io_err, Error, TestPki};

#[derive(Debug, Clone)]
enum Served {
    Whole(Bytes),
    /// Announces the whole length, sends `after` bytes, then drops the connection.
    Cut {
        bytes: Bytes,
        after: usize,
    },
}

#[derive(Debug, Default)]
struct FilesState {
    files: HashMap<String, Served>,
    requests: Vec<String>,
}

/// A static HTTPS file server (see the module docs). Paths not put are answered 404.
pub struct FileServer {
    addr: SocketAddr,
    ca_file: PathBuf,
    state: Arc<Mutex<FilesState>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for FileServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl FileServer {
    /// Starts a server on a free port of 127.0.0.1 with a fresh certificate.
    pub fn start() -> Result<FileServer, Error> {
        let pki = TestPki::new("file server")?;
        let dir = tempfile::tempdir().map_err(io_err("creating a temporary directory"))?;
        let ca_file = dir.path().join("files-ca.pem");
        std::fs::write(&ca_file, &pki.ca_pem).map_err(io_err("writing the CA file"))?;
        let listener =
            std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(io_err("binding 127.0.0.1:0"))?;
        listener
            .set_nonblocking(true)
            .map_err(io_err("making the listener non-blocking"))?;
        let addr = listener
            .local_addr()
            .map_err(io_err("reading the bound address"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![pki.cert.clone()],
                PrivateKeyDer::Pkcs8(pki.key.clone_key()),
            )?;
        let acceptor = TlsAcceptor::from(Arc::new(tls));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io_err("building the file server runtime"))?;
        let state = Arc::new(Mutex::new(FilesState::default()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = state.clone();
        let thread = std::thread::Builder::new()
            .name("test-files".into())
            .spawn(move || {
                runtime.block_on(accept_loop(listener, acceptor, served, stopped));
                drop(runtime);
            })
            .map_err(io_err("spawning the file server thread"))?;
        Ok(FileServer {
            addr,
            ca_file,
            state,
            stop: Some(stop),
            thread: Some(thread),
            _dir: dir,
        })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// PEM file of the CA that signed the server certificate.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// Serves `bytes` at `path` (e.g. `/endpoint-agent/stable/manifest.json`).
    pub fn put(&self, path: &str, bytes: impl Into<Bytes>) {
        self.lock()
            .files
            .insert(path.to_owned(), Served::Whole(bytes.into()));
    }

    /// Serves `bytes` at `path` but drops the connection after `after` bytes of the body
    /// (the announced length is the whole one): a network failure mid-download.
    pub fn put_cut(&self, path: &str, bytes: impl Into<Bytes>, after: usize) {
        self.lock().files.insert(
            path.to_owned(),
            Served::Cut {
                bytes: bytes.into(),
                after,
            },
        );
    }

    /// Paths requested so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    fn lock(&self) -> MutexGuard<'_, FilesState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(
    listener: std::net::TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<Mutex<FilesState>>,
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

async fn handle(
    state: Arc<Mutex<FilesState>>,
    req: Request<Incoming>,
) -> Result<Response<FileBody>, std::convert::Infallible> {
    let path = req.uri().path().to_owned();
    let served = {
        let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
        st.requests.push(path.clone());
        st.files.get(&path).cloned()
    };
    let (status, body, len) = match served {
        None => (404, FileBody::whole(Bytes::from_static(b"not found")), 9),
        Some(Served::Whole(b)) => {
            let len = b.len();
            (200, FileBody::whole(b), len)
        }
        Some(Served::Cut { bytes, after }) => {
            let len = bytes.len();
            (200, FileBody::cut(bytes.slice(..after.min(len))), len)
        }
    };
    let mut r = Response::new(body);
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::NOT_FOUND);
    r.headers_mut().insert(
        hyper::header::CONTENT_LENGTH,
        hyper::header::HeaderValue::from(len),
    );
    Ok(r)
}

/// A body that sends its bytes, then either ends or fails (hyper then drops the connection).
#[derive(Debug)]
pub struct FileBody {
    data: Option<Bytes>,
    fail: bool,
}

impl FileBody {
    fn whole(b: Bytes) -> Self {
        FileBody {
            data: Some(b),
            fail: false,
        }
    }

    fn cut(b: Bytes) -> Self {
        FileBody {
            data: Some(b),
            fail: true,
        }
    }
}

/// The injected failure of a cut body.
#[derive(Debug)]
pub struct Cut;

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection cut on purpose")
    }
}

impl std::error::Error for Cut {}

impl hyper::body::Body for FileBody {
    type Data = Bytes;
    type Error = Cut;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Cut>>> {
        if let Some(d) = self.data.take() {
            if !d.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(d))));
            }
        }
        if self.fail {
            self.fail = false;
            return Poll::Ready(Some(Err(Cut)));
        }
        Poll::Ready(None)
    }
}
