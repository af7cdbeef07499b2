//! `cairn`: the Cairn registry server and its administration commands.

mod admin;
mod attest;
mod client;
mod mirror;
mod monitor;
mod packages;
mod proofs;
mod tls;
mod witness;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cairn_registry::auth::{new_token, token_hash, AuthStore, Scope, TokenInfo};
use cairn_registry::oci::{BlobStore, OciStore};
use cairn_registry::oci::{Oci, OciConfig};
use cairn_registry::policy::PublishPolicy;
use cairn_registry::{Config, ContentStore, Leadership, MetaStore, Registry};
use cairn_server::{ServerOptions, Services};
use cairn_store::{DataDir, KeySource, SqliteStore};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    about = "A verifiable registry for WebAssembly components",
    after_help = "Exit codes: 0 success, 1 error, 2 usage error, \
                  3 verification failure (the registry served something its own \
                  signatures and proofs contradict; the evidence file is named)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry: the OCI 1.1 face (wkg, oras, skopeo, docker) and the
    /// Warg v1 face (warg, cairn) over one signed log, on the embedded default
    /// storage (SQLite and files in --data-dir; no other service needed).
    Serve(ServeArgs),
    /// Print a shell completion script: `cairn completions bash >
    /// ~/.local/share/bash-completion/completions/cairn` (also zsh, fish,
    /// elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Manage the namespaces the registry owns.
    Namespace {
        #[command(subcommand)]
        command: NamespaceCommand,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Show or change the client configuration (default and per-namespace
    /// registries).
    Config(client::ConfigArgs),
    /// Manage signing keys (kept in a 0600 file, or CAIRN_SIGNING_KEY).
    Key(client::KeyArgs),
    /// Store an API token for a registry (from --token-stdin or CAIRN_TOKEN).
    Login(client::LoginArgs),
    /// Forget the API token of a registry.
    Logout(client::LoginArgs),
    /// The client's trusted state of registries.
    Registry {
        #[command(subcommand)]
        command: RegistryCommand,
    },
    /// Release a version of a package (creating the package on first publish)
    /// and wait until the registry's checkpoint contains it.
    Publish(packages::PublishArgs),
    /// Mark a release yanked: exact-version gets still work, requirements skip it.
    Yank(packages::YankArgs),
    /// Give a key permissions (release, yank) on a package.
    Grant(packages::GrantArgs),
    /// Take permissions (release, yank) away from a key.
    Revoke(packages::GrantArgs),
    /// Download a verified release: `ns:name`, `ns:name@1.2.3` or `ns:name@^1`.
    Get(packages::GetArgs),
    /// Show a package's releases, yanks, keys and content digests.
    Info(packages::InfoArgs),
    /// Sign a release (a cosign-format signature), or attest a predicate
    /// about it (an in-toto statement in a DSSE envelope), with a local
    /// P-256 key; pushed as an OCI referrer of its manifest and recorded in
    /// its attestation log with the registry's verdict.
    Attest(attest::AttestArgs),
    /// Search the registry's packages: by words, license, author, and by
    /// the WIT interfaces their latest release exports or imports.
    Search(packages::SearchArgs),
    /// Re-verify everything trusted about a registry: consistency with the
    /// trusted checkpoint, every known log and record.
    Verify(packages::VerifyArgs),
    /// Resolve packages and record version, digest and record in cairn.lock.
    Lock(packages::LockArgs),
    /// Keep verified copies of other registries' namespaces and serve them.
    Mirror {
        #[command(subcommand)]
        command: mirror::MirrorCommand,
    },
    /// Follow registries' checkpoints and check each extends the last one
    /// verified (and, with --replay, every record of every package log);
    /// serve the findings as JSON and Prometheus metrics, and compare
    /// checkpoints with other monitors (--peer) to catch a split view.
    Monitor(monitor::MonitorArgs),
    /// Take a release (or a whole package) down for a stated reason, or
    /// restore it: a signed notice in the log; downloads then get 451 with
    /// the reason on both faces, and records and proofs stay valid.
    Takedown(admin::TakeDownArgs),
    /// Download a release's offline proof (`c2sp.org/tlog-proof@v1`): keep
    /// it beside the file to verify it later with no network.
    Proof(proofs::ProofArgs),
    /// Check that a file (fetched by wkg, oras or anything) is a release in
    /// a registry's log, in a checkpoint the trust policy accepts; offline
    /// with --proof.
    VerifyFile(proofs::VerifyFileArgs),
    /// Check every component a wkg.lock pins against its registry's log.
    Audit(proofs::AuditArgs),
    /// Run a C2SP witness: cosign the checkpoints of the logs it knows
    /// when each is consistent with the last one it cosigned.
    Witness(witness::WitnessArgs),
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
    /// The URL clients use to reach this server (default: `http://<Host header>`).
    #[arg(long, env = "CAIRN_PUBLIC_URL")]
    public_url: Option<String>,
    /// The origin (identity) of the log's C2SP checkpoints, used when the
    /// log key is made at first start (default: `<public URL or listen
    /// address, without scheme>/tlog`); the key keeps it from then on.
    #[arg(long, env = "CAIRN_LOG_ORIGIN")]
    log_origin: Option<String>,
    /// A C2SP policy file (`c2sp.org/tlog-policy`) naming the witnesses
    /// each checkpoint is sent to (`witness <name> <vkey> <url>`) and the
    /// quorum of them that makes `/tlog/checkpoint` serve it.
    #[arg(long, env = "CAIRN_WITNESS_POLICY")]
    witness_policy: Option<PathBuf>,
    /// Largest content upload accepted, in bytes.
    #[arg(long, env = "CAIRN_MAX_CONTENT_BYTES", default_value_t = 100 * 1024 * 1024)]
    max_content_bytes: u64,
    /// Largest OCI blob accepted (any artifact), in bytes
    #[arg(long, env = "CAIRN_MAX_BLOB_BYTES", default_value_t = 1 << 30)]
    max_blob_bytes: u64,
    /// Seconds a record may wait for its content before it is rejected.
    #[arg(long, env = "CAIRN_CONTENT_TIMEOUT", default_value_t = 600)]
    content_timeout: u64,
    /// Require a token for reads too (by default anyone may pull).
    #[arg(long, env = "CAIRN_NO_ANONYMOUS_PULL")]
    no_anonymous_pull: bool,
    /// Async worker threads (default: one per core).
    #[arg(long, env = "CAIRN_WORKERS", value_name = "N")]
    workers: Option<usize>,
    /// Seconds a client may take to send a request's headers (also the
    /// longest a keep-alive connection stays idle between requests).
    #[arg(
        long,
        env = "CAIRN_HEADER_READ_TIMEOUT",
        value_name = "SECS",
        default_value_t = 10
    )]
    header_read_timeout: u64,
    /// Seconds a connection may go with no byte moving while the server
    /// waits on the client (a stalled upload, a client not reading).
    #[arg(
        long,
        env = "CAIRN_IDLE_TIMEOUT",
        value_name = "SECS",
        default_value_t = 60
    )]
    idle_timeout: u64,
    /// Most connections open at once (more wait in the kernel's queue);
    /// capped by the process's open-file limit.
    #[arg(
        long,
        env = "CAIRN_MAX_CONNECTIONS",
        value_name = "N",
        default_value_t = 4096
    )]
    max_connections: usize,
    /// Requests per second allowed from one client address (bursts of
    /// twice that); 0 for no limit.
    #[arg(
        long,
        env = "CAIRN_RATE_LIMIT_IP",
        value_name = "RPS",
        default_value_t = 2000.0
    )]
    rate_limit_ip: f64,
    /// Requests per second allowed with one token (bursts of twice that);
    /// 0 for no limit.
    #[arg(
        long,
        env = "CAIRN_RATE_LIMIT_TOKEN",
        value_name = "RPS",
        default_value_t = 1000.0
    )]
    rate_limit_token: f64,
    /// Most OCI upload sessions one account may hold open.
    #[arg(
        long,
        env = "CAIRN_MAX_UPLOADS_PER_ACCOUNT",
        value_name = "N",
        default_value_t = 256
    )]
    max_uploads_per_account: u64,
    /// Most OCI upload sessions open in all.
    #[arg(
        long,
        env = "CAIRN_MAX_UPLOADS",
        value_name = "N",
        default_value_t = 10_000
    )]
    max_uploads: u64,
    /// Serve HTTPS with this certificate chain (PEM; the server's first).
    #[arg(long, env = "CAIRN_TLS_CERT", value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "CAIRN_TLS_KEY", value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve HTTPS with a development certificate signed by a local CA made
    /// in `<data-dir>/tls/` (and reused); the log says how to trust it.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    tls_dev: bool,
    /// Disk kept for the database: content and blob writes stop when less
    /// than this is free, and a `ballast` file of this size is released to
    /// start when the disk is full anyway; 0 for neither.
    #[arg(long, env = "CAIRN_BALLAST_BYTES", value_name = "BYTES", default_value_t = 64 << 20)]
    ballast_bytes: u64,
    /// Largest JSON request body accepted, in bytes.
    #[arg(long, env = "CAIRN_MAX_JSON_BODY", value_name = "BYTES", default_value_t = 2 << 20)]
    max_json_body: usize,
    /// Keep records, logs, checkpoints, OCI metadata and tokens in this
    /// PostgreSQL database (`postgres://user:password@host:port/db`)
    /// instead of SQLite in the data directory. Several `cairn serve`
    /// processes on one database are replicas: one sequences, the others
    /// serve reads and forward writes to it, and one takes over if it goes.
    #[arg(long, env = "CAIRN_DATABASE_URL", value_name = "URL")]
    database_url: Option<String>,
    /// Certificate authorities (PEM) to trust for TLS to PostgreSQL, beside
    /// the system's. TLS follows the URL's `sslmode` (`disable`, `prefer`,
    /// `require`); the server's certificate and name are always verified.
    #[arg(long, env = "PGSSLROOTCERT", value_name = "PEM")]
    database_ca_file: Option<PathBuf>,
    /// Keep release content and OCI blobs in this S3-compatible bucket
    /// (`s3://bucket/prefix`; endpoint, region and credentials from the
    /// usual AWS_* variables) instead of files in the data directory.
    /// Replicas need it (they share the bytes).
    #[arg(long, env = "CAIRN_CONTENT_URL", value_name = "URL")]
    content_url: Option<String>,
    /// Hand clients presigned URLs of the bucket for content downloads,
    /// valid this many seconds, so the bytes need not pass through Cairn
    /// (with --content-url s3://...); 0 serves them through Cairn.
    #[arg(
        long,
        env = "CAIRN_CONTENT_REDIRECT_SECONDS",
        value_name = "S",
        default_value_t = 0
    )]
    content_redirect_seconds: u64,
    /// Where the other replicas reach this one to forward writes while it
    /// leads (e.g. `http://10.0.0.5:8090`, or `https://...` when this one
    /// serves TLS); by default `http(s)://<--listen>` when that is a
    /// concrete address.
    #[arg(long, env = "CAIRN_ADVERTISE_URL", value_name = "URL")]
    advertise_url: Option<String>,
    /// Certificate authorities (PEM) trusted, beside the system's, for the
    /// leading replica's `https` URL when this one forwards writes to it.
    #[arg(long, env = "CAIRN_REPLICA_CA_FILE", value_name = "PEM")]
    replica_ca_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum RegistryCommand {
    /// Forget what is trusted about a registry (its checkpoint and the logs
    /// verified against it): for a development registry wiped on purpose.
    Forget(client::ForgetArgs),
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
        #[command(flatten)]
        remote: admin::RemoteArgs,
    },
    /// Import a namespace from another registry (Warg's import record in the
    /// operator log): its packages live there, and clients asking this
    /// registry for them are sent there.
    Import {
        /// The namespace (kebab-case, e.g. `acme`).
        namespace: String,
        /// The registry it belongs to: its URL, or its domain (then https).
        #[arg(long = "from", value_name = "REGISTRY")]
        from: String,
        /// The registry's data directory (when it is not running).
        #[arg(long, env = "CAIRN_DATA_DIR", default_value = "./cairn-data")]
        data_dir: PathBuf,
        #[command(flatten)]
        remote: admin::RemoteArgs,
    },
    /// Take over a namespace this registry mirrors (or one package of it)
    /// from its origin: a fork notice in the log (where the history came
    /// from, at which of the origin's checkpoints), then the origin's
    /// verified records replayed into this log; clients are told of the
    /// fork.
    Fork {
        /// The namespace.
        namespace: String,
        /// Only this package (`ns:name`); the rest of the namespace stays
        /// the origin's, and mirrored.
        #[arg(long, value_name = "PACKAGE")]
        package: Option<String>,
        #[command(flatten)]
        remote: admin::RemoteArgs,
    },
    /// Trust a public key (PEM, ECDSA P-256 or Ed25519, as `cosign
    /// generate-key-pair` or `openssl` write) for signatures and
    /// attestations pushed to a namespace's packages (or to one package).
    TrustKey {
        /// The namespace.
        namespace: String,
        /// The public key file (PEM `PUBLIC KEY`).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Only for this package (`ns:name` or `name`).
        #[arg(long, value_name = "PACKAGE")]
        package: Option<String>,
        /// A label shown with verdicts (default: the key's id).
        #[arg(long, value_name = "LABEL", default_value = "")]
        name: String,
        /// The registry's data directory.
        #[arg(long, env = "CAIRN_DATA_DIR", default_value = "./cairn-data")]
        data_dir: PathBuf,
        #[command(flatten)]
        remote: admin::RemoteArgs,
    },
    /// List the keys trusted for signatures in a namespace.
    Keys {
        /// The namespace.
        namespace: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// The registry's data directory.
        #[arg(long, env = "CAIRN_DATA_DIR", default_value = "./cairn-data")]
        data_dir: PathBuf,
        #[command(flatten)]
        remote: admin::RemoteArgs,
    },
    /// Stop trusting a key (its id `sha256:…` or its label). Signatures
    /// already recorded keep the verdict they had.
    UntrustKey {
        /// The namespace.
        namespace: String,
        /// The key's id or label.
        key: String,
        /// The package it was trusted for (`ns:name` or `name`), if not the
        /// whole namespace.
        #[arg(long, value_name = "PACKAGE")]
        package: Option<String>,
        /// The registry's data directory.
        #[arg(long, env = "CAIRN_DATA_DIR", default_value = "./cairn-data")]
        data_dir: PathBuf,
        #[command(flatten)]
        remote: admin::RemoteArgs,
    },
    /// Show or set a namespace's policies: whether an OCI push may create
    /// packages (on by default; pushes always need a token with a publish
    /// scope), and what every release must carry (an SPDX license, a
    /// source URL, a WIT semver-compatible with the previous version of
    /// its series). With no option, shows them.
    Policy {
        /// The namespace.
        namespace: String,
        /// Whether an OCI push may create packages (`true` or `false`).
        #[arg(long, value_name = "BOOL")]
        oci_create: Option<bool>,
        /// Whether every release must name an SPDX license.
        #[arg(long, value_name = "BOOL")]
        require_license: Option<bool>,
        /// Whether every release must name its source URL.
        #[arg(long, value_name = "BOOL")]
        require_source: Option<bool>,
        /// Whether a new version whose WIT breaks the previous version of
        /// its series is refused (unless marked as an intended break).
        #[arg(long, value_name = "BOOL")]
        semver_gate: Option<bool>,
        /// Allow this release (`ns:name@version`) to break its series.
        #[arg(long, value_name = "RELEASE")]
        allow_break: Vec<String>,
        /// Withdraw an allowance given with `--allow-break`.
        #[arg(long, value_name = "RELEASE")]
        disallow_break: Vec<String>,
        /// The registry's data directory.
        #[arg(long, env = "CAIRN_DATA_DIR", default_value = "./cairn-data")]
        data_dir: PathBuf,
        #[command(flatten)]
        remote: admin::RemoteArgs,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token and print it (once) on stdout. Works on a stopped
    /// or a running registry.
    Create {
        /// The account the token acts for (created with a custodial key if new).
        #[arg(long, default_value = "admin")]
        account: String,
        /// What it may do: `pull`, `publish:<ns>/*`, `publish:<ns>/<name>`, `admin`
        /// (repeatable).
        #[arg(long = "scope", value_name = "SCOPE", required = true)]
        scopes: Vec<Scope>,
        /// Lifetime: `30d`, `12h`, `45m`, or `never`.
        #[arg(long, default_value = "90d")]
        expires: String,
        /// A note stored with the token.
        #[arg(long, default_value = "")]
        note: String,
        /// The registry's data directory.
        #[arg(long, env = "CAIRN_DATA_DIR", default_value = "./cairn-data")]
        data_dir: PathBuf,
        #[command(flatten)]
        remote: admin::RemoteArgs,
    },
    /// List the tokens (id, account, scopes, expiry, note; never the token).
    List {
        /// Only the tokens of this account.
        #[arg(long)]
        account: Option<String>,
        /// One JSON object per token.
        #[arg(long)]
        json: bool,
        /// The registry's data directory.
        #[arg(long, env = "CAIRN_DATA_DIR", default_value = "./cairn-data")]
        data_dir: PathBuf,
        #[command(flatten)]
        remote: admin::RemoteArgs,
    },
    /// Revoke a token by its id (from `cairn token list`; a unique prefix
    /// of at least 8 digits), or every token of an account. A running
    /// registry stops accepting it within 30 s.
    Revoke {
        /// The token's id.
        #[arg(required_unless_present = "account", conflicts_with = "account")]
        id: Option<String>,
        /// Revoke every token of this account instead.
        #[arg(long)]
        account: Option<String>,
        /// The registry's data directory.
        #[arg(long, env = "CAIRN_DATA_DIR", default_value = "./cairn-data")]
        data_dir: PathBuf,
        #[command(flatten)]
        remote: admin::RemoteArgs,
    },
    /// Make a new admin token, write it to the admin token file (mode 0600)
    /// and revoke the one that file held.
    RotateAdmin {
        /// The registry's data directory.
        #[arg(long, env = "CAIRN_DATA_DIR", default_value = "./cairn-data")]
        data_dir: PathBuf,
    },
}

