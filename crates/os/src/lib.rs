//! Small OS utilities that several crates need with the same guarantees: atomic file
//! replacement ([`atomic`]), the `/proc/PID/stat` parser ([`proc_stat`]) and the detection of
//! other consumers of the Linux kernel audit stream, with the one message the operator gets
//! about them ([`audit_consumers`]).
//!
//! This is a leaf crate: it depends on none of our crates. That is the accepted exception to
//! "agent-buffer depends on no other crate of ours": a crate this small and this low cannot
//! pull the rest of the agent into the ring.

pub mod atomic;
pub mod audit_consumers;
pub mod proc_stat;

pub use atomic::{
    replace_file, replace_file_unsynced, replace_file_with, ReplaceError, ReplaceStep,
};
