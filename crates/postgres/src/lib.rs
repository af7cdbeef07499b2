//! Cairn's metadata store on PostgreSQL 15 or newer: [`PgStore`] implements
//! the engine's storage traits ([`cairn_registry::MetaStore`],
//! [`cairn_registry::oci::OciStore`], [`cairn_registry::auth::AuthStore`])
//! with the semantics of the SQLite store in `cairn-store`, and
//! [`cairn_registry::Leadership`], so that several registry processes can
//! share one database with one of them leading.
//!
//! **Runtime.** The traits are synchronous and are called from plain
//! threads, from tokio's blocking pool, and sometimes from a tokio worker
//! thread of the server's own runtime. So the store owns a small tokio
//! runtime of its own (two worker threads named `cairn-pg`): each method
//! spawns its future onto that runtime and waits for the answer on a
//! standard channel (one helper, `PgStore::run`). Nothing here calls
//! `Runtime::block_on`, which panics inside another runtime.
//!
//! **Connections.** Reads and the OCI and auth writes go through a pool
//! (`deadpool-postgres`, [`PgOptions::pool_size`] connections at most,
//! made on demand). Two more connections are not pooled:
//!
//! - the **writer**, the session that holds the lead: a session-level
//!   advisory lock taken by [`cairn_registry::Leadership::try_lead`]. The
//!   log is written only through it (`commit`, and the sequencer's reads
//!   `writer_records` and `writer_log`). When this process does not hold
//!   the lead, or the writer's session is lost (the server ended it, the
//!   network failed, a writer request had no answer within
//!   [`PgOptions::writer_timeout`]), `commit` is refused without opening
//!   any other connection: a deposed leader can never write the log,
//!   because the lock and the commits share one session. Once lost, the
//!   lead stays lost until `try_lead` takes it again on a new session.
//! - the **listener**, made on the first `wait_checkpoint`: it runs
//!   `LISTEN cairn_checkpoint` and is driven by a task on the store's
//!   runtime that polls its messages; each notification (the leader's
//!   commit of a checkpoint runs `pg_notify` in the same transaction)
//!   updates a `tokio::sync::watch` of the latest checkpointed log length.
//!   The task reconnects after a failure, and reads the latest checkpoint
//!   again each time it has (re)connected, so nothing is missed for long;
//!   a `wait_checkpoint` that times out reads it once more.
//!
//! **Schema.** Version 3 (the SQLite store's current version, whose tables
//! it mirrors), kept in `cairn_schema`; created under a transaction-level
//! advisory lock so that replicas starting together do not race; a newer
//! version is refused. See `schema.rs`.

mod auth;
mod lead;
mod meta;
mod oci;
mod schema;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use cairn_registry::StoreError;
use cairn_store::Sealer;
use deadpool_postgres::{
    Hook, HookError, Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;

pub use schema::SCHEMA_VERSION;

/// How a [`PgStore`] connects and how long it waits.
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// Most pooled connections (reads, OCI and auth writes). Default 16.
    pub pool_size: usize,
    /// The server-side limit on any one statement (`statement_timeout`);
    /// `None` leaves the server's setting. Default 30 s.
    pub statement_timeout: Option<Duration>,
    /// How long connecting may take. Default 10 s.
    pub connect_timeout: Duration,
    /// How long a request waits for a free pooled connection. Default 30 s.
    pub pool_wait: Duration,
    /// How long a request on the writer session may go unanswered before
    /// the session is given up (and with it the lead): its outcome is then
    /// unknown, and only a new leader, reading the store afresh, may
    /// write. Default 60 s.
    pub writer_timeout: Duration,
    /// More certificate authorities (PEM) trusted for TLS to the server,
    /// beside the system's (libpq's `PGSSLROOTCERT`). TLS is used as the
    /// URL's `sslmode` says: `disable`, `prefer` (the default: TLS when the
    /// server offers it) or `require`; the server's certificate and name
    /// are always verified when TLS is used.
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for PgOptions {
    fn default() -> PgOptions {
        PgOptions {
            pool_size: 16,
            statement_timeout: Some(Duration::from_secs(30)),
            connect_timeout: Duration::from_secs(10),
            pool_wait: Duration::from_secs(30),
            writer_timeout: Duration::from_secs(60),
            ca_file: None,
        }
    }
}

/// The metadata store on PostgreSQL. See the crate documentation.
pub struct PgStore {
    shared: Arc<Shared>,
    /// Always `Some` until dropped.
    runtime: Option<tokio::runtime::Runtime>,
}

/// What the store's tasks share.
pub(crate) struct Shared {
    pub(crate) pool: Pool,
    pub(crate) options: PgOptions,
    /// The settings of the writer's and the listener's own connections.
    pub(crate) session_config: tokio_postgres::Config,
    /// TLS for the writer's and the listener's sessions.
    pub(crate) tls: MakeRustlsConnect,
    /// The session holding the lead, if this process took it.
    pub(crate) writer: tokio::sync::Mutex<Option<lead::Writer>>,
    /// Whether the writer's session is alive (cleared by its connection
    /// task when it ends), read by `leading()` without waiting for a
    /// commit in flight.
    pub(crate) lead: Mutex<Option<Arc<AtomicBool>>>,
    /// The latest checkpointed log length seen.
    pub(crate) checkpoints: tokio::sync::watch::Sender<u64>,
    /// Whether the listener task runs.
    pub(crate) listening: OnceLock<()>,
    /// Seals custodial keys at rest, once set ([`PgStore::seal_custodial_keys`]).
    pub(crate) sealer: OnceLock<Sealer>,
}

impl Shared {
    /// A pooled connection, for `what`.
    pub(crate) async fn conn(&self, what: &str) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| match e {
            PoolError::Backend(e) => pg_error(what, &e),
            PoolError::Timeout(_) => StoreError::Backend(format!(
                "postgres: {what}: no connection to the database was free or could be made \
                 in time ({e})"
            )),
            other => StoreError::Backend(format!("postgres: {what}: {other}")),
        })
    }

    /// Whether this process holds the lead now.
    pub(crate) fn leading(&self) -> bool {
        self.lead
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|alive| alive.load(Ordering::SeqCst))
    }

    /// Notes that a checkpoint of `log_length` is stored.
    pub(crate) fn saw_checkpoint(&self, log_length: u64) {
        self.checkpoints.send_if_modified(|latest| {
            let newer = log_length > *latest;
            if newer {
                *latest = log_length;
            }
            newer
        });
    }
}

