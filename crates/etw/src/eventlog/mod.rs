//! Windows Event Log records → endpoint-dialect events. The mapping is pure: it reads the
//! XML that `EvtRender(EvtRenderEventXml)` returns (and the `evtx` crate writes for a record
//! of a `.evtx` file), so it is compiled and tested on every OS; the live subscription
//! ([`EventLogCollector`], `EvtSubscribe` with a bookmark per channel) is the only
//! Windows-only part.
//!
//! | channel | provider | events |
//! |---|---|---|
//! | `Security` | Microsoft-Windows-Security-Auditing (1102: Microsoft-Windows-Eventlog) | [`SECURITY_IDS`] |
//! | `Microsoft-Windows-Windows Defender/Operational` | Microsoft-Windows-Windows Defender | [`DEFENDER_IDS`] |
//! | `Microsoft-Windows-Sysmon/Operational` | Microsoft-Windows-Sysmon | every ID but [`SYSMON_DUPLICATE_IDS`] |
//! | `System` | Service Control Manager | [`SYSTEM_IDS`] |
//!
//! Each mapped record is one event under the OS provider's name (`event.provider`) and
//! event ID (`event.code`, `action.id`). `action.properties` holds the record's data fields
//! by their names, plus `Keywords`, `ProviderGuid`, `Severity`, `SourceName` and, for
//! audit events, `EventType` (`AUDIT_SUCCESS` / `AUDIT_FAILURE`) from the header, sorted by
//! name, as the product writes them; the typed fields (`user.*`, `source.*`, `process.*`,
//! ...) are filled from the data fields (see `docs/windows-events.md`).
//!
//! ```
//! use agent_etw::eventlog::{map_xml, Mapped};
//!
//! let xml = r#"<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event">
//!   <System><Provider Name="Service Control Manager"/><EventID>7045</EventID>
//!   <Level>4</Level><Keywords>0x8080000000000000</Keywords>
//!   <TimeCreated SystemTime="2024-01-02T03:04:05.123456Z"/><Channel>System</Channel></System>
//!   <EventData><Data Name="ServiceName">evil</Data></EventData></Event>"#;
//! let Ok(Mapped::Event(e)) = map_xml(xml) else { panic!() };
//! assert_eq!(e.event.code, Some(7045));
//! assert_eq!(e.action.properties["ServiceName"], "evil");
//! ```

mod collector;
mod fields;
pub mod replay;
#[cfg(windows)]
mod subscribe;
pub mod xml;

use std::collections::BTreeMap;
use std::fmt;

use agent_event::{Event, Timestamp};
use serde_json::Value;

pub use collector::{
    bookmark_file_name, load_bookmark, status_mode, store_bookmark, EventLogCollector,
    EventLogConfig, EventLogError,
};
pub use xml::{XmlError, XmlRecord};

/// Security-channel event IDs that are mapped.
pub const SECURITY_IDS: &[u32] = &[
    1102, 4624, 4625, 4634, 4647, 4648, 4672, 4697, 4698, 4699, 4700, 4701, 4702, 4719, 4720, 4722,
    4723, 4724, 4725, 4726, 4728, 4732, 4738, 4740, 4756, 4768, 4769, 4771, 4776, 5152, 5156, 5157,
];

/// Defender event IDs that are mapped: detections and actions, health, configuration.
pub const DEFENDER_IDS: &[u32] = &[1116, 1117, 1151, 5001, 5007];

/// Sysmon event IDs dropped because the agent makes its own event for the same thing:
/// process created (1), network connection (3), process terminated (5), remote thread (8),
/// file created (11), DNS query (22), file deleted (23, 26).
pub const SYSMON_DUPLICATE_IDS: &[u32] = &[1, 3, 5, 8, 11, 22, 23, 26];

/// System-channel event IDs that are mapped: service installed (7045), start type changed
/// (7040).
pub const SYSTEM_IDS: &[u32] = &[7040, 7045];

/// An Event Log channel the collector reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// `Security`.
    Security,
    /// `Microsoft-Windows-Windows Defender/Operational`.
    Defender,
    /// `Microsoft-Windows-Sysmon/Operational` (present only when Sysmon is installed).
    Sysmon,
    /// `System`.
    System,
}

impl Channel {
    /// Every channel, in subscription order.
    pub const ALL: [Channel; 4] = [
        Channel::Security,
        Channel::Defender,
        Channel::Sysmon,
        Channel::System,
    ];

