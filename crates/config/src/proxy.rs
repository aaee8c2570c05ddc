//! The `HTTPProxyURL` value: `http(s)://[user:pass@]host:port`, parsed and validated without
//! ever putting the password in an error message or a `Debug` output.

use std::fmt;
use std::str::FromStr;

/// How the agent talks to the proxy itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyScheme {
    /// Plain HTTP to the proxy (CONNECT then TLS to the intake).
    Http,
    /// TLS to the proxy.
    Https,
}

/// A validated proxy URL. `Debug` and `Display` redact the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    /// `http` or `https`.
    pub scheme: ProxyScheme,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// User name, when the proxy needs credentials.
    pub username: Option<String>,
    /// Password; never printed.
    pub password: Option<String>,
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyUrl")
            .field("scheme", &self.scheme)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl fmt::Display for ProxyUrl {
    /// The URL with the password replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            ProxyScheme::Http => "http",
            ProxyScheme::Https => "https",
        };
        write!(f, "{scheme}://")?;
        if let Some(user) = &self.username {
            write!(f, "{user}")?;
            if self.password.is_some() {
                write!(f, ":***")?;
            }
            write!(f, "@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Why a proxy URL was rejected. The message shows the URL with its password redacted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (got `{redacted}`; expected http(s)://[user:pass@]host:port)")]
pub struct ProxyUrlError {
    /// What is wrong.
    pub reason: &'static str,
    /// The value as given, password replaced by `***`.
    pub redacted: String,
}

impl FromStr for ProxyUrl {
    type Err = ProxyUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = |reason| ProxyUrlError {
            reason,
            redacted: redact(s),
        };
        let (scheme, rest) = match s.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => {
                (ProxyScheme::Http, rest)
            }
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => {
                (ProxyScheme::Https, rest)
            }
            Some(_) => return Err(fail("the scheme must be http or https")),
            None => return Err(fail("missing http:// or https://")),
        };
        // Passwords may contain `#`, `/` or `?` (users rarely percent-encode them), so the
        // user info is split off at the last `@` before looking for a path.
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        // A trailing slash is harmless; any other path is a mistake.
        let hostport = hostport.strip_suffix('/').unwrap_or(hostport);
        if hostport.contains(['/', '?', '#']) {
            return Err(fail("a proxy URL has no path, query or fragment"));
        }
        let (username, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((user, pass)) => (Some(percent_decode(user)), Some(percent_decode(pass))),
                None => (Some(percent_decode(u)), None),
            },
        };
        if username.as_deref() == Some("") {
            return Err(fail("empty user name before `@`"));
        }
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| fail("unterminated `[` in the IPv6 host"))?;
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| fail("missing port"))?;
            (host, port)
        } else {
            hostport
                .rsplit_once(':')
                .ok_or_else(|| fail("missing port"))?
        };
        if host.is_empty() {
            return Err(fail("missing host"));
        }
        if host.contains(char::is_whitespace) {
            return Err(fail("the host contains whitespace"));
        }
        if port.is_empty() {
            return Err(fail("missing port"));
        }
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| fail("the port must be a number from 1 to 65535"))?;
        Ok(ProxyUrl {
            scheme,
            host: host.to_owned(),
            port,
            username,
            password,
        })
    }
}

/// Decodes `%XX` escapes (as in URLs); anything else, including a malformed escape, is
/// kept as written.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_owned())
}

/// `s` with everything that may be a password replaced by `***`: the part of the user
/// info after the first `:`, or the whole user info when there is no scheme.
pub fn redact(s: &str) -> String {
    let Some((userinfo_and_before, after)) = s.rsplit_once('@') else {
        return s.to_owned();
    };
    match userinfo_and_before.split_once("://") {
        Some((scheme, userinfo)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{after}"),
            None => s.to_owned(),
        },
        None => format!("***@{after}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        let p: ProxyUrl = "http://proxy.local:3128".parse().unwrap();
        assert_eq!(
            (p.scheme, p.host.as_str(), p.port),
            (ProxyScheme::Http, "proxy.local", 3128)
        );
        assert_eq!(p.username, None);
        let p: ProxyUrl = "https://u:s3cr:et@10.0.0.1:8080/".parse().unwrap();
        assert_eq!(p.scheme, ProxyScheme::Https);
        assert_eq!(p.username.as_deref(), Some("u"));
        assert_eq!(p.password.as_deref(), Some("s3cr:et"));
        assert_eq!(p.to_string(), "https://u:***@10.0.0.1:8080");
        assert!(!format!("{p:?}").contains("s3cr"));
        let p: ProxyUrl = "http://me%40corp:p%23ss#/?@proxy:8080".parse().unwrap();
        assert_eq!(p.username.as_deref(), Some("me@corp"));
        assert_eq!(p.password.as_deref(), Some("p#ss#/?"));
        assert_eq!(p.host, "proxy");
        let p: ProxyUrl = "http://[::1]:3128".parse().unwrap();
        assert_eq!((p.host.as_str(), p.port), ("::1", 3128));
        assert_eq!(p.to_string(), "http://[::1]:3128");
    }

    #[test]
    fn rejections_never_echo_the_password() {
        for bad in [
            "http://u:secret@proxy",
            "http://u:secret@proxy:",
            "http://u:secret@proxy:99999",
            "http://u:secret@:8080",
            "socks5://u:secret@proxy:1080",
            "u:secret@proxy:8080",
            "http://u:secret@proxy:8080/path",
            "http://u:secret@[::1",
        ] {
            let err = bad.parse::<ProxyUrl>().unwrap_err().to_string();
            assert!(!err.contains("secret"), "{bad} -> {err}");
            assert!(err.contains("host:port"), "{err}");
        }
        let err = "http://u:secret@proxy".parse::<ProxyUrl>().unwrap_err();
        assert_eq!(err.reason, "missing port");
        assert_eq!(err.redacted, "http://u:***@proxy");
    }
}
