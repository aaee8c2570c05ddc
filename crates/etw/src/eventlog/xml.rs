//! Reads one rendered event (the XML `EvtRender(EvtRenderEventXml)` returns, and the `evtx`
//! crate writes for a record of a `.evtx` file) into an [`XmlRecord`]: the `System` header
//! fields the mapper uses and the event's data fields by name.
//!
//! Text is taken as written, entities and character references decoded and nothing else
//! (no line-end normalisation), so a value such as a task's XML keeps its `\r\n`.

use quick_xml::events::{BytesStart, Event as XmlEvent};
use quick_xml::Reader;

/// Why a rendered event could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// Not well-formed XML.
    #[error("malformed XML: {0}")]
    Malformed(String),
    /// The XML has no `Event/System/EventID` number.
    #[error("no EventID")]
    NoEventId,
}

/// One rendered event: its `System` header and its data fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XmlRecord {
    /// `Provider/@Name`.
    pub provider: String,
    /// `Provider/@Guid` as written (`{54849625-…}`), empty for a classic source without one.
    pub provider_guid: String,
    /// `EventID`.
    pub id: u32,
    /// `Version`.
    pub version: u8,
    /// `Level` (0 log always … 5 verbose).
    pub level: u8,
    /// `Task`.
    pub task: u16,
    /// `Opcode`.
    pub opcode: u8,
    /// `Keywords` as written (`0x8020000000000000`).
    pub keywords: String,
    /// `TimeCreated/@SystemTime` as written.
    pub time_created: String,
    /// `EventRecordID`.
    pub record_id: u64,
    /// `Execution/@ProcessID`: the process that logged the event (for the Security log,
    /// the LSA), not the one the event is about.
    pub exec_pid: Option<u32>,
    /// `Execution/@ThreadID`.
    pub exec_tid: Option<u32>,
    /// `Channel`.
    pub channel: String,
    /// `Computer`.
    pub computer: String,
    /// `Security/@UserID`, when the channel records it.
    pub user_id: String,
    /// The data fields in document order: `EventData/Data` by their `Name` (unnamed ones
    /// `param1`, `param2`, … by position, as Windows numbers insertion strings),
    /// `EventData/Binary` as `Binary`, and the leaf elements of `UserData` by their names.
    pub data: Vec<(String, String)>,
}

impl XmlRecord {
    /// The data field named `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.data
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The data field named `name`, unless empty or `-` (Windows' "no value").
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty() && *v != "-")
    }

    /// The keywords as a number.
    pub fn keywords_value(&self) -> Option<u64> {
        let k = self.keywords.trim();
        let hex = k.strip_prefix("0x").or_else(|| k.strip_prefix("0X"))?;
        u64::from_str_radix(hex, 16).ok()
    }
}

/// Where the reader is in the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Other,
    System,
    EventData,
    UserData,
}