/// The longest lifetime `--expires` takes: 100 years.
const LIFETIME_MAX: u64 = cairn_registry::auth::TOKEN_LIFETIME_MAX;

/// Seconds in a lifetime such as `30d`; `None` for `never`.
fn lifetime(text: &str) -> Result<Option<u64>> {
    if text == "never" {
        return Ok(None);
    }
    let unit_at = text.char_indices().last().map_or(0, |(i, _)| i);
    let (number, unit) = text.split_at(unit_at);
    let n: u64 = number.parse().ok().filter(|n| *n > 0).with_context(|| {
        format!("--expires `{text}`: use a positive number with d, h or m, or `never`")
    })?;
    let seconds: u64 = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        _ => anyhow::bail!("--expires `{text}`: the unit is d, h or m (or use `never`)"),
    };
    match n.checked_mul(seconds).filter(|s| *s <= LIFETIME_MAX) {
        Some(seconds) => Ok(Some(seconds)),
        None => anyhow::bail!(
            "--expires `{text}` is longer than 100 years (36500d); use `never` for a token \
             that never expires"
        ),
    }
}

fn create_token(
    account: &str,
    scopes: Vec<Scope>,
    expires: &str,
    note: &str,
    data_dir: &Path,
    remote: &admin::RemoteArgs,
) -> Result<()> {
    let lifetime = lifetime(expires)?;
    cairn_registry::auth::check_account(account).map_err(|e| anyhow::anyhow!(e))?;
    if let Some(remote) = admin::Remote::from_args(remote)? {
        let names: Vec<String> = scopes.iter().map(ToString::to_string).collect();
        let answer = remote.create_token(account, &names, lifetime, note)?;
        let token = answer["token"]
            .as_str()
            .context("the registry sent no token")?;
        eprintln!(
            "created a token on {} for account `{account}` with scopes {} ({}); it is shown \
             only now:",
            remote.url(),
            names.join(", "),
            match lifetime {
                Some(_) => format!("expires in {expires}"),
                None => "never expires".into(),
            }
        );
        println!("{token}");
        return Ok(());
    }
    let store = existing_data_dir(data_dir)?.open_meta()?;
    store.ensure_account(account)?;
    let token = new_token();
    let now = cairn_registry::Clock::now_seconds(&cairn_registry::SystemClock);
    store.add_token(
        &token_hash(&token),
        &TokenInfo {
            account: account.to_owned(),
            scopes: scopes.clone(),
            expires: lifetime.map(|l| now + l),
        },
        note,
    )?;
    eprintln!(
        "created a token for account `{account}` with scopes {} ({}); it is shown only now:",
        scopes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        match lifetime {
            Some(_) => format!("expires in {expires}"),
            None => "never expires".into(),
        }
    );
    println!("{token}");
    Ok(())
}

