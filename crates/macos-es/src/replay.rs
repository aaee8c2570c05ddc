//! The events the Endpoint Security collector would emit for recorded `eslogger` output
//! (one JSON message per line, as `eslogger exec fork exit create ... > events.jsonl`
//! writes it on macOS 13+). Lets a user check the mapping on a Mac without the ES
//! entitlement, and anyone replay a recording on another OS. Nothing is read from the
//! replaying host: user names and file hashes, which the live collector adds, are absent.

use std::collections::BTreeMap;
use std::io::{self, BufRead};

use agent_event::Event;

use crate::gaps::SeqGaps;
use crate::mapper::{FileScope, Mapped, Mapper, MapperConfig, NameTable, Skip};
use crate::message::EsMessage;

/// What a replay produced, and where every line went.
#[derive(Debug, Default)]
pub struct Replayed {
    /// The events, in order.
    pub events: Vec<Event>,
    /// Lines read (blank lines excluded).
    pub messages: u64,
    /// Messages that gave no event, by reason.
    pub skipped: BTreeMap<&'static str, u64>,
    /// Lines that are not ES messages: line number and error.
    pub parse_errors: Vec<(usize, String)>,
    /// Messages ES dropped while recording, from sequence gaps.
    pub lost: u64,
}

fn reason(s: Skip) -> &'static str {
    match s {
        Skip::Unmapped => "event type not mapped",
        Skip::OwnActivity => "the agent's own process",
        Skip::Muted => "muted path",
        Skip::Untagged => "file outside the tagged areas",
        Skip::Unmodified => "close without modification",
        Skip::StateOnly => "fork (process cache only)",
    }
}

/// Replays `reader`; `boot_id` stands for the recording host's boot session (guids).
pub fn replay<R: BufRead>(reader: R, boot_id: &str, scope: FileScope) -> io::Result<Replayed> {
    let mut mapper = Mapper::new(
        MapperConfig {
            boot_id: boot_id.to_owned(),
            file_scope: scope,
            ..MapperConfig::default()
        },
        NameTable::default(),
    );
    let mut gaps = SeqGaps::new();
    let mut out = Replayed::default();
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        out.messages += 1;
        let msg = match EsMessage::from_json(&line) {
            Ok(m) => m,
            Err(e) => {
                out.parse_errors.push((i + 1, e.to_string()));
                continue;
            }
        };
        gaps.observe(msg.version, msg.event_type, msg.seq_num, msg.global_seq_num);
        match mapper.map(&msg) {
            Ok(Mapped::Ready(e)) | Ok(Mapped::NeedsHash { event: e, .. }) => out.events.push(e),
            Err(s) => *out.skipped.entry(reason(s)).or_default() += 1,
        }
    }
    out.lost = gaps.lost();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_line(name: &str, global: u64) -> String {
        let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        v["global_seq_num"] = global.into();
        serde_json::to_string(&v).unwrap()
    }

    #[test]
    fn a_recording_is_replayed_with_every_line_accounted_for() {
        let mut lines = vec![
            fixture_line("exec_zsh", 100),
            fixture_line("fork", 101),
            fixture_line("exec_curl", 102),
            // 103 and 104 were dropped by ES while recording.
            fixture_line("exit", 105),
            String::new(),
            fixture_line("write_hosts", 106),
        ];
        let mut untagged: serde_json::Value = serde_json::from_str(&lines[5]).unwrap();
        untagged["event"]["write"]["target"]["path"] = "/Users/alice/notes.txt".into();
        untagged["global_seq_num"] = 107.into();
        lines.push(serde_json::to_string(&untagged).unwrap());
        lines.push("not json".into());
        let text = lines.join("\n");

        let r = replay(text.as_bytes(), "B", FileScope::Tagged).unwrap();
        assert_eq!(r.messages, 7);
        let actions: Vec<&str> = r.events.iter().map(|e| e.event.action.as_str()).collect();
        assert_eq!(
            actions,
            [
                "process-created",
                "process-created",
                "process-terminated",
                "opened-file"
            ]
        );
        // The exit knows curl's command line from its exec, as live.
        assert_eq!(r.events[2].process.args[0], "curl");
        assert_eq!(r.skipped["fork (process cache only)"], 1);
        assert_eq!(r.skipped["file outside the tagged areas"], 1);
        assert_eq!(r.parse_errors.len(), 1);
        assert_eq!(r.parse_errors[0].0, 8);
        assert_eq!(r.lost, 2);
        // Nothing from this host: no names, no hashes.
        assert!(r.events[3].file.hash.sha256.is_empty());
        assert!(r.events[0].user.name.is_empty());

        let all = replay(text.as_bytes(), "B", FileScope::All).unwrap();
        assert_eq!(all.events.len(), 5);
    }
}
