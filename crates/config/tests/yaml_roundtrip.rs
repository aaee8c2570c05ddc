//! Property: what `Config::to_yaml` writes (the installer's config.yaml) loads back to the
//! same `Config`, whatever the values, including strings YAML would otherwise read as
//! numbers, booleans or null.

use std::path::PathBuf;

use agent_config::{Config, LogFile, Region, WARN_COMPLIANCE_NO_EFFECT};
use proptest::prelude::*;

/// Intake-key-shaped strings, with the YAML look-alikes that must stay strings.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_.-]{1,40}",
        prop::sample::select(vec![
            "12345", "true", "null", "yes", "no", "1e3", "0x1F", "0o17", ".inf", "-.5", "on",
            "Null",
        ])
        .prop_map(str::to_owned),
    ]
}

fn filepath() -> impl Strategy<Value = String> {
    (
        prop::collection::vec("[a-z0-9 #:'\"-]{1,8}", 1..4),
        prop::sample::select(vec![
            "*.log", "x?.log", "[a-c]*", "file", "'quoted'", "a: b",
        ]),
    )
        .prop_map(|(dirs, last)| format!("/{}/{last}", dirs.join("/")))
}

fn proxy() -> impl Strategy<Value = Option<String>> {
    prop::option::of(
        (
            prop::sample::select(vec!["http", "HTTP"]),
            prop::option::of(("[a-z]{1,6}", "[a-zA-Z0-9:!#%]{0,8}")),
            "[a-z0-9.-]{1,12}",
            1u16..,
        )
            .prop_map(|(scheme, creds, host, port)| match creds {
                Some((u, p)) => format!("{scheme}://{u}:{p}@{host}:{port}"),
                None => format!("{scheme}://{host}:{port}"),
            }),
    )
}

fn config() -> impl Strategy<Value = Config> {
    (
        prop::collection::vec((filepath(), key()), 0..4),
        proxy(),
        any::<bool>(),
        prop::collection::vec("/[a-z0-9 :#-]{1,12}", 0..3),
        prop::collection::vec(
            prop::sample::select(vec!["event-collector", "compliance-collector"]),
            0..3,
        ),
        prop::option::of(key()),
        prop::option::of(prop::sample::select(Region::ALL.to_vec())),
        prop::option::of("https://[a-z]{1,8}\\.example(:[1-9][0-9]{1,3})?(/[a-z]{1,5})?"),
        any::<bool>(),
    )
        .prop_map(
            |(
                logfiles,
                proxy,
                dns,
                excluded,
                roles,
                intake_key,
                region,
                intake_url,
                auto_update,
            )| Config {
                logfiles: logfiles
                    .into_iter()
                    .map(|(filepath, intakekey)| LogFile {
                        filepath,
                        intakekey,
                    })
                    .collect(),
                http_proxy_url: proxy,
                enable_dns_resolutions: dns,
                hashes_excluded_paths: excluded.into_iter().map(PathBuf::from).collect(),
                roles: roles.into_iter().map(str::to_owned).collect(),
                intake_key,
                region,
                update_url: intake_url.clone(),
                intake_url,
                auto_update,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]
    #[test]
    fn to_yaml_loads_back_equal(config in config()) {
        let text = config.to_yaml().unwrap();
        let (back, warnings) = Config::from_str_named(&text, "generated.yaml")
            .map_err(|e| TestCaseError::fail(format!("{e}\n---\n{text}")))?;
        prop_assert_eq!(&back, &config, "{}", text);
        // Only the warnings about settings that have no effect yet.
        prop_assert!(
            warnings
                .iter()
                .all(|w| w.message == WARN_COMPLIANCE_NO_EFFECT),
            "{:?}",
            warnings
        );
    }
}

/// Text made of YAML's structural pieces and the config's keys, to reach odd corners.
fn yamlish() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            "logfiles",
            "HTTPProxyURL",
            "roles",
            "Region",
            "AutoUpdate",
            "filepath",
            "intakekey",
            ": ",
            ":",
            "- ",
            "\n",
            "  ",
            "[",
            "]",
            "{",
            "}",
            ",",
            "'",
            "\"",
            "#",
            "&a",
            "*a",
            "!!str ",
            "|",
            ">",
            "~",
            "null",
            "true",
            "12",
            "/var/**/x",
            "http://u:pw@h",
            "\t",
            "\u{feff}",
            "\r\n",
            "---\n",
            "...",
            "?",
            "%",
        ]),
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]
    #[test]
    fn any_text_gives_a_config_or_located_problems(text in yamlish()) {
        match Config::from_str_named(&text, "fuzz.yaml") {
            Ok((config, _)) => {
                // Whatever loads also survives the installer's rewrite.
                let again = Config::from_str_named(&config.to_yaml().unwrap(), "again.yaml");
                prop_assert_eq!(again.unwrap().0, config);
            }
            Err(e) => {
                prop_assert!(!e.problems().is_empty(), "{}", e);
                for p in e.problems() {
                    prop_assert!(!p.message.is_empty());
                    prop_assert!(p.to_string().starts_with("fuzz.yaml: "));
                    prop_assert!(!p.message.contains("pw@"), "{}", p);
                }
            }
        }
    }
}
