//! Cairn's HTTP server: the Warg v1 API and discovery over the engine.
//! Handlers parse, call [`Registry`], and shape answers; the protocol's
//! rules live in the engine and the protocol crate.

mod admin;
mod auth;
mod conn;
mod error;
mod explorer;
mod federate;
mod files;
mod forward;
mod grant;
mod home;
mod keys;
mod limit;
mod observe;
mod oci;
pub mod search;
mod tlog;
mod ui;
mod warg;
mod witness;

use std::future::Future;
use std::sync::Arc;

use std::time::Duration;

use axum::http::{Method, StatusCode, Uri};
use axum::routing::{any, get, post};
use axum::Router;
use cairn_api::paths::{self, route};
use cairn_registry::auth::{AuthStore, Tokens};
use cairn_registry::oci::Oci;
use cairn_registry::{Clock, Registry};
use tokio::net::TcpListener;

pub use conn::{tls_config, Limits};
pub use error::ApiError;
pub use limit::{Rate, RateLimits};
pub use observe::REQUEST_ID;
pub use tlog::TlogKey;
pub use witness::{serve_witness, witness_router, Witness};

use observe::Metrics;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    registry: Arc<Registry>,
    oci: Arc<Oci>,
    tokens: Arc<Tokens>,
    clock: Arc<dyn Clock>,
    anonymous_pull: bool,
    public_url: Option<String>,
    listen: String,
    publish_answer_wait: Duration,
    /// Permits for CPU-heavy request work (see [`ServerOptions::cpu_permits`]).
    cpu: Option<Arc<tokio::sync::Semaphore>>,
    metrics: Arc<Metrics>,
    limits: Arc<limit::Limiters>,
    /// Content capabilities, when reads need a token.
    grants: Arc<grant::Grants>,
    /// `https` when serving TLS, else `http`.
    scheme: &'static str,
    /// Sends writes to the leading replica (on a follower).
    forwarder: Arc<forward::Forwarder>,
    /// The key of the log's C2SP checkpoints, when it publishes them.
    tlog: Option<Arc<TlogKey>>,
    /// What answering for registries namespaces are imported from keeps
    /// (their last answers, the names they gave, turns to ask them).
    federation: Arc<federate::Federation>,
    /// The search index, when this registry keeps one.
    search: Option<Arc<cairn_index::index::Index>>,
}

/// Server options.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// The URL clients reach the server at (for content download URLs and
    /// discovery); by default `http://<Host header>`.
    pub public_url: Option<String>,
    /// Whether reads need no token (on by default).
    pub anonymous_pull: bool,
    /// How long a Warg publish (`POST .../record`) may wait, after the
    /// record is accepted, for a checkpoint to cover it, so that it can
    /// answer `published` at once (sparing the client its polls); past
    /// this it answers `processing`. Zero answers at once.
    pub publish_answer_wait: Duration,
    /// How many requests may do CPU-heavy work (decoding a record and
    /// checking its signature) at once; `0` for no limit. By default one
    /// per core: more workers than cores then park rather than compete
    /// with the sequencer thread.
    pub cpu_permits: usize,
    /// Connection limits and timeouts.
    pub connections: Limits,
    /// Per-address and per-token rate limits.
    pub rate_limits: RateLimits,
    /// Most bytes of a JSON request body (the Warg face's requests).
    pub max_json_body: usize,
    /// Serve HTTPS with this configuration (see [`tls_config`]) instead of
    /// plain HTTP.
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    /// Certificate authorities (PEM) a follower trusts, beside the
    /// system's, for the leader's `https` URL when it forwards writes.
    pub replica_ca_file: Option<std::path::PathBuf>,
    /// The key that signs the log's C2SP checkpoints (`/tlog/...`); every
    /// replica must have the same one. Without it, no C2SP log is served.
    pub tlog: Option<Arc<TlogKey>>,
    /// The search index the discovery API answers from (kept up with the
    /// log by a [`search::Indexer`]); none: no search.
    pub search: Option<Arc<cairn_index::index::Index>>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            public_url: None,
            anonymous_pull: true,
            publish_answer_wait: Duration::from_secs(1),
            cpu_permits: std::thread::available_parallelism().map_or(4, |n| n.get()),
            connections: Limits::default(),
            rate_limits: RateLimits::default(),
            max_json_body: 2 << 20,
            search: None,
            tls: None,
            replica_ca_file: None,
            tlog: None,
        }
    }
}

