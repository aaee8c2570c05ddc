//! Which proxy the intake traffic takes (the configured one, else `HTTPS_PROXY` unless
//! `NO_PROXY` exempts the intake) and the CONNECT handshake that opens a tunnel through it.
//!
//! Proxy URLs are parsed and redacted by [`agent_config::ProxyUrl`] only, so that
//! `config check` and the shipper read them the same way.

use agent_config::{IntakeUrl, ProxyUrl};
use base64::Engine as _;
use hyper_util::client::proxy::matcher::Matcher;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::TransportError;

/// Longest CONNECT answer head we accept.
const MAX_CONNECT_HEAD: usize = 16 * 1024;
/// Most header lines read in a CONNECT answer.
const MAX_CONNECT_HEADERS: usize = 64;

/// Chooses the proxy for `intake`: the configured one if any, else (when `use_env`)
/// `https_proxy` / `HTTPS_PROXY` unless `no_proxy` / `NO_PROXY` exempts the intake host.
/// `env` is a parameter so that the rules are tested without touching the process
/// environment. An environment value that is not a usable proxy URL is logged and ignored
/// (it is not part of config.yaml, so `config check` cannot have refused it).
pub fn resolve_proxy(
    configured: Option<&ProxyUrl>,
    use_env: bool,
    intake: &IntakeUrl,
    env: impl Fn(&str) -> Option<String>,
) -> Option<ProxyUrl> {
    if let Some(proxy) = configured {
        return Some(proxy.clone());
    }
    if !use_env {
        return None;
    }
    // Lowercase first, as curl reads them.
    let first = |names: [&'static str; 2]| {
        names
            .into_iter()
            .find_map(|n| env(n).filter(|v| !v.trim().is_empty()).map(|v| (n, v)))
    };
    let (name, value) = first(["https_proxy", "HTTPS_PROXY"])?;
    if let Some((_, no_proxy)) = first(["no_proxy", "NO_PROXY"]) {
        if no_proxy_exempts(&no_proxy, intake) {
            return None;
        }
    }
    match ProxyUrl::from_env_value(&value) {
        Ok(proxy) => Some(proxy),
        Err(e) => {
            tracing::warn!(variable = name, error = %e, "ignoring the proxy of the environment: not a usable proxy URL");
            None
        }
    }
}

/// Whether a `NO_PROXY` list exempts the intake, by hyper-util's curl-like rules: `*`,
/// domains with their subdomains (`example.com`, `.example.com`), IP addresses and CIDR
/// ranges (`10.0.0.0/8`).
pub fn no_proxy_exempts(no_proxy: &str, intake: &IntakeUrl) -> bool {
    // hyper-util offers these rules only through a proxy matcher; given a fixed proxy, the
    // matcher answers "no proxy" exactly when the list exempts the destination.
    let matcher = Matcher::builder()
        .https("http://proxy.invalid:1")
        .no(no_proxy)
        .build();
    match format!("https://{}/", intake.authority()).parse::<http::Uri>() {
        Ok(dst) => matcher.intercept(&dst).is_none(),
        Err(_) => false,
    }
}

/// The `Proxy-Authorization` value, when credentials are configured.
fn authorization(proxy: &ProxyUrl) -> Option<String> {
    let (user, password) = proxy.credentials()?;
    Some(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    ))
}

