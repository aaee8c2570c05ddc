//! Signed automatic updates of the agent, with a journaled swap and automatic rollback.
//!
//! - [`TrustedKeys`]: one to three minisign (Ed25519) public keys compiled into the agent;
//!   a release [`Manifest`] is used only when one of them signed it (and the signed trusted
//!   comment repeats its channel, serial and version).
//! - [`policy::decide`]: not expired, serial and version newer than the last accepted
//!   release, no downgrade unless asked for by version, the running version allowed to
//!   update from.
//! - [`swap`]: the download is staged beside the binary, capped at the manifest's size,
//!   SHA-256-checked and asked for its `--version` before a journaled swap
//!   (`staged → swapped → confirmed | rolled-back`) that keeps the previous binary.
//!   [`swap::on_start`] at every start of the service settles interrupted updates and rolls
//!   back an update that did not confirm itself healthy in time.
//! - [`background::Background`]: in the running agent, the health confirmation and the
//!   periodic check (`AutoUpdate: true`).
//! - [`UpdaterConfig`]: the whole check over HTTPS (through the intake's proxy and CA settings),
//!   used by `agent update` and the agent's periodic check.
//!
//! See `docs/updates.md` for the trust model, the manifest format and how to sign a release.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod background;
pub mod fetch;
pub mod manifest;
pub mod policy;
pub mod state;
pub mod swap;
pub mod trust;
mod updater;

#[cfg(test)]
mod crash_model;

pub use fetch::{FetchError, HttpSettings};
pub use manifest::{Manifest, ManifestError, Target};
pub use policy::{Refusal, Request, Verdict};
pub use state::{Accepted, Journal, Step, UpdateState};
pub use swap::{Health, Layout, StartAction, SwapError};
pub use trust::{TrustError, TrustedKeys};
pub use updater::{
    channel_path, packaged_marker, region_endpoint, Outcome, UpdateError, UpdaterConfig,
    DEFAULT_CHANNEL, PACKAGED_MARKER,
};