/// What the server serves.
#[derive(Clone)]
pub struct Services {
    /// The engine (Warg face).
    pub registry: Arc<Registry>,
    /// The OCI face.
    pub oci: Arc<Oci>,
    /// Accounts and tokens.
    pub auth: Arc<dyn AuthStore>,
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::message(
        StatusCode::NOT_FOUND,
        format!("no such endpoint: {method} {}", uri.path()),
    )
}

/// The router of every endpoint.
pub fn router(
    services: Services,
    options: ServerOptions,
    listen: String,
) -> std::io::Result<Router> {
    let grants = grants_for(&services)?;
    let forwarder = forward::Forwarder::new(options.replica_ca_file.as_deref())?;
    Ok(router_with(
        services,
        &options,
        listen,
        Arc::new(Metrics::new()),
        grants,
        forwarder,
    )
    .0)
}

fn router_with(
    services: Services,
    options: &ServerOptions,
    listen: String,
    metrics: Arc<Metrics>,
    grants: grant::Grants,
    forwarder: forward::Forwarder,
) -> (Router, AppState) {
    let clock = services.registry.config().clock.clone();
    let tokens = Arc::new(Tokens::new(
        services.auth,
        clock.clone(),
        services.registry.config().cache_generation,
    ));
    let state = AppState {
        registry: services.registry,
        oci: services.oci,
        tokens,
        clock,
        anonymous_pull: options.anonymous_pull,
        public_url: options.public_url.clone(),
        listen,
        publish_answer_wait: options.publish_answer_wait,
        cpu: (options.cpu_permits > 0)
            .then(|| Arc::new(tokio::sync::Semaphore::new(options.cpu_permits))),
        metrics,
        limits: Arc::new(limit::Limiters::new(&options.rate_limits)),
        grants: Arc::new(grants),
        forwarder: Arc::new(forwarder),
        tlog: options.tlog.clone(),
        federation: Arc::default(),
        search: options.search.clone(),
        scheme: if options.tls.is_some() {
            "https"
        } else {
            "http"
        },
    };
    // Reads of the Warg face pass the pull gate; publishing checks its
    // token itself (it needs the package name), and uploads are bound to a
    // record already accepted and to its digest.
    let reads = Router::new()
        .route(paths::FETCH_CHECKPOINT, get(warg::fetch_checkpoint))
        .route(paths::FETCH_LOGS, post(warg::fetch_logs))
        .route(paths::FETCH_NAMES, post(warg::fetch_names))
        .route(route::PACKAGE_RECORD, get(warg::get_record))
        .route(route::CONTENT_SOURCES, get(warg::content_sources))
        .route(route::CONTENT_FILE, get(warg::download_content))
        .route(paths::PROVE_CONSISTENCY, post(warg::prove_consistency))
        .route(paths::PROVE_INCLUSION, post(warg::prove_inclusion))
        .route(paths::VERIFY_CHECKPOINT, post(warg::verify_checkpoint))
        .route(paths::LEDGER_SOURCES, get(warg::ledger_sources))
        .route(route::LEDGER_RECORDS, get(warg::ledger_records))
        .route(route::ATTESTATIONS, get(warg::attestations))
        .route("/tlog/checkpoint", get(tlog::checkpoint))
        .route("/tlog/key", get(tlog::verifier_key))
        .route("/tlog/tile/{*path}", get(tlog::tile))
        .route("/tlog/proof/{package}/{version}", get(tlog::proof))
        .route("/metrics", get(observe::metrics))
        .route("/cairn/v1/search", get(search::search))
        .route("/cairn/v1/packages/{package}", get(search::package))
        .route("/cairn/v1/index/{package}", get(search::sparse_index))
        .route("/search", get(ui::search))
        .route("/packages/{package}", get(ui::package))
        .route("/namespaces/{namespace}", get(ui::namespace))
        .route("/log", get(explorer::log))
        .route("/log/{index}", get(explorer::entry))
        .route(
            "/cairn/v1/content/{digest}/releases",
            get(search::by_digest),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::warg_pull_gate,
        ));
    let router = Router::new()
        .merge(reads)
        .route(route::PUBLISH_PACKAGE_RECORD, post(warg::publish_record))
        .route(route::CONTENT_UPLOAD, post(warg::upload_content))
        .route(paths::WELL_KNOWN, get(warg::well_known))
        .route("/v2", get(oci::base))
        .route("/v2/", get(oci::base))
        .route("/auth/token", get(auth::token))
        .route("/", get(home::home))
        .route(
            "/cairn/v1/admin/tokens",
            post(admin::create_token).get(admin::list_tokens),
        )
        .route(
            "/cairn/v1/admin/tokens/{id}",
            axum::routing::delete(admin::revoke_token),
        )
        .route("/cairn/v1/admin/namespaces", post(admin::define_namespace))
        .route("/cairn/v1/admin/takedowns", post(admin::take_down))
        .route("/cairn/v1/admin/restores", post(admin::restore))
        .route("/cairn/v1/takedowns", get(admin::take_downs))
        .route("/cairn/v1/mirrors", get(admin::mirrors))
        .route("/cairn/v1/admin/forks", post(admin::fork))
        .route("/cairn/v1/forks", get(admin::forks))
        .route("/cairn/v1/policies/{namespace}", get(admin::publish_policy))
        .route(
            "/cairn/v1/admin/policies/{namespace}",
            get(admin::publish_policy).put(admin::set_publish_policy),
        )
        .route(
            "/cairn/v1/admin/namespaces/{namespace}/keys",
            post(keys::trust).get(keys::list),
        )
        .route(
            "/cairn/v1/admin/namespaces/{namespace}/keys/{key}",
            axum::routing::delete(keys::untrust),
        )
        .route("/cairn/v1/namespaces/{namespace}/keys", get(keys::list))
        .route("/healthz", get(observe::healthz))
        .route("/readyz", get(observe::readyz))
        .route("/v2/{*rest}", any(oci::dispatch))
        .fallback(not_found)
        .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
            ApiError::message(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("method {method} is not allowed on {}", uri.path()),
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            forward::forward,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            federate::federate,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(options.max_json_body))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit::rate_limit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::access,
        ))
        .with_state(state.clone());
    (router, state)
}

