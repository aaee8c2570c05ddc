//! The shipper thread: the intake client on a current-thread tokio runtime, reading the
//! ring through [`super::source::RingSource`].

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use agent_config::Config;
use agent_transport::{Counters, Shipper, TransportConfig};

use super::{env_u64, source, start_err, RunError, RunOptions};

/// Payload bytes held in memory per batch (250 records of 1 KiB, typical events).
const PENDING_BYTES_PER_BATCH: usize = 256 << 10;

/// Stops the shipper (one last short delivery attempt) and its thread.
pub type ShipperHandle = (tokio::sync::oneshot::Sender<()>, JoinHandle<()>);

pub fn spawn_shipper(
    config: &Config,
    opts: &RunOptions,
    mut source: source::RingSource,
    counters: Arc<Counters>,
) -> Result<ShipperHandle, RunError> {
    // The intake URL and proxy are parsed by the code `agent config check` runs, so a
    // config that passed the check cannot fail here, and one that did not fails with the
    // message the check printed.
    let mut tc =
        TransportConfig::from_config(config).map_err(|e| RunError::Config(e.to_string()))?;
    tc.extra_ca_file = opts.extra_ca_file.clone();
    tc.shutdown_grace = Duration::from_secs(3);
    if let Some(ms) = env_u64("ENDPOINT_AGENT_BATCH_DELAY_MS") {
        tc.batch_max_delay = Duration::from_millis(ms);
    }
    if let Some(ms) = env_u64("ENDPOINT_AGENT_BACKOFF_MAX_MS") {
        tc.backoff_max = Duration::from_millis(ms);
    }
    if let Some(n) = env_u64("ENDPOINT_AGENT_MAX_IN_FLIGHT") {
        tc.max_in_flight = usize::try_from(n).unwrap_or(1).clamp(1, 16);
    }
    // The ring holds the backlog; memory only needs the batches in flight and the next
    // one, however large the backlog is.
    let batches = tc.max_in_flight + 2;
    tc.max_pending_records = tc.batch_max_events * batches;
    tc.max_pending_bytes = PENDING_BYTES_PER_BATCH * batches;
    if let Some(n) = env_u64("ENDPOINT_AGENT_PENDING_RECORDS") {
        tc.max_pending_records = usize::try_from(n).unwrap_or(usize::MAX).max(1);
    }
    if let Some(n) = env_u64("ENDPOINT_AGENT_PENDING_BYTES") {
        tc.max_pending_bytes = usize::try_from(n).unwrap_or(usize::MAX);
    }
    let mut shipper = Shipper::new(tc, counters).map_err(|e| start_err("the shipper", e))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| start_err("the network runtime", e))?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = std::thread::Builder::new()
        .name("shipper".into())
        .spawn(move || {
            runtime.block_on(async move {
                let shutdown = async move {
                    let _ = rx.await;
                };
                if let Err(e) = shipper.run(&mut source, shutdown).await {
                    tracing::error!(error = %e, "the shipper stopped");
                }
            });
        })
        .map_err(|e| start_err("the shipper thread", e))?;
    Ok((tx, handle))
}
