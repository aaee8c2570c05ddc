//! Host facts (agent id, hostname, IPs, OS, boot id, user and group names) and file hashing with a cache.
//!
//! Everything here is cheap to call except file hashing, which is meant to run off the
//! collectors' hot path through [`HashWorker`] (a small thread with a bounded queue).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod agent_id;
mod error;
mod hash;
mod hash_worker;
mod info;
mod ips;
mod names;
mod stats;

pub use agent_id::{AgentId, IdRecovery, AGENT_ID_BACKUP_FILE, AGENT_ID_FILE};
pub use error::HostError;
pub use hash::{
    hash_reader, FileHasher, FileHashes, FileKey, HashCache, HashOutcome, HashPolicy, SkipReason,
};
pub use hash_worker::{HashJob, HashResult, HashWorker, SubmitError};
pub use info::{
    boot_id, hostname, os_info, os_type, parse_os_release, uptime_secs, HostFacts, OsInfo, OsType,
};
pub use ips::host_ips;
pub use names::{IdNameCache, NameResolver, UserNames};
pub use stats::{HostStats, StatsSampler};
