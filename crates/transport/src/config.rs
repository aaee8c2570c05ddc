//! What the intake client needs to know, as plain values (the agent maps its own
//! configuration onto this).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::proxy::redact_proxy;

/// Settings of the intake client and shipper.
///
/// `Debug` redacts the proxy password so the struct can be logged.
#[derive(Clone)]
pub struct TransportConfig {
    /// Intake base URL: a region URL (e.g. `https://intake.sekoia.io`) or a custom one
    /// (`https://relay.example:8443/intake`). Must be `https`.
    pub base_url: String,
    /// Explicit proxy, `http://user:pass@host:port`. When `None`, `HTTPS_PROXY` and
    /// `NO_PROXY` are honoured if [`TransportConfig::proxy_from_env`] is set.
    pub proxy: Option<String>,
    /// Whether to look at `HTTPS_PROXY` / `NO_PROXY` when no proxy is configured.
    pub proxy_from_env: bool,
    /// Extra PEM file of CA certificates to trust (corporate TLS inspection).
    pub extra_ca_file: Option<PathBuf>,
    /// A batch is sent as soon as it holds this many records.
    pub batch_max_events: usize,
    /// ... or this long after its first record was read, whichever comes first.
    pub batch_max_delay: Duration,
    /// Limit for one attempt: connecting (proxy, TLS) plus the request and its answer.
    pub request_timeout: Duration,
    /// First retry delay after a transient failure (429, 5xx, timeout, connection error).
    pub backoff_min: Duration,
    /// Largest retry delay; also caps a server's `Retry-After`.
    pub backoff_max: Duration,
    /// How long records of a key rejected with 401/403 wait before being tried again.
    pub auth_retry_interval: Duration,
    /// Most records held in memory (read but not yet acknowledged).
    pub max_pending_records: usize,
    /// Most payload bytes held in memory.
    pub max_pending_bytes: usize,
    /// gzip level, 0..=9.
    pub gzip_level: u32,
    /// Sent as `User-Agent`.
    pub user_agent: String,
    /// Longest time a shutdown spends on a last delivery attempt.
    pub shutdown_grace: Duration,
}

impl TransportConfig {
    /// Settings with the documented defaults for the given base URL.
    pub fn new(base_url: impl Into<String>) -> Self {
        TransportConfig {
            base_url: base_url.into(),
            proxy: None,
            proxy_from_env: true,
            extra_ca_file: None,
            batch_max_events: 250,
            batch_max_delay: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            auth_retry_interval: Duration::from_secs(300),
            max_pending_records: 20_000,
            max_pending_bytes: 32 << 20,
            gzip_level: 6,
            user_agent: concat!("endpoint-agent/", env!("CARGO_PKG_VERSION")).to_owned(),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

impl fmt::Debug for TransportConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportConfig")
            .field("base_url", &self.base_url)
            .field("proxy", &self.proxy.as_deref().map(redact_proxy))
            .field("proxy_from_env", &self.proxy_from_env)
            .field("extra_ca_file", &self.extra_ca_file)
            .field("batch_max_events", &self.batch_max_events)
            .field("batch_max_delay", &self.batch_max_delay)
            .field("request_timeout", &self.request_timeout)
            .field("backoff_min", &self.backoff_min)
            .field("backoff_max", &self.backoff_max)
            .field("auth_retry_interval", &self.auth_retry_interval)
            .field("max_pending_records", &self.max_pending_records)
            .field("max_pending_bytes", &self.max_pending_bytes)
            .field("gzip_level", &self.gzip_level)
            .field("user_agent", &self.user_agent)
            .field("shutdown_grace", &self.shutdown_grace)
            .finish()
    }
}
