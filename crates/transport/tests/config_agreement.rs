//! Property: `agent config check` and the shipper agree. Every config.yaml the checker
//! accepts starts the shipper (`TransportConfig::from_config` then `Shipper::new`, what
//! `agent run` does), and every `HTTPProxyURL` / `IntakeURL` it refuses is refused by the
//! shipper too, with the very message the checker printed.

use std::sync::Arc;

use agent_config::Config;
use agent_transport::{Counters, Shipper, TransportConfig};
use proptest::prelude::*;

/// User names and passwords as people write them: reserved characters unencoded, valid
/// and invalid percent escapes, non-ASCII.
fn userinfo() -> impl Strategy<Value = String> {
    prop::option::weighted(
        0.6,
        (
            "[a-zA-Z0-9@%:._~-]{0,6}",
            prop::option::weighted(
                0.8,
                prop_oneof![
                    "[a-zA-Z0-9@%:#/?!$&*+,;=._~ -]{0,10}",
                    prop::sample::select(vec![
                        "S3cret%zzPW",
                        "p%40ss",
                        "%",
                        "100%",
                        "%e9t%C3%A9",
                        "pässwörd"
                    ])
                    .prop_map(str::to_owned),
                ],
            ),
        ),
    )
    .prop_map(|ui| match ui {
        None => String::new(),
        Some((user, None)) => format!("{user}@"),
        Some((user, Some(pass))) => format!("{user}:{pass}@"),
    })
}

/// Mostly usable values, and the odd ones each parser must refuse the same way.
fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-z][a-z0-9-]{0,8}[a-z0-9](\\.[a-z][a-z0-9-]{0,8}[a-z0-9]){0,3}",
        2 => prop::sample::select(vec![
            "intake.sekoia.io",
            "127.0.0.1",
            "[::1]",
            "a_b.example",
            "a.example.",
            "xn--bcher-kva.example",
            "0x1f.example",
        ])
        .prop_map(str::to_owned),
        2 => prop::sample::select(vec![
            "[::1", "::1", "-x.example", "x-.example", "a..b", "1.2.3", "büch.example",
            "pro xy", "", "%41.example",
        ])
        .prop_map(str::to_owned),
    ]
}

fn port(none_weight: u32) -> impl Strategy<Value = String> {
    prop_oneof![
        none_weight => Just(String::new()),
        6 => (1u16..).prop_map(|p| format!(":{p}")),
        1 => prop::sample::select(vec![":", ":0", ":65536", ":+1", ":x", ":08080"])
            .prop_map(str::to_owned),
    ]
}

fn scheme(usual: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just(format!("{usual}://")),
        1 => Just(format!("{}://", usual.to_uppercase())),
        1 => prop::sample::select(vec!["http://", "https://", "socks5://", ""])
            .prop_map(str::to_owned),
    ]
}

fn tail(usual: Vec<&'static str>) -> impl Strategy<Value = &'static str> {
    prop_oneof![
        5 => prop::sample::select(usual),
        1 => prop::sample::select(vec!["/a b", "/%zz", "?q=1", "#f", "/x?", "/p/"]),
    ]
}

fn proxy_url() -> impl Strategy<Value = String> {
    (
        scheme("http"),
        userinfo(),
        host(),
        port(1),
        tail(vec!["", "/"]),
    )
        .prop_map(|(s, u, h, p, t)| format!("{s}{u}{h}{p}{t}"))
}

fn intake_url() -> impl Strategy<Value = String> {
    (
        scheme("https"),
        prop::option::weighted(0.1, "[a-z]{1,4}(:[a-z]{0,4})?@"),
        host(),
        port(4),
        tail(vec!["", "/", "/api/v1/intake-http", "/x/", "/%41"]),
    )
        .prop_map(|(s, creds, h, p, t)| format!("{s}{}{h}{p}{t}", creds.unwrap_or_default()))
}

/// YAML single-quoted scalar: the value reaches the config exactly as generated.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn config_text() -> impl Strategy<Value = String> {
    (
        prop::option::of(proxy_url()),
        prop::option::of(intake_url()),
        prop::option::of(prop::sample::select(vec!["fra1", "usa1", "sgp1"])),
    )
        .prop_map(|(proxy, intake, region)| {
            let mut text = String::from("IntakeKey: KEY-1\n");
            if let Some(p) = proxy {
                text += &format!("HTTPProxyURL: {}\n", quoted(&p));
            }
            if let Some(i) = intake {
                text += &format!("IntakeURL: {}\n", quoted(&i));
            }
            if let Some(r) = region {
                text += &format!("Region: {r}\n");
            }
            text
        })
}

/// What `agent run` does with the loaded settings before the shipper thread starts.
fn start_shipper(config: &Config) -> Result<(), String> {
    let settings = TransportConfig::from_config(config).map_err(|e| e.to_string())?;
    Shipper::new(settings, Arc::new(Counters::default()))
        .map(drop)
        .map_err(|e| e.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn check_and_start_agree(text in config_text()) {
        // The settings as typed, without the checker's validation: what a start that
        // skipped `config check` would see.
        let unchecked: Config = serde_yaml::from_str(&text).unwrap();
        let at_start = start_shipper(&unchecked);
        match Config::from_str_named(&text, "config.yaml") {
            Ok((checked, _)) => {
                prop_assert_eq!(&checked, &unchecked);
                prop_assert!(at_start.is_ok(), "check accepted, start refused: {:?}\n{}", at_start, text);
            }
            Err(e) => {
                let refused: Vec<&str> = e.problems().iter().map(|p| p.message.as_str()).collect();
                let Err(start_message) = at_start else {
                    return Err(TestCaseError::fail(format!("check refused, start accepted: {e}\n{text}")));
                };
                prop_assert!(
                    refused.contains(&start_message.as_str()),
                    "start said {:?}, check said {:?}\n{}",
                    start_message,
                    refused,
                    text
                );
                // Neither ever shows a password.
                prop_assert!(!e.to_string().contains("S3cret") && !start_message.contains("S3cret"));
            }
        }
    }
}

#[test]
fn the_reported_cases_agree() {
    for (text, accepted) in [
        ("HTTPProxyURL: https://proxy:3128\n", false),
        ("IntakeURL: http://relay:8080\n", false),
        ("HTTPProxyURL: http://bob:S3cret%zzPW@proxy:3128\n", true),
        (
            "IntakeURL: https://relay.corp:8443/intake/\nHTTPProxyURL: http://[::1]:3128\n",
            true,
        ),
    ] {
        let unchecked: Config = serde_yaml::from_str(text).unwrap();
        let checked = Config::from_str_named(text, "config.yaml");
        assert_eq!(checked.is_ok(), accepted, "{text}: {checked:?}");
        match (checked, start_shipper(&unchecked)) {
            (Ok(_), Ok(())) => {}
            (Err(e), Err(start)) => assert_eq!(e.problems()[0].message, start, "{text}"),
            (check, start) => panic!("{text}: check {check:?}, start {start:?}"),
        }
    }
}
