//! One ETW event as the mapper sees it: the header fields it needs and the properties by
//! name, already decoded from the event's payload by the binding (or written by hand in a
//! test). Plain data, no Windows types, so that mapping is tested on every OS.

use std::fmt;
use std::str::FromStr;

use agent_event::Timestamp;

/// A provider or activity GUID, held as one 128-bit number (`data1` in the top bits, as
/// the GUID is written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Guid(pub u128);

impl Guid {
    /// From the four fields of a Windows `GUID`.
    pub fn from_fields(data1: u32, data2: u16, data3: u16, data4: [u8; 8]) -> Guid {
        Guid(
            (u128::from(data1) << 96)
                | (u128::from(data2) << 80)
                | (u128::from(data3) << 64)
                | u128::from(u64::from_be_bytes(data4)),
        )
    }
}

/// `3D6FA8D0-FE05-11D0-9DDA-00C04FD7BA7C`: uppercase, no braces.
impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        write!(
            f,
            "{:08X}-{:04X}-{:04X}-{:04X}-{:012X}",
            (v >> 96) as u32,
            (v >> 80) as u16,
            (v >> 64) as u16,
            (v >> 48) as u16,
            v & 0xFFFF_FFFF_FFFF
        )
    }
}

/// A string that is not a GUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a GUID: {0:?}")]
pub struct GuidError(String);

/// Reads `3D6FA8D0-FE05-11D0-9DDA-00C04FD7BA7C`, with or without braces, any case.
impl FromStr for Guid {
    type Err = GuidError;
    fn from_str(s: &str) -> Result<Guid, GuidError> {
        let inner = s.trim_start_matches('{').trim_end_matches('}');
        let groups: Vec<&str> = inner.split('-').collect();
        let lens = [8, 4, 4, 4, 12];
        if groups.len() != 5 || groups.iter().zip(lens).any(|(g, n)| g.len() != n) {
            return Err(GuidError(s.to_owned()));
        }
        let hex: String = groups.concat();
        u128::from_str_radix(&hex, 16)
            .map(Guid)
            .map_err(|_| GuidError(s.to_owned()))
    }
}

/// One decoded property value.
#[derive(Debug, Clone, PartialEq)]
pub enum Prop {
    /// Unicode or ANSI string, SID or GUID as text.
    Str(String),
    /// Unsigned integer of any width.
    UInt(u64),
    /// Signed integer of any width.
    Int(i64),
    /// Pointer or hex integer (written `0x…` in `action.properties`).
    Ptr(u64),
    /// Boolean.
    Bool(bool),
    /// Binary (an IPv6 address, a SID the binding could not render).
    Bytes(Vec<u8>),
}

impl Prop {
    /// The value as the dialect writes it in `action.properties` (always a string, as the
    /// product's own events do: `"259"`, `"0x1B3C1E000"`).
    pub fn render(&self) -> String {
        match self {
            Prop::Str(s) => s.clone(),
            Prop::UInt(n) => n.to_string(),
            Prop::Int(n) => n.to_string(),
            Prop::Ptr(n) => format!("0x{n:X}"),
            Prop::Bool(b) => b.to_string(),
            Prop::Bytes(b) => {
                let mut s = String::with_capacity(2 + 2 * b.len());
                s.push_str("0x");
                for byte in b {
                    s.push_str(&format!("{byte:02X}"));
                }
                s
            }
        }
    }

    /// The value as an unsigned number, if it is one (a decimal or `0x` string counts).
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Prop::UInt(n) | Prop::Ptr(n) => Some(*n),
            Prop::Int(n) => u64::try_from(*n).ok(),
            Prop::Bool(b) => Some(u64::from(*b)),
            Prop::Str(s) => {
                let s = s.trim();
                match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                    Some(hex) => u64::from_str_radix(hex, 16).ok(),
                    None => s.parse().ok(),
                }
            }
            Prop::Bytes(_) => None,
        }
    }

    /// The value as text, if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Prop::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Properties that are addresses or hex codes in their manifest (`Pointer`, `HexInt32`,
/// `HexInt64`): written `0x…` like the product does.
const HEX_PROPERTIES: &[&str] = &[
    "UniqueProcessKey",
    "DirectoryTableBase",
    "StackBase",
    "StackLimit",
    "UserStackBase",
    "UserStackLimit",
    "StartAddr",
    "Win32StartAddr",
    "TebBase",
    "Irp",
    "FileObject",
    "FileKey",
    "ExtraInformation",
    "ClientLUID",
    "Code",
    "ResultCode",
];

