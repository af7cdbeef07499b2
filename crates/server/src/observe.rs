//! Observability: a request id and an access-log line per request,
//! Prometheus metrics (`/metrics`), and health (`/healthz`, `/readyz`).

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use tokio::time::Instant;
use tracing::Instrument;

use crate::AppState;

/// The header that carries a request's id, both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Set on a response whose error came from storage, so it is counted.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StorageFailure;

/// Set on a response by a handler that knows a finer route name than the
/// matched path (the OCI face serves every endpoint from one route).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RouteName(pub &'static str);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StageLabels {
    stage: &'static str,
}

/// The server's metrics. Families are keyed by route templates, methods,
/// statuses and fixed names only, so their size is bounded.
pub(crate) struct Metrics {
    registry: prometheus_client::registry::Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    pub(crate) connections_open: Gauge,
    pub(crate) connections_capped: Counter,
    pub(crate) connections_timed_out: Counter,
    pub(crate) rate_limited: Family<KindLabels, Counter>,
    pub(crate) publish: Family<StageLabels, Counter>,
    pub(crate) bytes_received: Family<KindLabels, Counter>,
    storage_errors: Counter,
    log_length: Gauge,
    checkpoint_length: Gauge,
    checkpoint_lag: Gauge,
    upload_sessions: Gauge,
    /// The last readiness check and when it ran: checks run one at a time
    /// and at most once a second, however often `/readyz` is asked.
    readiness: tokio::sync::Mutex<Option<(Instant, Result<u64, String>)>>,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut metrics = Metrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            connections_open: Gauge::default(),
            connections_capped: Counter::default(),
            connections_timed_out: Counter::default(),
            rate_limited: Family::default(),
            publish: Family::default(),
            bytes_received: Family::default(),
            storage_errors: Counter::default(),
            log_length: Gauge::default(),
            checkpoint_length: Gauge::default(),
            checkpoint_lag: Gauge::default(),
            upload_sessions: Gauge::default(),
            readiness: tokio::sync::Mutex::new(None),
            registry: prometheus_client::registry::Registry::with_prefix("cairn"),
        };
        let m = &mut metrics;
        let registry = &mut m.registry;
        registry.register(
            "http_requests",
            "HTTP requests answered, by route, method and status",
            m.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer a request (to its response head), by route",
            m.latency.clone(),
        );
        registry.register(
            "connections_open",
            "Connections open now",
            m.connections_open.clone(),
        );
        registry.register(
            "connections_capped",
            "Times the connection limit was reached (new connections waited)",
            m.connections_capped.clone(),
        );
        registry.register(
            "connections_timed_out",
            "Connections closed by the header-read or idle timeout",
            m.connections_timed_out.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests refused with 429, by the limit that refused them",
            m.rate_limited.clone(),
        );
        registry.register(
            "publish_stage",
            "Publish pipeline events: records submitted, accepted, refused; content uploaded; \
             OCI manifests pushed",
            m.publish.clone(),
        );
        registry.register(
            "bytes_received",
            "Content bytes received and stored, by face (warg content, oci blobs)",
            m.bytes_received.clone(),
        );
        registry.register(
            "storage_errors",
            "Requests that failed on a storage error",
            m.storage_errors.clone(),
        );
        registry.register(
            "log_length",
            "Records in the registry log",
            m.log_length.clone(),
        );
        registry.register(
            "checkpoint_length",
            "Records covered by the latest checkpoint",
            m.checkpoint_length.clone(),
        );
        registry.register(
            "checkpoint_lag_records",
            "Records accepted but not yet covered by a checkpoint",
            m.checkpoint_lag.clone(),
        );
        registry.register(
            "upload_sessions_open",
            "OCI upload sessions open",
            m.upload_sessions.clone(),
        );
        metrics
    }

    /// The counter of content bytes received through `kind`.
    pub(crate) fn received(&self, kind: &'static str) -> Counter {
        self.bytes_received
            .get_or_create(&KindLabels { kind })
            .clone()
    }

    /// Counts a publish pipeline event.
    pub(crate) fn stage(&self, stage: &'static str) {
        self.publish.get_or_create(&StageLabels { stage }).inc();
    }

    /// Counts a request refused by a rate limit.
    pub(crate) fn limited(&self, kind: &'static str) {
        self.rate_limited.get_or_create(&KindLabels { kind }).inc();
    }
}

/// A process-unique request id: a random per-process prefix and a
/// counter (no RNG call per request).
fn new_request_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let prefix = *PREFIX.get_or_init(|| {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(std::process::id().into());
        hasher.finish() as u32
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix:08x}{n:08x}")
}

/// A request id a client sent, if it is short and plain enough to echo
/// and log.
fn client_request_id(request: &Request) -> Option<String> {
    let value = request.headers().get(&REQUEST_ID)?.to_str().ok()?;
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then(|| value.to_owned())
}

