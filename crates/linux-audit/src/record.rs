//! Audit record parsing: `type=NAME msg=audit(SECS.MILLIS:SERIAL): key=value ...`.
//!
//! The same body arrives two ways: as a text log line (with `type=` and `msg=` prefixes) or
//! as a netlink message whose header carries the type number and whose payload starts at
//! `audit(`. Both end in [`parse_body`]. Values are kept raw (as written) and interpreted:
//! hex-encoded strings decoded, ids with the unset value recognised, `saddr` decoded, and the
//! `msg='...'` payload of user-space records flattened into sub-fields.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::msgtype;
use crate::sockaddr::SockAddr;

/// The unset value of uid/gid/auid/ses fields (`(u32)-1`).
pub const UNSET_ID: u32 = u32::MAX;

/// Why a record could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The line has no `type=` field.
    #[error("missing type= field")]
    MissingType,
    /// The type name is not a known audit type.
    #[error("unknown record type {0:?}")]
    UnknownType(String),
    /// The `audit(SECS.MILLIS:SERIAL):` header is missing or malformed.
    #[error("malformed audit(...) header")]
    BadHeader,
}

/// Event time as the kernel stamps it: seconds and milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct AuditTime {
    /// Seconds since the epoch.
    pub secs: u64,
    /// Milliseconds within the second.
    pub millis: u32,
}

impl AuditTime {
    /// As a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.secs) + Duration::from_millis(u64::from(self.millis))
    }
}

/// How a field's value was written and what it means. Kept small (24 bytes): every field
/// of every record holds one, so its size is most of a parsed record's memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A plain or quoted string: the value is [`Field::raw`] as is.
    Text,
    /// A hex-encoded string (the kernel encodes untrusted strings with spaces or control
    /// characters this way), decoded to its bytes.
    Hex(Box<[u8]>),
    /// A uid/gid/auid/ses; `None` when unset (4294967295 or `unset`).
    Id(Option<u32>),
    /// A decoded socket address (`saddr`); boxed, as it is rare and the largest variant.
    SockAddr(Box<SockAddr>),
    /// `(null)`, `(none)` or `?`: explicitly no value.
    Null,
}

/// One `key=value` of a record, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// The key as written (`uid`, `a0`, `a1[2]`, ...).
    pub key: &'a str,
    /// The value exactly as written, without surrounding quotes.
    pub raw: &'a str,
    /// The interpreted value.
    pub value: &'a Value,
    /// True for the sub-fields of a user-space record's `msg='...'`.
    pub in_msg: bool,
}

impl<'a> Field<'a> {
    /// The interpolated value as text: decoded hex (lossy UTF-8), ids as numbers (or
    /// `unset`), addresses formatted, else the raw value.
    pub fn text(&self) -> Cow<'a, str> {
        match self.value {
            Value::Text => Cow::Borrowed(self.raw),
            Value::Hex(b) => String::from_utf8_lossy(b),
            // The raw text when it is the number's canonical spelling (the kernel's always
            // is): no formatting, no allocation.
            Value::Id(Some(_)) if is_canonical_decimal(self.raw) => Cow::Borrowed(self.raw),
            Value::Id(Some(n)) => Cow::Owned(n.to_string()),
            Value::Id(None) => Cow::Borrowed("unset"),
            Value::SockAddr(a) => Cow::Owned(a.to_string()),
            Value::Null => Cow::Borrowed(self.raw),
        }
    }
}

/// Where a field's key and raw value sit in [`AuditRecord`]'s text: keeping offsets
/// rather than two strings per field spares two allocations per field, which were the
/// collector's main cost at thousands of records per second.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldSpan {
    key: (u32, u32),
    raw: (u32, u32),
    value: Value,
    in_msg: bool,
}

/// One parsed audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// The message type number (`1300` for `SYSCALL`).
    pub record_type: u16,
    /// When the event happened.
    pub timestamp: AuditTime,
    /// The event serial shared by all records of one event.
    pub serial: u32,
    /// The `key=value ...` text after the header, as written.
    text: String,
    /// The fields in the order written.
    spans: Vec<FieldSpan>,
}

