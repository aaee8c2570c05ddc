//! Every rule of the reference golden files (made by auditctl on real kernels) compiles to
//! exactly the bytes the kernel received.

use std::path::PathBuf;

use agent_linux_audit::rule::{compile_rule, Arch, RULE_HEADER_LEN};

/// Minimal base64 (standard alphabet, padding) for the `!!binary` blocks.
fn b64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("bad base64 {c}"),
    };
    let clean: Vec<u8> = s
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::new();
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= u32::from(val(c)) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

/// `(flags, bytes)` pairs of one golden file, and the machine named in its header.
fn read_golden(text: &str) -> (Arch, Vec<(String, Vec<u8>)>) {
    // Header: "# Linux host 5.13.0 ... x86_64 GNU/Linux". rule_data.yml has no header; its
    // masks are x86_64 numbers (open=2, truncate=76).
    let arch = match text.lines().next().filter(|l| l.starts_with("# Linux")) {
        Some(h) if h.contains("aarch64") => Arch::Aarch64,
        Some(h) if h.contains("x86_64") => Arch::X86_64,
        Some(h) => panic!("unknown machine in header {h}"),
        None => Arch::X86_64,
    };
    let mut rules = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(l) = lines.next() {
        let Some(flags) = l.strip_prefix("- flags: ") else {
            continue;
        };
        // Long plain scalars continue on more-indented lines.
        let mut flags = flags.to_owned();
        while let Some(n) = lines.peek() {
            if n.starts_with("    ") {
                flags.push(' ');
                flags.push_str(n.trim());
                lines.next();
            } else {
                break;
            }
        }
        let b = lines.next().expect("bytes line");
        assert!(b.trim() == "bytes: !!binary |", "unexpected {b}");
        let mut data = String::new();
        while let Some(n) = lines.peek() {
            if n.starts_with("    ") {
                data.push_str(n.trim());
                lines.next();
            } else {
                break;
            }
        }
        rules.push((flags, b64(&data)));
    }
    (arch, rules)
}

/// Most golden files hold the rule as read back from netlink, where the payload is padded
/// to 4 bytes (`NLMSG_ALIGN`); auditctl sends exactly the fixed part plus `buflen` bytes.
/// Strips that padding, checking it is zeros.
fn unpad(mut b: Vec<u8>) -> Vec<u8> {
    let buflen = u32::from_ne_bytes(b[1036..1040].try_into().unwrap()) as usize;
    let len = RULE_HEADER_LEN + buflen;
    assert!(
        b.len() >= len && b.len() - len < 4,
        "golden length {} vs buflen {buflen}",
        b.len()
    );
    assert!(b[len..].iter().all(|&x| x == 0), "padding must be zeros");
    b.truncate(len);
    b
}

#[test]
fn every_golden_rule_compiles_to_the_golden_bytes() {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/go-libaudit/audit-rules"
    ));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("golden rules missing at {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".yml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 13,
        "expected 13 golden files, found {}",
        files.len()
    );
    let mut checked = 0;
    let mut failures = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let (arch, rules) = read_golden(&text);
        assert!(!rules.is_empty(), "{}: no rules", f.display());
        for (flags, want) in rules {
            checked += 1;
            let want = unpad(want);
            match compile_rule(&flags, arch) {
                Ok(got) if got == want => {}
                Ok(got) => failures.push(format!(
                    "{}: {flags}: {} bytes, want {}; first difference at {:?}",
                    f.display(),
                    got.len(),
                    want.len(),
                    got.iter().zip(&want).position(|(a, b)| a != b)
                )),
                Err(e) => failures.push(format!("{}: {flags}: {e}", f.display())),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} rules differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(checked, 126, "rule count of the reference set");
}
