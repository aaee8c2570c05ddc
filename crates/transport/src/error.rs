//! Errors of the intake client.
//!
//! No variant ever carries a proxy password or a full intake key: proxies are shown in
//! their redacted form (`http://user:***@host:port`) and keys by their last characters.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

/// Why a transport operation failed.
#[derive(Debug, Error)]
pub enum TransportError {
    /// The extra CA file could not be read or holds no usable certificate.
    #[error("extra CA file {path}: {reason}")]
    CaFile {
        /// The configured file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// No trusted root at all (should not happen: the bundled roots are always there).
    #[error("TLS setup failed: {0}")]
    TlsSetup(#[source] rustls::Error),
    /// TCP connection to the intake or the proxy failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// `host:port` that was dialled.
        addr: String,
        /// The socket error.
        #[source]
        source: io::Error,
    },
    /// The proxy refused the CONNECT tunnel.
    #[error("proxy {proxy} refused CONNECT to {target}: {status} {reason}{hint}")]
    Proxy {
        /// The proxy, password redacted.
        proxy: String,
        /// `host:port` of the intake.
        target: String,
        /// The proxy's HTTP status.
        status: u16,
        /// The proxy's reason phrase.
        reason: String,
        /// An explanation for well-known statuses.
        hint: &'static str,
    },
    /// The proxy answered something that is not HTTP.
    #[error("proxy {proxy} sent a malformed CONNECT answer")]
    ProxyProtocol {
        /// The proxy, password redacted.
        proxy: String,
    },
    /// The TLS handshake failed, typically because the certificate is not trusted.
    #[error("TLS handshake with {host} failed: {source}")]
    Tls {
        /// The intake host.
        host: String,
        /// The handshake error (rustls' certificate errors are inside).
        #[source]
        source: io::Error,
    },
    /// The HTTP exchange failed (connection closed or reset, protocol error).
    #[error("HTTP exchange with the intake failed: {0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built (should not happen with validated inputs).
    #[error("cannot build the HTTP request: {0}")]
    Request(#[from] http::Error),
    /// Connecting, sending and reading the answer took longer than the request timeout.
    #[error("no answer from the intake within {0:?}")]
    Timeout(Duration),
    /// Compressing a body failed.
    #[error("gzip failed: {0}")]
    Gzip(#[source] io::Error),
    /// The record source failed (reading or acknowledging the ring).
    #[error("record source failed: {0}")]
    Source(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl TransportError {
    /// Whether the intake could not be reached at all (no TCP connection, or the proxy
    /// could not reach it): nothing was sent, so trying again soon costs the intake
    /// nothing.
    pub fn is_unreachable(&self) -> bool {
        match self {
            TransportError::Connect { .. } => true,
            TransportError::Proxy { status, .. } => matches!(status, 502..=504),
            _ => false,
        }
    }
}
