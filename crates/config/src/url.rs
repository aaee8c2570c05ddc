//! `host[:port]` as both URLs of the configuration write it, checked with `http`'s
//! authority parser plus the few things it leaves to the caller.

use http::uri::Authority;

/// Splits and checks `host:port` (an IPv6 address in brackets). Without a port,
/// `default_port` is used, or the port is reported missing when there is none. The host
/// is returned without brackets.
pub(crate) fn host_port(
    hostport: &str,
    default_port: Option<u16>,
) -> Result<(String, u16), &'static str> {
    if hostport.is_empty() {
        return Err("missing host");
    }
    let authority: Authority = hostport.parse().map_err(|_| {
        if hostport.contains(char::is_whitespace) {
            "the host contains whitespace"
        } else if hostport.starts_with('[') && !hostport.contains(']') {
            "unterminated `[` in the IPv6 host"
        } else {
            "the host is not a valid name or IP address"
        }
    })?;
    let host = authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err("missing host");
    }
    // `Authority` reads `:+1` as port 1 and an out-of-range port as no port at all, so the
    // port is read from the text.
    let written = match hostport.rsplit_once(':') {
        Some((before, port)) if !before.ends_with(':') && !port.contains(']') => Some(port),
        _ => None,
    };
    let port = match written {
        None => default_port.ok_or("missing port")?,
        Some("") => return Err("missing port"),
        Some(p) => Some(p)
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|p| *p != 0)
            .ok_or("the port must be a number from 1 to 65535")?,
    };
    Ok((host.to_owned(), port))
}

/// What follows `scheme://` in `url` (scheme case-insensitive). The other of http and
/// https is refused with `swapped`, which says why; anything else with `wrong`.
pub(crate) fn after_scheme<'a>(
    url: &'a str,
    scheme: &str,
    swapped: &'static str,
    wrong: &'static str,
) -> Result<&'a str, &'static str> {
    match url.split_once("://") {
        Some((s, rest)) if s.eq_ignore_ascii_case(scheme) => Ok(rest),
        Some((s, _)) if ["http", "https"].iter().any(|h| s.eq_ignore_ascii_case(h)) => Err(swapped),
        _ => Err(wrong),
    }
}

/// `host:port`, with an IPv6 address in brackets.
pub(crate) fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_forms() {
        let ok = |s, d| host_port(s, d).unwrap();
        assert_eq!(ok("proxy:3128", None), ("proxy".into(), 3128));
        assert_eq!(ok("[::1]:9", None), ("::1".into(), 9));
        assert_eq!(ok("h", Some(443)), ("h".into(), 443));
        assert_eq!(ok("[::1]", Some(443)), ("::1".into(), 443));
        assert_eq!(host_port("h:", Some(443)), Err("missing port"));
        assert_eq!(host_port("h", None), Err("missing port"));
        assert_eq!(host_port("[::1]", None), Err("missing port"));
        assert_eq!(host_port(":80", None), Err("missing host"));
        for bad_port in ["h:0", "h:65536", "h:+1", "h:x"] {
            assert_eq!(
                host_port(bad_port, Some(443)),
                Err("the port must be a number from 1 to 65535"),
                "{bad_port}"
            );
        }
        assert_eq!(
            host_port("a b:1", None),
            Err("the host contains whitespace")
        );
        assert_eq!(
            host_port("[::1:1", None),
            Err("unterminated `[` in the IPv6 host")
        );
        assert_eq!(join_host_port("::1", 3), "[::1]:3");
    }
}