/// Boolean properties (4-byte `BOOL` on the wire).
const BOOL_PROPERTIES: &[&str] = &["InProc", "IsLocal"];

impl Prop {
    /// A property from its raw payload bytes, when the binding could not read it as a
    /// string: hex properties become [`Prop::Ptr`], booleans [`Prop::Bool`], 1/2/4/8-byte
    /// values unsigned little-endian integers (addresses and ports stay in their wire byte
    /// order: the mapper turns them around), a SID (`UserSID`, possibly behind the
    /// `TOKEN_USER` header of the kernel's MOF classes) its `S-1-…` text, anything else bytes.
    pub fn from_raw(name: &str, bytes: &[u8]) -> Prop {
        if name.ends_with("SID") {
            if let Some(sid) = sid_text(bytes) {
                return Prop::Str(sid);
            }
        }
        let int = match bytes.len() {
            1 => Some(u64::from(bytes[0])),
            2 => Some(u64::from(u16::from_le_bytes([bytes[0], bytes[1]]))),
            4 => Some(u64::from(u32::from_le_bytes([
                bytes[0], bytes[1], bytes[2], bytes[3],
            ]))),
            8 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(bytes);
                Some(u64::from_le_bytes(b))
            }
            _ => None,
        };
        match int {
            Some(n) if HEX_PROPERTIES.contains(&name) => Prop::Ptr(n),
            Some(n) if BOOL_PROPERTIES.contains(&name) => Prop::Bool(n != 0),
            Some(n) => Prop::UInt(n),
            None => Prop::Bytes(bytes.to_vec()),
        }
    }
}

/// The `S-1-…` text of a binary SID, found at the start of `bytes` or after a `TOKEN_USER`
/// header (two pointers: 16 bytes on 64-bit Windows, 8 on 32-bit).
pub fn sid_text(bytes: &[u8]) -> Option<String> {
    [16usize, 8, 0]
        .iter()
        .find_map(|&off| parse_sid(bytes.get(off..)?))
}

fn parse_sid(b: &[u8]) -> Option<String> {
    let (&revision, &count) = (b.first()?, b.get(1)?);
    let count = usize::from(count);
    if revision != 1 || count > 15 || b.len() != 8 + 4 * count {
        return None;
    }
    let mut authority = 0u64;
    for &x in &b[2..8] {
        authority = (authority << 8) | u64::from(x);
    }
    let mut s = format!("S-1-{authority}");
    for chunk in b[8..].chunks_exact(4) {
        let sub = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        s.push_str(&format!("-{sub}"));
    }
    Some(s)
}

/// The header fields of an ETW event the mapper uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// Provider GUID (for classic kernel events, the event class GUID, e.g. Process).
    pub provider: Guid,
    /// Event ID (manifest providers; 0 for classic kernel events).
    pub id: u16,
    /// Opcode (classic kernel events are told apart by it: 1 start, 2 end, 3 rundown).
    pub opcode: u8,
    /// Event version.
    pub version: u8,
    /// Level (0 log always, 1 critical … 5 verbose).
    pub level: u8,
    /// Keywords the event carries.
    pub keywords: u64,
    /// Process that logged the event (for kernel events: the process the event is about
    /// or the one in whose context it happened).
    pub pid: u32,
    /// Thread that logged the event.
    pub tid: u32,
    /// When the event was logged.
    pub timestamp: Timestamp,
}

/// Facts the binding adds at the time an event is received, that the event itself lacks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extra {
    /// The process's creation time (`GetProcessTimes`), for process start and rundown
    /// events: the input of the process GUID, so that it is the same after an agent restart.
    pub create_time: Option<Timestamp>,
    /// The full image path (`QueryFullProcessImageNameW`, native or DOS form), when the
    /// command line does not start with an absolute path.
    pub image_path: Option<String>,
}

/// One ETW event: header, properties in the order of the provider's schema, extras.
#[derive(Debug, Clone, PartialEq)]
pub struct EtwRecord {
    /// Header fields.
    pub header: Header,
    /// Properties by name, in schema order. A property the payload lacked is absent.
    pub properties: Vec<(String, Prop)>,
    /// What the binding adds.
    pub extra: Extra,
}

