//! macOS collectors: Endpoint Security (ES) messages and `/dev/bpf` packets mapped to the
//! endpoint dialect, and the `.app` bundle the product ships.
//!
//! - [`message`]: a neutral description of one ES message, in the JSON shape `eslogger`
//!   prints, so that everything below is compiled and tested on every OS.
//! - [`mapper`]: ES message → [`agent_event::Event`] (process, file and authentication
//!   events), with the Linux tags ([`tags`]) and process guids from the audit token.
//! - [`gaps`]: messages ES dropped, counted from sequence-number gaps.
//! - [`processor`]: per message: gaps, mapping, hashing (`HashesExcludedPaths`), sink.
//! - [`net`]: TCP connections (SYN-ACKs) and DNS answers from `/dev/bpf` frames, with
//!   `agent-dns`'s parsing.
//! - [`collector`]: [`MacosEsCollector`] (`macos-es`) and [`MacosNetCollector`]
//!   (`macos-net`) behind the collector contract; on macOS thin bindings on the
//!   `endpoint-sec` crate (`es`) and on `/dev/bpf` (`capture`), elsewhere `start` fails
//!   with a clear error so that the agent's wiring compiles everywhere.
//! - [`replay`]: the events recorded `eslogger` output would give (no host lookups).
//! - [`bundle`]: the `.app` layout (Info.plist, executable, entitlements).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod bundle;
#[cfg(target_os = "macos")]
mod capture;
pub mod collector;
#[cfg(target_os = "macos")]
mod es;
pub mod gaps;
pub mod mapper;
pub mod message;
pub mod net;
mod procargs;
pub mod processor;
pub mod replay;
pub mod tags;

pub use collector::{
    EsError, EsSettings, MacosEsCollector, MacosNetCollector, NetError, NetSettings,
};
pub use gaps::SeqGaps;
pub use mapper::{FileScope, Mapped, Mapper, MapperConfig, NameTable, Names, Skip};
pub use message::{EsEvent, EsMessage};