/// Reads one rendered event.
pub fn parse(xml: &str) -> Result<XmlRecord, XmlError> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().trim_text(false);
    let mut rec = XmlRecord::default();
    let mut stack: Vec<String> = Vec::new();
    let mut section = Section::Other;
    // The field whose text is being read: (name, text so far).
    let mut field: Option<(String, String)> = None;
    // Text of a System element being read (EventID, Level, ...).
    let mut system_text = String::new();
    let mut unnamed = 0u32;
    let mut id: Option<u32> = None;
    let malformed = |e: quick_xml::Error| XmlError::Malformed(e.to_string());

    loop {
        match reader.read_event().map_err(malformed)? {
            XmlEvent::Start(e) => {
                let name = local(&e);
                let depth = stack.len();
                match (depth, name.as_str()) {
                    (1, "System") => section = Section::System,
                    (1, "EventData") => section = Section::EventData,
                    (1, "UserData") => section = Section::UserData,
                    _ => {}
                }
                match section {
                    Section::System if depth == 2 => {
                        system_attrs(&e, &name, &mut rec)?;
                        system_text.clear();
                    }
                    Section::EventData if depth == 2 => {
                        field = Some((data_name(&e, &name, &mut unnamed)?, String::new()));
                    }
                    // UserData/<Event-specific element>/<field>: leaves at depth 3.
                    Section::UserData if depth == 3 => {
                        field = Some((name.clone(), String::new()));
                    }
                    _ => {}
                }
                stack.push(name);
            }
            XmlEvent::Empty(e) => {
                let name = local(&e);
                let depth = stack.len();
                match section {
                    Section::System if depth == 2 => system_attrs(&e, &name, &mut rec)?,
                    Section::EventData if depth == 2 => {
                        let n = data_name(&e, &name, &mut unnamed)?;
                        rec.data.push((n, String::new()));
                    }
                    Section::UserData if depth == 3 => rec.data.push((name, String::new())),
                    _ => {}
                }
            }
            XmlEvent::Text(t) => {
                let text = t.unescape().map_err(malformed)?;
                if let Some((_, v)) = field.as_mut() {
                    v.push_str(&text);
                } else if section == Section::System && stack.len() == 3 {
                    system_text.push_str(&text);
                }
            }
            XmlEvent::CData(t) => {
                let text = String::from_utf8_lossy(&t);
                if let Some((_, v)) = field.as_mut() {
                    v.push_str(&text);
                }
            }
            XmlEvent::End(_) => {
                let name = stack.pop().unwrap_or_default();
                let depth = stack.len();
                match section {
                    Section::System if depth == 2 => {
                        system_field(&name, system_text.trim(), &mut rec, &mut id);
                    }
                    Section::EventData if depth == 2 => {
                        if let Some(f) = field.take() {
                            rec.data.push(f);
                        }
                    }
                    Section::UserData if depth == 3 => {
                        if let Some(f) = field.take() {
                            rec.data.push(f);
                        }
                    }
                    _ => {}
                }
                if depth == 1 {
                    section = Section::Other;
                }
            }
            XmlEvent::Eof => break,
            _ => {}
        }
    }
    rec.id = id.ok_or(XmlError::NoEventId)?;
    Ok(rec)
}

/// The element's name without its namespace prefix.
fn local(e: &BytesStart<'_>) -> String {
    String::from_utf8_lossy(e.local_name().as_ref()).into_owned()
}

/// The attribute `key` of `e`, decoded.
fn attr(e: &BytesStart<'_>, key: &str) -> Result<Option<String>, XmlError> {
    for a in e.attributes() {
        let a = a.map_err(|err| XmlError::Malformed(err.to_string()))?;
        if a.key.local_name().as_ref() == key.as_bytes() {
            let v = a
                .unescape_value()
                .map_err(|err| XmlError::Malformed(err.to_string()))?;
            return Ok(Some(v.into_owned()));
        }
    }
    Ok(None)
}

/// The name of an `EventData` child: `Data/@Name`, `param<n>` for an unnamed `Data`, the
/// element's own name otherwise (`Binary`).
fn data_name(e: &BytesStart<'_>, element: &str, unnamed: &mut u32) -> Result<String, XmlError> {
    if element != "Data" {
        return Ok(element.to_owned());
    }
    match attr(e, "Name")? {
        Some(n) if !n.is_empty() => Ok(n),
        _ => {
            *unnamed += 1;
            Ok(format!("param{unnamed}"))
        }
    }
}

/// The attributes of `System` children.
fn system_attrs(e: &BytesStart<'_>, name: &str, rec: &mut XmlRecord) -> Result<(), XmlError> {
    match name {
        "Provider" => {
            rec.provider = attr(e, "Name")?.unwrap_or_default();
            rec.provider_guid = attr(e, "Guid")?.unwrap_or_default();
        }
        "TimeCreated" => rec.time_created = attr(e, "SystemTime")?.unwrap_or_default(),
        "Execution" => {
            rec.exec_pid = attr(e, "ProcessID")?.and_then(|v| v.parse().ok());
            rec.exec_tid = attr(e, "ThreadID")?.and_then(|v| v.parse().ok());
        }
        "Security" => rec.user_id = attr(e, "UserID")?.unwrap_or_default(),
        _ => {}
    }
    Ok(())
}

