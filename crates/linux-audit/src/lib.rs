//! Linux audit collector: netlink client, rule compiler, record reassembly and normalization.
//!
//! - [`record`]: parse one record (text log line or netlink payload) into typed fields.
//! - [`reassembly`]: group records into [`AuditEvent`]s by serial.
//! - [`event`]: accessors over an event (syscall, argv, paths, cwd, proctitle, sockaddr).
//! - [`rule`]: compile auditctl rule syntax into the kernel's `audit_rule_data`.
//! - `netlink` (Linux only): the kernel audit protocol (status, rules, records).
//! - `session` (Linux only): load our rules, receive events, restore everything on stop.
//! - [`proctable`]: processes behind the pids of events.
//! - [`normalize`]: audit events → endpoint-dialect events.
//! - [`replay`]: a recorded audit log → the events the collector would emit.
//!
//! ```no_run
//! # #[cfg(target_os = "linux")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use agent_linux_audit::rule::{compile, Arch};
//! use agent_linux_audit::session::{AuditSession, SessionConfig};
//!
//! let rules = [compile("-a always,exit -F arch=b64 -S execve -k exec", Arch::X86_64)?];
//! let mut session = AuditSession::start(&SessionConfig::default(), &rules)?;
//! for event in session.recv(std::time::Duration::from_millis(200))? {
//!     println!("{:?} {:?}", event.syscall_name(), event.execve_args());
//! }
//! session.stop()?;
//! # Ok(())
//! # }
//! # #[cfg(not(target_os = "linux"))]
//! # fn main() {}
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

#[cfg(target_os = "linux")]
pub mod collector;
#[cfg(target_os = "linux")]
pub mod contract;
pub mod event;
pub mod msgtype;
#[cfg(target_os = "linux")]
pub mod netlink;
pub mod normalize;
pub mod proctable;
pub mod reassembly;
pub mod record;
pub mod replay;
pub mod rule;
#[cfg(target_os = "linux")]
pub mod session;
pub mod sockaddr;

#[cfg(target_os = "linux")]
pub use contract::AuditCollector;
pub use event::AuditEvent;
pub use reassembly::{Reassembler, Stats};
pub use record::{parse_line, parse_netlink, AuditRecord, AuditTime, Field, ParseError, Value};
pub use rule::{compile_rule, Arch, RuleError};
pub use sockaddr::SockAddr;
