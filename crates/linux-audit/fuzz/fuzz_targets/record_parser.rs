//! Arbitrary bytes as text log lines and as netlink payloads: parsing, reassembly and the
//! event accessors must never panic.
#![no_main]

use agent_linux_audit::reassembly::Reassembler;
use agent_linux_audit::{parse_line, parse_netlink};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut r = Reassembler::default();
    let mut events = Vec::new();
    if let Ok(text) = std::str::from_utf8(data) {
        for line in text.lines() {
            if let Ok(rec) = parse_line(line) {
                for f in rec.fields() {
                    let _ = f.text();
                }
                events.extend(r.push(rec));
            }
        }
    }
    if data.len() >= 2 {
        let t = u16::from_le_bytes([data[0], data[1]]);
        if let Ok(rec) = parse_netlink(t, &data[2..]) {
            events.extend(r.push(rec));
        }
    }
    events.extend(r.flush());
    for e in &events {
        let _ = (e.execve_args(), e.proctitle(), e.cwd(), e.paths(), e.keys());
        if let Some(a) = e.sockaddr() {
            let _ = a.to_string();
        }
    }
});
