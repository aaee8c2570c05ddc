//! Arbitrary rule text: the compiler returns bytes or an error, never panics, and what it
//! returns is a well-formed `audit_rule_data`.
#![no_main]

use agent_linux_audit::rule::{compile_rule, Arch, RULE_HEADER_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for arch in [Arch::X86_64, Arch::Aarch64] {
        if let Ok(b) = compile_rule(text, arch) {
            assert!(b.len() >= RULE_HEADER_LEN);
            let buflen = u32::from_ne_bytes([b[1036], b[1037], b[1038], b[1039]]) as usize;
            assert_eq!(b.len(), RULE_HEADER_LEN + buflen);
        }
    }
});