impl AuditRecord {
    /// A record with the given fields (`(key, raw value)`, interpreted as a parsed record's
    /// would be); for tests and synthetic records.
    pub fn with_fields(
        record_type: u16,
        timestamp: AuditTime,
        serial: u32,
        fields: &[(&str, &str)],
    ) -> AuditRecord {
        let mut r = AuditRecord {
            record_type,
            timestamp,
            serial,
            text: String::new(),
            spans: Vec::with_capacity(fields.len()),
        };
        for (k, v) in fields {
            let key = r.append_text(k);
            let raw = r.append_text(v);
            r.spans.push(FieldSpan {
                key,
                raw,
                value: interpret(record_type, k, v, false),
                in_msg: false,
            });
        }
        r
    }

    fn append_text(&mut self, s: &str) -> (u32, u32) {
        let start = self.text.len();
        self.text.push_str(s);
        (clamp_u32(start), clamp_u32(self.text.len()))
    }

    /// The type name (`SYSCALL`), or `UNKNOWN[n]`.
    pub fn type_name(&self) -> Cow<'static, str> {
        match msgtype::type_name(self.record_type) {
            Some(s) => Cow::Borrowed(s),
            None => Cow::Owned(format!("UNKNOWN[{}]", self.record_type)),
        }
    }

    /// The fields in the order written.
    pub fn fields(&self) -> impl ExactSizeIterator<Item = Field<'_>> + '_ {
        self.spans.iter().map(|s| self.view(s))
    }

    /// How many fields the record has.
    pub fn field_count(&self) -> usize {
        self.spans.len()
    }

    fn slice(&self, (start, end): (u32, u32)) -> &str {
        self.text.get(start as usize..end as usize).unwrap_or("")
    }

    fn view<'a>(&'a self, s: &'a FieldSpan) -> Field<'a> {
        Field {
            key: self.slice(s.key),
            raw: self.slice(s.raw),
            value: &s.value,
            in_msg: s.in_msg,
        }
    }

    /// The first field named `key`.
    pub fn field(&self, key: &str) -> Option<Field<'_>> {
        // Lengths first, from the offsets: most keys differ in length, so most spans are
        // passed over without slicing the text or comparing bytes (the normalizer looks up
        // a dozen keys per event).
        let len = key.len();
        self.spans
            .iter()
            .filter(|s| s.key.1.wrapping_sub(s.key.0) as usize == len)
            .map(|s| self.view(s))
            .find(|f| f.key == key)
    }

    /// The interpolated value of the first field named `key` (see [`Field::text`]).
    pub fn get(&self, key: &str) -> Option<Cow<'_, str>> {
        self.field(key).map(|f| f.text())
    }

    /// The raw value of the first field named `key`.
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.field(key).map(|f| f.raw)
    }

    /// A decimal field as a number (`pid`, `ppid`, `items`, ...).
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.raw(key)?.parse().ok()
    }

    /// An id field: `Some(None)` when present but unset, `None` when absent.
    pub fn get_id(&self, key: &str) -> Option<Option<u32>> {
        match self.field(key)?.value {
            Value::Id(id) => Some(*id),
            _ => None,
        }
    }

    /// The decoded `saddr` of a `SOCKADDR` record.
    pub fn sockaddr(&self) -> Option<&SockAddr> {
        match self.field("saddr")?.value {
            Value::SockAddr(a) => Some(a),
            _ => None,
        }
    }
}

/// Whether `s` is how `to_string` writes a number: digits only, no sign, no leading zero.
fn is_canonical_decimal(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s.len() == 1 || !s.starts_with('0'))
}

