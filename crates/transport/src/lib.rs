//! The intake client: regions, batching, gzip, retries, proxy and TLS.
//!
//! [`Shipper`] reads routed records ([`agent_pipeline::RoutedRecord`]) from a
//! [`RecordSource`] (the agent's ring), frames them per the public intake protocol
//! (`/batch`, `/array`, `/plain/batch`, gzip bodies), sends them over one kept-alive
//! HTTPS connection ([`IntakeClient`]), optionally through an HTTP CONNECT proxy, and
//! acknowledges what the intake accepted. [`Counters`] feed `agent status` and stats.
//!
//! The intake URL and the proxy are agent-config's types ([`IntakeUrl`], [`ProxyUrl`]):
//! parsed once, by the same code `agent config check` runs ([`TransportConfig::from_config`]).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod backoff;
pub mod client;
pub mod config;
pub mod counters;
pub mod error;
pub mod framing;
pub mod proxy;
pub mod shipper;
pub mod source;
pub mod tls;

pub use agent_config::{IntakeUrl, ProxyUrl};
pub use client::{IntakeAnswer, IntakeClient, IntakePost};
pub use config::TransportConfig;
pub use counters::{Counters, CountersSnapshot};
pub use error::TransportError;
pub use shipper::{key_hint, Shipper};
pub use source::{MemorySource, RecordSource, SourceRecord};
