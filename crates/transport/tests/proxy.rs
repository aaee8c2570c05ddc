//! The intake reached through a real tinyproxy with Basic authentication.

mod common;

use std::time::Duration;

use agent_config::Config;
use agent_transport::{MemorySource, TransportConfig};
use common::{config, event, seq_of, ship_until, Action, Intake, LogCapture};
// The tinyproxy tests run on Unix only (below).
#[cfg(unix)]
use {
    agent_transport::{IntakeClient, IntakePost, TransportError},
    common::Tinyproxy,
};

#[cfg(unix)]
const PASSWORD: &str = "s3cr3t-Pa55";

// Unix only: tinyproxy is a Linux program, which a Windows test binary (under Wine) cannot
// start; the minimal proxy below covers the Windows build.
#[cfg(unix)]
#[test]
fn traffic_goes_through_the_proxy_with_its_credentials() {
    let intake = Intake::start(Box::new(|_| Action::Accept));
    let proxy = Tinyproxy::start("agent", PASSWORD);
    let (logs, _guard) = LogCapture::install();
    let source = MemorySource::new();
    for i in 0..300 {
        source.push(event("KEY-proxied", i));
    }
    let mut cfg = config(&intake);
    cfg.proxy = Some(
        format!("http://agent:{PASSWORD}@127.0.0.1:{}", proxy.port)
            .parse()
            .unwrap(),
    );
    let (counters, _) = ship_until(cfg, &source, Duration::from_secs(30), || {
        source.acked() == Some(299)
    });
    let got: Vec<usize> = intake.accepted().iter().map(|(_, p)| seq_of(p)).collect();
    assert_eq!(got, (0..300).collect::<Vec<_>>());
    assert_eq!(counters.snapshot().requests, 2);

    // tinyproxy admitted a CONNECT to the intake's port: only possible with the right
    // credentials since BasicAuth is on.
    let log = proxy.log_text();
    let target = format!("127.0.0.1:{}", intake.addr.port());
    assert!(
        log.lines()
            .any(|l| l.contains("CONNECT") && l.contains(&target)),
        "tinyproxy log has no CONNECT to {target}:\n{log}"
    );
    assert!(log.contains("Established connection"), "{log}");
    let text = logs.text();
    assert!(text.contains("agent:***@127.0.0.1"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
}

// Unix only: tinyproxy is a Linux program, which a Windows test binary (under Wine) cannot
// start; the minimal proxy below covers the Windows build.
#[cfg(unix)]
#[test]
fn wrong_proxy_password_is_a_clear_error_without_the_password() {
    let intake = Intake::start(Box::new(|_| Action::Accept));
    let proxy = Tinyproxy::start("agent", PASSWORD);
    let (logs, _guard) = LogCapture::install();
    let wrong = "Wr0ng-Secret";
    let mut cfg = config(&intake);
    cfg.proxy = Some(
        format!("http://agent:{wrong}@127.0.0.1:{}", proxy.port)
            .parse()
            .unwrap(),
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut client = IntakeClient::new(&cfg).unwrap();
    let err = rt
        .block_on(client.post(IntakePost {
            path: "/batch",
            content_type: "application/json",
            header: None,
            body: bytes::Bytes::from_static(b"x"),
        }))
        .unwrap_err();
    let msg = err.to_string();
    // tinyproxy answers 401 where RFC 9110 says 407; both are understood.
    assert!(
        matches!(
            err,
            TransportError::Proxy {
                status: 401 | 407,
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("rejected the configured user and password"),
        "{msg}"
    );
    assert!(msg.contains("http://agent:***@127.0.0.1"), "{msg}");
    assert!(
        !msg.contains(wrong) && !format!("{err:?}").contains(wrong),
        "{msg}"
    );
    assert!(!format!("{cfg:?}").contains(wrong));

    // Through the shipper: nothing delivered, nothing lost, no password anywhere.
    let source = MemorySource::new();
    source.push(event("KEY-proxied", 0));
    let (counters, _) = ship_until(cfg, &source, Duration::from_secs(2), || false);
    assert!(intake.seen().is_empty());
    assert_eq!(source.unacked().len(), 1);
    let last = counters.snapshot().last_error.unwrap();
    // tinyproxy saw the CONNECT but never opened the tunnel.
    let log = proxy.log_text();
    assert!(log.contains("CONNECT 127.0.0.1:"), "{log}");
    assert!(!log.contains("Established connection"), "{log}");
    assert!(
        last.contains("user and password") && !last.contains(wrong),
        "{last}"
    );
    let text = logs.text();
    assert!(
        text.contains("user and password") && !text.contains(wrong),
        "{text}"
    );
}

/// docs/config.md says special characters in the proxy password may be written as they
/// are: a config.yaml with a literal `%` loads, and exactly that password goes on the wire.
/// tinyproxy only takes `[A-Za-z0-9._-]` passwords, so the proxy here is a minimal CONNECT
/// proxy on loopback that admits only the expected credentials.
#[test]
fn a_password_with_a_literal_percent_written_in_config_yaml_opens_the_proxy() {
    let password = "S3cret%zzPW";
    let intake = Intake::start(Box::new(|_| Action::Accept));
    let proxy = common::AuthProxy::start(&format!("bob:{password}"));
    // Every test here captures its logs: a thread without a subscriber can make tracing
    // cache "nobody listens" for a callsite the other tests assert on.
    let (logs, _guard) = LogCapture::install();
    let text = format!(
        "IntakeURL: {}\nHTTPProxyURL: http://bob:{password}@127.0.0.1:{}\n",
        intake.url(),
        proxy.port
    );
    let (loaded, _) = Config::from_str_named(&text, "config.yaml").unwrap();
    let mut cfg = TransportConfig::from_config(&loaded).unwrap();
    let test = config(&intake);
    cfg.extra_ca_file = test.extra_ca_file;
    cfg.proxy_from_env = false;
    cfg.batch_max_delay = test.batch_max_delay;
    let source = MemorySource::new();
    for i in 0..10 {
        source.push(event("KEY-percent", i));
    }
    ship_until(cfg, &source, Duration::from_secs(30), || {
        source.acked() == Some(9)
    });
    let got: Vec<usize> = intake.accepted().iter().map(|(_, p)| seq_of(p)).collect();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
    assert_eq!(proxy.tunnels(), 1, "{:?}", proxy.refused());
    assert!(proxy.refused().is_empty(), "{:?}", proxy.refused());
    let text = logs.text();
    assert!(text.contains("bob:***@127.0.0.1"), "{text}");
    assert!(!text.contains(password), "{text}");
}
