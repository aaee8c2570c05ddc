//! Windows collector: real-time ETW sessions read with `ferrisetw`, mapped to the endpoint
//! dialect.
//!
//! Split as on Linux: the mapping ([`mapper`], with the [`proctable`], [`paths`], [`dns`]
//! and [`cmdline`] helpers) is plain Rust, compiled and unit-tested on every OS from recorded
//! property sets; only the session binding is `#[cfg(windows)]`. [`EtwCollector`] implements
//! the collector contract everywhere; outside Windows its `start` fails with
//! [`EtwError::Unsupported`], so the agent's wiring compiles on every target.
//!
//! The Windows Event Log half (Security, Defender, Sysmon and System channels) is
//! [`eventlog`]: the same split, a pure mapper from rendered event XML (also behind `agent
//! replay --evtx`) and a `#[cfg(windows)]` subscription binding.
//!
//! ```
//! use agent_etw::mapper::{Mapper, MapperConfig};
//! use agent_etw::providers::Provider;
//! use agent_etw::record::{EtwRecord, Header, Prop};
//! use agent_event::Timestamp;
//!
//! let mut mapper = Mapper::new(MapperConfig { boot_id: "42".into(), ..MapperConfig::default() });
//! let rec = EtwRecord::new(Header {
//!     provider: Provider::PowerShell.guid(),
//!     id: 4104, opcode: 15, version: 1, level: 5, keywords: 0,
//!     pid: 9144, tid: 8248,
//!     timestamp: Timestamp::from_unix(1_700_000_000, 0),
//! })
//! .with("ScriptBlockText", Prop::Str("Get-Process".into()));
//! let mut out = Vec::new();
//! mapper.map(&rec, &mut out);
//! assert_eq!(out[0].event.code, Some(4104));
//! assert_eq!(out[0].action.properties["ScriptBlockText"], "Get-Process");
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod cmdline;
mod collector;
pub mod dns;
pub mod eventlog;
pub mod hashing;
pub mod mapper;
pub mod paths;
pub mod proctable;
pub mod providers;
pub mod record;
#[cfg(windows)]
mod session;

pub use collector::{EtwCollector, EtwConfig, EtwError};
