//! Replays a `.evtx` file through the Event Log mapper: what `agent replay --evtx` prints,
//! and how the mapper is tested on real records on every OS. The `evtx` crate renders each
//! record to the same XML as `EvtRender(EvtRenderEventXml)`.

use std::path::{Path, PathBuf};

use super::{map_xml, Accounting, Mapped, XmlError};

/// Why a `.evtx` file could not be replayed at all (a bad record is counted, not an error).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The file could not be opened or is not an EVTX file.
    #[error("{path}: {message}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
}

/// One record as read from the file, with what the mapper made of it.
#[derive(Debug)]
pub struct ReplayedRecord<'a> {
    /// `EventRecordID` from the record header.
    pub record_id: u64,
    /// The rendered XML.
    pub xml: &'a str,
    /// The mapper's outcome.
    pub outcome: Result<Mapped, XmlError>,
}

/// Reads every record of the `.evtx` file at `path`, maps it, and hands it to `each` in file
/// order; returns where the records went. A record the parser cannot render is counted as
/// unreadable and the replay goes on.
pub fn replay<F>(path: &Path, mut each: F) -> Result<Accounting, ReplayError>
where
    F: FnMut(ReplayedRecord<'_>),
{
    let mut parser = evtx::EvtxParser::from_path(path).map_err(|e| ReplayError::Open {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut acc = Accounting::default();
    for record in parser.records() {
        match record {
            Ok(r) => {
                let outcome = map_xml(&r.data);
                acc.count(&outcome);
                each(ReplayedRecord {
                    record_id: r.event_record_id,
                    xml: &r.data,
                    outcome,
                });
            }
            Err(e) => acc.count_unreadable(&chain(&e)),
        }
    }
    Ok(acc)
}

/// An error and its causes, `: `-separated.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
