//! [`EtwCollector`]: the collector contract over the ETW sessions.

use std::time::Duration;

use agent_host::HashPolicy;
use agent_pipeline::{Collector, CollectorError, Overflow, Sink};

/// Why the ETW collector could not start or stop.
#[derive(Debug, thiserror::Error)]
pub enum EtwError {
    /// Not on Windows: there is no ETW.
    #[error("ETW is only available on Windows")]
    Unsupported,
    /// A session could not be started (not an administrator, too many sessions, ...).
    #[error("ETW session {name}: {message}")]
    Session {
        /// The session name.
        name: String,
        /// What the OS said.
        message: String,
    },
    /// `start` was called twice.
    #[error("the ETW collector is already running")]
    AlreadyRunning,
}

/// Settings of the ETW collector.
#[derive(Debug, Clone)]
pub struct EtwConfig {
    /// Prefix of the session names (`<prefix>-Kernel`, `<prefix>-User`). A session left by a
    /// crashed agent has the same name and is stopped at start.
    pub session_prefix: String,
    /// Identical DNS answers of one process within this long are sent once, then once more
    /// with `sekoiaio.repeat.count` (zero: every answer is sent).
    pub dns_repeat_window: Duration,
    /// How often the sessions' lost-event counters are read and DNS repeats flushed.
    pub poll_interval: Duration,
    /// Which files are hashed (`HashesExcludedPaths`, size limit): process images and
    /// written executables.
    pub hash_policy: HashPolicy,
    /// Hash jobs that may wait; beyond that events go out without hashes.
    pub hash_queue: usize,
    /// How long an event waits for its hashes before it goes out without them.
    pub hash_wait: Duration,
}

impl Default for EtwConfig {
    fn default() -> Self {
        EtwConfig {
            session_prefix: "SEKOIAEndpointAgent".to_owned(),
            dns_repeat_window: Duration::from_secs(60),
            poll_interval: Duration::from_secs(5),
            hash_policy: HashPolicy::new(
                Vec::<std::path::PathBuf>::new(),
                HashPolicy::DEFAULT_MAX_SIZE,
            ),
            hash_queue: 256,
            hash_wait: Duration::from_secs(2),
        }
    }
}

/// The Windows ETW collector (`etw` in `agent status`).
#[derive(Debug)]
pub struct EtwCollector {
    config: EtwConfig,
    #[cfg(windows)]
    running: Option<crate::session::Running>,
}

impl EtwCollector {
    /// A collector with `config`; nothing runs before [`Collector::start`].
    pub fn new(config: EtwConfig) -> EtwCollector {
        EtwCollector {
            config,
            #[cfg(windows)]
            running: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &EtwConfig {
        &self.config
    }
}

impl Collector for EtwCollector {
    fn name(&self) -> &'static str {
        "etw"
    }

    /// ETW buffers are the kernel's: a collector that stalls makes ETW lose events, so the
    /// sink drops (and counts) instead of waiting.
    fn overflow(&self) -> Overflow {
        Overflow::Drop
    }

    #[cfg(windows)]
    fn start(&mut self, sink: Sink) -> Result<(), CollectorError> {
        if self.running.is_some() {
            return Err(CollectorError::new(EtwError::AlreadyRunning));
        }
        let report = sink.report().clone();
        match crate::session::Running::start(&self.config, sink) {
            Ok(r) => {
                self.running = Some(r);
                report.set_state(agent_pipeline::CollectorState::Running);
                Ok(())
            }
            Err(e) => {
                report.fail(&e);
                Err(CollectorError::new(e))
            }
        }
    }

    #[cfg(not(windows))]
    fn start(&mut self, sink: Sink) -> Result<(), CollectorError> {
        sink.report().fail(EtwError::Unsupported);
        Err(CollectorError::new(EtwError::Unsupported))
    }

    fn stop(&mut self) -> Result<(), CollectorError> {
        #[cfg(windows)]
        if let Some(r) = self.running.take() {
            r.stop();
        }
        Ok(())
    }
}

#[cfg(all(test, not(windows)))]
mod tests {
    use super::*;
    use agent_pipeline::CollectorState;

    #[test]
    fn outside_windows_start_fails_clearly_and_stop_is_harmless() {
        let mut c = EtwCollector::new(EtwConfig::default());
        assert_eq!(c.name(), "etw");
        assert_eq!(c.overflow(), Overflow::Drop);
        let (sink, _rx) = Sink::channel("etw", 4, Overflow::Drop);
        let report = sink.report().clone();
        let err = c.start(sink).unwrap_err();
        assert_eq!(err.to_string(), "ETW is only available on Windows");
        assert_eq!(
            report.state(),
            CollectorState::Failed("ETW is only available on Windows".into())
        );
        c.stop().unwrap();
    }
}
