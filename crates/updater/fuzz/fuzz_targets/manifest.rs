//! Arbitrary bytes as a manifest, as a signature over a manifest, and as a trusted comment:
//! parsing and verification must never panic.
#![no_main]

use agent_updater::manifest::TrustedComment;
use agent_updater::{Manifest, TrustedKeys};
use libfuzzer_sys::fuzz_target;

const KEY: &str = "RWT0wBi7pDcGud20Blc9y4w2MNnTLy86vUhMPl/5IXFUtMhnzCJl0Gjn";

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::parse(data) {
        let _ = TrustedComment::for_manifest(&m);
        let _ = m.target("linux-x86_64");
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = TrustedComment::parse(text);
    }
    if let Ok(keys) = TrustedKeys::from_lines(KEY) {
        // Split the input: a signature, then the signed bytes.
        let cut = data.first().map_or(0, |&b| b as usize).min(data.len());
        let _ = keys.verify(&data[cut..], &data[..cut]);
    }
});