    /// The channel's path, as `EvtSubscribe` and the record's `Channel` element name it.
    pub fn path(self) -> &'static str {
        match self {
            Channel::Security => "Security",
            Channel::Defender => "Microsoft-Windows-Windows Defender/Operational",
            Channel::Sysmon => "Microsoft-Windows-Sysmon/Operational",
            Channel::System => "System",
        }
    }

    /// The channel named `path` (any case).
    pub fn from_path(path: &str) -> Option<Channel> {
        Channel::ALL
            .into_iter()
            .find(|c| c.path().eq_ignore_ascii_case(path))
    }

    /// Whether the record from `provider` with event ID `id` is mapped (`Ok`), dropped as a
    /// Sysmon duplicate, or not collected.
    fn decide(self, provider: &str, id: u32) -> Result<(), SkipReason> {
        let (wanted, ids): (&str, Option<&[u32]>) = match self {
            Channel::Security if id == 1102 => ("Microsoft-Windows-Eventlog", Some(SECURITY_IDS)),
            Channel::Security => ("Microsoft-Windows-Security-Auditing", Some(SECURITY_IDS)),
            Channel::Defender => ("Microsoft-Windows-Windows Defender", Some(DEFENDER_IDS)),
            Channel::Sysmon => ("Microsoft-Windows-Sysmon", None),
            Channel::System => ("Service Control Manager", Some(SYSTEM_IDS)),
        };
        if ids.is_some_and(|ids| !ids.contains(&id)) {
            return Err(SkipReason::EventNotCollected);
        }
        if !provider.eq_ignore_ascii_case(wanted) {
            return Err(SkipReason::ProviderNotCollected);
        }
        if self == Channel::Sysmon && SYSMON_DUPLICATE_IDS.contains(&id) {
            return Err(SkipReason::SysmonDuplicate);
        }
        Ok(())
    }

    /// The XPath query `EvtSubscribe` is given: the collected IDs (ranges where they are
    /// consecutive), so that the Event Log service does not render records the mapper
    /// would skip. Sysmon: every event but the duplicates.
    pub fn query(self) -> String {
        let ids: &[u32] = match self {
            Channel::Security => SECURITY_IDS,
            Channel::Defender => DEFENDER_IDS,
            Channel::System => SYSTEM_IDS,
            Channel::Sysmon => {
                let not: Vec<String> = SYSMON_DUPLICATE_IDS
                    .iter()
                    .map(|id| format!("EventID!={id}"))
                    .collect();
                return format!("*[System[{}]]", not.join(" and "));
            }
        };
        let mut clauses = Vec::new();
        let mut i = 0;
        while i < ids.len() {
            let start = ids[i];
            let mut end = start;
            while i + 1 < ids.len() && ids[i + 1] == end + 1 {
                i += 1;
                end = ids[i];
            }
            clauses.push(if start == end {
                format!("EventID={start}")
            } else {
                format!("(EventID>={start} and EventID<={end})")
            });
            i += 1;
        }
        format!("*[System[{}]]", clauses.join(" or "))
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path())
    }
}

/// Why a record gives no event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The XML could not be read.
    Xml(XmlError),
    /// `TimeCreated/@SystemTime` is missing or not a date.
    BadTime,
    /// The record's channel is not one the collector reads.
    ChannelNotCollected,
    /// The record's provider is not the one whose events the channel's mapping covers.
    ProviderNotCollected,
    /// The event ID is not collected on its channel.
    EventNotCollected,
    /// A Sysmon event the agent makes itself (see [`SYSMON_DUPLICATE_IDS`]).
    SysmonDuplicate,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Xml(e) => write!(f, "unreadable record ({e})"),
            SkipReason::BadTime => f.write_str("no valid TimeCreated"),
            SkipReason::ChannelNotCollected => f.write_str("channel not collected"),
            SkipReason::ProviderNotCollected => f.write_str("provider not collected"),
            SkipReason::EventNotCollected => f.write_str("event ID not collected"),
            SkipReason::SysmonDuplicate => f.write_str("Sysmon duplicate of an agent event"),
        }
    }
}

/// What became of one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    /// The record's event.
    Event(Box<Event>),
    /// Not mapped, for this reason; `channel` and `id` are known when the XML was read.
    Skipped {
        /// Why.
        reason: SkipReason,
        /// The record's channel, as written.
        channel: String,
        /// The record's event ID (0 if unknown).
        id: u32,
    },
}

/// Maps one rendered event; never panics, whatever the input.
pub fn map_xml(xml: &str) -> Result<Mapped, XmlError> {
    let rec = xml::parse(xml)?;
    Ok(map_record(&rec))
}

