//! Property tests of the manifest parser: arbitrary input never panics, and any valid
//! manifest parses back to what was written.

use agent_updater::Manifest;
use proptest::prelude::*;

fn json(serial: u64, major: u64, minor: u64, size: u64, url: &str, sha: &[u8; 32]) -> String {
    let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        r#"{{"format":1,"product":"endpoint-agent","channel":"stable","serial":{serial},
        "version":"{major}.{minor}.0","expires":"2031-02-03T04:05:06Z","min_from_version":"0.1.0",
        "targets":{{"linux-x86_64":{{"version":"{major}.{minor}.0","url":"{url}","size":{size},"sha256":"{hex}"}}}}}}"#
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Manifest::parse(&bytes);
    }

    #[test]
    fn mutated_manifests_never_panic(pos in 0usize..400, byte in any::<u8>(), cut in 0usize..400) {
        let mut text = json(5, 1, 2, 77, "a/b", &[7; 32]).into_bytes();
        let p = pos % text.len();
        text[p] = byte;
        text.truncate(text.len() - cut % text.len());
        let _ = Manifest::parse(&text);
    }

    #[test]
    fn valid_manifests_round_trip(
        serial in 1u64..u64::MAX,
        major in 0u64..1000,
        minor in 0u64..1000,
        size in 1u64..(512 << 20),
        url in "[a-z0-9]{1,12}(/[a-z0-9._-]{1,12}){0,3}",
        sha in any::<[u8; 32]>(),
    ) {
        prop_assume!(!url.split('/').any(|s| s == "." || s == ".."));
        let m = Manifest::parse(json(serial, major, minor, size, &url, &sha).as_bytes()).unwrap();
        prop_assert_eq!(m.serial, serial);
        prop_assert_eq!(m.version.major, major);
        let t = &m.targets["linux-x86_64"];
        prop_assert_eq!(t.size, size);
        prop_assert_eq!(&t.url, &url);
        prop_assert_eq!(t.sha256, sha);
    }
}