/// When a token expires, for people.
fn expiry_text(expires: Option<u64>, now: u64) -> String {
    match expires {
        None => "never".into(),
        Some(at) if at <= now => "expired".into(),
        Some(at) => {
            let left = at - now;
            if left >= 86_400 {
                format!("in {}d", left / 86_400)
            } else if left >= 3600 {
                format!("in {}h", left / 3600)
            } else {
                format!("in {}m", left.div_ceil(60))
            }
        }
    }
}

/// A token as listed: local entries and the registry's JSON alike.
fn token_rows(
    account: Option<&str>,
    data_dir: &Path,
    remote: &admin::RemoteArgs,
) -> Result<Vec<serde_json::Value>> {
    let rows = match admin::Remote::from_args(remote)? {
        Some(remote) => remote.tokens()?,
        None => {
            let store = existing_data_dir(data_dir)?.open_meta()?;
            store
                .tokens()?
                .iter()
                .map(|t| {
                    serde_json::json!({
                        "id": t.id(),
                        "account": t.info.account,
                        "scopes": t.info.scopes.iter().map(ToString::to_string).collect::<Vec<_>>(),
                        "expires": t.info.expires,
                        "created": t.created,
                        "note": t.note,
                    })
                })
                .collect()
        }
    };
    Ok(rows
        .into_iter()
        .filter(|t| account.is_none_or(|a| t["account"] == a))
        .collect())
}