/// Maps one parsed record.
pub fn map_record(rec: &XmlRecord) -> Mapped {
    let skipped = |reason| Mapped::Skipped {
        reason,
        channel: rec.channel.clone(),
        id: rec.id,
    };
    let Some(channel) = Channel::from_path(&rec.channel) else {
        return skipped(SkipReason::ChannelNotCollected);
    };
    if let Err(reason) = channel.decide(&rec.provider, rec.id) {
        return skipped(reason);
    }
    let Ok(ts) = rec.time_created.parse::<Timestamp>() else {
        return skipped(SkipReason::BadTime);
    };
    let mut e = Event::at(ts);
    e.event.provider = rec.provider.clone();
    e.event.code = Some(rec.id);
    e.action.id = Some(rec.id);
    let typed = fields::fill(channel, rec, &mut e);
    e.action.properties = properties(rec, typed);
    Mapped::Event(Box::new(e))
}

/// Keyword bit of a successful audit.
const AUDIT_SUCCESS: u64 = 0x0020_0000_0000_0000;
/// Keyword bit of a failed audit.
const AUDIT_FAILURE: u64 = 0x0010_0000_0000_0000;

/// `action.properties`: the data fields minus `typed`, plus the header fields the product
/// adds, sorted by name.
fn properties(rec: &XmlRecord, typed: &[&str]) -> serde_json::Map<String, Value> {
    let mut sorted: BTreeMap<&str, String> = rec
        .data
        .iter()
        .filter(|(k, _)| !typed.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), upper_hex(v)))
        .collect();
    let keywords = rec.keywords_value();
    sorted.insert(
        "Keywords",
        keywords.map_or_else(|| rec.keywords.clone(), |k| format!("0x{k:X}")),
    );
    if !rec.provider_guid.is_empty() {
        // EvtRender writes the GUID in capitals, the `evtx` crate in small letters.
        let guid = rec
            .provider_guid
            .parse::<crate::record::Guid>()
            .map_or_else(|_| rec.provider_guid.clone(), |g| format!("{{{g}}}"));
        sorted.insert("ProviderGuid", guid);
    }
    sorted.insert("Severity", severity(rec.level).to_owned());
    sorted.insert("SourceName", rec.provider.clone());
    match keywords {
        Some(k) if k & AUDIT_SUCCESS != 0 => {
            sorted.insert("EventType", "AUDIT_SUCCESS".to_owned());
        }
        Some(k) if k & AUDIT_FAILURE != 0 => {
            sorted.insert("EventType", "AUDIT_FAILURE".to_owned());
        }
        _ => {}
    }
    sorted
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value::String(v)))
        .collect()
}

/// A `0x…` hex value with capital digits, as the product writes them (`0x3E7`,
/// `0xC000006D`); any other value unchanged.
fn upper_hex(v: &str) -> String {
    match v.strip_prefix("0x") {
        Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_hexdigit()) => {
            format!("0x{}", digits.to_ascii_uppercase())
        }
        _ => v.to_owned(),
    }
}

/// The product's names of levels (as for ETW events).
fn severity(level: u8) -> &'static str {
    match level {
        0 => "LOG_ALWAYS",
        1 => "CRITICAL",
        2 => "ERROR",
        3 => "WARNING",
        4 => "INFO",
        _ => "VERBOSE",
    }
}

/// Where the records of a replay or of the collector went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accounting {
    /// Records read.
    pub records: u64,
    /// Records mapped to an event.
    pub mapped: u64,
    /// Events mapped, by `"<channel> <id>"`.
    pub mapped_by_event: BTreeMap<String, u64>,
    /// Sysmon records dropped as duplicates of the agent's own events.
    pub sysmon_duplicates: u64,
    /// Records skipped, by reason (the reason's text).
    pub skipped: BTreeMap<String, u64>,
    /// Records skipped (duplicates included), by `"<channel> <id>"`.
    pub skipped_by_event: BTreeMap<String, u64>,
    /// Parts of a `.evtx` file the reader could not read (damaged or unused chunks), by
    /// what the reader said: their records, if any, are not counted above.
    pub unreadable: BTreeMap<String, u64>,
}

impl Accounting {
    /// Counts one record's outcome.
    pub fn count(&mut self, outcome: &Result<Mapped, XmlError>) {
        self.records += 1;
        match outcome {
            Ok(Mapped::Event(e)) => {
                self.mapped += 1;
                let key = format!(
                    "{} {}",
                    e.action
                        .properties
                        .get("SourceName")
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                    e.event.code.unwrap_or(0)
                );
                *self.mapped_by_event.entry(key).or_default() += 1;
            }
            Ok(Mapped::Skipped {
                reason,
                channel,
                id,
            }) => {
                if *reason == SkipReason::SysmonDuplicate {
                    self.sysmon_duplicates += 1;
                } else {
                    *self.skipped.entry(reason.to_string()).or_default() += 1;
                }
                *self
                    .skipped_by_event
                    .entry(format!("{channel} {id}"))
                    .or_default() += 1;
            }
            Err(e) => {
                *self
                    .skipped
                    .entry(SkipReason::Xml(e.clone()).to_string())
                    .or_default() += 1;
            }
        }
    }

