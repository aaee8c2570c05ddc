//! The proxy URL (`HTTPProxyURL`, and `HTTPS_PROXY` in the environment): `http://[user:pass@]host:port`,
//! parsed and validated without ever putting the password in an error message or a `Debug`
//! output. This is the only proxy-URL parser and [`redact`] the only redaction of the agent.

use std::fmt;
use std::str::FromStr;

use crate::url::{after_scheme, host_port, join_host_port};

/// What a proxy URL looks like, repeated in every rejection.
const EXPECTED: &str = "http://[user:pass@]host:port";

/// A validated HTTP proxy: the agent opens a CONNECT tunnel through it, inside which TLS
/// goes end to end to the intake. `Debug` and `Display` show the password as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    host: String,
    port: u16,
    username: Option<String>,
    password: Option<String>,
}

impl ProxyUrl {
    /// A proxy from an `HTTPS_PROXY`-style environment value: like [`ProxyUrl::from_str`],
    /// but `host:port` without a scheme means `http://host:port` (as curl reads it).
    pub fn from_env_value(value: &str) -> Result<Self, ProxyUrlError> {
        let value = value.trim();
        if value.contains("://") {
            value.parse()
        } else {
            format!("http://{value}")
                .parse()
                .map_err(|e: ProxyUrlError| ProxyUrlError {
                    reason: e.reason,
                    redacted: redact(value),
                })
        }
    }

    /// Host name or IP address (an IPv6 address without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port` to dial, with an IPv6 address in brackets.
    pub fn authority(&self) -> String {
        join_host_port(&self.host, self.port)
    }

    /// User name and password (empty when only a user is given), decoded, for the
    /// `Proxy-Authorization` header. `None` when the proxy is used without credentials.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        let user = self.username.as_deref()?;
        Some((user, self.password.as_deref().unwrap_or("")))
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyUrl({self})")
    }
}

impl fmt::Display for ProxyUrl {
    /// The URL with the password replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("http://")?;
        if let Some(user) = &self.username {
            f.write_str(user)?;
            if self.password.is_some() {
                f.write_str(":***")?;
            }
            f.write_str("@")?;
        }
        f.write_str(&self.authority())
    }
}

/// Why a proxy URL was rejected. The message shows the URL with its password redacted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (got `{redacted}`; expected {EXPECTED})")]
pub struct ProxyUrlError {
    /// What is wrong.
    pub reason: &'static str,
    /// The value as given, password replaced by `***`.
    pub redacted: String,
}

impl FromStr for ProxyUrl {
    type Err = ProxyUrlError;

    /// Parses `http://[user[:pass]@]host:port[/]`. The user and password may be written as
    /// they are (any character, `@` and `:` in the password included) or percent-encoded;
    /// a `%` not followed by two hex digits is kept as written.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = |reason| ProxyUrlError {
            reason,
            redacted: redact(s),
        };
        let rest = after_scheme(
            s,
            "http",
            "an https:// proxy (TLS to the proxy itself) is not supported; write http://: the \
             traffic to the intake is TLS end to end through the proxy's CONNECT tunnel either way",
            "the URL must start with http://",
        )
        .map_err(fail)?;
        // Passwords may contain `@`, `#`, `/` or `?` (users rarely percent-encode them), so
        // the user info is split off at the last `@` before looking at the rest.
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
        let (host, port) = host_port(hostport, None).map_err(fail)?;
        Ok(ProxyUrl {
            host,
            port,
            username,
            password,
        })
    }
}

/// Decodes `%XX` escapes (as in URLs); anything else, including a `%` not followed by two
/// hex digits, is kept as written.
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
    // An escape that decodes to invalid UTF-8 was not meant as one: keep the text as written.
    String::from_utf8(out).unwrap_or_else(|_| s.to_owned())
}

