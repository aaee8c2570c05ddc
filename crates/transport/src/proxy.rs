//! HTTP proxies: parsing `http://user:pass@host:port`, redaction, `HTTPS_PROXY` /
//! `NO_PROXY`, and the CONNECT handshake that opens a tunnel to the intake.

use std::fmt;

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::TransportError;

/// Longest CONNECT answer head we accept.
const MAX_CONNECT_HEAD: usize = 16 * 1024;

/// A parsed HTTP proxy. `Debug` and `Display` never show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    host: String,
    port: u16,
    user: Option<String>,
    password: Option<String>,
}

impl ProxyUrl {
    /// Parses `http://[user[:pass]@]host[:port]` (a bare `host:port` is taken as `http://`).
    /// User and password may be percent-encoded. Errors never repeat the input.
    pub fn parse(url: &str) -> Result<Self, TransportError> {
        let url = url.trim();
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some(_) => {
                return Err(TransportError::InvalidProxy(
                    "only http:// proxies are supported",
                ))
            }
            None => url,
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => {
                let (name, pass) = match u.split_once(':') {
                    Some((n, p)) => (n, Some(p)),
                    None => (u, None),
                };
                let name = percent_decode(name)
                    .ok_or(TransportError::InvalidProxy("bad percent-encoding in user"))?;
                let pass = pass
                    .map(|p| {
                        percent_decode(p).ok_or(TransportError::InvalidProxy(
                            "bad percent-encoding in password",
                        ))
                    })
                    .transpose()?;
                (Some(name), pass)
            }
        };
        let (host, port) = split_host_port(hostport, 80)
            .ok_or(TransportError::InvalidProxy("expected host[:port]"))?;
        Ok(ProxyUrl {
            host,
            port,
            user,
            password,
        })
    }

    /// `host:port` to dial.
    pub fn addr(&self) -> String {
        join_host_port(&self.host, self.port)
    }

    /// The `Proxy-Authorization` value, when credentials are configured.
    fn authorization(&self) -> Option<String> {
        let user = self.user.as_deref()?;
        let creds = format!("{user}:{}", self.password.as_deref().unwrap_or(""));
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(creds)
        ))
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("http://")?;
        if let Some(user) = &self.user {
            f.write_str(user)?;
            if self.password.is_some() {
                f.write_str(":***")?;
            }
            f.write_str("@")?;
        }
        f.write_str(&self.addr())
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyUrl({self})")
    }
}

/// The redacted form of a proxy URL, for logs; unparsable input is hidden entirely.
pub fn redact_proxy(url: &str) -> String {
    match ProxyUrl::parse(url) {
        Ok(p) => p.to_string(),
        Err(_) => "<invalid proxy URL>".to_owned(),
    }
}

/// Chooses the proxy for `host`: the configured one if any, else (when `use_env`)
/// `https_proxy` / `HTTPS_PROXY` unless `no_proxy` / `NO_PROXY` matches the host.
/// `env` is a parameter so the rules can be tested without touching the process
/// environment.
pub fn resolve_proxy(
    configured: Option<&str>,
    use_env: bool,
    host: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<ProxyUrl>, TransportError> {
    if let Some(url) = configured.filter(|u| !u.trim().is_empty()) {
        return ProxyUrl::parse(url).map(Some);
    }
    if !use_env {
        return Ok(None);
    }
    let first = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| env(n).filter(|v| !v.trim().is_empty()))
    };
    let Some(url) = first(&["https_proxy", "HTTPS_PROXY"]) else {
        return Ok(None);
    };
    if let Some(no_proxy) = first(&["no_proxy", "NO_PROXY"]) {
        if no_proxy_matches(&no_proxy, host) {
            return Ok(None);
        }
    }
    ProxyUrl::parse(&url).map(Some)
}

/// `NO_PROXY` rules: comma-separated entries; `*` matches everything; `example.com` and
/// `.example.com` match the domain and its subdomains; IP addresses match exactly.
/// Ports in entries are ignored; CIDR ranges are not supported.
pub fn no_proxy_matches(no_proxy: &str, host: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    no_proxy.split(',').map(str::trim).any(|entry| {
        if entry.is_empty() {
            return false;
        }
        if entry == "*" {
            return true;
        }
        let entry = match split_host_port(entry, 0) {
            Some((h, _)) => h,
            None => entry.to_owned(),
        }
        .to_ascii_lowercase();
        let domain = entry.trim_start_matches("*.").trim_start_matches('.');
        host == domain || host.ends_with(&format!(".{domain}"))
    })
}

