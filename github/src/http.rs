//! The HTTP(S) transport under the GitHub client: hyper with rustls
//! ([`crate::tls`]), whole bodies (GitHub's answers are small), a deadline
//! on every exchange, and errors that say when TLS was the reason.
//!
//! Not reqwest: its rustls backend wants a process-wide crypto provider (or
//! an aws-lc C build), which would change every other reqwest client of a
//! test binary.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::tls::{TlsRoots, TlsSetupError};

/// The deadline of one exchange, body included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The deadline of a TCP connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An answer, read whole.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl HttpResponse {
    /// Header `name` as a trimmed number, if present and numeric.
    pub fn header_number<T: std::str::FromStr>(&self, name: &str) -> Option<T> {
        self.headers.get(name)?.to_str().ok()?.trim().parse().ok()
    }

    /// Header `name` as text.
    pub fn header_text(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }
}

/// Why an exchange got no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// The TLS handshake failed: usually a certificate the trust store does
    /// not vouch for (a GHES behind an internal CA needs `--github-ca-file`).
    #[error(
        "TLS handshake with {host} failed: {reason} (a GitHub Enterprise Server behind an \
         internal CA needs its CA in the system store or in --github-ca-file)"
    )]
    Tls { host: String, reason: String },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Connection(String),
    #[error("invalid request: {0}")]
    Request(String),
}

/// A shared HTTP(S) client (cheap to clone: one connection pool).
#[derive(Clone)]
pub struct Http {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http").finish_non_exhaustive()
    }
}

impl Http {
    /// A client trusting `roots`; `http://` URLs work too (the emulator,
    /// a GHES reached through a local TLS-terminating proxy).
    pub fn new(roots: &TlsRoots) -> Result<Self, TlsSetupError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(roots.client_config()?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout: REQUEST_TIMEOUT,
        })
    }

    /// Sends one request and reads its whole answer, within the deadline.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Option<Vec<u8>>,
    ) -> Result<HttpResponse, TransportError> {
        let mut request = hyper::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|err| TransportError::Request(err.to_string()))?;
        let host = request.uri().host().unwrap_or_default().to_owned();
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|err| classify(&host, &err))?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|err| classify(&host, &err))?
                .to_bytes();
            Ok(HttpResponse {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| TransportError::Timeout(self.timeout))?
    }
}

/// Names the cause of a failed exchange: the whole chain of errors (an
/// `io::Error` hides its inner error from `source()`), TLS when rustls
/// was among them.
fn classify(host: &str, err: &(dyn std::error::Error + 'static)) -> TransportError {
    let mut parts: Vec<String> = Vec::new();
    let mut tls = None;
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(error) = current {
        if let Some(rustls_error) = error.downcast_ref::<rustls::Error>() {
            tls = Some(rustls_error.to_string());
        }
        let text = error.to_string();
        if !parts.iter().any(|known| known.contains(&text)) {
            parts.push(text);
        }
        current = match error.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as _),
            None => error.source(),
        };
    }
    match tls {
        Some(reason) => TransportError::Tls {
            host: host.to_owned(),
            reason,
        },
        None => TransportError::Connection(parts.join(": ")),
    }
}
