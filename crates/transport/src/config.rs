//! What the intake client needs to know: agent-config's typed intake URL and proxy, plus
//! the client's own tuning.

use std::path::PathBuf;
use std::time::Duration;

use agent_config::{Config, IntakeUrl, ProxyUrl, SettingError};

/// Settings of the intake client and shipper.
///
/// `Debug` shows the proxy with its password redacted, so the struct can be logged.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Intake base URL: a region's (e.g. `https://intake.sekoia.io`) or a custom one
    /// (`https://relay.example:8443/intake`).
    pub intake: IntakeUrl,
    /// Explicit proxy. When `None`, `HTTPS_PROXY` and `NO_PROXY` are honoured if
    /// [`TransportConfig::proxy_from_env`] is set.
    pub proxy: Option<ProxyUrl>,
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
    /// Largest retry delay; also caps a server's `Retry-After`. Kept in the tens of
    /// seconds: an intake that comes back is found within this delay at worst.
    pub backoff_max: Duration,
    /// While the intake cannot be reached at all (connection refused or timed out, proxy
    /// cannot reach it), the next attempt comes after at most this long (with jitter):
    /// such an attempt costs the intake nothing until it answers again, and it bounds the
    /// recovery time after an outage.
    pub probe_interval: Duration,
    /// Longest hold of a key rejected with 401/403: its records wait, and one record
    /// probes the key after a delay growing from `backoff_min` to this (with jitter).
    pub auth_retry_interval: Duration,
    /// A record the intake refuses alone (400, or 413 on one record) is dropped as
    /// malformed only if the intake accepted another request sent after the refusals
    /// began. When the intake refuses everything, it is treated as an intake fault: the
    /// record is kept and retried with backoff, for at most this long.
    pub refusal_window: Duration,
    /// Most requests in flight at once (each on its own kept-alive connection). Records
    /// are acknowledged in order whatever order the answers come in. 1 keeps the arrival
    /// order at the intake equal to the buffer's order.
    pub max_in_flight: usize,
    /// Most records held in memory (read but not yet acknowledged).
    pub max_pending_records: usize,
    /// Most payload bytes held in memory.
    pub max_pending_bytes: usize,
    /// Delivered records are acknowledged to the source at most this often (and at once
    /// when the shipper is idle or stops): acknowledging the ring costs fsyncs. Records
    /// delivered since the last acknowledgement are sent again after a crash.
    pub ack_interval: Duration,
    /// gzip level, 0..=9. The default, 4, compresses the agent's batches within 2 % of
    /// level 6 at half its CPU (docs/bench/README.md).
    pub gzip_level: u32,
    /// Sent as `User-Agent`.
    pub user_agent: String,
    /// Longest time a shutdown spends on a last delivery attempt.
    pub shutdown_grace: Duration,
}

impl TransportConfig {
    /// Settings for shipping where `config` says (`IntakeURL` or `Region`, `HTTPProxyURL`),
    /// with the documented defaults for the rest. The agent starts its shipper with this;
    /// it fails exactly on the values `config check` refuses, with the same message.
    pub fn from_config(config: &Config) -> Result<Self, SettingError> {
        let mut settings = TransportConfig::new(config.intake_endpoint()?);
        settings.proxy = config.proxy()?;
        Ok(settings)
    }

    /// Settings with the documented defaults for the given intake.
    pub fn new(intake: IntakeUrl) -> Self {
        TransportConfig {
            intake,
            proxy: None,
            proxy_from_env: true,
            extra_ca_file: None,
            batch_max_events: 250,
            batch_max_delay: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            probe_interval: Duration::from_secs(5),
            auth_retry_interval: Duration::from_secs(30),
            refusal_window: Duration::from_secs(300),
            max_in_flight: 4,
            ack_interval: Duration::from_millis(100),
            max_pending_records: 20_000,
            max_pending_bytes: 32 << 20,
            gzip_level: 4,
            user_agent: concat!("endpoint-agent/", env!("CARGO_PKG_VERSION")).to_owned(),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}
