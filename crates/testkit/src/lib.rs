//! Test infrastructure for the endpoint agent: a real HTTPS intake on 127.0.0.1, and a
//! static HTTPS file server ([`FileServer`]) for update downloads.
//!
//! [`Intake`] is a hyper 1 + rustls server with its own rcgen CA (written to a PEM file
//! for the agent's `--extra-ca`). It accepts the three intake paths the transport uses
//! (`/batch`, `/array`, `/plain/batch`, gzip bodies), checks every request's shape and
//! intake key, and records each accepted record with its key and arrival order. It can
//! be stopped and restarted on the same port with the same certificate (outage tests),
//! and can answer with injected faults.
//!
//! ```no_run
//! let mut intake = agent_testkit::Intake::start().unwrap();
//! // ... point the agent at intake.url() with --extra-ca intake.ca_file() ...
//! intake.stop();     // outage: connections closed, port refused
//! intake.restart().unwrap();
//! let records = intake.records();
//! ```

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod files;
mod intake;
mod pki;
mod protocol;

pub use files::FileServer;
pub use intake::{Fault, Intake, Record, RequestLog};
pub use pki::TestPki;
pub use protocol::{parse_request, Parsed};

/// Why the test intake could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Certificate generation failed.
    #[error("cannot generate the test certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// The TLS configuration was refused.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// Binding, writing the CA file, or starting the runtime failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}
