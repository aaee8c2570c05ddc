//! The intake client: regions, batching, gzip, retries, proxy and TLS.
//!
//! [`Shipper`] reads routed records ([`agent_pipeline::RoutedRecord`]) from a
//! [`RecordSource`] (the agent's ring), frames them per the public intake protocol
//! (`/batch`, `/array`, `/plain/batch`, gzip bodies), sends them over one kept-alive
//! HTTPS connection ([`IntakeClient`]), optionally through an HTTP CONNECT proxy, and
//! acknowledges what the intake accepted. [`Counters`] feed `agent status` and stats.
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

pub use client::{Endpoint, IntakeAnswer, IntakeClient, IntakePost};
pub use config::TransportConfig;
pub use counters::{Counters, CountersSnapshot};
pub use error::TransportError;
pub use proxy::{redact_proxy, ProxyUrl};
pub use shipper::{key_hint, Shipper};
pub use source::{MemorySource, RecordSource, SourceRecord};
