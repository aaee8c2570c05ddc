//! One kept-alive HTTPS connection to the intake, through a proxy tunnel when configured.

use std::time::Duration;

use agent_config::{IntakeUrl, ProxyUrl};
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, HOST, RETRY_AFTER, USER_AGENT};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::TransportConfig;
use crate::error::TransportError;
use crate::proxy::{connect_tunnel, resolve_proxy};
use crate::tls::client_config;

/// Largest intake answer body we read (answers are small JSON documents).
const MAX_ANSWER: usize = 64 * 1024;

/// What the intake answered.
#[derive(Debug, Clone)]
pub struct IntakeAnswer {
    /// HTTP status.
    pub status: StatusCode,
    /// `Retry-After` (seconds or HTTP-date), when present and readable.
    pub retry_after: Option<Duration>,
    /// The answer body (truncated to 64 KiB).
    pub body: Bytes,
}

/// A POST to the intake.
#[derive(Debug, Clone)]
pub struct IntakePost<'a> {
    /// Path under the base URL, e.g. `/batch`.
    pub path: &'a str,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Extra header (the intake key of `/plain/batch`).
    pub header: Option<(&'static str, &'a str)>,
    /// gzip-compressed body.
    pub body: Bytes,
}

/// Longest time spent dialling the intake (or the proxy), within the request timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// HTTPS client for one intake, reusing one kept-alive connection across requests.
pub struct IntakeClient {
    endpoint: IntakeUrl,
    proxy: Option<ProxyUrl>,
    tls: TlsConnector,
    timeout: Duration,
    user_agent: HeaderValue,
    conn: Option<SendRequest<Full<Bytes>>>,
}

impl std::fmt::Debug for IntakeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntakeClient")
            .field("endpoint", &self.endpoint)
            .field("proxy", &self.proxy)
            .field("timeout", &self.timeout)
            .field("connected", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}

impl IntakeClient {
    /// Loads the trust roots and picks the proxy (configured, or from the environment).
    /// Does not connect yet. The URLs were validated when parsed (by agent-config), so the
    /// only failures left are an unusable extra CA file or TLS setup.
    pub fn new(cfg: &TransportConfig) -> Result<Self, TransportError> {
        let endpoint = cfg.intake.clone();
        let proxy = resolve_proxy(cfg.proxy.as_ref(), cfg.proxy_from_env, &endpoint, |n| {
            std::env::var(n).ok()
        });
        let tls = TlsConnector::from(client_config(cfg.extra_ca_file.as_deref())?);
        let user_agent = HeaderValue::from_str(&cfg.user_agent)
            .unwrap_or(HeaderValue::from_static("endpoint-agent"));
        if let Some(p) = &proxy {
            tracing::info!(proxy = %p, intake = %endpoint.authority(), "intake traffic goes through a proxy");
        }
        Ok(IntakeClient {
            endpoint,
            proxy,
            tls,
            timeout: cfg.request_timeout,
            user_agent,
            conn: None,
        })
    }

    /// Another client for the same intake, sharing the TLS settings, with no connection
    /// yet (one per request in flight).
    pub fn sibling(&self) -> IntakeClient {
        IntakeClient {
            endpoint: self.endpoint.clone(),
            proxy: self.proxy.clone(),
            tls: self.tls.clone(),
            timeout: self.timeout,
            user_agent: self.user_agent.clone(),
            conn: None,
        }
    }

    /// The proxy in use, if any.
    pub fn proxy(&self) -> Option<&ProxyUrl> {
        self.proxy.as_ref()
    }

    /// Sends one POST and reads the answer, all within the request timeout. Any error
    /// drops the connection so the next attempt starts afresh.
    pub async fn post(&mut self, post: IntakePost<'_>) -> Result<IntakeAnswer, TransportError> {
        let res = match tokio::time::timeout(self.timeout, self.post_inner(post)).await {
            Ok(res) => res,
            Err(_) => Err(TransportError::Timeout(self.timeout)),
        };
        if res.is_err() {
            self.conn = None;
        }
        res
    }

    async fn post_inner(&mut self, post: IntakePost<'_>) -> Result<IntakeAnswer, TransportError> {
        let mut kept = self.conn.take().filter(|s| !s.is_closed());
        if let Some(s) = kept.as_mut() {
            if s.ready().await.is_err() {
                kept = None;
            }
        }
        let reused = kept.is_some();
        let mut sender = match kept {
            Some(s) => s,
            None => self.connect().await?,
        };
        let result = match sender.send_request(self.request(&post)?).await {
            Err(e) if reused && (e.is_canceled() || e.is_incomplete_message()) => {
                // The kept-alive connection died while idle: one fresh try right away.
                tracing::debug!(error = %e, "kept-alive intake connection was closed, reconnecting");
                sender = self.connect().await?;
                sender.send_request(self.request(&post)?).await
            }
            other => other,
        };
        let resp = result?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, time::OffsetDateTime::now_utc()));
        let body = match Limited::new(resp.into_body(), MAX_ANSWER).collect().await {
            Ok(b) => b.to_bytes(),
            // An oversized or broken answer body: the status is what matters, but the
            // connection is not reusable.
            Err(_) => {
                return Ok(IntakeAnswer {
                    status,
                    retry_after,
                    body: Bytes::new(),
                })
            }
        };
        self.conn = Some(sender);
        Ok(IntakeAnswer {
            status,
            retry_after,
            body,
        })
    }

    fn request(&self, post: &IntakePost<'_>) -> Result<Request<Full<Bytes>>, TransportError> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(self.endpoint.path(post.path))
            .header(HOST, self.endpoint.authority())
            .header(USER_AGENT, self.user_agent.clone())
            .header(CONTENT_TYPE, post.content_type)
            .header(CONTENT_ENCODING, "gzip");
        if let Some((name, value)) = post.header {
            req = req.header(name, value);
        }
        Ok(req.body(Full::new(post.body.clone()))?)
    }

    async fn connect(&mut self) -> Result<SendRequest<Full<Bytes>>, TransportError> {
        let target = self.endpoint.authority();
        let dial = match &self.proxy {
            Some(p) => p.authority(),
            None => target.clone(),
        };
        let limit = CONNECT_TIMEOUT.min(self.timeout);
        let mut tcp = match tokio::time::timeout(limit, TcpStream::connect(&dial)).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no TCP connection within {limit:?}"),
            )),
        }
        .map_err(|source| TransportError::Connect {
            addr: dial.clone(),
            source,
        })?;
        let _ = tcp.set_nodelay(true);
        if let Some(p) = &self.proxy {
            connect_tunnel(&mut tcp, p, &target).await?;
        }
        let tls = self
            .tls
            .connect(self.endpoint.server_name().clone(), tcp)
            .await
            .map_err(|source| TransportError::Tls {
                host: self.endpoint.host().to_owned(),
                source,
            })?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "intake connection ended");
            }
        });
        tracing::debug!(intake = %target, "connected to the intake");
        Ok(sender)
    }
}

/// `Retry-After` as delay-seconds or as an HTTP-date (IMF-fixdate) relative to `now`.
fn parse_retry_after(value: &str, now: time::OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(value, &format)
        .ok()?
        .assume_utc();
    Some(Duration::try_from(at - now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_or_date() {
        let now = time::macros::datetime!(2015-10-21 07:28:00 UTC);
        assert_eq!(parse_retry_after(" 2 ", now), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