/// `s` with everything that may be a password replaced by `***`: the part of the user
/// info after the first `:`, or the whole user info when there is no scheme. For text that
/// may hold a URL and was not (or could not be) parsed; a parsed [`ProxyUrl`] redacts itself.
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
        assert_eq!((p.host(), p.port()), ("proxy.local", 3128));
        assert_eq!(p.credentials(), None);
        let p: ProxyUrl = "HTTP://u:s3cr:et@10.0.0.1:8080/".parse().unwrap();
        assert_eq!(p.credentials(), Some(("u", "s3cr:et")));
        assert_eq!(p.to_string(), "http://u:***@10.0.0.1:8080");
        assert!(!format!("{p:?}").contains("s3cr"));
        let p: ProxyUrl = "http://me%40corp:p%23ss#/?@proxy:8080".parse().unwrap();
        assert_eq!(p.credentials(), Some(("me@corp", "p#ss#/?")));
        assert_eq!(p.host(), "proxy");
        let p: ProxyUrl = "http://me@corp:p@ss@proxy:8080".parse().unwrap();
        assert_eq!(p.credentials(), Some(("me@corp", "p@ss")));
        let p: ProxyUrl = "http://[::1]:3128".parse().unwrap();
        assert_eq!((p.host(), p.port()), ("::1", 3128));
        assert_eq!(p.authority(), "[::1]:3128");
        assert_eq!(p.to_string(), "http://[::1]:3128");
        let p: ProxyUrl = "http://onlyuser@proxy:1".parse().unwrap();
        assert_eq!(p.credentials(), Some(("onlyuser", "")));
        assert_eq!(p.to_string(), "http://onlyuser@proxy:1");
    }

    #[test]
    fn a_literal_percent_in_the_password_is_kept() {
        // docs/config.md: special characters may be written as is.
        let p: ProxyUrl = "http://bob:S3cret%zzPW@proxy:3128".parse().unwrap();
        assert_eq!(p.credentials(), Some(("bob", "S3cret%zzPW")));
        for (written, meant) in [("100%", "100%"), ("a%4", "a%4"), ("%", "%"), ("%41b", "Ab")] {
            let p: ProxyUrl = format!("http://u:{written}@h:1").parse().unwrap();
            assert_eq!(p.credentials(), Some(("u", meant)), "{written}");
        }
        // An escape that would make invalid UTF-8 is not an escape.
        let p: ProxyUrl = "http://u:%ff%fe@h:1".parse().unwrap();
        assert_eq!(p.credentials(), Some(("u", "%ff%fe")));
    }

    #[test]
    fn environment_values_may_omit_the_scheme() {
        let p = ProxyUrl::from_env_value(" proxy.corp:3128 ").unwrap();
        assert_eq!(p.authority(), "proxy.corp:3128");
        let p = ProxyUrl::from_env_value("http://u:p@proxy.corp:3128").unwrap();
        assert_eq!(p.credentials(), Some(("u", "p")));
        let err = ProxyUrl::from_env_value("u:secret@proxy").unwrap_err();
        assert_eq!(err.reason, "missing port");
        assert_eq!(err.redacted, "***@proxy");
    }

    #[test]
    fn rejections_never_echo_the_password() {
        for bad in [
            "http://u:secret@proxy",
            "http://u:secret@proxy:",
            "http://u:secret@proxy:99999",
            "http://u:secret@proxy:+80",
            "http://u:secret@proxy:0",
            "http://u:secret@:8080",
            "http://u:secret@",
            "http://:secret@proxy:8080",
            "socks5://u:secret@proxy:1080",
            "https://u:secret@proxy:3128",
            "u:secret@proxy:8080",
            "http://u:secret@proxy:8080/path",
            "http://u:secret@[::1",
            "http://u:secret@[::1]",
            "http://u:secret@pro xy:1",
            "http://u:secret@prøxy:1",
        ] {
            let err = bad.parse::<ProxyUrl>().unwrap_err().to_string();
            assert!(!err.contains("secret"), "{bad} -> {err}");
            assert!(
                err.contains("expected http://[user:pass@]host:port"),
                "{err}"
            );
        }
        let err = "http://u:secret@proxy".parse::<ProxyUrl>().unwrap_err();
        assert_eq!(err.reason, "missing port");
        assert_eq!(err.redacted, "http://u:***@proxy");
        let err = "https://proxy:3128".parse::<ProxyUrl>().unwrap_err();
        assert!(err.reason.contains("https:// proxy"), "{err}");
    }
}
