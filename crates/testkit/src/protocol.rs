//! The intake protocol as the test intake checks it.

use std::io::Read as _;

/// The records of one valid request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// Intake key of each record, in order.
    pub keys: Vec<String>,
    /// Each record: an event's JSON text, or a raw log line (bytes as sent).
    pub records: Vec<Vec<u8>>,
}

fn key_ok(k: &str) -> bool {
    !k.is_empty() && k.len() <= 256 && k.chars().all(|c| c.is_ascii_graphic())
}

fn check_event(s: &str) -> Result<Vec<u8>, String> {
    match serde_json::from_str::<serde_json::Value>(s) {
        Ok(serde_json::Value::Object(_)) => Ok(s.as_bytes().to_vec()),
        _ => Err(format!("event is not a JSON object: {s:.80}")),
    }
}

/// Parses and checks one request (`path` may carry a prefix such as
/// `/api/v1/intake-http`); `Err` says which rule the request broke.
///
/// - `/batch`: `{"intake_key": K, "jsons": ["<event>", ...]}`, one key for all;
/// - `/array`: `[{"intake_key": K, "json": "<event>"}, ...]`;
/// - `/plain/batch`: raw lines separated by `\n`, key in `X-SEKOIAIO-INTAKE-KEY`.
///
/// Every body must be gzip (`Content-Encoding: gzip`).
pub fn parse_request(
    path: &str,
    content_encoding: Option<&[u8]>,
    plain_key: Option<&str>,
    body: &[u8],
) -> Result<Parsed, String> {
    if content_encoding != Some(b"gzip") {
        return Err("missing Content-Encoding: gzip".into());
    }
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut plain)
        .map_err(|e| format!("not gzip: {e}"))?;
    if path.ends_with("/plain/batch") {
        let key = plain_key
            .filter(|k| key_ok(k))
            .ok_or("/plain/batch without a valid X-SEKOIAIO-INTAKE-KEY")?;
        if plain.is_empty() {
            return Err("/plain/batch with no line".into());
        }
        let records: Vec<Vec<u8>> = plain.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
        return Ok(Parsed {
            keys: vec![key.to_owned(); records.len()],
            records,
        });
    }
    let v: serde_json::Value =
        serde_json::from_slice(&plain).map_err(|e| format!("{path}: body is not JSON: {e}"))?;
    if path.ends_with("/batch") {
        let obj = v.as_object().ok_or("/batch body is not an object")?;
        if obj.len() != 2 {
            return Err("/batch must have exactly intake_key and jsons".into());
        }
        let key = obj
            .get("intake_key")
            .and_then(|k| k.as_str())
            .filter(|k| key_ok(k))
            .ok_or("/batch: bad intake_key")?;
        let jsons = obj
            .get("jsons")
            .and_then(|j| j.as_array())
            .ok_or("/batch: jsons is not an array")?;
        if jsons.is_empty() {
            return Err("/batch with no event".into());
        }
        let records = jsons
            .iter()
            .map(|j| check_event(j.as_str().ok_or("/batch: jsons item is not a string")?))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Parsed {
            keys: vec![key.to_owned(); records.len()],
            records,
        })
    } else if path.ends_with("/array") {
        let arr = v.as_array().ok_or("/array body is not an array")?;
        if arr.is_empty() {
            return Err("/array with no event".into());
        }
        let mut parsed = Parsed {
            keys: Vec::new(),
            records: Vec::new(),
        };
        for item in arr {
            let obj = item.as_object().ok_or("/array item is not an object")?;
            if obj.len() != 2 {
                return Err("/array item must have exactly intake_key and json".into());
            }
            let key = obj
                .get("intake_key")
                .and_then(|k| k.as_str())
                .filter(|k| key_ok(k))
                .ok_or("/array: bad intake_key")?;
            let json = obj
                .get("json")
                .and_then(|j| j.as_str())
                .ok_or("/array: json is not a string")?;
            parsed.keys.push(key.to_owned());
            parsed.records.push(check_event(json)?);
        }
        Ok(parsed)
    } else {
        Err(format!("unknown path {path}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn gz(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn parses_the_three_paths_and_refuses_bad_shapes() {
        let p = parse_request(
            "/batch",
            Some(b"gzip"),
            None,
            &gz(br#"{"intake_key":"k1","jsons":["{\"a\":1}","{}"]}"#),
        )
        .unwrap();
        assert_eq!(p.keys, ["k1", "k1"]);
        assert_eq!(p.records, [br#"{"a":1}"#.to_vec(), b"{}".to_vec()]);

        let p = parse_request(
            "/api/v1/intake-http/array",
            Some(b"gzip"),
            None,
            &gz(br#"[{"intake_key":"a","json":"{}"},{"intake_key":"b","json":"{}"}]"#),
        )
        .unwrap();
        assert_eq!(p.keys, ["a", "b"]);

        let p = parse_request("/plain/batch", Some(b"gzip"), Some("k"), &gz(b"x\n\xffy")).unwrap();
        assert_eq!(p.records, [b"x".to_vec(), b"\xffy".to_vec()]);

        for (path, enc, key, body) in [
            ("/batch", None, None, gz(b"{}")),
            ("/batch", Some(&b"gzip"[..]), None, b"not gzip".to_vec()),
            (
                "/batch",
                Some(b"gzip"),
                None,
                gz(br#"{"intake_key":"","jsons":["{}"]}"#),
            ),
            (
                "/batch",
                Some(b"gzip"),
                None,
                gz(br#"{"intake_key":"k","jsons":["[]"]}"#),
            ),
            ("/array", Some(b"gzip"), None, gz(b"[]")),
            ("/plain/batch", Some(b"gzip"), None, gz(b"x")),
            ("/other", Some(b"gzip"), None, gz(b"{}")),
        ] {
            assert!(
                parse_request(path, enc, key, &body).is_err(),
                "{path} {body:?}"
            );
        }
    }
}