    /// Counts a part of a file (a chunk, a record) the file reader could not read: not a
    /// record, so kept apart from the record counts.
    pub fn count_unreadable(&mut self, reason: &str) {
        *self.unreadable.entry(reason.to_owned()).or_default() += 1;
    }

    /// Records skipped for any reason other than being a Sysmon duplicate.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }

    /// Whether every record is accounted for: mapped, duplicate or skipped.
    pub fn balanced(&self) -> bool {
        self.records == self.mapped + self.sysmon_duplicates + self.skipped_total()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_collapse_ranges() {
        let q = Channel::Security.query();
        assert!(q.starts_with("*[System[EventID=1102 or (EventID>=4624 and EventID<=4625)"));
        assert!(q.contains("(EventID>=4697 and EventID<=4702)"));
        assert!(q.contains("(EventID>=4722 and EventID<=4726)"));
        assert!(q.ends_with("EventID=5152 or (EventID>=5156 and EventID<=5157)]]"));
        assert_eq!(
            Channel::System.query(),
            "*[System[EventID=7040 or EventID=7045]]"
        );
        assert_eq!(
            Channel::Sysmon.query(),
            "*[System[EventID!=1 and EventID!=3 and EventID!=5 and EventID!=8 and EventID!=11 and EventID!=22 and EventID!=23 and EventID!=26]]"
        );
    }

    #[test]
    fn channels_by_path_any_case() {
        assert_eq!(Channel::from_path("security"), Some(Channel::Security));
        assert_eq!(
            Channel::from_path("Microsoft-Windows-Sysmon/Operational"),
            Some(Channel::Sysmon)
        );
        assert_eq!(Channel::from_path("Application"), None);
    }

    #[test]
    fn decisions() {
        let sec = "Microsoft-Windows-Security-Auditing";
        assert_eq!(Channel::Security.decide(sec, 4624), Ok(()));
        assert_eq!(
            Channel::Security.decide(sec, 4688),
            Err(SkipReason::EventNotCollected)
        );
        assert_eq!(
            Channel::Security.decide("Microsoft-Windows-Eventlog", 1102),
            Ok(())
        );
        assert_eq!(
            Channel::Security.decide(sec, 1102),
            Err(SkipReason::ProviderNotCollected)
        );
        assert_eq!(
            Channel::Security.decide("Microsoft-Windows-Eventlog", 1100),
            Err(SkipReason::EventNotCollected)
        );
        let sysmon = "Microsoft-Windows-Sysmon";
        for id in [1, 3, 5, 8, 11, 22, 23, 26] {
            assert_eq!(
                Channel::Sysmon.decide(sysmon, id),
                Err(SkipReason::SysmonDuplicate)
            );
        }
        for id in [
            2, 4, 6, 7, 9, 10, 12, 13, 14, 15, 17, 18, 19, 20, 21, 24, 25, 27, 255,
        ] {
            assert_eq!(Channel::Sysmon.decide(sysmon, id), Ok(()));
        }
        assert_eq!(
            Channel::System.decide("Service Control Manager", 7036),
            Err(SkipReason::EventNotCollected)
        );
    }

    #[test]
    fn hex_values_get_capital_digits() {
        assert_eq!(upper_hex("0x3e7"), "0x3E7");
        assert_eq!(upper_hex("0xc000006d"), "0xC000006D");
        assert_eq!(upper_hex("0x"), "0x");
        assert_eq!(upper_hex("0xyz"), "0xyz");
        assert_eq!(upper_hex("abc"), "abc");
    }

    #[test]
    fn garbage_is_counted_never_a_panic() {
        let mut acc = Accounting::default();
        for input in ["", "<", "<Event/>", "\u{0}\u{1}", "<Event><System><EventID>4624</EventID><Channel>Security</Channel><Provider Name=\"Microsoft-Windows-Security-Auditing\"/></System></Event>"] {
            acc.count(&map_xml(input));
        }
        assert_eq!(acc.records, 5);
        assert!(acc.balanced());
        assert_eq!(acc.mapped, 0);
        assert_eq!(acc.skipped["no valid TimeCreated"], 1);
    }
}