/// Makes the commits of a session durable (flushed to disk before they
/// return): `synchronous_commit` is raised to `on` where the server's
/// default turns it `off`, and left as it is otherwise (a server that
/// also waits for standbys keeps doing so).
pub(crate) const DURABLE: &str = "DO $$ BEGIN \
     IF current_setting('synchronous_commit') = 'off' THEN \
     PERFORM set_config('synchronous_commit', 'on', false); END IF; END $$";

/// A PostgreSQL failure while doing `what`: [`StoreError::Full`] for the
/// server's "insufficient resources" class (disk full, out of memory),
/// else [`StoreError::Backend`].
pub(crate) fn pg_error(what: &str, e: &tokio_postgres::Error) -> StoreError {
    let text = match e.as_db_error() {
        Some(db) => format!("{db} (SQLSTATE {})", db.code().code()),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    };
    let full = e.code().is_some_and(|code| {
        *code == SqlState::DISK_FULL
            || *code == SqlState::OUT_OF_MEMORY
            || *code == SqlState::INSUFFICIENT_RESOURCES
    });
    if full {
        StoreError::Full(format!("postgres: {what}: {text}"))
    } else {
        StoreError::Backend(format!("postgres: {what}: {text}"))
    }
}

/// A mapper of PostgreSQL errors for `what`.
pub(crate) fn failed(what: &str) -> impl Fn(tokio_postgres::Error) -> StoreError + '_ {
    move |e| pg_error(what, &e)
}

pub(crate) use cairn_store::row::{hash_from, index_of, sql_index};