/// Sends `CONNECT target` on `stream` and reads the proxy's answer; on success the
/// stream is a raw tunnel to `target`.
///
/// Hand-written rather than hyper-util's `Tunnel`: that one reports every refusal but 407
/// as "unsuccessful", without the status; the operator needs "403: the proxy does not
/// allow this destination" or "401: wrong password" (tinyproxy answers 401, not 407).
///
/// Checked again against hyper-util 0.1.21 (`client::legacy::connect::proxy::tunnel`):
/// its handshake returns `Ok` for 200, `ProxyAuthRequired` for 407 and
/// `TunnelUnsuccessful` (no status, no reason phrase) for everything else, so tinyproxy's
/// 401 to a wrong password could not be told from a 403 or a 502. The proxy tests assert
/// exactly that distinction (`TransportError::Proxy { status: 401 | 407 }` and "rejected
/// the configured user and password"), so swapping would lose behaviour. Its other parts
/// are no gain here either: it is a tower `Service` around a connector, while the client
/// connects the TCP stream itself under its own connect timeout and hands the stream to
/// this function, and it needs hyper-util's `client-legacy` feature, not enabled today.
/// The request it sends is the same as ours (`CONNECT host:port`, `Host`, an optional
/// `Proxy-Authorization`); it reads at most 8 KiB of answer head, we allow 16 KiB.
/// What hyper-util does well and is used: the `NO_PROXY` rules ([`no_proxy_exempts`]).
pub async fn connect_tunnel<S>(
    stream: &mut S,
    proxy: &ProxyUrl,
    target: &str,
) -> Result<(), TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(auth) = authorization(proxy) {
        head.push_str("Proxy-Authorization: ");
        head.push_str(&auth);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let io_err = |source| TransportError::Connect {
        addr: proxy.authority(),
        source,
    };
    stream.write_all(head.as_bytes()).await.map_err(io_err)?;
    drop(head);

    let malformed = || TransportError::ProxyProtocol {
        proxy: proxy.to_string(),
    };
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    let (head_len, status, reason) = loop {
        let n = stream.read(&mut chunk).await.map_err(io_err)?;
        if n == 0 {
            return Err(malformed());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; MAX_CONNECT_HEADERS];
        let mut answer = httparse::Response::new(&mut headers);
        match answer.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let status = answer.code.ok_or_else(malformed)?;
                let reason: String = answer.reason.unwrap_or("").chars().take(120).collect();
                break (len, status, reason);
            }
            Ok(httparse::Status::Partial) if buf.len() <= MAX_CONNECT_HEAD => {}
            Ok(httparse::Status::Partial) | Err(_) => return Err(malformed()),
        }
    };
    if (200..300).contains(&status) {
        if buf.len() > head_len {
            // The proxy must not speak before the TLS client hello.
            return Err(malformed());
        }
        return Ok(());
    }
    let hint = match status {
        // 407 is the standard answer; tinyproxy answers 401.
        401 | 407 if proxy.credentials().is_some() => {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn intake(url: &str) -> IntakeUrl {
        url.parse().unwrap()
    }

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn basic_authorization_uses_the_decoded_password() {
        let p: ProxyUrl = "http://alice:s%40cret%zz@proxy.corp:3128".parse().unwrap();
        assert_eq!(
            authorization(&p).unwrap(),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("alice:s@cret%zz")
            )
        );
        let bare: ProxyUrl = "http://10.0.0.1:8080".parse().unwrap();
        assert!(authorization(&bare).is_none());
    }

    #[test]
    fn env_and_no_proxy() {
        let vars = &[
            ("HTTPS_PROXY", "http://u:p@proxy:3128"),
            ("NO_PROXY", "localhost, .internal.corp,10.1.0.0/16"),
        ];
        let sekoia = intake("https://intake.sekoia.io");
        let got = resolve_proxy(None, true, &sekoia, env(vars)).unwrap();
        assert_eq!(got.authority(), "proxy:3128");
        for direct in [
            "https://localhost",
            "https://a.internal.corp",
            "https://internal.corp:8443/x",
            "https://10.1.2.3",
        ] {
            assert_eq!(
                resolve_proxy(None, true, &intake(direct), env(vars)),
                None,
                "{direct}"
            );
        }
        assert_eq!(resolve_proxy(None, false, &sekoia, env(vars)), None);
        // The configured proxy wins and ignores NO_PROXY.
        let configured: ProxyUrl = "http://c:3128".parse().unwrap();
        let cfg = resolve_proxy(
            Some(&configured),
            true,
            &intake("https://localhost"),
            env(vars),
        );
        assert_eq!(cfg.unwrap().authority(), "c:3128");
        // Lowercase wins, like curl; a scheme-less value is http.
        let both = &[("https_proxy", "low:1"), ("HTTPS_PROXY", "up:2")];
        let got = resolve_proxy(None, true, &sekoia, env(both)).unwrap();
        assert_eq!(got.authority(), "low:1");
        assert!(no_proxy_exempts("*", &sekoia));
        assert!(!no_proxy_exempts("sekoia.io.evil", &sekoia));
        assert!(!no_proxy_exempts("", &sekoia));
    }

    #[test]
    fn an_unusable_env_proxy_is_ignored() {
        let sekoia = intake("https://intake.sekoia.io");
        for bad in [
            &[("HTTPS_PROXY", "https://proxy:3128")][..],
            &[("HTTPS_PROXY", "http://u:secret@proxy")][..],
        ] {
            let vars: &'static [(&'static str, &'static str)] = bad;
            assert_eq!(resolve_proxy(None, true, &sekoia, env(vars)), None);
        }
    }
}