impl EtwRecord {
    /// A record with no properties.
    pub fn new(header: Header) -> EtwRecord {
        EtwRecord {
            header,
            properties: Vec::new(),
            extra: Extra::default(),
        }
    }

    /// Adds a property (builder style).
    pub fn with(mut self, name: &str, value: Prop) -> EtwRecord {
        self.properties.push((name.to_owned(), value));
        self
    }

    /// The property named `name`.
    pub fn get(&self, name: &str) -> Option<&Prop> {
        self.properties
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// The property as text (strings only); `None` when missing or not a string.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Prop::as_str)
    }

    /// The property as a non-empty string.
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.str(name).filter(|s| !s.is_empty())
    }

    /// The property as a number.
    pub fn u64(&self, name: &str) -> Option<u64> {
        self.get(name).and_then(Prop::as_u64)
    }

    /// The property as a 32-bit number (pids, thread ids, ports before conversion).
    pub fn u32(&self, name: &str) -> Option<u32> {
        self.u64(name).and_then(|n| u32::try_from(n).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_reads_and_writes_the_registry_form() {
        let g: Guid = "{22fb2cd6-0e7b-422b-a0c7-2fad1fd0e716}".parse().unwrap();
        assert_eq!(g.to_string(), "22FB2CD6-0E7B-422B-A0C7-2FAD1FD0E716");
        assert_eq!(
            g,
            Guid::from_fields(
                0x22FB_2CD6,
                0x0E7B,
                0x422B,
                [0xA0, 0xC7, 0x2F, 0xAD, 0x1F, 0xD0, 0xE7, 0x16]
            )
        );
        assert!("22FB2CD6-0E7B-422B-A0C7".parse::<Guid>().is_err());
        assert!("ZZFB2CD6-0E7B-422B-A0C7-2FAD1FD0E716"
            .parse::<Guid>()
            .is_err());
    }

    #[test]
    fn values_render_like_the_products_properties() {
        assert_eq!(Prop::Ptr(0x1_B3C1_E000).render(), "0x1B3C1E000");
        assert_eq!(Prop::UInt(259).render(), "259");
        assert_eq!(Prop::Int(-1).render(), "-1");
        assert_eq!(Prop::Bool(true).render(), "true");
        assert_eq!(Prop::Bytes(vec![0xfe, 0x80]).render(), "0xFE80");
        assert_eq!(Prop::Str("0x10".into()).as_u64(), Some(16));
        assert_eq!(Prop::Str("x".into()).as_u64(), None);
        assert_eq!(Prop::Int(-5).as_u64(), None);
    }

    #[test]
    fn raw_payloads_are_typed_by_name_and_size() {
        assert_eq!(
            Prop::from_raw("FileObject", &0xFFFF_A50C_2A3B_4C10u64.to_le_bytes()),
            Prop::Ptr(0xFFFF_A50C_2A3B_4C10)
        );
        assert_eq!(
            Prop::from_raw("ProcessId", &8432u32.to_le_bytes()),
            Prop::UInt(8432)
        );
        assert_eq!(Prop::from_raw("dport", &[0x01, 0xBB]), Prop::UInt(0xBB01));
        assert_eq!(
            Prop::from_raw("InProc", &1u32.to_le_bytes()),
            Prop::Bool(true)
        );
        assert_eq!(
            Prop::from_raw("daddr", &[0u8; 16]),
            Prop::Bytes(vec![0; 16])
        );
        assert_eq!(Prop::from_raw("x", &[]), Prop::Bytes(vec![]));
        // S-1-5-21-3623811015-3361044348-30300820-1013 behind a 64-bit TOKEN_USER header.
        let mut token = vec![0u8; 16];
        token.extend([1, 5, 0, 0, 0, 0, 0, 5]);
        for sub in [21u32, 3_623_811_015, 3_361_044_348, 30_300_820, 1013] {
            token.extend(sub.to_le_bytes());
        }
        assert_eq!(
            Prop::from_raw("UserSID", &token),
            Prop::Str("S-1-5-21-3623811015-3361044348-30300820-1013".into())
        );
        assert_eq!(
            sid_text(&token[16..]).as_deref(),
            Some("S-1-5-21-3623811015-3361044348-30300820-1013")
        );
        assert_eq!(
            sid_text(&[1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0]).as_deref(),
            Some("S-1-5-18")
        );
        assert_eq!(sid_text(&[2, 9]), None);
    }
}
