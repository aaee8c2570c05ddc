//! The intake client: regions, batching, gzip, retries, proxy and TLS.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