fn list_tokens(
    account: Option<&str>,
    json: bool,
    data_dir: &Path,
    remote: &admin::RemoteArgs,
) -> Result<()> {
    let now = cairn_registry::Clock::now_seconds(&cairn_registry::SystemClock);
    let tokens = token_rows(account, data_dir, remote)?;
    if json {
        for t in &tokens {
            println!("{t}");
        }
        return Ok(());
    }
    if tokens.is_empty() {
        eprintln!("no tokens");
        return Ok(());
    }
    println!(
        "{:<16}  {:<16}  {:<10}  {:<30}  NOTE",
        "ID", "ACCOUNT", "EXPIRES", "SCOPES"
    );
    for t in &tokens {
        let scopes = t["scopes"]
            .as_array()
            .map(|s| {
                s.iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        println!(
            "{:<16}  {:<16}  {:<10}  {:<30}  {}",
            t["id"].as_str().unwrap_or_default(),
            t["account"].as_str().unwrap_or_default(),
            expiry_text(t["expires"].as_u64(), now),
            scopes,
            t["note"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}

/// A data directory that must exist already (commands that only read or
/// change an existing registry never create one).
fn existing_data_dir(path: &Path) -> Result<DataDir> {
    if !path.join("cairn.sqlite3").exists() && std::env::var_os("CAIRN_DATABASE_URL").is_some() {
        bail!(
            "this registry keeps its data in PostgreSQL (CAIRN_DATABASE_URL), not in {}: \
             administer it over HTTP with --registry <its URL> and an admin token \
             (--admin-token-file, or CAIRN_ADMIN_TOKEN)",
            path.display()
        );
    }
    if !path.join("cairn.sqlite3").exists() {
        bail!(
            "{} holds no registry (nothing is created here): pass the --data-dir of your \
             `cairn serve` (or set CAIRN_DATA_DIR), or start one with `cairn serve --data-dir {} \
             --namespace <ns>`",
            path.display(),
            path.display()
        );
    }
    data_dir_at(path)
}

fn revoke_tokens(
    id: Option<&str>,
    account: Option<&str>,
    data_dir: &Path,
    remote: &admin::RemoteArgs,
) -> Result<()> {
    if let Some(api) = admin::Remote::from_args(remote)? {
        let ids: Vec<String> = match (id, account) {
            (Some(id), _) => vec![id.to_owned()],
            (None, Some(account)) => {
                let ids: Vec<String> = token_rows(Some(account), data_dir, remote)?
                    .iter()
                    .filter_map(|t| t["id"].as_str().map(str::to_owned))
                    .collect();
                if ids.is_empty() {
                    bail!("account `{account}` has no tokens on {}", api.url());
                }
                ids
            }
            (None, None) => bail!("name a token id or --account"),
        };
        for id in ids {
            let revoked = api.revoke(&id)?;
            eprintln!(
                "revoked token {} of account `{}` on {}; it is refused from now on",
                revoked["id"].as_str().unwrap_or(&id),
                revoked["account"].as_str().unwrap_or_default(),
                api.url()
            );
        }
        return Ok(());
    }
    let store = existing_data_dir(data_dir)?.open_meta()?;
    let tokens = store.tokens()?;
    let chosen: Vec<_> = match (id, account) {
        (Some(id), _) => {
            let id = id.trim().to_ascii_lowercase();
            if id.len() < 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!(
                    "`{id}` is not a token id: give at least 8 hex digits from `cairn token list`"
                );
            }
            let found: Vec<_> = tokens
                .into_iter()
                .filter(|t| hex::encode(t.hash).starts_with(&id))
                .collect();
            match found.len() {
                0 => bail!("no token has id `{id}`; `cairn token list` shows them"),
                1 => found,
                n => bail!("{n} tokens have ids starting `{id}`; give more digits"),
            }
        }
        (None, Some(account)) => {
            let found: Vec<_> = tokens
                .into_iter()
                .filter(|t| t.info.account == account)
                .collect();
            if found.is_empty() {
                bail!("account `{account}` has no tokens");
            }
            found
        }
        (None, None) => bail!("name a token id or --account"),
    };
    for t in &chosen {
        store.revoke_token(&t.hash)?;
        eprintln!(
            "revoked token {} of account `{}` ({})",
            t.id(),
            t.info.account,
            t.info
                .scopes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    eprintln!("a running registry refuses them within 30 s");
    Ok(())
}

fn rotate_admin(data_dir: &Path) -> Result<()> {
    let dir = existing_data_dir(data_dir)?;
    let store = dir.open_meta()?;
    let old = std::fs::read_to_string(dir.admin_token_file()).ok();
    store.ensure_account("admin")?;
    let token = new_token();
    store.add_token(
        &token_hash(&token),
        &TokenInfo {
            account: "admin".into(),
            scopes: vec![Scope::Admin],
            expires: None,
        },
        "rotated admin token",
    )?;
    let path = dir.write_admin_token(&token)?;
    let revoked = match old {
        Some(old) => store.revoke_token(&token_hash(old.trim()))?,
        None => false,
    };
    eprintln!(
        "wrote a new admin token to {} (mode 0600){}; a running registry refuses the old one \
         within 30 s",
        path.display(),
        if revoked {
            " and revoked the previous one"
        } else {
            ""
        }
    );
    Ok(())
}

/// How often `cairn namespace policy` makes its change again when another
/// edit of the policy came first.
const POLICY_TRIES: usize = 10;

/// Makes `change` on the publish policy `read` gives (with its tag), and
/// has `write` set it only if the policy still has that tag (`None`:
/// another edit came first); then makes it again on the policy as it is,
/// up to [`POLICY_TRIES`] times. The policy now (as read, when `change`
/// changes no publishing).
fn edit_policy(
    namespace: &str,
    change: &PolicyChange,
    mut read: impl FnMut() -> Result<(PublishPolicy, Option<String>)>,
    mut write: impl FnMut(&PublishPolicy, &str) -> Result<Option<PublishPolicy>>,
) -> Result<PublishPolicy> {
    for _ in 0..POLICY_TRIES {
        let (mut policy, tag) = read()?;
        if !change.changes_publishing() {
            return Ok(policy);
        }
        change.apply(namespace, &mut policy)?;
        let tag = tag.context("the registry gave no tag (ETag) with the policy")?;
        if let Some(now) = write(&policy, &tag)? {
            return Ok(now);
        }
    }
    bail!(
        "the policy of `{namespace}` kept changing while this edit was made ({POLICY_TRIES} \
         tries): run the command again"
    )
}

/// What `cairn namespace policy` changes.
struct PolicyChange {
    oci_create: Option<bool>,
    require_license: Option<bool>,
    require_source: Option<bool>,
    semver_gate: Option<bool>,
    allow_break: Vec<String>,
    disallow_break: Vec<String>,
}

impl PolicyChange {
    fn changes_publishing(&self) -> bool {
        self.require_license.is_some()
            || self.require_source.is_some()
            || self.semver_gate.is_some()
            || !self.allow_break.is_empty()
            || !self.disallow_break.is_empty()
    }

    fn apply(&self, namespace: &str, policy: &mut PublishPolicy) -> Result<()> {
        for release in self.allow_break.iter().chain(&self.disallow_break) {
            cairn_registry::policy::check_allowed_break(namespace, release)
                .map_err(|e| anyhow::anyhow!("--allow-break/--disallow-break: {e}"))?;
        }
        if let Some(v) = self.require_license {
            policy.require_license = v;
        }
        if let Some(v) = self.require_source {
            policy.require_source = v;
        }
        if let Some(v) = self.semver_gate {
            policy.semver_gate = v;
        }
        policy
            .allowed_breaks
            .extend(self.allow_break.iter().cloned());
        for release in &self.disallow_break {
            policy.allowed_breaks.remove(release);
        }
        Ok(())
    }
}

fn show_policy(namespace: &str, oci_create: Option<bool>, policy: &PublishPolicy) {
    let yes = |b: bool| if b { "yes" } else { "no" };
    println!("namespace `{namespace}`");
    if let Some(allowed) = oci_create {
        println!("  OCI pushes may create packages: {}", yes(allowed));
    }
    println!(
        "  every release must name an SPDX license: {}",
        yes(policy.require_license)
    );
    println!(
        "  every release must name its source: {}",
        yes(policy.require_source)
    );
    println!(
        "  WIT semver gate (breaking a series is refused): {}",
        yes(policy.semver_gate)
    );
    for release in &policy.allowed_breaks {
        println!("  allowed to break its series: {release}");
    }
}

fn set_policy(
    namespace: &str,
    change: PolicyChange,
    data_dir: &Path,
    remote: &admin::RemoteArgs,
) -> Result<()> {
    cairn_protocol::validate_namespace(namespace)
        .map_err(|e| anyhow::anyhow!("namespace `{namespace}`: {e}"))?;
    if let Some(api) = admin::Remote::from_args(remote)? {
        if change.oci_create.is_some() {
            bail!(
                "--oci-create is set on the registry's data directory: run this on its host \
                 with --data-dir instead of --registry"
            );
        }
        let policy = edit_policy(
            namespace,
            &change,
            || {
                let (current, tag) = api.policy(namespace)?;
                let current: PublishPolicy = serde_json::from_value(current)
                    .context("the registry's answer is not a publish policy")?;
                Ok((current, tag))
            },
            |policy, tag| {
                api.set_policy(namespace, &serde_json::to_value(policy)?, Some(tag))?
                    .map(|now| {
                        serde_json::from_value(now)
                            .context("the registry's answer is not a publish policy")
                    })
                    .transpose()
            },
        )?;
        show_policy(namespace, None, &policy);
        return Ok(());
    }
    let dir = existing_data_dir(data_dir)?;
    let store = SqliteStore::open(&dir.database())?;
    if let Some(allowed) = change.oci_create {
        store.set_oci_create(namespace, allowed)?;
    }
    let policy = edit_policy(
        namespace,
        &change,
        || {
            let policy = store.publish_policy(namespace)?;
            let tag = policy.tag();
            Ok((policy, Some(tag)))
        },
        |policy, tag| {
            Ok(store
                .set_publish_policy(namespace, policy, Some(tag))?
                .then(|| policy.clone()))
        },
    )?;
    show_policy(
        namespace,
        Some(store.oci_create_allowed(namespace)?),
        &policy,
    );
    Ok(())
}

/// Adds, when the disk holding `dir` is full, that it is.
fn with_disk_hint(e: anyhow::Error, dir: &Path) -> anyhow::Error {
    match rustix::fs::statvfs(dir) {
        Ok(stat) if stat.f_bavail == 0 => e.context(format!(
            "the disk holding {} is full: free some space and start again",
            dir.display()
        )),
        _ => e,
    }
}

/// The data directory at `path`, sealing custodial keys with
/// `CAIRN_KEY_ENCRYPTION_KEY` when it is set (else with the key file in
/// the directory).
fn data_dir_at(path: &Path) -> Result<DataDir> {
    Ok(DataDir::create(path)?
        .with_key_encryption_key(std::env::var("CAIRN_KEY_ENCRYPTION_KEY").ok()))
}

/// The origin a new log key is named after: `--log-origin`, else the
/// public URL (or the listen address) without its scheme, then `/tlog`.
fn default_log_origin(args: &ServeArgs) -> String {
    if let Some(origin) = &args.log_origin {
        return origin.trim().to_owned();
    }
    let base = args
        .public_url
        .as_deref()
        .map(|u| u.split_once("://").map_or(u, |(_, rest)| rest))
        .map(|u| u.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| args.listen.to_string());
    format!("{base}/tlog")
}

fn operator_key_env() -> Option<String> {
    std::env::var("CAIRN_OPERATOR_KEY")
        .ok()
        .filter(|k| !k.trim().is_empty())
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let code = exit_code(&e);
            let message = format!("{e:#}");
            let hint = hint(&e);
            if json_requested() {
                println!(
                    "{}",
                    serde_json::json!({ "error": message, "hint": hint, "exitCode": code })
                );
            }
            eprintln!("error: {message}");
            if let Some(hint) = hint {
                eprintln!("  hint: {hint}");
            }
            std::process::ExitCode::from(code)
        }
    }
}

/// Whether the command line asks for JSON (errors then go to stdout as a
/// JSON object too).
fn json_requested() -> bool {
    std::env::args_os().skip(1).any(|a| a == "--json")
}

/// The way out of an error, where the error says what went wrong but not
/// what to do.
fn hint(e: &anyhow::Error) -> Option<String> {
    use cairn_client::Unreachable;
    let client = e
        .chain()
        .find_map(|c| c.downcast_ref::<cairn_client::Error>())?;
    if client.is_verification() {
        return Some(
            "if you wiped and restarted this registry on purpose (a development registry), \
             `cairn registry forget <URL> --yes` drops what was trusted about it; otherwise keep \
             the evidence file and tell the registry's operator"
                .to_owned(),
        );
    }
    let cairn_client::Error::Unreachable { server, why, .. } = client else {
        return None;
    };
    let plain = server.replacen("https://", "http://", 1);
    Some(match why {
        Unreachable::Refused => format!(
            "is `cairn serve` running at {server}? `cairn config` shows the registry in use; \
             `cairn config --registry URL` sets another"
        ),
        Unreachable::UnknownHost => {
            "check the registry's host name: `cairn config` shows it, `cairn config --registry URL` \
             changes it"
                .to_owned()
        }
        Unreachable::NotTls => format!(
            "the registry speaks plain HTTP: use `cairn config --registry {plain}` (or start \
             `cairn serve` with --tls-cert and --tls-key)"
        ),
        Unreachable::Certificate => {
            "trust the registry's CA: name its PEM file in CAIRN_CA_FILE=<ca.pem> (the \
             development CA of `cairn serve --tls-dev` is <data-dir>/tls/ca.pem, named in its \
             log)"
                .to_owned()
        }
        Unreachable::Other => format!("check that {server} is reachable from here"),
    })
}

/// 3 for a verification failure, 2 for a usage mistake, else 1.
fn exit_code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if let Some(client) = cause.downcast_ref::<cairn_client::Error>() {
            if client.is_verification() {
                return 3;
            }
        }
        if cause.downcast_ref::<packages::UsageError>().is_some() {
            return 2;
        }
        if cause
            .downcast_ref::<cairn_protocol::release_proof::ReleaseProofError>()
            .is_some()
            || cause.downcast_ref::<proofs::NotProven>().is_some()
        {
            return 3;
        }
    }
    1
}

/// Logs go to stderr: colour only on a terminal, JSON lines with
/// `CAIRN_LOG_FORMAT=json`; `CAIRN_LOG` filters (default `info`).
fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("CAIRN_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

/// Raises the open-file limit to its hard maximum (as Go's runtime does),
/// and caps `wanted` connections so the server keeps descriptors for its
/// own files and database.
fn connection_cap(wanted: usize) -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            limit = getrlimit(Resource::Nofile);
        }
    }
    let Some(files) = limit.current else {
        return wanted;
    };
    let reserve = 128;
    let cap = usize::try_from(files.saturating_sub(reserve))
        .unwrap_or(usize::MAX)
        .max(16);
    if wanted > cap {
        tracing::warn!(
            "--max-connections {wanted} is more than the open-file limit ({files}) allows; \
             serving at most {cap} connections (raise `ulimit -n` for more)"
        );
        cap
    } else {
        wanted
    }
}

