//! config.yaml: schema, defaults, validation, intake regions and per-OS well-known paths.
//!
//! ```
//! let (config, warnings) = agent_config::Config::from_str_named(
//!     "Region: usa1\nlogfiles:\n  - filepath: /var/log/nginx/*.log\n    intakekey: abc\n",
//!     "config.yaml",
//! )?;
//! assert!(warnings.is_empty());
//! assert_eq!(
//!     config.intake_endpoint().base_url(),
//!     "https://intake.usa1.sekoia.io/api/v1/intake-http"
//! );
//! # Ok::<(), agent_config::ConfigError>(())
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod error;
mod load;
pub mod paths;
mod proxy;
mod region;
mod schema;

pub use error::{ConfigError, Location, Problem, Warning};
pub use load::validate_intake_key;
pub use paths::{Os, Paths};
pub use proxy::{redact, ProxyScheme, ProxyUrl, ProxyUrlError};
pub use region::{IntakeEndpoint, Region, UnknownRegion};
pub use schema::{Config, LogFile, KNOWN_KEYS, KNOWN_ROLES, LOGFILE_KEYS};
