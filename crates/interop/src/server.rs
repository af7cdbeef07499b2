//! A Cairn server on the embedded default storage, in-process on a random
//! 127.0.0.1 port, for tests that drive it with real clients.
//!
//! It serves on a tokio runtime of its own with
//! [`TestOptions::worker_threads`] workers (2 unless told).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use cairn_registry::auth::{new_token, token_hash, AuthStore, Scope, TokenInfo};
use cairn_registry::oci::{Oci, OciConfig};
use cairn_registry::{Config, Registry};
use cairn_server::{ServerOptions, Services};
use cairn_store::{DataDir, DirLock};
use tokio::sync::oneshot;

/// How to start a [`TestServer`]: [`TestOptions::default`] is what
/// [`TestServer::start`] uses.
#[derive(Clone, Default)]
pub struct TestOptions {
    /// The engine's configuration.
    pub config: Config,
    /// The OCI face's configuration.
    pub oci: OciConfig,
    /// The HTTP server's options.
    pub server: ServerOptions,
    /// Where to listen (to restart on the same port); a random 127.0.0.1
    /// port if `None`.
    pub addr: Option<SocketAddr>,
    /// The server runtime's tokio worker threads; `None` is 2.
    pub worker_threads: Option<usize>,
}

impl TestOptions {
    /// Defaults, without rate limits: for load from one address, where
    /// the point is the server's throughput, not its limits.
    pub fn for_load() -> TestOptions {
        let mut options = TestOptions::default();
        options.server.rate_limits = cairn_server::RateLimits {
            per_ip: cairn_server::Rate::OFF,
            per_token: cairn_server::Rate::OFF,
            ..cairn_server::RateLimits::default()
        };
        options
    }
}

/// A running server. Stop it with [`TestServer::stop`] (also on drop).
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The bound address.
    pub addr: SocketAddr,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The engine.
    pub registry: Arc<Registry>,
    /// The OCI face.
    pub oci: Arc<Oci>,
    /// An API token with the `admin` scope (account `admin`).
    pub admin_token: String,
    /// Accounts and tokens.
    pub auth: Arc<dyn AuthStore>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    _lock: Option<DirLock>,
}

impl TestServer {
    /// Adds a token for `account` with `scopes` (such as `pull` or
    /// `publish:acme/*`), valid until `expires` (seconds since the epoch).
    pub fn token(&self, account: &str, scopes: &[&str], expires: Option<u64>) -> String {
        let token = new_token();
        self.auth.ensure_account(account).expect("account");
        self.auth
            .add_token(
                &token_hash(&token),
                &TokenInfo {
                    account: account.into(),
                    scopes: scopes.iter().map(|s| s.parse().expect("scope")).collect(),
                    expires,
                },
                "test",
            )
            .expect("token");
        token
    }

    /// Starts on `data_dir` with `namespaces` defined, on a random port.
    pub fn start(data_dir: &Path, namespaces: &[&str]) -> TestServer {
        TestServer::start_with(data_dir, namespaces, Config::default(), None)
    }

    /// Starts with an engine configuration, on `addr` if given (to restart on
    /// the same port) or a random 127.0.0.1 port.
    pub fn start_with(
        data_dir: &Path,
        namespaces: &[&str],
        config: Config,
        addr: Option<SocketAddr>,
    ) -> TestServer {
        TestServer::start_full(
            data_dir,
            namespaces,
            config,
            OciConfig::default(),
            ServerOptions::default(),
            addr,
        )
    }

    /// Starts with engine, OCI and server options.
    pub fn start_full(
        data_dir: &Path,
        namespaces: &[&str],
        config: Config,
        oci_config: OciConfig,
        options: ServerOptions,
        addr: Option<SocketAddr>,
    ) -> TestServer {
        TestServer::start_options(
            data_dir,
            namespaces,
            TestOptions {
                config,
                oci: oci_config,
                server: options,
                addr,
                worker_threads: None,
            },
        )
    }

    /// Starts with `options`.
    pub fn start_options(data_dir: &Path, namespaces: &[&str], options: TestOptions) -> TestServer {
        let TestOptions {
            config,
            oci: oci_config,
            server: server_options,
            addr,
            worker_threads,
        } = options;
        let dir = DataDir::create(data_dir).expect("data directory");
        let lock = dir
            .try_lock()
            .expect("lock")
            .expect("data directory is free");
        let (key, _) = dir.operator_key(None).expect("operator key");
        let mut server_options = server_options;
        if server_options.tlog.is_none() {
            // As `cairn serve` does: the log key of the data directory.
            let (log_key, _) = dir
                .log_key(None, || "cairn.test/tlog".to_owned())
                .expect("log key");
            server_options.tlog = Some(Arc::new(cairn_server::TlogKey::new(log_key)));
        }
        let stores = dir.open_stores().expect("stores");
        let (meta, content) = (stores.meta, stores.content);
        let namespaces: Vec<String> = namespaces.iter().map(|n| n.to_string()).collect();
        let admin_token = new_token();
        meta.ensure_account("admin").expect("admin account");
        meta.add_token(
            &token_hash(&admin_token),
            &TokenInfo {
                account: "admin".into(),
                scopes: vec![Scope::Admin],
                expires: None,
            },
            "test admin",
        )
        .expect("admin token");
        let auth: Arc<dyn AuthStore> = meta.clone();
        let registry = Registry::open(meta.clone(), content.clone(), key, &namespaces, config)
            .expect("open registry");
        let oci = Arc::new(Oci::new(registry.clone(), meta, stores.blobs, oci_config));
        let server_oci = oci.clone();
        let server_auth = auth.clone();
        let wanted = addr.unwrap_or_else(|| "127.0.0.1:0".parse().expect("address"));
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        let server_registry = registry.clone();
        let thread = std::thread::spawn(move || {
            let runtime =
                cairn_server::runtime(Some(worker_threads.unwrap_or(2))).expect("runtime");
            runtime.block_on(async move {
                // Bound as `cairn serve` binds (a deep accept queue).
                let listener = cairn_server::bind(wanted).expect("bind 127.0.0.1");
                let _ = bound_tx.send(listener.local_addr().expect("local address"));
                let shutdown = async move {
                    let _ = stop_rx.await;
                };
                let services = Services {
                    registry: server_registry,
                    oci: server_oci,
                    auth: server_auth,
                };
                cairn_server::serve(listener, services, server_options, shutdown)
                    .await
                    .expect("serve");
            });
        });
        let addr = bound_rx.recv().expect("the server bound its address");
        TestServer {
            url: format!("http://{addr}"),
            addr,
            data_dir: data_dir.to_owned(),
            registry,
            oci,
            admin_token,
            auth,
            stop: Some(stop_tx),
            thread: Some(thread),
            _lock: Some(lock),
        }
    }

    /// Stops serving and shuts the engine down (a final checkpoint is made).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.registry.shutdown();
        self._lock.take();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}