/// Content grants: keyed by the replicas' shared secret when there are
/// replicas, else by a fresh key.
fn grants_for(services: &Services) -> std::io::Result<grant::Grants> {
    match services.registry.replica_secret() {
        Some(secret) => Ok(grant::Grants::shared(&secret)),
        None => grant::Grants::new(),
    }
}

/// Most threads the server runs blocking work on (store reads, pieces of
/// files, OCI pushes): enough to keep one reader connection per core busy
/// with room for file IO, and no more, so a burst of requests queues
/// instead of parking hundreds of threads.
pub fn max_blocking_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
    (cores.max(4) * 4).max(32)
}

/// The server's tokio runtime: `workers` async worker threads (default:
/// one per core) and a blocking pool of [`max_blocking_threads`].
pub fn runtime(workers: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = workers {
        builder.worker_threads(workers.max(1));
    }
    builder
        .max_blocking_threads(max_blocking_threads())
        .thread_name("cairn-server")
        .enable_all()
        .build()
}

/// Connections the kernel may hold for the server before it accepts them.
/// A short queue (Rust's standard listener asks for 128) drops the
/// handshakes of a burst of clients, who then wait seconds for the SYN to
/// be retried; this is what `listen(2)` gets, capped by the kernel's
/// `somaxconn`.
pub const LISTEN_BACKLOG: u32 = 4096;

/// A listener on `addr` with a [`LISTEN_BACKLOG`]-deep queue (and
/// `SO_REUSEADDR`, so a restarted server binds at once). Call it inside
/// the runtime that serves.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    services: Services,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listen = listener.local_addr()?.to_string();
    // Abandoned upload sessions expire.
    let expiry = services.oci.clone();
    let registry = services.registry.clone();
    let sweeper = tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            if registry.role() != cairn_registry::Role::Leader {
                // The leading replica sweeps: sessions live there.
                continue;
            }
            let oci = expiry.clone();
            let swept = tokio::task::spawn_blocking(move || {
                let expired = oci.expire_uploads()?;
                Ok::<_, cairn_registry::oci::OciError>(expired + oci.remove_orphan_uploads()?)
            });
            match swept.await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => {
                    tracing::info!(sessions = n, "removed expired or orphaned upload sessions")
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot expire upload sessions"),
                Err(e) => tracing::warn!(error = %e, "upload expiry task failed"),
            }
        }
    });
    let metrics = Arc::new(Metrics::new());
    let limits = options.connections.clone();
    let grants = grants_for(&services)?;
    let forwarder = forward::Forwarder::new(options.replica_ca_file.as_deref())?;
    let (app, state) = router_with(
        services,
        &options,
        listen,
        metrics.clone(),
        grants,
        forwarder,
    );
    // Checkpoints go to the witnesses, if the log has any.
    let witnessing = tokio::spawn(tlog::witness_checkpoints(state));
    let tls = options.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let result = conn::serve(listener, app, limits, tls, metrics, shutdown).await;
    sweeper.abort();
    witnessing.abort();
    result
}
