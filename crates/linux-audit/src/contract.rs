//! The Linux audit collector behind the agent's collector contract
//! ([`agent_pipeline::Collector`]).

use agent_pipeline::{Collector as Contract, CollectorError, CollectorState, Overflow, Sink};

use crate::collector::{Collector, CollectorConfig};

/// The kernel audit collector as the agent runs it: loads its rules at start (skipped
/// rules logged as warnings), drops events rather than stalling the kernel, and at stop
/// removes its rules and restores the audit status it found.
#[derive(Debug)]
pub struct AuditCollector {
    config: CollectorConfig,
    running: Option<Collector>,
}

impl AuditCollector {
    /// A collector that will start with `config`.
    pub fn new(config: CollectorConfig) -> Self {
        AuditCollector {
            config,
            running: None,
        }
    }
}

impl Contract for AuditCollector {
    fn name(&self) -> &'static str {
        "audit"
    }

    fn overflow(&self) -> Overflow {
        Overflow::Drop
    }

    fn start(&mut self, sink: Sink) -> Result<(), CollectorError> {
        let report = sink.report().clone();
        let collector = Collector::start(self.config.clone(), sink).map_err(CollectorError::new)?;
        for skipped in collector.skipped_rules() {
            tracing::warn!(line = skipped.line, rule = %skipped.text, reason = %skipped.reason, "audit rule skipped");
        }
        for d in collector.degraded_rules() {
            tracing::warn!(line = d.line, rule = %d.text, how = %d.reason, "audit rule loaded in a weaker form");
        }
        if let Some(d) = collector.beside() {
            tracing::warn!(
                daemon = %d.what,
                pid = d.pid.unwrap_or(0),
                "another audit daemon owns the kernel audit stream: running in multicast mode \
                 beside it (our rules are added next to its rules and removed at stop; its \
                 backlog and rate limits apply, and under heavy load the kernel drops records \
                 for both)"
            );
        }
        tracing::info!(
            rules = collector.loaded_rules(),
            mode = collector.mode(),
            "audit collector started"
        );
        report.set_state(CollectorState::Running);
        self.running = Some(collector);
        Ok(())
    }

    fn stop(&mut self) -> Result<(), CollectorError> {
        let Some(collector) = self.running.take() else {
            return Ok(());
        };
        let stats = collector.stop().map_err(CollectorError::new)?;
        tracing::info!(
            emitted = stats.emitted,
            dropped = stats.dropped,
            kernel_lost = stats.kernel_lost,
            "audit collector stopped; rules removed and audit state restored"
        );
        Ok(())
    }
}
