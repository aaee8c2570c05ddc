//! Event Log records the sample logs do not hold, written as `EvtRender` renders them: the
//! log cleared (1102, `UserData`), a Defender detection (1116, names with spaces), a Kerberos
//! ticket request from an IPv4 client (4768, `::ffff:`), a Sysmon registry event with its
//! user, events of other channels and providers, and damaged records.

use agent_etw::eventlog::{map_xml, Accounting, Mapped, SkipReason};
use serde_json::Value;

fn record(
    provider: &str,
    guid: &str,
    id: u32,
    keywords: &str,
    channel: &str,
    body: &str,
) -> String {
    format!(
        r#"<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System><Provider Name="{provider}" Guid="{guid}"/><EventID>{id}</EventID><Version>0</Version><Level>4</Level><Task>0</Task><Opcode>0</Opcode><Keywords>{keywords}</Keywords><TimeCreated SystemTime="2024-05-06T07:08:09.1234567Z"/><EventRecordID>42</EventRecordID><Execution ProcessID="1" ThreadID="2"/><Channel>{channel}</Channel><Computer>pc</Computer><Security UserID="S-1-5-18"/></System>{body}</Event>"#
    )
}

fn event(xml: &str) -> Value {
    match map_xml(xml).expect("readable") {
        Mapped::Event(e) => e.to_value().expect("serializes"),
        other => panic!("not mapped: {other:?}"),
    }
}

const SECURITY: &str = "{54849625-5478-4994-A5BA-3E3B0328C30D}";

#[test]
fn log_cleared_reads_user_data() {
    let xml = record(
        "Microsoft-Windows-Eventlog",
        "{fc65ddd8-d6ef-4962-83d5-6e5cfe9ce148}",
        1102,
        "0x4020000000000000",
        "Security",
        r#"<UserData><LogFileCleared xmlns="http://manifests.microsoft.com/win/2004/08/windows/eventlog"><SubjectUserSid>S-1-5-21-1-2-3-500</SubjectUserSid><SubjectUserName>admin</SubjectUserName><SubjectDomainName>CORP</SubjectDomainName><SubjectLogonId>0x1a2b</SubjectLogonId></LogFileCleared></UserData>"#,
    );
    let e = event(&xml);
    assert_eq!(e["event"]["provider"], "Microsoft-Windows-Eventlog");
    assert_eq!(e["event"]["code"], 1102);
    assert_eq!(e["user"]["id"], "S-1-5-21-1-2-3-500");
    assert_eq!(e["user"]["name"], "admin");
    assert_eq!(e["user"]["domain"], "CORP");
    let p = &e["action"]["properties"];
    assert_eq!(p["SubjectLogonId"], "0x1A2B");
    assert_eq!(p["EventType"], "AUDIT_SUCCESS");
    assert_eq!(p["ProviderGuid"], "{FC65DDD8-D6EF-4962-83D5-6E5CFE9CE148}");
    assert_eq!(p["Severity"], "INFO");
    assert_eq!(e["@timestamp"], "2024-05-06T07:08:09.1234567Z");
}

#[test]
fn defender_detection_names_process_and_user() {
    let xml = record(
        "Microsoft-Windows-Windows Defender",
        "{11CD958A-C507-4EF3-B3F2-5FD9DFBD2C78}",
        1116,
        "0x8000000000000000",
        "Microsoft-Windows-Windows Defender/Operational",
        r#"<EventData><Data Name="Product Name">Microsoft Defender Antivirus</Data><Data Name="Threat Name">Virus:DOS/EICAR_Test_File</Data><Data Name="Severity Name">Severe</Data><Data Name="Path">file:_C:\Users\bob\Downloads\eicar.com</Data><Data Name="Detection User">CORP\bob</Data><Data Name="Process Name">C:\Program Files\Mozilla Firefox\firefox.exe</Data></EventData>"#,
    );
    let e = event(&xml);
    assert_eq!(e["process"]["name"], "firefox.exe");
    assert_eq!(e["user"]["name"], "bob");
    assert_eq!(e["user"]["domain"], "CORP");
    let p = &e["action"]["properties"];
    assert_eq!(p["Threat Name"], "Virus:DOS/EICAR_Test_File");
    assert_eq!(
        p["Process Name"],
        "C:\\Program Files\\Mozilla Firefox\\firefox.exe"
    );
    assert!(p.get("EventType").is_none(), "not an audit event");
    // A detection without a known process.
    let unknown = xml.replace(r"C:\Program Files\Mozilla Firefox\firefox.exe", "Unknown");
    assert!(event(&unknown).get("process").is_none());
}

