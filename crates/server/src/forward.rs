//! Writes on a follower go to the leading replica. Several `cairn serve`
//! processes share one store; the one holding its lead sequences
//! ([`Role::Leader`]). A follower serves reads itself and passes every
//! write through to the leader's advertised URL, body streamed both ways,
//! marked with the replicas' shared secret (so the leader trusts the
//! forwarded client address and does not count the follower against the
//! rate limits twice). Upload sessions therefore live on the leader. A
//! leader that serves TLS advertises an `https` URL, and the followers
//! verify it ([`crate::ServerOptions::replica_ca_file`]).
//!
//! A forwarded request that reaches a replica which no longer leads is
//! answered 503 with `Retry-After` rather than forwarded again, as is a
//! write while no replica leads (between a leader's end and a takeover).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cairn_registry::Role;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::AppState;

/// Marks a request forwarded by a replica: the hex of the shared secret.
pub(crate) const REPLICA_HEADER: HeaderName = HeaderName::from_static("x-cairn-replica");
/// The address of the client a replica forwards for.
const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// How long the leader may take to answer a forwarded write (its headers;
/// the body streams after). Covers a large blob upload's PUT.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(600);

/// The HTTP client followers forward with (connections kept alive): plain
/// HTTP, or HTTPS to a leader that advertises an `https` URL, verified
/// against the system's roots and the replicas' CA file.
pub(crate) struct Forwarder {
    client: Client<HttpsConnector<HttpConnector>, Body>,
}

impl Forwarder {
    /// Sends `request` (to another replica, or a witness).
    pub(crate) async fn send(
        &self,
        request: Request,
    ) -> Result<Response<hyper::body::Incoming>, String> {
        self.client
            .request(request)
            .await
            .map_err(|e| e.to_string())
    }

    /// A forwarder trusting the system's roots and the PEM certificates in
    /// `ca_file`.
    pub(crate) fn new(ca_file: Option<&std::path::Path>) -> std::io::Result<Forwarder> {
        use tokio_rustls::rustls;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            // A system certificate rustls cannot use is skipped.
            let _ = roots.add(cert);
        }
        if let Some(path) = ca_file {
            use rustls_pki_types::pem::PemObject;
            let bad = |e: &dyn std::fmt::Display| {
                std::io::Error::other(format!("the replicas' CA file {}: {e}", path.display()))
            };
            let mut added = 0;
            for cert in
                rustls_pki_types::CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))?
            {
                roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
                added += 1;
            }
            if added == 0 {
                return Err(bad(&"no certificate in it"));
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        http.set_nodelay(true);
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Forwarder {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
        })
    }
}

/// Whether a request changes state (and so must reach the leader). The
/// Warg face's read requests that are POSTs, and token administration
/// (the shared store's tables, no log), are not.
fn is_write(method: &Method, path: &str) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    !(path.starts_with("/v1/fetch/")
        || path.starts_with("/v1/proof/")
        || path.starts_with("/v1/verify/")
        || path.starts_with("/cairn/v1/admin/tokens"))
}

/// Whether `request` was forwarded by a replica of this registry.
pub(crate) fn from_replica(app: &AppState, request: &Request) -> bool {
    from_replica_headers(app, request.headers())
}

/// Whether `headers` carry this registry's replica secret.
pub(crate) fn from_replica_headers(app: &AppState, headers: &axum::http::HeaderMap) -> bool {
    let (Some(secret), Some(given)) = (app.registry.replica_secret(), headers.get(REPLICA_HEADER))
    else {
        return false;
    };
    // Compared as digests: equal-length values whose comparison time says
    // nothing about the secret.
    let expected = hex::encode(secret);
    let sha = |b: &[u8]| ring::digest::digest(&ring::digest::SHA256, b);
    sha(expected.as_bytes()).as_ref() == sha(given.as_bytes()).as_ref()
}