/// A count or limit as a `BIGINT`.
pub(crate) fn sql_count(v: usize) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The settings of every connection: `url`'s, with the timeouts of
/// `options` and the application name `cairn` unless the URL names one.
/// TLS for connections to the server: the system's roots and
/// `options.ca_file`'s, verified by rustls.
fn tls_connector(options: &PgOptions) -> Result<MakeRustlsConnect, StoreError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A system certificate rustls cannot use is skipped.
        let _ = roots.add(cert);
    }
    if let Some(path) = &options.ca_file {
        use rustls_pki_types::pem::PemObject;
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(path).map_err(|e| {
            StoreError::Backend(format!(
                "postgres: cannot read the CA file {}: {e}",
                path.display()
            ))
        })?;
        let mut added = 0;
        for cert in certs {
            let cert = cert.map_err(|e| {
                StoreError::Backend(format!(
                    "postgres: the CA file {} is not PEM certificates: {e}",
                    path.display()
                ))
            })?;
            roots.add(cert).map_err(|e| {
                StoreError::Backend(format!(
                    "postgres: a certificate in {} is not usable: {e}",
                    path.display()
                ))
            })?;
            added += 1;
        }
        if added == 0 {
            return Err(StoreError::Backend(format!(
                "postgres: the CA file {} holds no certificate",
                path.display()
            )));
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| StoreError::Backend(format!("postgres: TLS settings: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

fn base_config(url: &str, options: &PgOptions) -> Result<tokio_postgres::Config, StoreError> {
    // The URL may hold a password: it is never part of a message.
    let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
        StoreError::Backend(format!("postgres: the database URL is not valid: {e}"))
    })?;
    config.connect_timeout(options.connect_timeout);
    if config.get_application_name().is_none() {
        config.application_name("cairn");
    }
    let mut settings = config.get_options().unwrap_or_default().to_owned();
    if let Some(timeout) = options.statement_timeout {
        settings.push_str(&format!(
            " -c statement_timeout={}",
            timeout.as_millis().max(1)
        ));
    }
    config.options(settings.trim());
    Ok(config)
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`,
    /// or key-value settings; TLS as its `sslmode` says, see
    /// [`PgOptions::ca_file`]) and creates or checks
    /// the schema. The store does not lead: a process that commits calls
    /// [`cairn_registry::Leadership::try_lead`] first (a single process
    /// calls it once at start).
    pub fn connect(url: &str, options: PgOptions) -> Result<PgStore, StoreError> {
        let config = base_config(url, &options)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cairn-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::io("postgres: start the store's runtime", &e))?;
        let tls = tls_connector(&options)?;
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = {
            // Building a pool with timeouts looks for the runtime.
            let _entered = runtime.enter();
            Pool::builder(manager)
                .max_size(options.pool_size.max(1))
                .runtime(Runtime::Tokio1)
                .wait_timeout(Some(options.pool_wait))
                .create_timeout(Some(options.connect_timeout))
                .recycle_timeout(Some(options.connect_timeout))
                .post_create(Hook::async_fn(|client, _| {
                    Box::pin(async move {
                        client
                            .batch_execute(DURABLE)
                            .await
                            .map_err(HookError::Backend)
                    })
                }))
                .build()
                .map_err(|e| StoreError::Backend(format!("postgres: make the pool: {e}")))?
        };
        let mut session_config = config;
        // A lost writer or listener is noticed within about half a minute
        // even when the network drops packets silently: by this process,
        // and by the server, which then ends the session and so frees the
        // lead for another process (its own keepalive default is hours).
        let settings = format!(
            "{} -c tcp_keepalives_idle=15 -c tcp_keepalives_interval=5 \
             -c tcp_keepalives_count=3 -c tcp_user_timeout=30000",
            session_config.get_options().unwrap_or_default()
        );
        session_config
            .options(settings.trim())
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(15))
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3)
            .tcp_user_timeout(Duration::from_secs(30));
        let (checkpoints, _) = tokio::sync::watch::channel(0);
        let store = PgStore {
            shared: Arc::new(Shared {
                pool,
                options,
                session_config,
                tls,
                writer: tokio::sync::Mutex::new(None),
                lead: Mutex::new(None),
                checkpoints,
                listening: OnceLock::new(),
                sealer: OnceLock::new(),
            }),
            runtime: Some(runtime),
        };
        store.run("prepare the schema", |shared| async move {
            schema::prepare(&shared).await
        })?;
        Ok(store)
    }

    /// Runs the future `task` makes on the store's runtime and waits for
    /// its answer: from any thread, inside another runtime or not. (A
    /// worker thread of another runtime is blocked meanwhile, as by any
    /// blocking store.)
    pub(crate) fn run<T, F, Fut>(&self, what: &str, task: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Shared>) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        run_on(&self.handle()?, self.shared.clone(), what, task)
    }

    /// The store's runtime, while it is open.
    pub(crate) fn handle(&self) -> Result<tokio::runtime::Handle, StoreError> {
        match &self.runtime {
            Some(runtime) => Ok(runtime.handle().clone()),
            None => Err(StoreError::Backend("postgres: the store is closed".into())),
        }
    }
}

/// [`PgStore::run`] on the runtime `runtime` (which may have been shut
/// down since: then the answer is an error).
pub(crate) fn run_on<T, F, Fut>(
    runtime: &tokio::runtime::Handle,
    shared: Arc<Shared>,
    what: &str,
    task: F,
) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(Arc<Shared>) -> Fut,
    Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
{
    let (answer, answered) = std::sync::mpsc::sync_channel(1);
    let future = task(shared);
    runtime.spawn(async move {
        let _ = answer.send(future.await);
    });
    answered.recv().map_err(|_| {
        StoreError::Backend(format!(
            "postgres: {what}: the request ended without an answer"
        ))
    })?
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Dropping a runtime waits for its tasks, which is refused inside
        // another runtime; its connections close as its tasks are dropped
        // (and with the writer's session, the lead is released).
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
