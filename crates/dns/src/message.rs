//! A DNS response message to one `dns-query-result` event (code 22), in the shape the
//! product we replace sends (the `dns_results_without_ip` dialect sample): `dns.question.*`,
//! `dns.answers[]`, `dns.resolved_ip[]`, `dns.response_code`, `dns.header_flags`,
//! `dns.op_code`, `dns.id`, the server as `source.*` and the client as `destination.*`.

use std::net::IpAddr;

use agent_event::{DnsAnswer, Endpoint, Event, Timestamp};
use simple_dns::rdata::RData;
use simple_dns::{Packet, RCODE};

use crate::frame::Transport;

/// Who talked to whom: the addresses and ports of the packet that carried the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    /// Sender (the server, for a response).
    pub src: IpAddr,
    /// Sender port.
    pub sport: u16,
    /// Receiver (the client, for a response).
    pub dst: IpAddr,
    /// Receiver port.
    pub dport: u16,
    /// UDP or TCP.
    pub transport: Transport,
}

/// Why a DNS payload gave no event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Shorter than the 12-byte header.
    #[error("DNS message shorter than its header ({0} bytes)")]
    Short(usize),
    /// The DNS library refused it (bad name, section cut short, ...).
    #[error("malformed DNS message: {0}")]
    Malformed(String),
    /// A response without a question: nothing to say what was resolved.
    #[error("DNS response without a question")]
    NoQuestion,
}

/// The header fields the event needs, read from the first 4 bytes.
fn header_flags(msg: &[u8]) -> Vec<String> {
    let (b2, b3) = (msg[2], msg[3]);
    let mut flags = Vec::new();
    for (on, name) in [
        (b2 & 0x04 != 0, "AA"),
        (b2 & 0x02 != 0, "TC"),
        (b2 & 0x01 != 0, "RD"),
        (b3 & 0x80 != 0, "RA"),
        (b3 & 0x20 != 0, "AD"),
        (b3 & 0x10 != 0, "CD"),
    ] {
        if on {
            flags.push(name.to_owned());
        }
    }
    flags
}

/// Whether a DNS payload is a response (QR bit), without parsing the rest.
pub fn is_response(msg: &[u8]) -> bool {
    msg.len() >= 12 && msg[2] & 0x80 != 0
}

/// `dns.op_code`, as the product writes it.
fn op_code_name(msg: &[u8]) -> &'static str {
    match (msg[2] >> 3) & 0x0f {
        0 => "Query",
        1 => "IQuery",
        2 => "Status",
        4 => "Notify",
        5 => "Update",
        _ => "Unknown",
    }
}

/// `dns.response_code`, as the product writes it ("No Error", "Non-Existent Domain", ...).
pub fn response_code_name(code: RCODE) -> &'static str {
    match code {
        RCODE::NoError => "No Error",
        RCODE::FormatError => "Format Error",
        RCODE::ServerFailure => "Server Failure",
        RCODE::NameError => "Non-Existent Domain",
        RCODE::NotImplemented => "Not Implemented",
        RCODE::Refused => "Query Refused",
        RCODE::YXDOMAIN => "Name Exists when it should not",
        RCODE::YXRRSET => "RR Set Exists when it should not",
        RCODE::NXRRSET => "RR Set that should exist does not",
        RCODE::NOTAUTH => "Server Not Authoritative for zone",
        RCODE::NOTZONE => "Name not contained in zone",
        RCODE::BADVERS => "Bad OPT Version",
        RCODE::Reserved => "Unknown",
    }
}

/// The mnemonic of a record type (RFC 3597 `TYPEnnn` for the ones without a name here).
pub fn type_name(code: u16) -> String {
    let name = match code {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        13 => "HINFO",
        15 => "MX",
        16 => "TXT",
        17 => "RP",
        18 => "AFSDB",
        24 => "SIG",
        25 => "KEY",
        28 => "AAAA",
        29 => "LOC",
        33 => "SRV",
        35 => "NAPTR",
        36 => "KX",
        37 => "CERT",
        39 => "DNAME",
        41 => "OPT",
        43 => "DS",
        44 => "SSHFP",
        45 => "IPSECKEY",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        49 => "DHCID",
        50 => "NSEC3",
        51 => "NSEC3PARAM",
        52 => "TLSA",
        53 => "SMIMEA",
        59 => "CDS",
        60 => "CDNSKEY",
        61 => "OPENPGPKEY",
        62 => "CSYNC",
        63 => "ZONEMD",
        64 => "SVCB",
        65 => "HTTPS",
        99 => "SPF",
        249 => "TKEY",
        250 => "TSIG",
        251 => "IXFR",
        252 => "AXFR",
        255 => "ANY",
        256 => "URI",
        257 => "CAA",
        _ => return format!("TYPE{code}"),
    };
    name.to_owned()
}

/// The mnemonic of a class.
fn class_name(code: u16) -> String {
    match code {
        1 => "IN".to_owned(),
        3 => "CH".to_owned(),
        4 => "HS".to_owned(),
        254 => "NONE".to_owned(),
        255 => "ANY".to_owned(),
        _ => format!("CLASS{code}"),
    }
}

/// Names are written in lowercase without the final dot: resolvers that randomise the case
/// of queries (DNS 0x20) would otherwise give one name several spellings.
fn name_text(name: &simple_dns::Name<'_>) -> String {
    let mut s = name.to_string();
    s.make_ascii_lowercase();
    s
}

