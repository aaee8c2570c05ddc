//! Linux audit collector: netlink client, rule compiler, record reassembly and normalization.
//!
//! - [`record`]: parse one record (text log line or netlink payload) into typed fields.
//! - [`reassembly`]: group records into [`AuditEvent`]s by serial.
//! - [`rule`]: compile auditctl rule syntax into the kernel's `audit_rule_data`.
//! - `netlink` (Linux only): talk to the kernel audit subsystem.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod event;
pub mod msgtype;
#[cfg(target_os = "linux")]
pub mod netlink;
pub mod proctable;
pub mod reassembly;
pub mod record;
pub mod rule;
#[cfg(target_os = "linux")]
pub mod session;
pub mod sockaddr;

pub use event::AuditEvent;
pub use reassembly::{Reassembler, Stats};
pub use record::{parse_line, parse_netlink, AuditRecord, AuditTime, Field, ParseError, Value};
pub use rule::{compile_rule, Arch, RuleError};
pub use sockaddr::SockAddr;
