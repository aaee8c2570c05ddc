//! The intake base URL (`IntakeURL`, or a region's): `https://host[:port][/prefix]`, parsed
//! once into what the intake client dials and verifies.

use std::fmt;
use std::str::FromStr;

use rustls_pki_types::ServerName;

use crate::proxy::redact;
use crate::url::{after_scheme, host_port, join_host_port};

/// A validated intake base URL. The host is checked with the same rules the TLS client
/// verifies certificates against, so a URL accepted here can always be connected to.
#[derive(Clone, PartialEq, Eq)]
pub struct IntakeUrl {
    base: String,
    host: String,
    port: u16,
    prefix: String,
    server_name: ServerName<'static>,
}

/// Why an intake URL was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (got `{redacted}`; expected https://host[:port][/path])")]
pub struct IntakeUrlError {
    /// What is wrong.
    pub reason: &'static str,
    /// The value as given, with anything that looks like a password replaced by `***`.
    pub redacted: String,
}

impl IntakeUrl {
    /// The base URL the intake paths are appended to, without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.base
    }

    /// The host name or IP address (an IPv6 address without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port (443 unless the URL gives one).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port`, with an IPv6 address in brackets: what is dialled, what a proxy is asked
    /// to CONNECT to, and the `Host` header.
    pub fn authority(&self) -> String {
        join_host_port(&self.host, self.port)
    }

    /// The name the intake's certificate must be valid for.
    pub fn server_name(&self) -> &ServerName<'static> {
        &self.server_name
    }

    /// The request path of an intake endpoint (`/batch`, ...) under this base URL.
    pub fn path(&self, endpoint: &str) -> String {
        format!("{}{endpoint}", self.prefix)
    }
}

impl fmt::Debug for IntakeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IntakeUrl({})", self.base)
    }
}

impl fmt::Display for IntakeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

impl FromStr for IntakeUrl {
    type Err = IntakeUrlError;

    /// Parses `https://host[:port][/prefix][/]`. Plain `http://` is refused: events, intake
    /// keys and updates only ever travel encrypted, from and to a verified server.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = |reason| IntakeUrlError {
            reason,
            redacted: redact(s),
        };
        let rest = after_scheme(
            s,
            "https",
            "plain http:// is not supported: the agent talks to its servers over verified TLS \
             only; serve this one over https:// (a certificate from a private CA is trusted \
             with `agent run --extra-ca FILE` or ENDPOINT_AGENT_EXTRA_CA)",
            "the URL must start with https://",
        )
        .map_err(fail)?;
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(fail("credentials are not allowed in the intake URL"));
        }
        if path.contains(['?', '#']) {
            return Err(fail("a query or fragment is not allowed"));
        }
        let (host, port) = host_port(authority, Some(443)).map_err(fail)?;
        // The path must be one `http` accepts as a request target.
        let prefix = path.trim_end_matches('/');
        if !prefix.is_empty() && prefix.parse::<http::uri::PathAndQuery>().is_err() {
            return Err(fail("the path contains characters a URL cannot hold"));
        }
        let server_name = ServerName::try_from(host.clone())
            .map_err(|_| fail("the host is not a valid DNS name or IP address"))?;
        Ok(IntakeUrl {
            base: format!("https://{authority}{prefix}"),
            host,
            port,
            prefix: prefix.to_owned(),
            server_name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_base_urls() {
        let u: IntakeUrl = "https://intake.fra2.sekoia.io/api/v1/intake-http/"
            .parse()
            .unwrap();
        assert_eq!(u.authority(), "intake.fra2.sekoia.io:443");
        assert_eq!(u.path("/batch"), "/api/v1/intake-http/batch");
        assert_eq!(
            u.as_str(),
            "https://intake.fra2.sekoia.io/api/v1/intake-http"
        );
        let u: IntakeUrl = "HTTPS://127.0.0.1:8443".parse().unwrap();
        assert_eq!(u.path("/plain/batch"), "/plain/batch");
        assert_eq!(u.as_str(), "https://127.0.0.1:8443");
        let u: IntakeUrl = "https://[::1]:9/x".parse().unwrap();
        assert_eq!((u.host(), u.authority()), ("::1", "[::1]:9".to_owned()));
    }

    #[test]
    fn refuses_what_cannot_be_shipped_to() {
        for (bad, why) in [
            ("http://relay:8080", "plain http:// is not supported"),
            ("ftp://x", "must start with https://"),
            ("intake.sekoia.io", "must start with https://"),
            ("https://", "missing host"),
            ("https://h:x", "port must be a number"),
            ("https://h:0", "port must be a number"),
            ("https://u:secret@h", "credentials are not allowed"),
            ("https://h/a?b=1", "query or fragment"),
            ("https://h/a#f", "query or fragment"),
            ("https://h/a b", "characters a URL cannot hold"),
            ("https://a..b", "not a valid DNS name"),
            ("https://-a.example", "not a valid DNS name"),
            ("https://1.2.3", "not a valid DNS name"),
        ] {
            let err = bad.parse::<IntakeUrl>().unwrap_err().to_string();
            assert!(err.contains(why), "{bad} -> {err}");
            assert!(!err.contains("secret"), "{err}");
        }
    }
}