fn run() -> Result<()> {
    init_logging();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            let help = matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            );
            if json_requested() && !help {
                let text = e.render().to_string();
                let first: Vec<&str> = text
                    .lines()
                    .take_while(|l| !l.trim().is_empty())
                    .map(str::trim)
                    .collect();
                let first = first.join(" ");
                println!(
                    "{}",
                    serde_json::json!({
                        "error": first.trim_start_matches("error: "),
                        "hint": serde_json::Value::Null,
                        "exitCode": 2,
                    })
                );
            }
            e.exit()
        }
    };
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "cairn", &mut std::io::stdout());
            Ok(())
        }
        Command::Namespace {
            command:
                NamespaceCommand::Fork {
                    namespace,
                    package,
                    remote,
                },
        } => {
            let Some(api) = admin::Remote::from_args(&remote)? else {
                bail!(
                    "a fork is made by the running registry that mirrors the namespace: name it \
                     with --registry URL and give its admin token"
                );
            };
            if let Some(package) = &package {
                let name: cairn_protocol::PackageName = package
                    .parse()
                    .with_context(|| format!("`{package}` is not a package name (ns:name)"))?;
                if name.namespace() != namespace {
                    bail!("package `{name}` is not in namespace `{namespace}`: name one of it");
                }
            }
            let answer = api.fork(&namespace, package.as_deref())?;
            let what = match &package {
                Some(package) => format!("package `{package}`"),
                None => format!("namespace `{namespace}`"),
            };
            println!(
                "{what} is forked into {}: {} packages, {} records, from the origin's \
                 checkpoint of {} records",
                api.url(),
                answer["packages"],
                answer["records"],
                answer["originLogLength"]
            );
            Ok(())
        }
        Command::Namespace {
            command:
                NamespaceCommand::Import {
                    namespace,
                    from,
                    data_dir,
                    remote,
                },
        } => import_namespace(&namespace, &from, &data_dir, &remote),
        Command::Namespace {
            command:
                NamespaceCommand::Define {
                    namespace,
                    data_dir,
                    remote,
                },
        } => define_namespace(&namespace, &data_dir, &remote),
        Command::Namespace {
            command:
                NamespaceCommand::TrustKey {
                    namespace,
                    key,
                    package,
                    name,
                    data_dir,
                    remote,
                },
        } => attest::trust_key(
            &namespace,
            &key,
            package.as_deref(),
            &name,
            &data_dir,
            &remote,
        ),
        Command::Namespace {
            command:
                NamespaceCommand::Keys {
                    namespace,
                    json,
                    data_dir,
                    remote,
                },
        } => attest::list_keys(&namespace, &data_dir, &remote, json),
        Command::Namespace {
            command:
                NamespaceCommand::UntrustKey {
                    namespace,
                    key,
                    package,
                    data_dir,
                    remote,
                },
        } => attest::untrust_key(&namespace, &key, package.as_deref(), &data_dir, &remote),
        Command::Namespace {
            command:
                NamespaceCommand::Policy {
                    namespace,
                    oci_create,
                    require_license,
                    require_source,
                    semver_gate,
                    allow_break,
                    disallow_break,
                    data_dir,
                    remote,
                },
        } => set_policy(
            &namespace,
            PolicyChange {
                oci_create,
                require_license,
                require_source,
                semver_gate,
                allow_break,
                disallow_break,
            },
            &data_dir,
            &remote,
        ),
        Command::Token {
            command:
                TokenCommand::Create {
                    account,
                    scopes,
                    expires,
                    note,
                    data_dir,
                    remote,
                },
        } => create_token(&account, scopes, &expires, &note, &data_dir, &remote),
        Command::Token {
            command:
                TokenCommand::List {
                    account,
                    json,
                    data_dir,
                    remote,
                },
        } => list_tokens(account.as_deref(), json, &data_dir, &remote),
        Command::Token {
            command:
                TokenCommand::Revoke {
                    id,
                    account,
                    data_dir,
                    remote,
                },
        } => revoke_tokens(id.as_deref(), account.as_deref(), &data_dir, &remote),
        Command::Token {
            command: TokenCommand::RotateAdmin { data_dir },
        } => rotate_admin(&data_dir),
        Command::Config(args) => client::config(args),
        Command::Key(args) => client::key(args),
        Command::Login(args) => client::login(args),
        Command::Logout(args) => client::logout(args),
        Command::Registry {
            command: RegistryCommand::Forget(args),
        } => client::forget(args),
        Command::Publish(args) => packages::publish(args),
        Command::Yank(args) => packages::yank(args),
        Command::Grant(args) => packages::grant(args),
        Command::Revoke(args) => packages::revoke(args),
        Command::Get(args) => packages::get(args),
        Command::Info(args) => packages::info(args),
        Command::Attest(args) => attest::attest(args),
        Command::Search(args) => packages::search(args),
        Command::Verify(args) => packages::verify(args),
        Command::Lock(args) => packages::lock(args),
        Command::Witness(args) => witness::witness(args),
        Command::Proof(args) => proofs::proof(args),
        Command::Takedown(args) => admin::take_down(args),
        Command::Monitor(args) => monitor::monitor(args),
        Command::Mirror { command } => mirror::command(command),
        Command::VerifyFile(args) => proofs::verify_file(args),
        Command::Audit(args) => proofs::audit(args),
    }
}