fn clamp_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Parses a text log line: `[node=N ]type=NAME msg=audit(SECS.MILLIS:SERIAL): key=value ...`.
pub fn parse_line(line: &str) -> Result<AuditRecord, ParseError> {
    let line = line.trim_end_matches(['\n', '\r']);
    let mut rest = line.trim_start();
    if let Some(r) = rest.strip_prefix("node=") {
        rest = r.split_once(' ').map_or("", |(_, r)| r.trim_start());
    }
    let r = rest.strip_prefix("type=").ok_or(ParseError::MissingType)?;
    let (name, r) = r.split_once(' ').ok_or(ParseError::BadHeader)?;
    let record_type =
        msgtype::type_number(name).ok_or_else(|| ParseError::UnknownType(name.to_owned()))?;
    let body = r
        .trim_start()
        .strip_prefix("msg=")
        .ok_or(ParseError::BadHeader)?;
    parse_body(record_type, body)
}

/// Parses a record received from netlink: the message type from the netlink header and the
/// payload (`audit(SECS.MILLIS:SERIAL): key=value ...`, possibly NUL-terminated).
pub fn parse_netlink(record_type: u16, payload: &[u8]) -> Result<AuditRecord, ParseError> {
    // `from_bytes_until_nul` finds the NUL with the word-at-a-time `memchr` (a byte loop
    // here was a few percent of the collector's instructions).
    let payload =
        std::ffi::CStr::from_bytes_until_nul(payload).map_or(payload, std::ffi::CStr::to_bytes);
    // The kernel hex-encodes untrusted strings, so payloads are ASCII; should a byte slip
    // through anyway, keep the record (with U+FFFD) rather than drop it.
    // Validating first is much faster than the lossy path for the usual all-ASCII payload.
    let text = match std::str::from_utf8(payload) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(payload),
    };
    parse_body(record_type, &text)
}

/// Parses `audit(SECS.MILLIS:SERIAL): key=value ...` for a record of type `record_type`.
pub fn parse_body(record_type: u16, body: &str) -> Result<AuditRecord, ParseError> {
    let r = body.strip_prefix("audit(").ok_or(ParseError::BadHeader)?;
    // Usually `audit(...): `, but some daemon records omit the colon.
    let (header, kv) = r.split_once(')').ok_or(ParseError::BadHeader)?;
    let kv = kv.strip_prefix(':').unwrap_or(kv);
    let (ts, serial) = header.split_once(':').ok_or(ParseError::BadHeader)?;
    let (secs, millis) = ts.split_once('.').ok_or(ParseError::BadHeader)?;
    let timestamp = AuditTime {
        secs: secs.parse().map_err(|_| ParseError::BadHeader)?,
        millis: millis.parse().map_err(|_| ParseError::BadHeader)?,
    };
    let serial = serial.parse().map_err(|_| ParseError::BadHeader)?;
    // Sized by the `=` signs: at least one per field, more only in quoted values (an
    // argument such as `--opt=x`). Counting is cheaper than growing, and a guess by length
    // held three times the memory, for as long as the event waits to be normalized.
    let mut spans = Vec::with_capacity(kv.bytes().filter(|&b| b == b'=').count() + 1);
    parse_fields(record_type, kv, kv, false, &mut spans);
    Ok(AuditRecord {
        record_type,
        timestamp,
        serial,
        text: kv.to_owned(),
        spans,
    })
}

/// The offsets of `part` within `base` (`part` is a subslice of `base`).
fn span_in(base: &str, part: &str) -> (u32, u32) {
    let start = (part.as_ptr() as usize).saturating_sub(base.as_ptr() as usize);
    (clamp_u32(start), clamp_u32(start + part.len()))
}