fn txt_text(txt: &simple_dns::rdata::TXT<'_>) -> String {
    // The character-strings concatenated, as SPF and DKIM read them (RFC 7208 §3.3).
    let mut bytes = Vec::new();
    for (k, v) in txt.iter_raw() {
        bytes.extend_from_slice(k);
        if let Some(v) = v {
            bytes.push(b'=');
            bytes.extend_from_slice(v);
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `dns.answers[].data` for the record types whose data is worth a string; others keep
/// name, type and TTL only.
fn rdata_text(rdata: &RData<'_>) -> Option<String> {
    Some(match rdata {
        RData::A(a) => std::net::Ipv4Addr::from(a.address).to_string(),
        RData::AAAA(a) => std::net::Ipv6Addr::from(a.address).to_string(),
        RData::CNAME(n) => name_text(&n.0),
        RData::PTR(n) => name_text(&n.0),
        RData::NS(n) => name_text(&n.0),
        RData::TXT(t) => txt_text(t),
        RData::MX(mx) => format!("{} {}", mx.preference, name_text(&mx.exchange)),
        RData::SRV(s) => format!(
            "{} {} {} {}",
            s.priority,
            s.weight,
            s.port,
            name_text(&s.target)
        ),
        _ => return None,
    })
}

/// Where the first question's type and class are, and their values: after the question
/// name, which starts at byte 12 (labels, ended by a zero or a compression pointer).
fn question_type_class(msg: &[u8]) -> Option<(usize, u16, u16)> {
    if u16::from_be_bytes([*msg.get(4)?, *msg.get(5)?]) == 0 {
        return None;
    }
    let mut at = 12;
    loop {
        let len = *msg.get(at)?;
        match len {
            0 => {
                at += 1;
                break;
            }
            l if l & 0xc0 == 0xc0 => {
                at += 2;
                break;
            }
            l if l & 0xc0 == 0 => at += 1 + usize::from(l),
            _ => return None,
        }
    }
    let b = msg.get(at..at + 4)?;
    Some((
        at,
        u16::from_be_bytes([b[0], b[1]]),
        u16::from_be_bytes([b[2], b[3]]),
    ))
}

/// The event of one DNS message seen at `ts` on `flow`: `Ok(None)` for a query (only
/// responses make events), an error for a message that cannot be read.
pub fn response_event(
    msg: &[u8],
    flow: &Flow,
    ts: Timestamp,
) -> Result<Option<Event>, MessageError> {
    if msg.len() < 12 {
        return Err(MessageError::Short(msg.len()));
    }
    if !is_response(msg) {
        return Ok(None);
    }
    let raw_question = question_type_class(msg);
    let patched;
    let packet = match Packet::parse(msg) {
        Ok(p) => p,
        Err(first) => {
            // The library refuses question types and classes it does not know (new record
            // types, private ones): parse a copy that asks for A/IN, and report the real
            // type and class read from the bytes.
            let Some((at, _, _)) = raw_question else {
                return Err(MessageError::Malformed(first.to_string()));
            };
            let mut copy = msg.to_vec();
            copy[at..at + 4].copy_from_slice(&[0, 1, 0, 1]);
            patched = copy;
            Packet::parse(&patched).map_err(|_| MessageError::Malformed(first.to_string()))?
        }
    };
    let question = packet.questions.first().ok_or(MessageError::NoQuestion)?;
    let qname = name_text(&question.qname);

    let answers: Vec<DnsAnswer> = packet
        .answers
        .iter()
        .map(|rr| DnsAnswer {
            name: name_text(&rr.name),
            record_type: type_name(rr.rdata.type_code().into()),
            data: rdata_text(&rr.rdata).unwrap_or_default(),
            ttl: Some(u64::from(rr.ttl)),
            ..DnsAnswer::default()
        })
        .collect();

    let mut e = Event::dns_query(ts, &qname, answers);
    let rcode = packet.rcode();
    let dns = &mut e.dns;
    let (qtype, qclass) = match raw_question {
        Some((_, t, c)) => (t, c),
        None => (question.qtype.into(), question.qclass.into()),
    };
    dns.question.record_type = type_name(qtype);
    // The top bit of the class is mDNS's "unicast response" flag.
    dns.question.class = class_name(qclass & 0x7fff);
    dns.response_code = response_code_name(rcode).to_owned();
    dns.header_flags = header_flags(msg);
    dns.op_code = op_code_name(msg).to_owned();
    dns.id = Some(u64::from(packet.id()));
    if rcode != RCODE::NoError {
        e.event.outcome = agent_event::Outcome::Failure.as_str().to_owned();
    }
    e.source = Endpoint {
        ip: flow.src.to_string(),
        port: Some(flow.sport),
        ..Endpoint::default()
    };
    e.destination = Endpoint {
        ip: flow.dst.to_string(),
        port: Some(flow.dport),
        ..Endpoint::default()
    };
    e.network.transport = flow.transport.as_str().to_owned();
    e.network.protocol = "dns".to_owned();
    Ok(Some(e))
}

/// The `sekoiaio.repeat.count` of an event (1 when absent).
pub fn repeat_count(e: &Event) -> u64 {
    e.sekoiaio
        .other
        .get("repeat")
        .and_then(|r| r.get("count"))
        .and_then(|c| c.as_u64())
        .unwrap_or(1)
}

/// Sets `sekoiaio.repeat.count`.
pub fn set_repeat_count(e: &mut Event, count: u64) {
    let mut repeat = serde_json::Map::new();
    repeat.insert("count".to_owned(), count.into());
    e.sekoiaio
        .other
        .insert("repeat".to_owned(), serde_json::Value::Object(repeat));
}