#[test]
fn kerberos_client_address_is_its_ipv4() {
    let xml = record(
        "Microsoft-Windows-Security-Auditing",
        SECURITY,
        4768,
        "0x8010000000000000",
        "Security",
        r#"<EventData><Data Name="TargetUserName">bob</Data><Data Name="TargetDomainName">CORP.LOCAL</Data><Data Name="TargetSid">S-1-5-21-1-2-3-1104</Data><Data Name="Status">0x6</Data><Data Name="IpAddress">::ffff:192.0.2.7</Data><Data Name="IpPort">50123</Data></EventData>"#,
    );
    let e = event(&xml);
    assert_eq!(e["source"]["ip"], "192.0.2.7");
    assert!(e["source"].get("port").is_none(), "IpPort stays a property");
    assert_eq!(e["user"]["target"]["id"], "S-1-5-21-1-2-3-1104");
    assert_eq!(e["action"]["properties"]["EventType"], "AUDIT_FAILURE");
    assert_eq!(e["action"]["properties"]["IpAddress"], "::ffff:192.0.2.7");
}

#[test]
fn sysmon_registry_event_with_user() {
    let xml = record(
        "Microsoft-Windows-Sysmon",
        "{5770385F-C22A-43E0-BF4C-06F5698FFBD9}",
        13,
        "0x8000000000000000",
        "Microsoft-Windows-Sysmon/Operational",
        r#"<EventData><Data Name="EventType">SetValue</Data><Data Name="ProcessId">592</Data><Data Name="Image">C:\Windows\system32\services.exe</Data><Data Name="TargetObject">HKLM\System\x</Data><Data Name="User">NT AUTHORITY\SYSTEM</Data></EventData>"#,
    );
    let e = event(&xml);
    assert_eq!(e["process"]["pid"], 592);
    assert_eq!(e["user"]["name"], "SYSTEM");
    assert_eq!(e["user"]["domain"], "NT AUTHORITY");
    // Sysmon's own EventType field is kept (no audit keyword to override it).
    assert_eq!(e["action"]["properties"]["EventType"], "SetValue");
    assert_eq!(e["action"]["properties"]["ProcessId"], "592");
}

#[test]
fn other_channels_providers_and_damage_are_counted() {
    let mut acc = Accounting::default();
    let app = record(
        "Application Error",
        "",
        1000,
        "0x80000000000000",
        "Application",
        "",
    );
    let svc_other = record("Other", "", 7045, "0x8080000000000000", "System", "");
    let sysmon_dns = record(
        "Microsoft-Windows-Sysmon",
        "",
        22,
        "0x8000000000000000",
        "Microsoft-Windows-Sysmon/Operational",
        "",
    );
    let no_time = record("Service Control Manager", "", 7045, "0x0", "System", "")
        .replace("2024-05-06T07:08:09.1234567Z", "yesterday");
    let cases = [
        (&app, Some(SkipReason::ChannelNotCollected)),
        (&svc_other, Some(SkipReason::ProviderNotCollected)),
        (&sysmon_dns, Some(SkipReason::SysmonDuplicate)),
        (&no_time, Some(SkipReason::BadTime)),
    ];
    for (xml, want) in cases {
        let got = map_xml(xml);
        acc.count(&got);
        match (got, want) {
            (Ok(Mapped::Skipped { reason, .. }), Some(w)) => assert_eq!(reason, w),
            (other, w) => panic!("{other:?} / {w:?}"),
        }
    }
    for broken in [
        "",
        "<Event>",
        "not xml at all",
        "<Event><System><EventID>99999999999</EventID></System></Event>",
        "<Event><System><EventID>1</Foo></System></Event>",
    ] {
        acc.count(&map_xml(broken));
    }
    assert_eq!(acc.records, 9);
    assert_eq!(acc.sysmon_duplicates, 1);
    assert_eq!(acc.mapped, 0);
    assert!(acc.balanced());
    assert_eq!(acc.skipped["channel not collected"], 1);
    assert_eq!(acc.skipped["unreadable record (no EventID)"], 4);
    assert_eq!(
        acc.skipped
            .keys()
            .filter(|k| k.starts_with("unreadable record (malformed XML"))
            .count(),
        1
    );
}
