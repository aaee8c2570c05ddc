//! Process signals: SIGTERM and SIGINT stop the agent, SIGHUP reopens the log file (for
//! external log rotation).

use crossbeam_channel::Sender;

/// Forwards SIGTERM / SIGINT to `stop` and handles SIGHUP, on a thread of its own.
#[cfg(unix)]
pub fn forward(stop: Sender<()>) -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    use signal_hook::iterator::Signals;
    use std::sync::atomic::Ordering;

    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if sig == SIGHUP {
                    agent_pipeline::agent_log::REOPEN.store(true, Ordering::Relaxed);
                    tracing::info!("SIGHUP: reopening the log file");
                } else {
                    tracing::info!(signal = sig, "stop requested");
                    let _ = stop.send(());
                }
            }
        })?;
    Ok(())
}

/// Ctrl-C handling is left to the service dispatcher on other systems.
#[cfg(not(unix))]
pub fn forward(stop: Sender<()>) -> std::io::Result<()> {
    // Keep the sender alive for the life of the process so the agent runs until the
    // service manager stops it.
    std::mem::forget(stop);
    Ok(())
}
