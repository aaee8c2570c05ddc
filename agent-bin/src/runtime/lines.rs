//! Log-file lines into the writer thread, answered only once they are in the ring.

use std::collections::HashMap;
use std::sync::Arc;

use agent_logfile::{LineSink, LogLine};
use agent_pipeline::{Control, OwnedLine};
use crossbeam_channel::{bounded, Sender};

/// Why a batch of lines did not reach the store.
#[derive(Debug, thiserror::Error)]
pub enum LineSinkError {
    /// The writer thread is gone (the agent is stopping).
    #[error("the writer thread has stopped")]
    WriterGone,
    /// The store refused the lines.
    #[error("the buffer refused the lines: {0}")]
    Store(String),
}

/// A [`LineSink`] that hands lines to the writer thread and waits for its answer, so the
/// tailer's checkpoints only cover lines that reached the ring (backpressure included).
#[derive(Debug)]
pub struct WriterLineSink {
    control: Sender<Control>,
    keys: HashMap<String, Arc<str>>,
}

impl WriterLineSink {
    /// Sends to the writer thread's control channel.
    pub fn new(control: Sender<Control>) -> Self {
        WriterLineSink {
            control,
            keys: HashMap::new(),
        }
    }

    fn key(&mut self, key: &str) -> Arc<str> {
        if let Some(k) = self.keys.get(key) {
            return k.clone();
        }
        let k: Arc<str> = Arc::from(key);
        self.keys.insert(key.to_owned(), k.clone());
        k
    }
}

impl LineSink for WriterLineSink {
    type Error = LineSinkError;

    fn deliver(&mut self, lines: &[LogLine<'_>]) -> Result<(), LineSinkError> {
        if lines.is_empty() {
            return Ok(());
        }
        let owned = lines
            .iter()
            .map(|l| OwnedLine {
                intake_key: self.key(l.intake_key),
                bytes: l.bytes.to_vec(),
            })
            .collect();
        let (done, answer) = bounded(1);
        self.control
            .send(Control::Lines { lines: owned, done })
            .map_err(|_| LineSinkError::WriterGone)?;
        match answer.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(LineSinkError::Store(e)),
            Err(_) => Err(LineSinkError::WriterGone),
        }
    }
}
