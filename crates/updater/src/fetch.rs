//! HTTPS GET of manifests and artifacts, with the intake client's TLS settings (OS store,
//! bundled roots, extra CA file; no way to turn verification off) and its proxy rules
//! (configured proxy, else `HTTPS_PROXY` / `NO_PROXY`, CONNECT tunnel), from
//! agent-transport. One connection per request: updates are checked every few hours.

use std::path::PathBuf;
use std::time::Duration;

use agent_config::{IntakeUrl, ProxyUrl};
use agent_transport::proxy::{connect_tunnel, resolve_proxy};
use agent_transport::TransportError;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST, USER_AGENT};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// How the update client connects: the same settings as the intake's.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Explicit proxy (`HTTPProxyURL`).
    pub proxy: Option<ProxyUrl>,
    /// Whether `HTTPS_PROXY` / `NO_PROXY` apply when no proxy is configured.
    pub proxy_from_env: bool,
    /// Extra PEM file of CA certificates to trust (TLS inspection, tests).
    pub extra_ca_file: Option<PathBuf>,
    /// Limit for connecting and receiving the answer's head.
    pub timeout: Duration,
    /// Longest silence while a body is being received.
    pub idle_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            proxy: None,
            proxy_from_env: true,
            extra_ca_file: None,
            timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Why a download failed. Nothing is installed after any of these.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Connecting, the proxy tunnel or TLS failed (the intake client's error, same wording).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The HTTP exchange failed (connection reset, closed mid-body, protocol error).
    #[error("HTTP exchange failed: {0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built.
    #[error("cannot build the request: {0}")]
    Request(#[from] http::Error),
    /// Not 200.
    #[error("the server answered {0}")]
    Status(StatusCode),
    /// Nothing received for too long.
    #[error("no data for {0:?}")]
    Timeout(Duration),
    /// The body is larger than allowed.
    #[error("the answer is larger than {0} bytes")]
    TooLarge(u64),
    /// The consumer of the body refused a chunk (size or write error).
    #[error("{0}")]
    Sink(String),
}

/// An HTTPS client for update downloads.
pub struct HttpsClient {
    settings: HttpSettings,
    tls: TlsConnector,
}

impl std::fmt::Debug for HttpsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsClient")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

const USER_AGENT_VALUE: &str = concat!("endpoint-agent-updater/", env!("CARGO_PKG_VERSION"));

impl HttpsClient {
    /// Loads the trust roots (as the intake client does).
    pub fn new(settings: HttpSettings) -> Result<HttpsClient, FetchError> {
        let tls = TlsConnector::from(agent_transport::tls::client_config(
            settings.extra_ca_file.as_deref(),
        )?);
        Ok(HttpsClient { settings, tls })
    }

    /// GETs `path` on `server` into memory, refusing more than `limit` bytes.
    pub async fn get_small(
        &self,
        server: &IntakeUrl,
        path: &str,
        limit: u64,
    ) -> Result<Vec<u8>, FetchError> {
        let mut body = Vec::new();
        self.get(server, path, limit, &mut |chunk| {
            body.extend_from_slice(chunk);
            Ok(())
        })
        .await?;
        Ok(body)
    }

    /// GETs `path` on `server`, handing each chunk of the body to `sink`, refusing more
    /// than `limit` bytes (announced or received). Returns the bytes received.
    pub async fn get(
        &self,
        server: &IntakeUrl,
        path: &str,
        limit: u64,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<u64, FetchError> {
        let timeout = self.settings.timeout;
        let mut resp = match tokio::time::timeout(timeout, self.request(server, path)).await {
            Ok(r) => r?,
            Err(_) => return Err(FetchError::Timeout(timeout)),
        };
        if resp.status() != StatusCode::OK {
            return Err(FetchError::Status(resp.status()));
        }
        let announced = resp
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if announced.is_some_and(|n| n > limit) {
            return Err(FetchError::TooLarge(limit));
        }
        let idle = self.settings.idle_timeout;
        let mut received = 0u64;
        loop {
            let frame = match tokio::time::timeout(idle, resp.body_mut().frame()).await {
                Err(_) => return Err(FetchError::Timeout(idle)),
                Ok(None) => break,
                Ok(Some(frame)) => frame?,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            received += data.len() as u64;
            if received > limit {
                return Err(FetchError::TooLarge(limit));
            }
            sink(&data).map_err(FetchError::Sink)?;
        }
        Ok(received)
    }

    async fn request(
        &self,
        server: &IntakeUrl,
        path: &str,
    ) -> Result<http::Response<hyper::body::Incoming>, FetchError> {
        let target = server.authority();
        let proxy = resolve_proxy(
            self.settings.proxy.as_ref(),
            self.settings.proxy_from_env,
            server,
            |n| std::env::var(n).ok(),
        );
        let dial = proxy
            .as_ref()
            .map_or_else(|| target.clone(), ProxyUrl::authority);
        let mut tcp =
            TcpStream::connect(&dial)
                .await
                .map_err(|source| TransportError::Connect {
                    addr: dial.clone(),
                    source,
                })?;
        let _ = tcp.set_nodelay(true);
        if let Some(p) = &proxy {
            connect_tunnel(&mut tcp, p, &target).await?;
        }
        let tls = self
            .tls
            .connect(server.server_name().clone(), tcp)
            .await
            .map_err(|source| TransportError::Tls {
                host: server.host().to_owned(),
                source,
            })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "update connection ended");
            }
        });
        let req = Request::builder()
            .method(Method::GET)
            .uri(if path.is_empty() { "/" } else { path })
            .header(HOST, target)
            .header(USER_AGENT, USER_AGENT_VALUE)
            .body(Empty::<Bytes>::new())?;
        Ok(sender.send_request(req).await?)
    }
}