/// The stores a server runs on.
struct Backends {
    meta: Arc<dyn MetaStore>,
    oci: Arc<dyn OciStore>,
    auth: Arc<dyn AuthStore>,
    content: Arc<dyn ContentStore>,
    blobs: Arc<dyn BlobStore>,
    /// The lead among replicas (PostgreSQL); `None` for SQLite.
    lead: Option<Arc<dyn Leadership>>,
}

/// Opens the metadata store (SQLite in the data directory, or PostgreSQL)
/// and the content and blob stores (files in the data directory, or an
/// S3-compatible bucket).
fn open_backends(args: &ServeArgs, dir: &DataDir) -> Result<Backends> {
    let (content, blobs): (Arc<dyn ContentStore>, Arc<dyn BlobStore>) = match &args.content_url {
        Some(url) => {
            let stores = cairn_objects::ObjectStores::from_url(
                url,
                cairn_objects::ObjectOptions {
                    presign: (args.content_redirect_seconds > 0)
                        .then(|| Duration::from_secs(args.content_redirect_seconds)),
                    ..cairn_objects::ObjectOptions::default()
                },
            )
            .with_context(|| format!("cannot open the content store {url}"))?;
            tracing::info!("content and blobs in {url}");
            (Arc::new(stores.content), Arc::new(stores.blobs))
        }
        None => {
            let (content, blobs) = dir.open_files()?;
            (Arc::new(content), Arc::new(blobs))
        }
    };
    if let Some(url) = &args.database_url {
        let pg = Arc::new(
            cairn_postgres::PgStore::connect(
                url,
                cairn_postgres::PgOptions {
                    ca_file: args.database_ca_file.clone(),
                    ..cairn_postgres::PgOptions::default()
                },
            )
            .with_context(|| format!("cannot open the PostgreSQL database {}", redact_url(url)))?,
        );
        let sealed = pg.seal_custodial_keys(dir.sealer()?)?;
        if sealed > 0 {
            tracing::info!("sealed {sealed} custodial keys stored in plaintext");
        }
        if args.content_url.is_none() {
            tracing::warn!(
                "content and blobs are files in {}: replicas on this database need a shared \
                 bucket (--content-url s3://...)",
                dir.root().display()
            );
        }
        tracing::info!("metadata in PostgreSQL {}", redact_url(url));
        return Ok(Backends {
            meta: pg.clone(),
            oci: pg.clone(),
            auth: pg.clone(),
            lead: Some(pg),
            content,
            blobs,
        });
    }
    let meta = match dir.open_meta_migrated() {
        Ok(meta) => meta,
        Err(first) => {
            if !dir.release_ballast()? {
                return Err(with_disk_hint(first.into(), dir.root()));
            }
            tracing::warn!(
                "cannot open the stores ({first}); released the disk-space ballast ({}) and \
                 trying again: the disk may be full. Free space: the ballast is reserved again at \
                 the next start with room",
                dir.ballast_file().display()
            );
            dir.open_meta_migrated()
                .map_err(|e| with_disk_hint(e.into(), dir.root()))?
        }
    };
    let meta = Arc::new(meta);
    Ok(Backends {
        meta: meta.clone(),
        oci: meta.clone(),
        auth: meta,
        lead: None,
        content,
        blobs,
    })
}