/// Splits `key=value` pairs; words without `=` (`avc:  denied  { read } for`) are skipped.
///
/// Byte scans throughout: every delimiter is ASCII, so each position found is a char
/// boundary, and the per-field work stays a few byte loops (the generic `char` trimming
/// and matching this replaced was a sixth of the collector's instructions per exec).
fn parse_fields(record_type: u16, base: &str, mut s: &str, in_msg: bool, out: &mut Vec<FieldSpan>) {
    loop {
        s = trim_start_fast(s);
        if s.is_empty() {
            return;
        }
        let bytes = s.as_bytes();
        let word_end = bytes
            .iter()
            .position(|&b| b == b' ' || b == b'=')
            .unwrap_or(bytes.len());
        if bytes.get(word_end) != Some(&b'=') {
            s = &s[word_end..];
            continue;
        }
        // Old user-space records write `(hostname=?, addr=?, terminal=cron res=success)`.
        let key = &s[..word_end];
        let key = &key[key.bytes().take_while(|&b| b == b'(').count()..];
        let after = &s[word_end + 1..];
        let (raw, quote, rest) = match after.as_bytes().first() {
            Some(&q @ (b'"' | b'\'')) => {
                let inner = &after[1..];
                match inner.bytes().position(|b| b == q) {
                    Some(e) => (&inner[..e], Some(q), &inner[e + 1..]),
                    None => (inner, Some(q), ""),
                }
            }
            _ => {
                let e = after.bytes().position(|b| b == b' ').unwrap_or(after.len());
                let mut v = &after[..e];
                v = &v[..v.len() - v.bytes().rev().take_while(|&b| b == b',').count()];
                if !v.starts_with('(') {
                    v = &v[..v.len() - v.bytes().rev().take_while(|&b| b == b')').count()];
                }
                (v, None, &after[e..])
            }
        };
        s = rest;
        if key.is_empty() {
            continue;
        }
        if key == "msg" && quote == Some(b'\'') && !in_msg {
            // The user-space payload: its own key=value list.
            parse_fields(record_type, base, raw, true, out);
            continue;
        }
        out.push(FieldSpan {
            key: span_in(base, key),
            raw: span_in(base, raw),
            value: interpret(record_type, key, raw, quote.is_some()),
            in_msg,
        });
    }
}

/// `s.trim_start()`, with the usual case (spaces, then an ASCII letter) done on bytes.
fn trim_start_fast(s: &str) -> &str {
    let s = &s[s.bytes().take_while(|&b| b == b' ').count()..];
    match s.as_bytes().first() {
        // Other ASCII whitespace (tab to carriage return) or a non-ASCII char, which may
        // be Unicode whitespace: the general rule.
        Some(&b) if (b'\t'..=b'\r').contains(&b) || !b.is_ascii() => s.trim_start(),
        _ => s,
    }
}

/// Keys whose unquoted values are hex-encoded strings (the kernel's `audit_log_untrustedstring`
/// and user space's `audit_encode_value`).
fn is_encoded_key(record_type: u16, key: &str) -> bool {
    matches!(
        key,
        "name"
            | "path"
            | "cwd"
            | "exe"
            | "comm"
            | "ocomm"
            | "proctitle"
            | "cmd"
            | "acct"
            | "data"
            | "key"
            | "old"
            | "new"
            | "watch"
            | "dir"
            | "file"
            | "vm"
            | "grp"
            | "root_dir"
            | "sw"
            | "new_group"
    ) || (record_type == msgtype::AUDIT_EXECVE && is_execve_arg(key))
}