/// The text of `System` children.
fn system_field(name: &str, text: &str, rec: &mut XmlRecord, id: &mut Option<u32>) {
    match name {
        "EventID" => *id = text.parse().ok(),
        "Version" => rec.version = text.parse().unwrap_or(0),
        "Level" => rec.level = text.parse().unwrap_or(0),
        "Task" => rec.task = text.parse().unwrap_or(0),
        "Opcode" => rec.opcode = text.parse().unwrap_or(0),
        "Keywords" => rec.keywords = text.to_owned(),
        "EventRecordID" => rec.record_id = text.parse().unwrap_or(0),
        "Channel" => rec.channel = text.to_owned(),
        "Computer" => rec.computer = text.to_owned(),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = r#"<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event">
  <System>
    <Provider Name="Microsoft-Windows-Security-Auditing" Guid="{54849625-5478-4994-A5BA-3E3B0328C30D}" />
    <EventID>4624</EventID>
    <Version>2</Version>
    <Level>0</Level>
    <Task>12544</Task>
    <Opcode>0</Opcode>
    <Keywords>0x8020000000000000</Keywords>
    <TimeCreated SystemTime="2023-06-23T08:15:00.4849617Z" />
    <EventRecordID>1234</EventRecordID>
    <Correlation ActivityID="{00000000-0000-0000-0000-000000000000}" />
    <Execution ProcessID="700" ThreadID="800" />
    <Channel>Security</Channel>
    <Computer>host.example.com</Computer>
    <Security />
  </System>
  <EventData>
    <Data Name="SubjectUserSid">S-1-5-18</Data>
    <Data Name="LogonProcessName">Advapi  </Data>
    <Data Name="Empty"></Data>
    <Data Name="Nothing" />
    <Data Name="Task">&lt;Task&gt;&#13;
 &amp; x</Data>
    <Data>unnamed one</Data>
    <Binary>00FF</Binary>
  </EventData>
</Event>"#;

    #[test]
    fn reads_header_and_data_fields() {
        let r = parse(XML).unwrap();
        assert_eq!(r.provider, "Microsoft-Windows-Security-Auditing");
        assert_eq!(r.provider_guid, "{54849625-5478-4994-A5BA-3E3B0328C30D}");
        assert_eq!((r.id, r.version, r.level, r.task), (4624, 2, 0, 12544));
        assert_eq!(r.keywords_value(), Some(0x8020_0000_0000_0000));
        assert_eq!(r.time_created, "2023-06-23T08:15:00.4849617Z");
        assert_eq!(r.record_id, 1234);
        assert_eq!((r.exec_pid, r.exec_tid), (Some(700), Some(800)));
        assert_eq!(r.channel, "Security");
        assert_eq!(r.computer, "host.example.com");
        assert_eq!(
            r.data,
            vec![
                ("SubjectUserSid".to_owned(), "S-1-5-18".to_owned()),
                ("LogonProcessName".to_owned(), "Advapi  ".to_owned()),
                ("Empty".to_owned(), String::new()),
                ("Nothing".to_owned(), String::new()),
                ("Task".to_owned(), "<Task>\r\n & x".to_owned()),
                ("param1".to_owned(), "unnamed one".to_owned()),
                ("Binary".to_owned(), "00FF".to_owned()),
            ]
        );
        assert_eq!(r.value("Empty"), None);
    }

    #[test]
    fn user_data_leaves_are_fields() {
        let xml = r#"<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System><Provider Name="Microsoft-Windows-Eventlog" Guid="{fc65ddd8-d6ef-4962-83d5-6e5cfe9ce148}"/><EventID>1102</EventID><Channel>Security</Channel></System><UserData><LogFileCleared xmlns="http://manifests.microsoft.com/win/2004/08/windows/eventlog"><SubjectUserSid>S-1-5-21-1</SubjectUserSid><SubjectUserName>admin</SubjectUserName></LogFileCleared></UserData></Event>"#;
        let r = parse(xml).unwrap();
        assert_eq!(r.id, 1102);
        assert_eq!(r.get("SubjectUserName"), Some("admin"));
        assert_eq!(r.data.len(), 2);
    }

    #[test]
    fn broken_input_is_an_error_not_a_panic() {
        assert_eq!(
            parse("<Event><System></System></Event>"),
            Err(XmlError::NoEventId)
        );
        assert!(matches!(
            parse("<Event><System><EventID>1</Foo></System></Event>"),
            Err(XmlError::Malformed(_))
        ));
        assert_eq!(parse(""), Err(XmlError::NoEventId));
        assert!(parse("<Event><System><EventID>x</EventID></System></Event>").is_err());
        let _ = parse("<<<&&&");
    }
}
