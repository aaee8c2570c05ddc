//! The typed fields of an Event Log event, filled from its data fields.
//!
//! Security (and the Eventlog's 1102): `Subject*` → `user.*`, `Target*` → `user.target.*`,
//! `IpAddress` → `source.{ip,address}`, `ProcessId` → `process.pid`, `ProcessName` →
//! `process.{executable,name}`, `ParentProcessId` → `process.parent.pid`; the filtering
//! platform events (5152, 5156, 5157) → `process.pid`, `source.*`, `destination.*`,
//! `network.transport`. Process ids and addresses the typed fields carry are left out of
//! `action.properties`, as the product does. Sysmon, Defender and System: the acting process
//! and user where the event names them; every data field stays in `action.properties`.

use std::net::IpAddr;

use agent_event::{Endpoint, Event, Process, User};

use super::xml::XmlRecord;
use super::Channel;

/// Fills the typed fields of `e` from `rec`; returns the data fields to leave out of
/// `action.properties`.
pub(super) fn fill(channel: Channel, rec: &XmlRecord, e: &mut Event) -> &'static [&'static str] {
    match channel {
        Channel::Security => security(rec, e),
        Channel::Sysmon => {
            sysmon(rec, e);
            &[]
        }
        Channel::Defender => {
            defender(rec, e);
            &[]
        }
        Channel::System => &[],
    }
}

/// Data fields the filtering platform events carry in typed fields.
const WFP_TYPED: &[&str] = &[
    "ProcessID",
    "ProcessId",
    "SourceAddress",
    "SourcePort",
    "DestAddress",
    "DestPort",
    "Protocol",
];

/// Data fields other Security events carry in typed fields.
const SECURITY_TYPED: &[&str] = &["ProcessId", "ParentProcessId"];

fn security(rec: &XmlRecord, e: &mut Event) -> &'static [&'static str] {
    if let Some(sid) = rec.get("SubjectUserSid").filter(|s| !s.is_empty()) {
        e.user.id = sid.to_owned();
    }
    if let Some(n) = rec.value("SubjectUserName") {
        e.user.name = n.to_owned();
    }
    if let Some(d) = rec.value("SubjectDomainName") {
        e.user.domain = d.to_owned();
    }
    let mut target = User::default();
    if let Some(sid) = rec
        .get("TargetUserSid")
        .or_else(|| rec.get("TargetSid"))
        .filter(|s| !s.is_empty())
    {
        target.id = sid.to_owned();
    }
    if let Some(n) = rec.value("TargetUserName") {
        target.name = n.to_owned();
    }
    if let Some(d) = rec.value("TargetDomainName") {
        target.domain = d.to_owned();
    }
    if target != User::default() {
        e.user.target = Some(Box::new(target));
    }

    if matches!(rec.id, 5152 | 5156 | 5157) {
        if let Some(pid) = rec.get("ProcessID").or_else(|| rec.get("ProcessId")) {
            e.process.pid = number(pid)
                .filter(|n| *n != 0)
                .and_then(|n| u32::try_from(n).ok());
        }
        e.source = endpoint(rec.get("SourceAddress"), rec.get("SourcePort"));
        e.destination = endpoint(rec.get("DestAddress"), rec.get("DestPort"));
        if let Some(t) = rec
            .get("Protocol")
            .and_then(number)
            .and_then(transport_name)
        {
            e.network.transport = t.to_owned();
        }
        return WFP_TYPED;
    }

    if let Some(ip) = rec.get("IpAddress").and_then(ip_of) {
        e.source.ip = ip.to_string();
        e.source.address = e.source.ip.clone();
    }
    if let Some(pid) = rec.get("ProcessId").and_then(number).filter(|n| *n != 0) {
        e.process.pid = u32::try_from(pid).ok();
    }
    if let Some(path) = rec.value("ProcessName") {
        set_image(&mut e.process, path);
    }
    if let Some(ppid) = rec
        .get("ParentProcessId")
        .and_then(number)
        .filter(|n| *n != 0)
    {
        e.process.parent = Some(Box::new(Process {
            pid: u32::try_from(ppid).ok(),
            ..Process::default()
        }));
    }
    SECURITY_TYPED
}

fn sysmon(rec: &XmlRecord, e: &mut Event) {
    // Process access (10) names a source and a target: the acting process is the source.
    let (pid, image, user) = if rec.id == 10 {
        ("SourceProcessId", "SourceImage", "SourceUser")
    } else {
        ("ProcessId", "Image", "User")
    };
    if let Some(p) = rec.get(pid).and_then(number) {
        e.process.pid = u32::try_from(p).ok();
    }
    if let Some(path) = rec.value(image) {
        set_image(&mut e.process, path);
    }
    if let Some(u) = rec.value(user) {
        set_account(&mut e.user, u);
    }
}

fn defender(rec: &XmlRecord, e: &mut Event) {
    if let Some(path) = rec
        .value("Process Name")
        .filter(|p| !p.eq_ignore_ascii_case("unknown"))
    {
        set_image(&mut e.process, path);
    }
    if let Some(u) = rec.value("Detection User") {
        set_account(&mut e.user, u);
    }
}

/// `process.executable` and `process.name` from a Windows path.
fn set_image(p: &mut Process, path: &str) {
    p.executable = path.to_owned();
    p.name = path.rsplit(['\\', '/']).next().unwrap_or(path).to_owned();
}

/// `user.name` and `user.domain` from `DOMAIN\name`.
fn set_account(u: &mut User, account: &str) {
    match account.split_once('\\') {
        Some((domain, name)) => {
            u.domain = domain.to_owned();
            u.name = name.to_owned();
        }
        None => u.name = account.to_owned(),
    }
}

/// A number written in decimal or `0x` hex.
fn number(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// An address as Windows writes it; an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, as
/// Kerberos events write IPv4 clients) is its IPv4 address.
fn ip_of(s: &str) -> Option<IpAddr> {
    let ip: IpAddr = s.trim().parse().ok()?;
    Some(match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    })
}

fn endpoint(addr: Option<&str>, port: Option<&str>) -> Endpoint {
    let mut ep = Endpoint::default();
    if let Some(ip) = addr.and_then(ip_of) {
        ep.ip = ip.to_string();
        ep.address = ep.ip.clone();
    }
    ep.port = port.and_then(number).and_then(|p| u16::try_from(p).ok());
    ep
}

fn transport_name(protocol: u64) -> Option<&'static str> {
    Some(match protocol {
        1 => "icmp",
        6 => "tcp",
        17 => "udp",
        58 => "ipv6-icmp",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_numbers() {
        assert_eq!(
            ip_of("::ffff:10.0.30.42"),
            Some("10.0.30.42".parse().unwrap())
        );
        assert_eq!(ip_of("fe80::1"), Some("fe80::1".parse().unwrap()));
        assert_eq!(ip_of("-"), None);
        assert_eq!(number("0x2a4"), Some(676));
        assert_eq!(number("1188"), Some(1188));
        assert_eq!(number("x"), None);
    }

    #[test]
    fn accounts_split_on_the_backslash() {
        let mut u = User::default();
        set_account(&mut u, r"NT AUTHORITY\SYSTEM");
        assert_eq!(
            (u.domain.as_str(), u.name.as_str()),
            ("NT AUTHORITY", "SYSTEM")
        );
        let mut p = Process::default();
        set_image(&mut p, r"C:\Windows\System32\services.exe");
        assert_eq!(p.name, "services.exe");
    }
}