/// `a0`, `a12`, `a3[1]` (not `argc` nor `a3_len`).
fn is_execve_arg(key: &str) -> bool {
    let Some(r) = key.strip_prefix('a') else {
        return false;
    };
    let (n, idx) = match r.split_once('[') {
        Some((n, i)) => (n, i.strip_suffix(']')),
        None => (r, Some("0")),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(n) && idx.is_some_and(digits)
}

fn is_id_key(key: &str) -> bool {
    matches!(
        key,
        "uid"
            | "gid"
            | "euid"
            | "suid"
            | "fsuid"
            | "egid"
            | "sgid"
            | "fsgid"
            | "auid"
            | "ouid"
            | "ogid"
            | "ses"
            | "old-auid"
            | "old-ses"
            | "new-auid"
            | "new-ses"
            | "old_auid"
            | "new_auid"
            | "oauid"
            | "sauid"
            | "iuid"
            | "igid"
            | "inode_uid"
            | "inode_gid"
    )
}

fn interpret(record_type: u16, key: &str, raw: &str, quoted: bool) -> Value {
    if quoted {
        return Value::Text;
    }
    if matches!(raw, "(null)" | "(none)" | "?") {
        return Value::Null;
    }
    if key == "saddr" {
        if let Some(bytes) = decode_hex(raw) {
            return Value::SockAddr(Box::new(SockAddr::decode(&bytes)));
        }
    }
    if is_id_key(key) {
        if raw == "unset" {
            return Value::Id(None);
        }
        if let Ok(n) = raw.parse::<u32>() {
            return Value::Id((n != UNSET_ID).then_some(n));
        }
        // Signed spellings from some user-space tools.
        if raw == "-1" {
            return Value::Id(None);
        }
    }
    if is_encoded_key(record_type, key) {
        if let Some(bytes) = decode_hex(raw) {
            return Value::Hex(bytes.into_boxed_slice());
        }
    }
    Value::Text
}

/// Decodes an even-length string of hex digits; `None` for anything else.
pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() % 2 != 0 {
        return None;
    }
    let nib = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    b.chunks_exact(2)
        .map(|p| Some(nib(p[0])? << 4 | nib(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// A parsed record holds one span per field until its event is normalized; at a
    /// thousand execs a second that is most of the collector's transient heap.
    #[test]
    fn field_spans_stay_small_and_exactly_sized() {
        assert!(std::mem::size_of::<Value>() <= 24);
        assert!(std::mem::size_of::<FieldSpan>() <= 48);
        let r = parse_line(
            r#"type=EXECVE msg=audit(1.2:3): argc=3 a0="ls" a1="--color=auto" a2=2F746D70"#,
        )
        .unwrap();
        assert_eq!(r.fields().count(), 4);
        // One extra slot for the `=` inside the quoted argument, no more.
        assert!(r.spans.capacity() <= 6, "{}", r.spans.capacity());
    }

    #[test]
    fn syscall_record_fields_and_ids() {
        let r = parse_line(r#"type=SYSCALL msg=audit(1492037289.295:58): arch=c000003e syscall=42 success=no exit=-115 a0=6 a1=7ffed2893080 items=0 ppid=1 pid=1172 auid=4294967295 uid=0 gid=0 tty=(none) ses=4294967295 comm="google_accounts" exe=2F7573722F62696E2F707974686F6E322E373B3538643163636662202864656C6574656429 key=(null)"#).unwrap();
        assert_eq!(r.record_type, 1300);
        assert_eq!(r.type_name(), "SYSCALL");
        assert_eq!(
            r.timestamp,
            AuditTime {
                secs: 1492037289,
                millis: 295
            }
        );
        assert_eq!(r.serial, 58);
        assert_eq!(r.get("arch").as_deref(), Some("c000003e"));
        assert_eq!(
            r.get("a1").as_deref(),
            Some("7ffed2893080"),
            "syscall args stay hex"
        );
        assert_eq!(r.get_u64("pid"), Some(1172));
        assert_eq!(r.get_id("auid"), Some(None));
        assert_eq!(r.get_id("ses"), Some(None));
        assert_eq!(r.get_id("uid"), Some(Some(0)));
        assert_eq!(r.get("auid").as_deref(), Some("unset"));
        assert_eq!(r.raw("auid"), Some("4294967295"));
        assert_eq!(r.get("comm").as_deref(), Some("google_accounts"));
        assert_eq!(
            r.get("exe").as_deref(),
            Some("/usr/bin/python2.7;58d1ccfb (deleted)")
        );
        assert_eq!(r.field("key").unwrap().value, &Value::Null);
        assert_eq!(r.field("tty").unwrap().value, &Value::Null);
        let names: Vec<_> = r.fields().map(|f| f.key).collect();
        assert_eq!(names[..4], ["arch", "syscall", "success", "exit"]);
    }

    #[test]
    fn user_space_msg_subfields_are_flattened_and_decoded() {
        let r = parse_line(r#"type=USER_LOGIN msg=audit(1492896301.818:19955): pid=12635 uid=0 auid=4294967295 ses=4294967295 msg='op=login acct=28696E76616C6964207573657229 exe="/usr/sbin/sshd" hostname=? addr=179.38.151.221 terminal=sshd res=failed'"#).unwrap();
        assert_eq!(r.type_name(), "USER_LOGIN");
        let acct = r.field("acct").unwrap();
        assert!(acct.in_msg);
        assert_eq!(acct.text(), "(invalid user)");
        assert_eq!(r.get("op").as_deref(), Some("login"));
        assert_eq!(r.get("exe").as_deref(), Some("/usr/sbin/sshd"));
        assert_eq!(r.get("addr").as_deref(), Some("179.38.151.221"));
        assert_eq!(r.get("res").as_deref(), Some("failed"));
        assert!(!r.field("pid").unwrap().in_msg);
        assert!(r.field("msg").is_none());
    }

    #[test]
    fn old_parenthesised_user_fields() {
        let r = parse_line(r#"type=USER_END msg=audit(1170021601.366:299): user pid=13015 uid=0 auid=0 subj=system_u:system_r:crond_t:s0-s0:c0.c1023 msg='PAM: session close acct=root : exe="/usr/sbin/crond" (hostname=?, addr=?, terminal=cron res=success)'"#).unwrap();
        assert_eq!(r.get("acct").as_deref(), Some("root"));
        assert_eq!(r.field("hostname").unwrap().value, &Value::Null);
        assert_eq!(r.get("terminal").as_deref(), Some("cron"));
        assert_eq!(r.get("res").as_deref(), Some("success"));
    }

    #[test]
    fn execve_hex_args_and_multi_keys() {
        let r = parse_line(
            r#"type=EXECVE msg=audit(1.002:3): argc=3 a0="jq" a1=2E20 a2[0]=6869 a2_len=4"#,
        )
        .unwrap();
        assert_eq!(r.get("a0").as_deref(), Some("jq"));
        assert_eq!(r.get("a1").as_deref(), Some(". "));
        assert_eq!(r.get("a2[0]").as_deref(), Some("hi"));
        assert_eq!(r.get("a2_len").as_deref(), Some("4"));
        assert_eq!(r.get("argc").as_deref(), Some("3"));
        let k =
            parse_line(r#"type=SYSCALL msg=audit(1.002:3): comm="grep" key=65786563013634626974"#)
                .unwrap();
        assert_eq!(k.get("key").as_deref(), Some("exec\u{1}64bit"));
    }

    #[test]
    fn netlink_payload_and_node_prefix() {
        let r = parse_netlink(
            1306,
            b"audit(1.5:7): saddr=02000050A9FEA9FE0000000000000000\0",
        )
        .unwrap();
        assert_eq!(r.serial, 7);
        assert_eq!(r.timestamp.millis, 5);
        assert_eq!(
            r.sockaddr(),
            Some(&SockAddr::Inet {
                addr: Ipv4Addr::new(169, 254, 169, 254),
                port: 80
            })
        );
        assert_eq!(r.get("saddr").as_deref(), Some("169.254.169.254:80"));
        let r = parse_line("node=web1 type=CWD msg=audit(1.5:8):  cwd=\"/\"").unwrap();
        assert_eq!(r.get("cwd").as_deref(), Some("/"));
    }

    #[test]
    fn malformed_lines_are_errors() {
        assert_eq!(
            parse_line("type=UNKNOWN[1329] msg=?"),
            Err(ParseError::BadHeader)
        );
        assert_eq!(parse_line("hello"), Err(ParseError::MissingType));
        assert!(matches!(
            parse_line("type=BOGUS msg=audit(1.1:1): "),
            Err(ParseError::UnknownType(_))
        ));
        assert_eq!(
            parse_line("type=SYSCALL msg=audit(1.x:1): "),
            Err(ParseError::BadHeader)
        );
        let r = parse_netlink(1307, b"audit(1.1:1): cwd=\"/\xff\"").unwrap();
        assert_eq!(r.get("cwd").as_deref(), Some("/\u{fffd}"));
        // Unterminated quotes keep the rest as the value rather than failing.
        let r = parse_line("type=CWD msg=audit(1.1:1): cwd=\"/tm").unwrap();
        assert_eq!(r.get("cwd").as_deref(), Some("/tm"));
    }

    #[test]
    fn hex_decoding() {
        assert_eq!(decode_hex("41zz"), None);
        assert_eq!(decode_hex("414"), None);
        assert_eq!(decode_hex(""), None);
        assert_eq!(decode_hex("4a4B"), Some(b"JK".to_vec()));
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    /// The field splitter as it was before the byte scans, for comparison.
    fn reference_fields(
        record_type: u16,
        base: &str,
        mut s: &str,
        in_msg: bool,
        out: &mut Vec<FieldSpan>,
    ) {
        loop {
            s = s.trim_start();
            if s.is_empty() {
                return;
            }
            let word_end = s
                .bytes()
                .position(|b| b == b' ' || b == b'=')
                .unwrap_or(s.len());
            if !s[word_end..].starts_with('=') {
                s = &s[word_end..];
                continue;
            }
            let key = s[..word_end].trim_start_matches('(');
            let after = &s[word_end + 1..];
            let (raw, quote, rest) = match after.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let inner = &after[1..];
                    match inner.bytes().position(|b| b == q as u8) {
                        Some(e) => (&inner[..e], Some(q), &inner[e + 1..]),
                        None => (inner, Some(q), ""),
                    }
                }
                _ => {
                    let e = after.bytes().position(|b| b == b' ').unwrap_or(after.len());
                    let mut v = after[..e].trim_end_matches(',');
                    if !v.starts_with('(') {
                        v = v.trim_end_matches(')');
                    }
                    (v, None, &after[e..])
                }
            };
            s = rest;
            if key.is_empty() {
                continue;
            }
            if key == "msg" && quote == Some('\'') && !in_msg {
                reference_fields(record_type, base, raw, true, out);
                continue;
            }
            out.push(FieldSpan {
                key: span_in(base, key),
                raw: span_in(base, raw),
                value: interpret(record_type, key, raw, quote.is_some()),
                in_msg,
            });
        }
    }

    proptest! {
        /// Arbitrary text never panics the parser, and a parsed record keeps a field for
        /// every well-formed `key=value` written after the header.
        #[test]
        fn arbitrary_lines_never_panic(s in ".{0,300}") {
            let _ = parse_line(&s);
            let _ = parse_netlink(1300, s.as_bytes());
        }

        /// The byte-scanning field splitter finds what the `char`-based one it replaced
        /// found, on text made of the delimiters, whitespace (ASCII and not) and other
        /// non-ASCII characters.
        #[test]
        fn fields_split_as_the_char_based_splitter_did(
            s in "([a-z0-9=\"'(),{}: \t\n\u{0b}\u{a0}\u{2003}é]|msg='){0,80}"
        ) {
            let mut fast = Vec::new();
            parse_fields(1300, &s, &s, false, &mut fast);
            let mut reference = Vec::new();
            reference_fields(1300, &s, &s, false, &mut reference);
            prop_assert_eq!(fast, reference);
        }

        #[test]
        fn generated_records_round_trip(
            serial in any::<u32>(),
            secs in 0u64..4_000_000_000,
            millis in 0u32..1000,
            kv in proptest::collection::vec(("[a-z][a-z0-9_]{0,8}", "[A-Za-z0-9/._:-]{1,12}"), 0..12),
        ) {
            let body: Vec<String> = kv.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            let line = format!("type=PATH msg=audit({secs}.{millis:03}:{serial}): {}", body.join(" "));
            let r = parse_line(&line).unwrap();
            prop_assert_eq!(r.serial, serial);
            prop_assert_eq!(r.timestamp, AuditTime { secs, millis });
            prop_assert_eq!(r.field_count(), kv.len());
            for (f, (k, v)) in r.fields().zip(&kv) {
                prop_assert_eq!(f.key, k.as_str());
                prop_assert_eq!(f.raw, v.as_str());
                prop_assert_eq!(f.text(), v.as_str());
            }
        }
    }
}