/// Middleware: gives each request an id (echoed in `x-request-id`), runs
/// it in a span that carries the id, logs one access line when its answer
/// starts, and counts it. Only the path is logged, never the query string
/// (content capability URLs carry their grant there) or any header value.
pub(crate) async fn access(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = client_request_id(&request).unwrap_or_else(new_request_id);
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let matched = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let peer = request
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let span = tracing::info_span!("request", id = %id);
    let mut response = next.run(request).instrument(span).await;
    let elapsed = started.elapsed();
    let status = response.status();
    let route = response
        .extensions()
        .get::<RouteName>()
        .map(|r| r.0.to_owned())
        .or(matched)
        .unwrap_or_else(|| "unmatched".to_owned());
    if response.extensions().get::<StorageFailure>().is_some() {
        app.metrics.storage_errors.inc();
    }
    app.metrics
        .requests
        .get_or_create(&RequestLabels {
            route: route.clone(),
            method: method.as_str().to_owned(),
            status: status.as_u16(),
        })
        .inc();
    app.metrics
        .latency
        .get_or_create(&RouteLabels { route })
        .observe(elapsed.as_secs_f64());
    tracing::info!(
        target: "cairn::access",
        id = %id,
        peer = ?peer,
        method = %method,
        path = %path,
        status = status.as_u16(),
        ms = elapsed.as_secs_f64() * 1000.0,
    );
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// `GET /metrics`: Prometheus text format.
pub(crate) async fn metrics(State(app): State<AppState>) -> Response {
    let m = &app.metrics;
    let length = app.registry.log_length();
    let checkpointed = app
        .registry
        .latest_checkpoint()
        .map_or(0, |c| c.contents.checkpoint.log_length);
    m.log_length.set(i64::try_from(length).unwrap_or(i64::MAX));
    m.checkpoint_length
        .set(i64::try_from(checkpointed).unwrap_or(i64::MAX));
    m.checkpoint_lag
        .set(i64::try_from(length.saturating_sub(checkpointed)).unwrap_or(i64::MAX));
    let oci = app.oci.clone();
    if let Ok(Ok(open)) = tokio::task::spawn_blocking(move || oci.open_uploads()).await {
        m.upload_sessions
            .set(i64::try_from(open).unwrap_or(i64::MAX));
    }
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &m.registry) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode metrics: {e}"),
        )
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// `GET /healthz`: the process is up and serving.
pub(crate) async fn healthz() -> Response {
    axum::Json(serde_json::json!({ "status": "ok" })).into_response()
}

/// `GET /readyz`: the engine's sequencer answers and storage can be read.
/// 503 with the reason otherwise.
pub(crate) async fn readyz(State(app): State<AppState>) -> Response {
    let outcome = {
        let mut last = app.metrics.readiness.lock().await;
        match &*last {
            Some((at, outcome)) if at.elapsed() < Duration::from_secs(1) => outcome.clone(),
            _ => {
                let outcome = check_ready(&app).await;
                *last = Some((Instant::now(), outcome.clone()));
                outcome
            }
        }
    };
    match outcome {
        Ok(length) => {
            let (role, leader) = match app.registry.role() {
                cairn_registry::Role::Leader => ("leader", None),
                cairn_registry::Role::Follower { leader } => ("follower", leader),
            };
            axum::Json(serde_json::json!({
                "status": "ready",
                "log_length": length,
                "role": role,
                "leader": leader,
            }))
            .into_response()
        }
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "status": "unavailable", "reason": reason })),
        )
            .into_response(),
    }
}

/// The sequencer answers and storage reads: the log length, or why not.
async fn check_ready(app: &AppState) -> Result<u64, String> {
    match tokio::time::timeout(Duration::from_secs(5), app.registry.housekeeping()).await {
        Err(_) => return Err("the sequencer did not answer within 5 s".into()),
        Ok(Err(e)) => return Err(format!("the sequencer is not running: {e}")),
        Ok(Ok(())) => {}
    }
    let registry = app.registry.clone();
    let length = registry.log_length();
    let read = tokio::task::spawn_blocking(move || {
        registry.leaves(length.saturating_sub(1), 1).map(|_| ())
    })
    .await;
    match read {
        Ok(Ok(())) => Ok(length),
        Ok(Err(e)) => Err(format!("storage cannot be read: {e}")),
        Err(e) => Err(format!("storage check failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_unique_and_plain() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn client_request_ids_are_checked() {
        let with = |v: &str| {
            let mut request = Request::new(axum::body::Body::empty());
            request
                .headers_mut()
                .insert(REQUEST_ID, HeaderValue::from_str(v).expect("header"));
            client_request_id(&request)
        };
        assert_eq!(with("abc-123").as_deref(), Some("abc-123"));
        assert_eq!(with("a b"), None);
        assert_eq!(with(&"x".repeat(65)), None);
    }
}