/// Sends `CONNECT target` on `stream` and reads the proxy's answer; on success the
/// stream is a raw tunnel to `target`.
pub(crate) async fn connect_tunnel(
    stream: &mut TcpStream,
    proxy: &ProxyUrl,
    target: &str,
) -> Result<(), TransportError> {
    let mut head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(auth) = proxy.authorization() {
        head.push_str("Proxy-Authorization: ");
        head.push_str(&auth);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let io_err = |source| TransportError::Connect {
        addr: proxy.addr(),
        source,
    };
    stream.write_all(head.as_bytes()).await.map_err(io_err)?;
    drop(head);

    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    let end = loop {
        let n = stream.read(&mut chunk).await.map_err(io_err)?;
        if n == 0 {
            return Err(TransportError::ProxyProtocol {
                proxy: proxy.to_string(),
            });
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        if buf.len() > MAX_CONNECT_HEAD {
            return Err(TransportError::ProxyProtocol {
                proxy: proxy.to_string(),
            });
        }
    };
    let status_line = buf[..end]
        .split(|&b| b == b'\n')
        .next()
        .map(|l| String::from_utf8_lossy(l).trim().to_owned())
        .unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(TransportError::ProxyProtocol {
            proxy: proxy.to_string(),
        });
    };
    let status = match code.parse::<u16>() {
        Ok(s) if version.starts_with("HTTP/") => s,
        _ => {
            return Err(TransportError::ProxyProtocol {
                proxy: proxy.to_string(),
            })
        }
    };
    if (200..300).contains(&status) {
        if buf.len() > end + 4 {
            // The proxy must not speak before the TLS client hello.
            return Err(TransportError::ProxyProtocol {
                proxy: proxy.to_string(),
            });
        }
        return Ok(());
    }
    let reason: String = parts.next().unwrap_or("").chars().take(120).collect();
    let hint = match status {
        // 407 is the standard answer; tinyproxy answers 401.
        401 | 407 if proxy.user.is_some() => {
            " (the proxy rejected the configured user and password)"
        }
        401 | 407 => " (the proxy requires credentials: put them in the proxy URL)",
        403 => " (the proxy does not allow this destination or port)",
        _ => "",
    };
    Err(TransportError::Proxy {
        proxy: proxy.to_string(),
        target: target.to_owned(),
        status,
        reason,
        hint,
    })
}

/// Splits `host[:port]` or `[v6][:port]`; `None` when empty or the port is not a number.
pub(crate) fn split_host_port(s: &str, default_port: u16) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        (h, port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, p.parse().ok()?),
            _ => (s, default_port),
        }
    };
    if host.is_empty() {
        return None;
    }
    Some((host.to_owned(), port))
}

/// `host:port`, bracketing IPv6 addresses.
pub(crate) fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_redacts() {
        let p = ProxyUrl::parse("http://alice:s%40cret@proxy.corp:3128").unwrap();
        assert_eq!(p.addr(), "proxy.corp:3128");
        assert_eq!(p.password.as_deref(), Some("s@cret"));
        assert_eq!(p.to_string(), "http://alice:***@proxy.corp:3128");
        assert!(!format!("{p:?}").contains("cret"));
        assert_eq!(
            p.authorization().unwrap(),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("alice:s@cret")
            )
        );
        let bare = ProxyUrl::parse("10.0.0.1:8080").unwrap();
        assert_eq!(bare.to_string(), "http://10.0.0.1:8080");
        assert!(bare.authorization().is_none());
        assert_eq!(ProxyUrl::parse("http://[::1]").unwrap().addr(), "[::1]:80");
    }

    #[test]
    fn invalid_proxy_errors_hide_the_input() {
        for bad in [
            "https://u:topsecret@h:1",
            "http://u:topsecret@h:notaport",
            "http://u:top%zzsecret@h:1",
        ] {
            let err = ProxyUrl::parse(bad).unwrap_err().to_string();
            assert!(!err.contains("topsecret"), "{err}");
            assert!(!redact_proxy(bad).contains("topsecret"));
        }
    }

    #[test]
    fn env_and_no_proxy() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let vars = &[
            ("HTTPS_PROXY", "http://u:p@proxy:3128"),
            ("NO_PROXY", "localhost, .internal.corp,10.1.2.3"),
        ];
        let got = resolve_proxy(None, true, "intake.sekoia.io", env(vars)).unwrap();
        assert_eq!(got.unwrap().addr(), "proxy:3128");
        for direct in ["localhost", "a.internal.corp", "internal.corp", "10.1.2.3"] {
            assert_eq!(resolve_proxy(None, true, direct, env(vars)).unwrap(), None);
        }
        assert_eq!(
            resolve_proxy(None, false, "intake.sekoia.io", env(vars)).unwrap(),
            None
        );
        // The configured proxy wins and ignores NO_PROXY.
        let cfg = resolve_proxy(Some("http://c:3128"), true, "localhost", env(vars)).unwrap();
        assert_eq!(cfg.unwrap().addr(), "c:3128");
        // Lowercase wins, like curl.
        let both = &[("https_proxy", "low:1"), ("HTTPS_PROXY", "up:2")];
        let got = resolve_proxy(None, true, "x", env(both)).unwrap();
        assert_eq!(got.unwrap().addr(), "low:1");
        assert!(no_proxy_matches("*", "anything"));
        assert!(!no_proxy_matches("corp", "notcorp"));
    }
}
