//! The tailer behind the agent's collector contract ([`agent_pipeline::Collector`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use agent_pipeline::{
    Collector, CollectorError, CollectorState, Overflow, OwnedLine, Sink, SinkError,
};

use crate::{LineSink, LogLine, Options, StopHandle, Tailer, WatchSpec};

/// Log-file tailing as the agent runs it: a thread of its own whose lines go to the sink
/// and are checkpointed only once the sink stored them (the sink waits, never drops).
#[derive(Debug)]
pub struct LogfileCollector {
    specs: Vec<WatchSpec>,
    state_dir: PathBuf,
    options: Options,
    running: Option<(StopHandle, JoinHandle<()>)>,
}

impl LogfileCollector {
    /// A collector for `specs`, keeping its checkpoints in `state_dir`.
    pub fn new(specs: Vec<WatchSpec>, state_dir: impl Into<PathBuf>, options: Options) -> Self {
        LogfileCollector {
            specs,
            state_dir: state_dir.into(),
            options,
            running: None,
        }
    }
}

impl Collector for LogfileCollector {
    fn name(&self) -> &'static str {
        "logfile"
    }

    fn overflow(&self) -> Overflow {
        Overflow::Wait
    }

    fn start(&mut self, sink: Sink) -> Result<(), CollectorError> {
        let mut tailer = Tailer::new(
            self.specs.clone(),
            self.state_dir.clone(),
            self.options.clone(),
        )
        .map_err(CollectorError::new)?;
        let stop = tailer.stop_handle();
        let report = sink.report().clone();
        let thread_report = report.clone();
        let handle = std::thread::Builder::new()
            .name("logfile".into())
            .spawn(move || {
                let mut lines = SinkLines {
                    sink,
                    keys: HashMap::new(),
                };
                if let Err(e) = tailer.run(&mut lines) {
                    tracing::error!(error = %e, "the log-file collector stopped");
                    thread_report.fail(e);
                }
            })
            .map_err(CollectorError::new)?;
        report.set_state(CollectorState::Running);
        self.running = Some((stop, handle));
        Ok(())
    }

    fn stop(&mut self) -> Result<(), CollectorError> {
        if let Some((stop, handle)) = self.running.take() {
            stop.stop();
            handle
                .join()
                .map_err(|_| CollectorError::msg("the log-file thread panicked"))?;
        }
        Ok(())
    }
}

/// The tailer's [`LineSink`] over the pipeline's sink: owned lines with shared intake
/// keys (one allocation per key, not per line).
struct SinkLines {
    sink: Sink,
    keys: HashMap<String, Arc<str>>,
}

impl SinkLines {
    fn key(&mut self, key: &str) -> Arc<str> {
        if let Some(k) = self.keys.get(key) {
            return Arc::clone(k);
        }
        let k: Arc<str> = Arc::from(key);
        self.keys.insert(key.to_owned(), Arc::clone(&k));
        k
    }
}

impl LineSink for SinkLines {
    type Error = SinkError;

    fn deliver(&mut self, lines: &[LogLine<'_>]) -> Result<(), SinkError> {
        let owned = lines
            .iter()
            .map(|l| OwnedLine {
                intake_key: self.key(l.intake_key),
                bytes: l.bytes.to_vec(),
            })
            .collect();
        self.sink.send_lines(owned)
    }
}
