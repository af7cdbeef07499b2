//! `cairn`: the Cairn registry server and its administration commands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cairn_registry::oci::{Oci, OciConfig};
use cairn_registry::{Config, Registry};
use cairn_server::ServerOptions;
use cairn_store::{DataDir, KeySource, SqliteStore};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    about = "A verifiable registry for WebAssembly components"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry server (Warg v1 API) on the embedded default storage.
    Serve(ServeArgs),
    /// Manage the namespaces the registry owns.
    Namespace {
        #[command(subcommand)]
        command: NamespaceCommand,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CAIRN_LISTEN", default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// Directory holding the database, content files and operator key.
    #[arg(long, env = "CAIRN_DATA_DIR", default_value = "./cairn-data")]
    data_dir: PathBuf,
    /// Define this namespace if it is not defined yet (repeatable).
    #[arg(long = "namespace", value_name = "NS")]
    namespaces: Vec<String>,
    /// The URL clients use to reach this server (default: http://<Host header>).
    #[arg(long, env = "CAIRN_PUBLIC_URL")]
    public_url: Option<String>,
    /// Largest content upload accepted, in bytes.
    #[arg(long, env = "CAIRN_MAX_CONTENT_BYTES", default_value_t = 100 * 1024 * 1024)]
    max_content_bytes: u64,
    /// Seconds a record may wait for its content before it is rejected.
    #[arg(long, env = "CAIRN_CONTENT_TIMEOUT", default_value_t = 600)]
    content_timeout: u64,
}

#[derive(Subcommand)]
enum NamespaceCommand {
    /// Define a namespace, on a stopped or a running registry.
    Define {
        /// The namespace (kebab-case, e.g. `acme`).
        namespace: String,
        /// The registry's data directory.
        #[arg(long, env = "CAIRN_DATA_DIR", default_value = "./cairn-data")]
        data_dir: PathBuf,
    },
}

fn operator_key_env() -> Option<String> {
    std::env::var("CAIRN_OPERATOR_KEY")
        .ok()
        .filter(|k| !k.trim().is_empty())
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Namespace {
            command:
                NamespaceCommand::Define {
                    namespace,
                    data_dir,
                },
        } => define_namespace(&namespace, &data_dir),
    }
}

fn serve(args: ServeArgs) -> Result<()> {
    let dir = DataDir::create(&args.data_dir)?;
    let _lock = dir.try_lock()?.with_context(|| {
        format!(
            "another cairn process is using the data directory {}; stop it or pass another --data-dir",
            args.data_dir.display()
        )
    })?;
    let (key, source) = dir.operator_key(operator_key_env().as_deref())?;
    match source {
        KeySource::Created => tracing::info!(
            "created the operator key {} in {} (mode 0600)",
            key.public_key().id(),
            dir.key_file().display()
        ),
        KeySource::File => tracing::info!(
            "operator key {} from {}",
            key.public_key().id(),
            dir.key_file().display()
        ),
        KeySource::Given => tracing::info!(
            "operator key {} from CAIRN_OPERATOR_KEY",
            key.public_key().id()
        ),
    }
    let (meta, content) = dir.open_stores()?;
    let config = Config {
        max_content_bytes: args.max_content_bytes,
        content_timeout: Duration::from_secs(args.content_timeout),
        ..Config::default()
    };
    let started = Instant::now();
    let registry = Registry::open(meta.clone(), content.clone(), key, &args.namespaces, config)?;
    tracing::info!(
        "opened the registry in {:.2?}: log length {}",
        started.elapsed(),
        registry.log_length()
    );
    let oci = Arc::new(Oci::new(
        registry.clone(),
        meta,
        content,
        OciConfig::default(),
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        tracing::info!(
            "cairn listening on http://{addr}; data in {}",
            std::fs::canonicalize(dir.root())
                .unwrap_or_else(|_| dir.root().to_owned())
                .display()
        );
        let options = ServerOptions {
            public_url: args.public_url.clone(),
        };
        cairn_server::serve(listener, registry.clone(), oci, options, shutdown_signal())
            .await
            .context("server failed")
    });
    tracing::info!("shutting down");
    registry.shutdown();
    result
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

fn define_namespace(namespace: &str, data_dir: &std::path::Path) -> Result<()> {
    if let Err(e) = cairn_protocol::validate_namespace(namespace) {
        bail!(
            "`{namespace}` is not a valid namespace: {e} (use kebab-case, e.g. `acme` or `my-org`)"
        );
    }
    let dir = DataDir::create(data_dir)?;
    match dir.try_lock()? {
        Some(_lock) => {
            let (key, _) = dir.operator_key(operator_key_env().as_deref())?;
            let (meta, content) = dir.open_stores()?;
            let registry = Registry::open(
                meta,
                content,
                key,
                &[namespace.to_owned()],
                Config::default(),
            )?;
            registry.shutdown();
            println!(
                "namespace `{namespace}` is defined in {}",
                data_dir.display()
            );
        }
        None => {
            // A server holds the directory: leave it a request and wait.
            let store = Arc::new(SqliteStore::open(&dir.database())?);
            let id = store.request_define_namespace(namespace)?;
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Some(outcome) = store.admin_outcome(id)? {
                    if let Some(error) = outcome.strip_prefix("error: ") {
                        bail!("the running registry refused to define `{namespace}`: {error}");
                    }
                    println!("namespace `{namespace}` is {outcome} on the running registry");
                    return Ok(());
                }
                if Instant::now() > deadline {
                    bail!("the running registry did not pick up the request within 30 s; is it healthy?");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    Ok(())
}
