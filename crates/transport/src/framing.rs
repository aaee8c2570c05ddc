//! Request bodies of the public intake protocol.
//!
//! - `/batch`: `{"intake_key": K, "jsons": ["<event>", ...]}` (one key per request);
//! - `/array`: `[{"intake_key": K, "json": "<event>"}, ...]` (keys mixed);
//! - `/plain/batch`: raw lines separated by `\n`, key in `X-SEKOIAIO-INTAKE-KEY`.
//!
//! Event payloads are JSON text; should one not be UTF-8, its invalid sequences are
//! replaced by U+FFFD since a JSON string cannot carry them. Log lines go to
//! `/plain/batch` byte for byte as read, invalid UTF-8 included: that body is bytes.

use std::io::Write as _;

use flate2::write::GzEncoder;
use flate2::Compression;

/// Path of the single-key event endpoint.
pub const PATH_BATCH: &str = "/batch";
/// Path of the mixed-key event endpoint.
pub const PATH_ARRAY: &str = "/array";
/// Path of the raw-lines endpoint.
pub const PATH_PLAIN: &str = "/plain/batch";
/// Header carrying the intake key of a `/plain/batch` request.
pub const HEADER_INTAKE_KEY: &str = "X-SEKOIAIO-INTAKE-KEY";

/// Bytes that must be escaped inside a JSON string: controls, `"` and `\\`.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Writes `bytes` as a JSON string literal.
fn push_json_string(out: &mut Vec<u8>, bytes: &[u8]) {
    // Events are serialized by the agent and are UTF-8; the lossy path is only a guard.
    let text = match std::str::from_utf8(bytes) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    };
    let mut rest = text.as_bytes();
    out.reserve(rest.len() + rest.len() / 8 + 2);
    out.push(b'"');
    while let Some(i) = rest.iter().position(|&c| NEEDS_ESCAPE[usize::from(c)]) {
        out.extend_from_slice(&rest[..i]);
        match rest[i] {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            c => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(c >> 4)]);
                out.push(HEX[usize::from(c & 0xf)]);
            }
        }
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

/// `/batch` body for events of one key.
pub fn batch_body<'a>(key: &str, events: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(b"{\"intake_key\":");
    push_json_string(&mut out, key.as_bytes());
    out.extend_from_slice(b",\"jsons\":[");
    for (i, ev) in events.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_json_string(&mut out, ev);
    }
    out.extend_from_slice(b"]}");
    out
}

/// `/array` body for events of mixed keys.
pub fn array_body<'a>(events: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    out.push(b'[');
    for (i, (key, ev)) in events.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"intake_key\":");
        push_json_string(&mut out, key.as_bytes());
        out.extend_from_slice(b",\"json\":");
        push_json_string(&mut out, ev);
        out.push(b'}');
    }
    out.push(b']');
    out
}

/// `/plain/batch` body: the lines joined by `\n`, bytes untouched.
pub fn plain_body<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    for (i, line) in lines.into_iter().enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        out.extend_from_slice(line);
    }
    out
}

/// gzip-compresses a body.
pub fn gzip(body: &[u8], level: u32) -> std::io::Result<Vec<u8>> {
    let mut enc = GzEncoder::new(
        Vec::with_capacity(body.len() / 4 + 64),
        Compression::new(level.min(9)),
    );
    enc.write_all(body)?;
    enc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn batch_and_array_are_the_documented_json() {
        let evs: [&[u8]; 2] = [br#"{"a":"x\"y\n"}"#, b"{\"b\":\x01}"];
        let v: Value = serde_json::from_slice(&batch_body("K1", evs)).unwrap();
        assert_eq!(v["intake_key"], "K1");
        assert_eq!(v["jsons"][0], r#"{"a":"x\"y\n"}"#);
        assert_eq!(v["jsons"][1], "{\"b\":\u{1}}");
        let v: Value =
            serde_json::from_slice(&array_body([("K1", evs[0]), ("K\"2", evs[1])])).unwrap();
        assert_eq!(v[1]["intake_key"], "K\"2");
        assert_eq!(v[0]["json"], r#"{"a":"x\"y\n"}"#);
        let v: Value = serde_json::from_slice(&batch_body("K", [&b"\xff\xfe"[..]])).unwrap();
        assert_eq!(v["jsons"][0], "\u{fffd}\u{fffd}");
    }

    proptest::proptest! {
        #[test]
        fn any_text_round_trips_through_batch_json(text in "\\PC*|[\\x00-\\x7f]*") {
            let v: Value = serde_json::from_slice(&batch_body("K", [text.as_bytes()])).unwrap();
            proptest::prop_assert_eq!(v["jsons"][0].as_str().unwrap(), text.as_str());
        }
    }

    #[test]
    fn plain_keeps_bytes_and_gzip_round_trips() {
        let body = plain_body([&b"one"[..], b"t\xffo", b""]);
        assert_eq!(body, b"one\nt\xffo\n");
        let gz = gzip(&body, 6).unwrap();
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut out).unwrap();
        assert_eq!(out, body);
    }
}