/// `url` without the password of its user part, for logs and errors.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Where the other replicas forward writes to this one.
fn advertise_url(args: &ServeArgs) -> Result<String> {
    let tls = args.tls_dev || args.tls_cert.is_some();
    if let Some(url) = &args.advertise_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("--advertise-url {url}: give an http:// or https:// URL");
        }
        if tls && url.starts_with("http://") {
            bail!(
                "--advertise-url {url}: this replica serves TLS, so the others reach it at an \
                 https:// URL"
            );
        }
        return Ok(url.trim_end_matches('/').to_owned());
    }
    if args.listen.ip().is_unspecified() || args.listen.port() == 0 {
        bail!(
            "--listen {} is not an address the other replicas can reach: pass --advertise-url \
             http://<this host>:<port>",
            args.listen
        );
    }
    Ok(format!(
        "{}://{}",
        if tls { "https" } else { "http" },
        args.listen
    ))
}

fn serve(args: ServeArgs) -> Result<()> {
    let dir = data_dir_at(&args.data_dir)?.with_disk_reserve(args.ballast_bytes);
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
    let log_key_env = std::env::var("CAIRN_LOG_KEY")
        .ok()
        .filter(|k| !k.trim().is_empty());
    let (log_key, source) = dir.log_key(log_key_env.as_deref(), || default_log_origin(&args))?;
    let mut log_key = cairn_server::TlogKey::new(log_key);
    if let Some(path) = &args.witness_policy {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the witness policy {}", path.display()))?;
        let policy = cairn_transparency::witness::Policy::parse(&text)
            .with_context(|| format!("the witness policy {}", path.display()))?;
        let count = policy.witnesses.len();
        log_key = log_key
            .with_witnesses(policy)
            .map_err(|e| anyhow::anyhow!("the witness policy {}: {e}", path.display()))?;
        tracing::info!("checkpoints go to {count} witness(es) ({})", path.display());
    }
    let log_key = Arc::new(log_key);
    match source {
        KeySource::Created => tracing::info!(
            "created the log key of origin `{}` in {} (mode 0600); its verifier key: {}",
            log_key.origin(),
            dir.log_key_file().display(),
            log_key.verifier_key()
        ),
        KeySource::File | KeySource::Given => tracing::info!(
            "C2SP log `{}`, verifier key {}",
            log_key.origin(),
            log_key.verifier_key()
        ),
    }
    let stores = open_backends(&args, &dir)?;
    match dir.reserve_ballast(args.ballast_bytes) {
        Ok(true) => tracing::info!(
            "reserved {} MiB of disk in {} for recovering from a full disk",
            args.ballast_bytes >> 20,
            dir.ballast_file().display()
        ),
        Ok(false) => {}
        Err(e) => tracing::warn!("no disk-space ballast: {e}"),
    }
    let config = Config {
        max_content_bytes: args.max_content_bytes,
        content_timeout: Duration::from_secs(args.content_timeout),
        ..Config::default()
    };
    let started = Instant::now();
    let registry = match &stores.lead {
        None => Registry::open(
            stores.meta.clone(),
            stores.content.clone(),
            key,
            &args.namespaces,
            config,
        )?,
        Some(lead) => {
            let url = advertise_url(&args)?;
            Registry::open_replica(
                stores.meta.clone(),
                stores.content.clone(),
                key,
                &args.namespaces,
                config,
                lead.clone(),
                url.clone(),
            )?
        }
    };
    tracing::info!(
        "opened the registry in {:.2?}: log length {}",
        started.elapsed(),
        registry.log_length()
    );
    let auth = stores.auth.clone();
    if !auth.has_accounts()? {
        let token = new_token();
        auth.ensure_account("admin")?;
        auth.add_token(
            &token_hash(&token),
            &TokenInfo {
                account: "admin".into(),
                scopes: vec![Scope::Admin],
                expires: None,
            },
            "created at first start",
        )?;
        let path = dir.write_admin_token(&token)?;
        tracing::info!(
            "created the admin API token in {} (mode 0600); make others with `cairn token create`",
            path.display()
        );
    }
    let mut oci = Oci::new(
        registry.clone(),
        stores.oci.clone(),
        stores.blobs.clone(),
        OciConfig {
            max_blob_bytes: args.max_blob_bytes,
            max_uploads_per_account: args.max_uploads_per_account,
            max_uploads: args.max_uploads,
            ..OciConfig::default()
        },
    );
    let mirrors = mirror::load(dir.root())?;
    if !mirrors.is_empty() {
        let mirrors = Arc::new(mirror::Mirrors::open(dir.root(), mirrors)?);
        // The namespaces are the origins': the operator log says so, and
        // Warg clients go there.
        for (namespace, origin) in mirrors.namespaces() {
            let imported = cairn_registry::block_on(
                registry.import_namespace(namespace.clone(), origin.clone()),
                Some(Instant::now() + Duration::from_secs(30)),
            );
            match imported {
                Some(Ok(_)) => tracing::info!("mirroring namespace `{namespace}` of {origin}"),
                Some(Err(e)) => tracing::warn!(
                    "namespace `{namespace}` is mirrored from {origin} but cannot be imported: {e}"
                ),
                None => tracing::warn!("the import of namespace `{namespace}` did not finish"),
            }
        }
        mirrors.start();
        oci = oci.with_mirrored(mirrors);
    }
    let oci = Arc::new(oci);
    // The search index: derived from the log, beside it in the data
    // directory, kept up by its own thread.
    // It is a convenience: a registry that cannot keep it (a full disk)
    // still serves, without search, and says so.
    let index_path = dir.root().join("index.sqlite3");
    let search = match cairn_index::index::Index::open(&index_path) {
        Ok(index) => Some(Arc::new(index)),
        Err(e) => {
            tracing::warn!(
                "search is off: cannot open the search index {}: {e}",
                index_path.display()
            );
            None
        }
    };
    let _indexer = match &search {
        Some(index) => Some(
            cairn_server::search::Indexer::start(
                registry.clone(),
                Some(oci.clone()),
                index.clone(),
            )
            .context("cannot start the indexer")?,
        ),
        None => None,
    };
    let services = Services {
        registry: registry.clone(),
        oci,
        auth,
    };
    let tls = match (&args.tls_cert, &args.tls_key, args.tls_dev) {
        (Some(cert), Some(key), _) => Some(cairn_server::tls_config(cert, key)?),
        (_, _, true) => {
            let host = args.listen.ip().to_string();
            let dev = tls::dev_identity(&dir.root().join("tls"), &[host])?;
            tracing::info!(
                "TLS with a development certificate ({}): trust its CA {} with \
                 `CAIRN_CA_FILE={}` (cairn), `--cert-dir {}` (skopeo and docker), or \
                 the system store (`cp {} /usr/local/share/ca-certificates/cairn-dev.crt && \
                 update-ca-certificates`)",
                if dev.created { "made now" } else { "reused" },
                dev.ca.display(),
                dev.ca.display(),
                dev.ca
                    .parent()
                    .map_or_else(|| dev.ca.display().to_string(), |p| p.display().to_string()),
                dev.ca.display(),
            );
            Some(cairn_server::tls_config(&dev.cert, &dev.key)?)
        }
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let runtime = cairn_server::runtime(args.workers)?;
    let result = runtime.block_on(async {
        let listener = cairn_server::bind(args.listen)
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        tracing::info!(
            "cairn listening on {scheme}://{addr}; data in {}",
            std::fs::canonicalize(dir.root())
                .unwrap_or_else(|_| dir.root().to_owned())
                .display()
        );
        let url = args
            .public_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{addr}"));
        let host = url
            .split_once("://")
            .map_or(url.as_str(), |(_, h)| h)
            .to_owned();
        let namespaces = services.registry.namespaces();
        if namespaces.is_empty() {
            tracing::warn!(
                "no namespace is defined: nothing can be published until one is \
                 (`cairn namespace define <ns> --data-dir {}`)",
                dir.root().display()
            );
        } else {
            tracing::info!("namespaces: {}", namespaces.join(", "));
        }
        tracing::info!(
            "connect: `cairn config --registry {url}` | wkg: default_registry = \"{host}\"{} | \
             `warg config --registry {url}` | a page for people: {url}/",
            if url.starts_with("http://") {
                format!(" with [registry.\"{host}\".oci] protocol = \"http\"")
            } else {
                String::new()
            }
        );
        let options = ServerOptions {
            public_url: args.public_url.clone(),
            anonymous_pull: !args.no_anonymous_pull,
            connections: cairn_server::Limits {
                header_read_timeout: Duration::from_secs(args.header_read_timeout.max(1)),
                idle_timeout: Duration::from_secs(args.idle_timeout.max(1)),
                max_connections: connection_cap(args.max_connections.max(1)),
                ..cairn_server::Limits::default()
            },
            rate_limits: cairn_server::RateLimits {
                per_ip: cairn_server::Rate::per_second(args.rate_limit_ip),
                per_token: cairn_server::Rate::per_second(args.rate_limit_token),
                ..cairn_server::RateLimits::default()
            },
            max_json_body: args.max_json_body,
            tls: tls.clone(),
            replica_ca_file: args.replica_ca_file.clone(),
            tlog: Some(log_key.clone()),
            search: search.clone(),
            ..ServerOptions::default()
        };
        cairn_server::serve(listener, services, options, shutdown_signal())
            .await
            .context("server failed")
    });
    tracing::info!("shutting down");
    registry.shutdown();
    result
}

pub(crate) async fn shutdown_signal() {
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

fn import_namespace(
    namespace: &str,
    from: &str,
    data_dir: &std::path::Path,
    remote: &admin::RemoteArgs,
) -> Result<()> {
    if let Err(e) = cairn_protocol::validate_namespace(namespace) {
        bail!(
            "`{namespace}` is not a valid namespace: {e} (use kebab-case, e.g. `acme` or `my-org`)"
        );
    }
    if let Some(api) = admin::Remote::from_args(remote)? {
        let new = api.import_namespace(namespace, from)?;
        println!(
            "namespace `{namespace}` is {} from {from} on {}",
            if new { "imported" } else { "already imported" },
            api.url()
        );
        return Ok(());
    }
    let dir = existing_data_dir(data_dir)?;
    let Some(_lock) = dir.try_lock()? else {
        bail!(
            "a running registry holds {}: import over HTTP with --registry URL and its admin token",
            data_dir.display()
        );
    };
    let (key, _) = dir.operator_key(operator_key_env().as_deref())?;
    let stores = dir.open_stores()?;
    let registry = Registry::open(stores.meta, stores.content, key, &[], Config::default())?;
    let outcome = cairn_registry::block_on(
        registry.import_namespace(namespace.to_owned(), from.to_owned()),
        Some(Instant::now() + Duration::from_secs(30)),
    );
    registry.shutdown();
    let new = outcome.context("the registry did not record the import in 30 s")??;
    println!(
        "namespace `{namespace}` is {} from {from} in {}",
        if new.is_empty() {
            "already imported"
        } else {
            "imported"
        },
        data_dir.display()
    );
    Ok(())
}

fn define_namespace(
    namespace: &str,
    data_dir: &std::path::Path,
    remote: &admin::RemoteArgs,
) -> Result<()> {
    if let Err(e) = cairn_protocol::validate_namespace(namespace) {
        bail!(
            "`{namespace}` is not a valid namespace: {e} (use kebab-case, e.g. `acme` or `my-org`)"
        );
    }
    if let Some(api) = admin::Remote::from_args(remote)? {
        let new = api.define_namespace(namespace)?;
        println!(
            "namespace `{namespace}` is {} on {}",
            if new { "defined" } else { "already defined" },
            api.url()
        );
        return Ok(());
    }
    let dir = existing_data_dir(data_dir)?;
    match dir.try_lock()? {
        Some(_lock) => {
            let (key, _) = dir.operator_key(operator_key_env().as_deref())?;
            let stores = dir.open_stores()?;
            let registry = Registry::open(
                stores.meta,
                stores.content,
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
