//! What the collector does with each message, on every OS: count sequence gaps, map,
//! hash the files that need it (honouring `HashesExcludedPaths`), hand the event to the sink.
//!
//! On macOS the ES callback only copies messages into a bounded queue; a thread of ours
//! runs a [`Processor`] on them, so hashing never holds up Endpoint Security's queue.

use agent_event::Event;
use agent_host::{FileHasher, HashOutcome};
use agent_pipeline::{Sink, SinkError};

use crate::gaps::SeqGaps;
use crate::mapper::{Mapped, Mapper, Names};
use crate::message::EsMessage;

/// Maps, hashes and sends; see the module documentation.
#[derive(Debug)]
pub struct Processor<N> {
    mapper: Mapper<N>,
    hasher: FileHasher,
    gaps: SeqGaps,
    count_gaps: bool,
    sink: Sink,
}

impl<N: Names> Processor<N> {
    /// A processor sending into `sink`, whose report gets the ES drops (`source_lost`).
    pub fn new(mapper: Mapper<N>, hasher: FileHasher, sink: Sink) -> Self {
        Processor {
            mapper,
            hasher,
            gaps: SeqGaps::new(),
            count_gaps: true,
            sink,
        }
    }

    /// Whether this processor counts sequence gaps (the default). The macOS binding counts
    /// them in the ES callback instead, where every message passes: messages it filters
    /// out or cannot queue would otherwise show up here as gaps, counted a second time.
    pub fn counting_gaps(mut self, count: bool) -> Self {
        self.count_gaps = count;
        self
    }

    /// Handles one message. Fails only when the pipeline is gone (the agent is stopping).
    pub fn handle(&mut self, m: &EsMessage) -> Result<(), SinkError> {
        if self.count_gaps {
            let lost = self
                .gaps
                .observe(m.version, m.event_type, m.seq_num, m.global_seq_num);
            if lost > 0 {
                self.sink.report().add_source_lost(lost);
            }
        }
        let event = match self.mapper.map(m) {
            Ok(Mapped::Ready(e)) => e,
            Ok(Mapped::NeedsHash { mut event, path }) => {
                if let HashOutcome::Hashed { hashes, .. } = self.hasher.hash_path(&path) {
                    event.file.hash.md5.clone_from(&hashes.md5);
                    event.file.hash.sha1.clone_from(&hashes.sha1);
                    event.file.hash.sha256.clone_from(&hashes.sha256);
                }
                event
            }
            Err(_) => return Ok(()),
        };
        self.send(event)
    }

    fn send(&self, event: Event) -> Result<(), SinkError> {
        self.sink.send(Box::new(event)).map(drop)
    }

    /// Messages ES dropped so far, from sequence gaps.
    pub fn lost(&self) -> u64 {
        self.gaps.lost()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapper::{MapperConfig, NameTable};
    use crate::message::{EsEvent, EsFile, EsStat, Target};
    use agent_host::HashPolicy;
    use agent_pipeline::Overflow;

    fn write_of(path: &str, global: u64) -> EsMessage {
        EsMessage {
            version: 7,
            time: "2024-03-05T09:33:30.412775190Z".into(),
            event_type: crate::message::event_type::NOTIFY_WRITE,
            seq_num: global,
            global_seq_num: global,
            event: EsEvent::Write(Target {
                target: EsFile {
                    path: path.into(),
                    stat: Some(EsStat {
                        st_mode: 0o100644,
                        ..EsStat::default()
                    }),
                    ..EsFile::default()
                },
            }),
            ..EsMessage::default()
        }
    }

    fn processor(
        excluded: &std::path::Path,
    ) -> (
        Processor<NameTable>,
        crossbeam_channel::Receiver<Box<Event>>,
    ) {
        let (sink, rx) = Sink::channel("macos-es", 16, Overflow::Drop);
        let mapper = Mapper::new(
            MapperConfig {
                file_scope: crate::FileScope::All,
                ..MapperConfig::default()
            },
            NameTable::default(),
        );
        let hasher = FileHasher::new(
            HashPolicy::new([excluded], HashPolicy::DEFAULT_MAX_SIZE),
            16,
        );
        (Processor::new(mapper, hasher, sink), rx)
    }

    #[test]
    fn changed_files_are_hashed_except_under_excluded_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let kept = tmp.path().join("hosts");
        std::fs::write(&kept, b"127.0.0.1 localhost\n").unwrap();
        let excluded_dir = tmp.path().join("big");
        std::fs::create_dir(&excluded_dir).unwrap();
        let excluded = excluded_dir.join("data.bin");
        std::fs::write(&excluded, b"large").unwrap();
        let (mut p, rx) = processor(&excluded_dir);

        p.handle(&write_of(kept.to_str().unwrap(), 1)).unwrap();
        p.handle(&write_of(excluded.to_str().unwrap(), 2)).unwrap();
        let e = rx.try_recv().unwrap();
        assert_eq!(e.file.path, kept.to_str().unwrap());
        let (want, _) = agent_host::hash_reader(&b"127.0.0.1 localhost\n"[..]).unwrap();
        assert_eq!(e.file.hash.sha256, want.sha256);
        assert_eq!(e.file.hash.md5, want.md5);
        assert_eq!(e.file.hash.sha1, want.sha1);
        let e = rx.try_recv().unwrap();
        assert_eq!(e.file.path, excluded.to_str().unwrap());
        assert!(e.file.hash.sha256.is_empty(), "excluded file was hashed");
    }

    #[test]
    fn sequence_gaps_reach_the_collectors_report() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        let (mut p, rx) = processor(&tmp.path().join("none"));
        let path = f.to_str().unwrap();
        for global in [10, 11, 15, 16, 20] {
            p.handle(&write_of(path, global)).unwrap();
        }
        assert_eq!(p.lost(), 6);
        assert_eq!(rx.len(), 5);
        let report = p.sink.report().snapshot();
        assert_eq!((report.source_lost, report.produced), (6, 5));

        // Counting left to the ES callback: gaps here are not counted again.
        let (p, _rx) = processor(&tmp.path().join("none"));
        let mut p = p.counting_gaps(false);
        for global in [10, 15] {
            p.handle(&write_of(path, global)).unwrap();
        }
        assert_eq!(p.sink.report().source_lost(), 0);
    }
}