/// The client address a request stands for: the forwarded one when a
/// replica forwarded it, else the peer's.
pub(crate) fn client_ip(app: &AppState, request: &Request) -> Option<IpAddr> {
    if from_replica(app, request) {
        if let Some(ip) = request
            .headers()
            .get(FORWARDED_FOR)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
        {
            return Some(ip);
        }
    }
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Passes writes to the leader when this replica follows.
pub(crate) async fn forward(State(app): State<AppState>, request: Request, next: Next) -> Response {
    if !is_write(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    let leader = match app.registry.role() {
        Role::Leader => return next.run(request).await,
        Role::Follower { leader } => leader,
    };
    let path = request.uri().path().to_owned();
    if request.headers().contains_key(REPLICA_HEADER) {
        return unavailable(&path, "the replica this write was sent to no longer leads");
    }
    let (Some(leader), Some(secret)) = (leader, app.registry.replica_secret()) else {
        return unavailable(&path, "no replica leads right now (one is taking over)");
    };
    let ip = client_ip(&app, &request);
    match pass(&app, &leader, &secret, ip, request).await {
        Ok(response) => response,
        Err(e) => {
            tracing::warn!(leader = %leader, error = %e, "cannot forward a write to the leader");
            error(
                &path,
                StatusCode::BAD_GATEWAY,
                &format!("the leading replica did not answer ({e}); retry"),
            )
        }
    }
}

async fn pass(
    app: &AppState,
    leader: &str,
    secret: &[u8; 32],
    ip: Option<IpAddr>,
    request: Request,
) -> Result<Response, String> {
    let (mut parts, body) = request.into_parts();
    let target = format!(
        "{}{}",
        leader.trim_end_matches('/'),
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    parts.uri = target
        .parse::<Uri>()
        .map_err(|e| format!("bad leader URL {target}: {e}"))?;
    for hop in [
        header::CONNECTION,
        header::UPGRADE,
        header::TE,
        header::TRAILER,
    ] {
        parts.headers.remove(hop);
    }
    parts.headers.insert(
        REPLICA_HEADER,
        HeaderValue::from_str(&hex::encode(secret)).map_err(|e| e.to_string())?,
    );
    if let Some(ip) = ip {
        if let Ok(value) = HeaderValue::from_str(&ip.to_string()) {
            parts.headers.insert(FORWARDED_FOR, value);
        }
    }
    let outgoing = Request::from_parts(parts, body);
    let answer = tokio::time::timeout(ANSWER_TIMEOUT, app.forwarder.client.request(outgoing))
        .await
        .map_err(|_| format!("no answer in {} s", ANSWER_TIMEOUT.as_secs()))?
        .map_err(|e| e.to_string())?;
    let (parts, body) = answer.into_parts();
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// 503 with `Retry-After: 1`.
fn unavailable(path: &str, why: &str) -> Response {
    let mut response = error(
        path,
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("{why}; retry in a second"),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(1));
    response
}

/// An error in the shape of the face `path` belongs to.
fn error(path: &str, status: StatusCode, message: &str) -> Response {
    let body = if path.starts_with("/v2") {
        serde_json::json!({ "errors": [{ "code": "UNAVAILABLE", "message": message }] })
    } else {
        serde_json::json!({ "status": status.as_u16(), "message": message })
    };
    (status, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stay_and_writes_go_to_the_leader() {
        assert!(!is_write(&Method::GET, "/v2/acme/a/manifests/1.0.0"));
        assert!(!is_write(&Method::POST, "/v1/fetch/logs"));
        assert!(!is_write(&Method::POST, "/v1/proof/inclusion"));
        assert!(!is_write(&Method::POST, "/v1/verify/checkpoint"));
        assert!(!is_write(&Method::POST, "/cairn/v1/admin/tokens"));
        assert!(is_write(&Method::POST, "/v1/package/abc/record"));
        assert!(is_write(&Method::PUT, "/v2/acme/a/manifests/1.0.0"));
        assert!(is_write(&Method::PATCH, "/v2/acme/a/blobs/uploads/x"));
        assert!(is_write(&Method::DELETE, "/v2/acme/a/manifests/sha256:00"));
        assert!(is_write(&Method::POST, "/cairn/v1/admin/namespaces"));
    }
}
