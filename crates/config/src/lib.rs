//! config.yaml: schema, defaults, validation, intake regions and per-OS well-known paths.
//!
//! ```
//! let (config, warnings) = agent_config::Config::from_str_named(
//!     "Region: usa1\nlogfiles:\n  - filepath: /var/log/nginx/*.log\n    intakekey: abc\n",
//!     "config.yaml",
//! )?;
//! assert!(warnings.is_empty());
//! assert_eq!(
//!     config.intake_endpoint()?.as_str(),
//!     "https://intake.usa1.sekoia.io/api/v1/intake-http"
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod error;
mod intake;
mod load;
pub mod paths;
mod proxy;
mod region;
mod schema;
mod url;

pub use error::{ConfigError, Location, Problem, SettingError, Warning};
pub use intake::{IntakeUrl, IntakeUrlError};
pub use load::{validate_intake_key, WARN_COMPLIANCE_NO_EFFECT};
pub use paths::{Os, Paths};
pub use proxy::{redact, ProxyUrl, ProxyUrlError};
pub use region::{Region, UnknownRegion};
/// The certificate name type of [`IntakeUrl::server_name`], re-exported so that users
/// need not depend on `rustls-pki-types` themselves.
pub use rustls_pki_types::ServerName;
pub use schema::{Config, LogFile, KNOWN_KEYS, KNOWN_ROLES, LOGFILE_KEYS};
