//! The package commands: `publish`, `yank`, `grant`, `revoke`, `get`,
//! `info`, `verify` and `lock`. Each talks to the registry configured for
//! the package's namespace through the verifying client; results go to
//! stdout (JSON with `--json`), progress and notes to stderr.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use cairn_client::api::Progress;
use cairn_client::config::{check_url, Config};
use cairn_client::keys::{signing_key, KeyFile, DEFAULT_KEY};
use cairn_client::lock::{LockFile, Locked, LOCK_FILE};
use cairn_client::{Client, NamespaceHome, Paths, Published, Wanted};
use cairn_protocol::package::{PackageEntry, Permission, Release};
use cairn_protocol::{KeyId, PackageName, PrivateKey, PublicKey, SignedCheckpoint, Version};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use crate::client::FileArgs;

/// A usage mistake found after parsing (exit code 2, like clap's own).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Options every package command takes.
#[derive(clap::Args, Clone)]
pub struct Common {
    #[command(flatten)]
    files: FileArgs,
    /// Use this registry instead of the one configured for the namespace.
    #[arg(long, env = "CAIRN_REGISTRY", value_name = "URL")]
    registry: Option<String>,
    /// Print JSON (one object) instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Options of the commands that sign records.
#[derive(clap::Args, Clone)]
pub struct Signer {
    /// The stored key to sign with (CAIRN_SIGNING_KEY, when set, wins).
    #[arg(long, default_value = DEFAULT_KEY, value_name = "NAME")]
    key_name: String,
}

/// A package and optionally a version or requirement: `ns:name[@req]`.
#[derive(Clone, Debug)]
pub struct PackageSpec {
    name: PackageName,
    wanted: Option<Wanted>,
}

impl std::str::FromStr for PackageSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (name, wanted) = match text.split_once('@') {
            Some((name, req)) => (name, Some(Wanted::parse(req)?)),
            None => (text, None),
        };
        let name = name
            .parse()
            .map_err(|e| format!("`{name}` is not a package name (`namespace:name`): {e}"))?;
        Ok(PackageSpec { name, wanted })
    }
}

/// The registry clients of one command, one per registry.
pub(crate) struct Session {
    pub(crate) paths: Paths,
    config: Config,
    given: Option<String>,
    clients: BTreeMap<String, Client>,
    progress: Arc<dyn Progress>,
}

impl Session {
    pub(crate) fn new(common: &Common) -> Result<Session> {
        let paths = common.files.paths()?;
        let config = Config::load(&paths.config)?;
        let given = common.registry.as_deref().map(check_url).transpose()?;
        let progress: Arc<dyn Progress> = if std::io::stderr().is_terminal() && !common.json {
            Arc::new(Bar::default())
        } else {
            Arc::new(cairn_client::api::NoProgress)
        };
        Ok(Session {
            paths,
            config,
            given,
            clients: BTreeMap::new(),
            progress,
        })
    }

    fn registry_for(&self, name: &PackageName) -> Result<String> {
        match &self.given {
            Some(url) => Ok(url.clone()),
            None => Ok(self.config.registry_for(name.namespace())?.to_owned()),
        }
    }

    fn client(&mut self, registry: &str) -> Result<&mut Client> {
        if !self.clients.contains_key(registry) {
            let token = cairn_client::credentials::token_for(
                std::env::var("CAIRN_TOKEN").ok().as_deref(),
                &self.paths.credentials,
                registry,
            )?;
            let limits = cairn_client::Limits::from_env(|k| std::env::var_os(k))?;
            let mut client = Client::open_with(
                registry,
                token,
                &self.paths.state,
                &self.paths.cache,
                self.progress.clone(),
                limits,
            )?;
            let policy = std::env::var_os("CAIRN_WITNESS_POLICY")
                .filter(|p| !p.is_empty())
                .map(std::path::PathBuf::from)
                .or_else(|| self.config.witness_policy.clone());
            if let Some(path) = policy {
                client = client.with_witness_policy(crate::client::load_policy(&path)?);
            }
            self.clients.insert(registry.to_owned(), client);
        }
        Ok(self.clients.get_mut(registry).expect("inserted above"))
    }

    /// The client of the registry serving `name`: the one configured (or
    /// given), unless its operator log imports the namespace from another
    /// registry; then that one (one step, as Warg clients follow imports).
    pub(crate) fn for_package(&mut self, name: &PackageName) -> Result<&mut Client> {
        let registry = self.registry_for(name)?;
        let client = self.client(&registry)?;
        let ns = name.namespace();
        let from = match client.package_home(name)? {
            NamespaceHome::Here => return self.client(&registry),
            // Clients see a fork, never a silent replacement.
            NamespaceHome::Forked(fork) => {
                let (what, whose) = match &fork.package {
                    Some(package) => (format!("package `{package}`"), "it is"),
                    None => (format!("namespace `{ns}`"), "its packages are"),
                };
                eprintln!(
                    "note: {registry} forked {what} from {} at that registry's checkpoint of {} \
                     records (log root {}); {whose} {registry}'s now",
                    fork.origin, fork.log_length, fork.log_root
                );
                return self.client(&registry);
            }
            NamespaceHome::Imported(from) => from,
        };
        let url = if from.contains("://") {
            check_url(&from)?
        } else {
            check_url(&format!("https://{from}"))?
        };
        eprintln!(
            "note: {registry} imports namespace `{}` from {url}: asking it there",
            name.namespace()
        );
        self.client(&url)
    }

    fn signing_key(&self, signer: &Signer) -> Result<PrivateKey> {
        Ok(signing_key(
            std::env::var("CAIRN_SIGNING_KEY").ok().as_deref(),
            &self.paths.keys,
            &signer.key_name,
        )?)
    }
}

/// A progress bar on stderr (only when it is a terminal).
#[derive(Default)]
struct Bar(Mutex<Option<ProgressBar>>);

impl Progress for Bar {
    fn begin(&self, what: &str, total: Option<u64>) {
        let bar = match total {
            Some(total) => ProgressBar::new(total),
            None => ProgressBar::new_spinner(),
        };
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_owned());
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar);
    }

    fn advance(&self, bytes: u64) {
        if let Some(bar) = &*self.0.lock().unwrap_or_else(|e| e.into_inner()) {
            bar.inc(bytes);
        }
    }

    fn end(&self) {
        if let Some(bar) = self.0.lock().unwrap_or_else(|e| e.into_inner()).take() {
            bar.finish_and_clear();
        }
    }
}

fn checkpoint_json(cp: &SignedCheckpoint) -> Value {
    let c = &cp.contents.checkpoint;
    json!({
        "logLength": c.log_length,
        "logRoot": c.log_root.to_string(),
        "mapRoot": c.map_root.to_string(),
        "timestamp": cp.contents.timestamp,
    })
}

fn print_published(json: bool, action: &str, name: &PackageName, done: &Published, extra: Value) {
    let c = &done.checkpoint.contents.checkpoint;
    if json {
        let mut out = json!({
            "package": name.as_str(),
            "action": action,
            "recordId": done.record_id.to_string(),
            "registryIndex": done.index,
            "checkpoint": checkpoint_json(&done.checkpoint),
        });
        if let (Some(out), Value::Object(extra)) = (out.as_object_mut(), extra) {
            out.extend(extra);
        }
        println!("{out}");
    } else {
        println!("{action} {name}");
        if let Value::Object(extra) = extra {
            for (k, v) in extra {
                println!(
                    "  {k:<11} {}",
                    v.as_str().map(str::to_owned).unwrap_or(v.to_string())
                );
            }
        }
        println!("  record      {}", done.record_id);
        println!("  index       {}", done.index);
        println!(
            "  checkpoint  {} records, log root {}",
            c.log_length, c.log_root
        );
    }
}

/// `cairn publish`.
#[derive(clap::Args)]
pub struct PublishArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    signer: Signer,
    /// The component or module to release.
    file: PathBuf,
    /// The package (`namespace:name`); its log is created on first publish.
    #[arg(long, short = 'p')]
    package: PackageName,
    /// The version to release (semver: MAJOR.MINOR.PATCH).
    #[arg(long, short = 'v', value_parser = parse_version)]
    version: Version,
}

/// A version as people write it wrong, with the fix.
fn parse_version(text: &str) -> std::result::Result<Version, String> {
    text.parse().map_err(|_| {
        let parts = text.split('.').count();
        let example = match parts {
            1 => format!("`{text}.0.0`"),
            2 => format!("`{text}.0`"),
            _ => "`1.2.3`".to_owned(),
        };
        format!(
            "`{text}` is not a semantic version: use MAJOR.MINOR.PATCH, e.g. {example} (a \
             pre-release or build suffix may follow: `1.2.3-beta.1`)"
        )
    })
}

/// `cairn publish`: signs a release (and `init` on first publish), uploads
/// the bytes and waits until a verified checkpoint contains the record.
pub fn publish(args: PublishArgs) -> Result<()> {
    let mut session = Session::new(&args.common)?;
    let key = session.signing_key(&args.signer)?;
    let meta = std::fs::metadata(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    if !meta.is_file() {
        bail!("{} is not a file", args.file.display());
    }
    check_wasm(&args.file)?;
    let client = session.for_package(&args.package)?;
    let done = client
        .publish(&args.package, args.version.clone(), &args.file, &key)
        .map_err(|e| with_token_hint(e, client.registry()))?;
    let content = done.content.map(|d| d.to_string());
    print_published(
        args.common.json,
        "published",
        &args.package,
        &done,
        json!({ "version": args.version.to_string(), "content": content }),
    );
    Ok(())
}

/// Refuses a file that is not valid WebAssembly before anything is signed
/// or sent (the registry would refuse its content, and the record would
/// hold the package until then).
fn check_wasm(path: &std::path::Path) -> Result<()> {
    use std::io::Read;
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut stream = cairn_registry::WasmStream::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let invalid = |e: cairn_registry::WasmError| {
        anyhow::anyhow!(
            "{} is not a valid WebAssembly component or module ({e}); nothing was published: \
             build it with `cargo component build`, `wkg build` or `wasm-tools component new`",
            path.display()
        )
    };
    loop {
        let n = file
            .read(&mut buffer)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        stream.feed(&buffer[..n]).map_err(invalid)?;
    }
    stream.finish().map_err(invalid)
}

/// Signs one entry as the next record of `name`'s freshly verified log
/// and waits until it is published.
fn submit_one(
    session: &mut Session,
    key: &PrivateKey,
    name: &PackageName,
    entry: PackageEntry,
) -> Result<Published> {
    let client = session.for_package(name)?;
    client.fetch_package(name)?;
    client
        .submit(name, key, vec![entry], None)
        .map_err(|e| with_token_hint(e, client.registry()))
}

fn permissions_json(key_id: &KeyId, permissions: &[Permission]) -> Value {
    json!({
        "keyId": key_id.to_string(),
        "permissions": permissions.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
}

/// Adds how to store a token to a 401 from the registry.
fn with_token_hint(e: cairn_client::Error, registry: &str) -> anyhow::Error {
    match e {
        cairn_client::Error::Refused { status: 401, .. } => anyhow::Error::new(e).context(format!(
            "the registry wants a token: get one from its operator (`cairn token create`) and \
             store it with `cairn login --registry {registry} --token-stdin`, or set CAIRN_TOKEN"
        )),
        other => other.into(),
    }
}

/// `cairn yank`.
#[derive(clap::Args)]
pub struct YankArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    signer: Signer,
    /// The release to yank: `namespace:name@version`.
    package: PackageSpec,
    /// Confirm: a yank cannot be undone.
    #[arg(long)]
    yes: bool,
    /// Ask for confirmation on the terminal instead of requiring --yes.
    #[arg(long)]
    interactive: bool,
}

/// `cairn yank`: marks a release yanked (it stays fetchable by exact
/// version, but no requirement picks it any more).
pub fn yank(args: YankArgs) -> Result<()> {
    let Some(Wanted::Exact(version)) = args.package.wanted.clone() else {
        return Err(UsageError(format!(
            "name the exact version to yank: `cairn yank {}@<version> --yes`",
            args.package.name
        ))
        .into());
    };
    let name = args.package.name.clone();
    if !args.yes {
        if !args.interactive {
            return Err(UsageError(format!(
                "yanking {name}@{version} cannot be undone: pass --yes to confirm \
                 (or --interactive to be asked)"
            ))
            .into());
        }
        if !confirm(&format!("yank {name}@{version}? this cannot be undone"))? {
            bail!("not yanked");
        }
    }
    let mut session = Session::new(&args.common)?;
    let key = session.signing_key(&args.signer)?;
    let entry = PackageEntry::Yank {
        version: version.clone(),
    };
    let done = submit_one(&mut session, &key, &name, entry)?;
    print_published(
        args.common.json,
        "yanked",
        &name,
        &done,
        json!({ "version": version.to_string() }),
    );
    Ok(())
}

fn confirm(question: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!("--interactive needs a terminal on standard input; pass --yes instead");
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// `cairn grant` and `cairn revoke`.
#[derive(clap::Args)]
pub struct GrantArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    signer: Signer,
    /// The package.
    package: PackageName,
    /// The key: a public key (`ecdsa-p256:…`), a key id for revoke
    /// (`sha256:…`), or the name of a stored key.
    #[arg(long)]
    key: String,
    /// The permission (repeatable): `release` or `yank`.
    #[arg(long = "permission", required = true, value_name = "PERMISSION")]
    permissions: Vec<Permission>,
}

fn named_key(paths: &Paths, text: &str) -> Result<PublicKey> {
    if let Ok(key) = text.parse::<PublicKey>() {
        return Ok(key);
    }
    let file = KeyFile::load(&paths.keys)?;
    match file.get(text) {
        Ok(key) => Ok(key.public_key().clone()),
        Err(_) => Err(UsageError(format!(
            "--key `{text}` is neither a public key (`ecdsa-p256:…`, see `cairn key show`) \
             nor the name of a key in {}",
            paths.keys.display()
        ))
        .into()),
    }
}

/// `cairn grant`: gives a key permissions on a package.
pub fn grant(args: GrantArgs) -> Result<()> {
    let mut session = Session::new(&args.common)?;
    let key = session.signing_key(&args.signer)?;
    let grantee = named_key(&session.paths, &args.key)?;
    let entry = PackageEntry::Grant {
        key: grantee.clone(),
        permissions: args.permissions.clone(),
    };
    let done = submit_one(&mut session, &key, &args.package, entry)?;
    let extra = permissions_json(&grantee.id(), &args.permissions);
    print_published(args.common.json, "granted", &args.package, &done, extra);
    Ok(())
}

/// `cairn revoke`: takes permissions away from a key.
pub fn revoke(args: GrantArgs) -> Result<()> {
    let mut session = Session::new(&args.common)?;
    let key = session.signing_key(&args.signer)?;
    let key_id: KeyId = match args.key.parse::<KeyId>() {
        Ok(id) => id,
        Err(_) => named_key(&session.paths, &args.key)?.id(),
    };
    let entry = PackageEntry::Revoke {
        key_id,
        permissions: args.permissions.clone(),
    };
    let done = submit_one(&mut session, &key, &args.package, entry)?;
    let extra = permissions_json(&key_id, &args.permissions);
    print_published(args.common.json, "revoked", &args.package, &done, extra);
    Ok(())
}

/// `cairn get`.
#[derive(clap::Args)]
pub struct GetArgs {
    #[command(flatten)]
    common: Common,
    /// `namespace:name`, `namespace:name@1.2.3` (exact, even if yanked) or
    /// `namespace:name@^1.2` (newest non-yanked match; the default is `*`).
    package: PackageSpec,
    /// Where to write the bytes (`-` for stdout) (default: `./<namespace>_<name>@<version>.wasm`).
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    /// Overwrite the output file if it exists with other bytes.
    #[arg(long)]
    force: bool,
    /// Take the version from the lock file and check the registry still
    /// released it by the same record with the same content.
    #[arg(long)]
    locked: bool,
    /// The lock file for --locked.
    #[arg(long, default_value = LOCK_FILE)]
    lock_file: PathBuf,
}

/// `cairn get`: resolves, verifies and downloads a release.
pub fn get(args: GetArgs) -> Result<()> {
    if args.common.json && args.output.as_deref() == Some(Path::new("-")) {
        return Err(UsageError(
            "`-o -` writes the bytes to stdout, where --json would write too: pick one".into(),
        )
        .into());
    }
    let mut session = Session::new(&args.common)?;
    let name = args.package.name.clone();
    let client = session.for_package(&name)?;
    let release = if args.locked {
        let lock = LockFile::load(&args.lock_file)?;
        let Some(locked) = lock.get(name.as_str()).cloned() else {
            bail!(
                "{} has no entry for `{name}`: run `cairn lock {name}` first",
                args.lock_file.display()
            );
        };
        if let Some(wanted) = &args.package.wanted {
            if wanted.to_string() != locked.requirement && wanted.to_string() != locked.version {
                return Err(UsageError(format!(
                    "`{name}@{wanted}` differs from the lock file's `{}`: drop the version \
                     or run `cairn lock {name}@{wanted}`",
                    locked.requirement
                ))
                .into());
            }
        }
        client.check_locked(&locked)?
    } else {
        let wanted = args
            .package
            .wanted
            .clone()
            .unwrap_or(Wanted::Matching(cairn_protocol::VersionReq::STAR));
        client.resolve(&name, &wanted)?
    };
    let cached = client.content(&release.content, &release.record_id)?;
    let output = args.output.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "{}_{}@{}.wasm",
            name.namespace(),
            name.name(),
            release.version
        ))
    });
    // Never overwrite another file without being asked to.
    if output != Path::new("-") && !args.force && output.exists() {
        let same = std::fs::read(&output).ok() == std::fs::read(&cached).ok();
        if !same {
            return Err(UsageError(format!(
                "{} exists and holds other bytes; pass --force to overwrite it, or choose \
                 another -o",
                output.display()
            ))
            .into());
        }
    }
    let size = write_output(&cached, &output)?;
    if args.common.json {
        println!(
            "{}",
            json!({
                "package": name.as_str(),
                "registry": client.registry(),
                "version": release.version.to_string(),
                "content": release.content.to_string(),
                "recordId": release.record_id.to_string(),
                "yanked": release.yanked.is_some(),
                "output": output.display().to_string(),
                "bytes": size,
            })
        );
    } else if output != Path::new("-") {
        let yanked = if release.yanked.is_some() {
            " (yanked)"
        } else {
            ""
        };
        eprintln!(
            "{name}@{}{yanked}: {size} bytes verified ({}) -> {}",
            release.version,
            release.content,
            output.display()
        );
    }
    Ok(())
}

fn write_output(from: &Path, to: &Path) -> Result<u64> {
    if to == Path::new("-") {
        let mut file = std::fs::File::open(from)?;
        return Ok(std::io::copy(&mut file, &mut std::io::stdout().lock())?);
    }
    let dir = to.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = to.with_extension(format!("{}.part", std::process::id()));
    let size =
        std::fs::copy(from, &tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, to).with_context(|| format!("cannot write {}", to.display()))?;
    Ok(size)
}

/// `cairn info`.
#[derive(clap::Args)]
pub struct InfoArgs {
    #[command(flatten)]
    common: Common,
    /// The package.
    package: PackageName,
    /// Also list its attestation log: signatures and attestations attached
    /// to its releases, with the registry's verdict, key, account, time and
    /// log index.
    #[arg(long)]
    attestations: bool,
}

fn release_json(r: &Release) -> Value {
    json!({
        "version": r.version.to_string(),
        "content": r.content.to_string(),
        "recordId": r.record_id.to_string(),
        "releasedBy": r.by.to_string(),
        "timestamp": r.timestamp.to_string(),
        "yanked": r.yanked.is_some(),
        "yankedBy": r.yanked.as_ref().map(|y| y.by.to_string()),
    })
}

/// `cairn info`: versions, yanks, keys and digests of a package, from a
/// freshly verified log.
pub fn info(args: InfoArgs) -> Result<()> {
    let mut session = Session::new(&args.common)?;
    let name = args.package;
    let client = session.for_package(&name)?;
    let log = client.fetch_package(&name)?;
    let checkpoint = client
        .checkpoint()
        .map(checkpoint_json)
        .unwrap_or(Value::Null);
    let mut releases: Vec<&Release> = log.state.releases().collect();
    releases.sort_by(|a, b| a.version.cmp(&b.version));
    let authorities = log.state.authorities();
    let keys: Vec<Value> = authorities
        .keys()
        .map(|k| {
            let permissions: Vec<String> = authorities
                .permissions(&k.id())
                .map(|p| p.to_string())
                .collect();
            json!({ "keyId": k.id().to_string(), "publicKey": k.to_string(), "permissions": permissions })
        })
        .filter(|k| k["permissions"].as_array().is_some_and(|p| !p.is_empty()))
        .collect();
    // Verified like the package log: signed by the operator, chained, and
    // proven in the checkpoint.
    let attestations = if args.attestations {
        Some(client.attestations(&name)?)
    } else {
        None
    };
    if args.common.json {
        let mut answer = json!({
            "package": name.as_str(),
            "registry": client.registry(),
            "logId": cairn_protocol::LogId::package(&name).to_string(),
            "head": log.state.head().map(|h| h.record_id.to_string()),
            "records": log.records.len(),
            "checkpoint": checkpoint,
            "releases": releases.iter().map(|r| release_json(r)).collect::<Vec<_>>(),
            "keys": keys,
        });
        if let Some(records) = &attestations {
            answer["attestations"] = crate::attest::info_attestations(records, true);
        }
        println!("{answer}");
        return Ok(());
    }
    println!(
        "{name} on {} ({} records)",
        client.registry(),
        log.records.len()
    );
    println!("releases:");
    if releases.is_empty() {
        println!("  none");
    }
    for r in &releases {
        let yanked = if r.yanked.is_some() { "  yanked" } else { "" };
        println!(
            "  {:<12} {}  record {}{yanked}",
            r.version.to_string(),
            r.content,
            r.record_id
        );
    }
    println!("keys:");
    for k in &keys {
        let permissions: Vec<&str> = k["permissions"]
            .as_array()
            .map(|p| p.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        println!(
            "  {}  {}",
            k["keyId"].as_str().unwrap_or_default(),
            permissions.join(", ")
        );
    }
    if let Some(cp) = client.checkpoint() {
        let c = &cp.contents.checkpoint;
        println!(
            "verified at checkpoint {} (log root {})",
            c.log_length, c.log_root
        );
    }
    if let Some(records) = &attestations {
        crate::attest::info_attestations(records, false);
    }
    Ok(())
}

/// `cairn verify`.
#[derive(clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    common: Common,
}

/// `cairn verify`: re-verifies everything trusted about the registry.
pub fn verify(args: VerifyArgs) -> Result<()> {
    let mut session = Session::new(&args.common)?;
    let registry = crate::client::default_registry(session.given.as_deref(), &session.config)?;
    let client = session.client(&registry)?;
    let report = client.verify_all()?;
    if args.common.json {
        println!(
            "{}",
            json!({
                "registry": registry,
                "checkpoint": checkpoint_json(&report.checkpoint),
                "previousCheckpoint": report.previous.as_ref().map(checkpoint_json),
                "packages": report.packages,
                "recordsProven": report.records,
            })
        );
    } else {
        let c = &report.checkpoint.contents.checkpoint;
        match &report.previous {
            Some(p) if p == &report.checkpoint => {
                println!("checkpoint {} is still the latest", c.log_length)
            }
            Some(p) => println!(
                "checkpoint {} extends the trusted checkpoint {}",
                c.log_length, p.contents.checkpoint.log_length
            ),
            None => println!("checkpoint {} is now trusted (first contact)", c.log_length),
        }
        println!(
            "{} package logs re-validated; {} records proven in checkpoint {} (log root {})",
            report.packages, report.records, c.log_length, c.log_root
        );
    }
    Ok(())
}

/// `cairn lock`.
#[derive(clap::Args)]
pub struct LockArgs {
    #[command(flatten)]
    common: Common,
    /// Packages to lock (`ns:name` or `ns:name@req`); none: re-resolve every
    /// entry of the lock file with its own requirement.
    packages: Vec<PackageSpec>,
    /// The lock file.
    #[arg(long, default_value = LOCK_FILE)]
    lock_file: PathBuf,
}

/// `cairn lock`: resolves packages and records version, content digest
/// and releasing record in the lock file.
pub fn lock(args: LockArgs) -> Result<()> {
    let mut session = Session::new(&args.common)?;
    let mut lock = LockFile::load(&args.lock_file)?;
    let mut wanted: Vec<(PackageName, Wanted, String)> = Vec::new();
    if args.packages.is_empty() {
        if lock.packages.is_empty() {
            return Err(UsageError(format!(
                "{} is empty: name the packages to lock, e.g. `cairn lock acme:hello@^1`",
                args.lock_file.display()
            ))
            .into());
        }
        for entry in &lock.packages {
            let w = Wanted::parse(&entry.requirement).map_err(anyhow::Error::msg)?;
            wanted.push((entry.package()?, w, entry.requirement.clone()));
        }
    } else {
        for spec in &args.packages {
            let w = spec
                .wanted
                .clone()
                .unwrap_or(Wanted::Matching(cairn_protocol::VersionReq::STAR));
            let text = w.to_string();
            wanted.push((spec.name.clone(), w, text));
        }
    }
    let mut locked = Vec::new();
    for (name, w, requirement) in wanted {
        let registry = session.registry_for(&name)?;
        let client = session.client(&registry)?;
        let release = client.resolve(&name, &w)?;
        let entry = Locked {
            name: name.to_string(),
            registry,
            requirement,
            version: release.version.to_string(),
            content: release.content.to_string(),
            record: release.record_id.to_string(),
        };
        lock.put(entry.clone());
        locked.push(entry);
    }
    lock.save(&args.lock_file)?;
    if args.common.json {
        println!(
            "{}",
            json!({ "lockFile": args.lock_file.display().to_string(), "packages": locked })
        );
    } else {
        for entry in &locked {
            println!(
                "{}@{} ({})  {}",
                entry.name, entry.version, entry.requirement, entry.content
            );
        }
        eprintln!("wrote {}", args.lock_file.display());
    }
    Ok(())
}

/// `cairn search`'s arguments.
#[derive(clap::Args)]
pub struct SearchArgs {
    #[command(flatten)]
    common: Common,
    /// Words in package names, descriptions, authors and keywords.
    text: Vec<String>,
    /// Only packages of this namespace.
    #[arg(long)]
    namespace: Option<String>,
    /// Only packages whose license expression names this SPDX id.
    #[arg(long)]
    license: Option<String>,
    /// Only packages whose authors contain this.
    #[arg(long)]
    author: Option<String>,
    /// The latest release exports this interface (repeatable), e.g.
    /// `wasi:http/incoming-handler@0.2`.
    #[arg(long, value_name = "INTERFACE[@REQ]")]
    exports: Vec<String>,
    /// The latest release imports this interface (repeatable).
    #[arg(long, value_name = "INTERFACE[@REQ]")]
    imports: Vec<String>,
    /// The latest release imports nothing beyond these (repeatable), e.g.
    /// `wasi:cli/*` (no filesystem, no network).
    #[arg(long = "only-imports", value_name = "PATTERN")]
    only_imports: Vec<String>,
    /// The latest release imports nothing the world does not (a world a
    /// WIT package in the registry defines), e.g. `wasi:http/proxy@0.2.0`.
    #[arg(long, value_name = "WORLD")]
    satisfies: Option<String>,
    /// Packages whose every release is yanked too.
    #[arg(long)]
    yanked: bool,
    /// Only packages whose latest release carries a signature verified
    /// by a key the registry trusts for it.
    #[arg(long)]
    signed: bool,
    /// The page, from 1.
    #[arg(long, default_value_t = 1)]
    page: u32,
    /// Hits per page (at most 100).
    #[arg(long, default_value_t = 20)]
    per_page: u32,
}

/// `cairn search`: the registry's index, by words, license, author and
/// WIT interfaces.
pub fn search(args: SearchArgs) -> Result<()> {
    let paths = args.common.files.paths()?;
    let config = Config::load(&paths.config)?;
    let registry = crate::client::default_registry(args.common.registry.as_deref(), &config)?;
    let token = cairn_client::credentials::token_for(
        std::env::var("CAIRN_TOKEN").ok().as_deref(),
        &paths.credentials,
        &registry,
    )?;
    let mut query: Vec<(&str, String)> = Vec::new();
    if !args.text.is_empty() {
        query.push(("q", args.text.join(" ")));
    }
    for (key, value) in [
        ("namespace", &args.namespace),
        ("license", &args.license),
        ("author", &args.author),
        ("satisfies", &args.satisfies),
    ] {
        if let Some(value) = value {
            query.push((key, value.clone()));
        }
    }
    for (key, values) in [
        ("exports", &args.exports),
        ("imports", &args.imports),
        ("only-imports", &args.only_imports),
    ] {
        for value in values {
            query.push((key, value.clone()));
        }
    }
    if args.yanked {
        query.push(("yanked", "true".into()));
    }
    if args.signed {
        query.push(("signed", "true".into()));
    }
    query.push(("page", args.page.to_string()));
    query.push(("per-page", args.per_page.to_string()));
    // The same timeouts and trusted CAs as the other client commands.
    let http = crate::admin::http_client()?;
    let mut request = http
        .get(format!(
            "{}/cairn/v1/search",
            registry.trim_end_matches('/')
        ))
        .query(&query);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let answer = request
        .send()
        .with_context(|| format!("cannot reach {registry}"))?;
    let status = answer.status();
    let body: Value = answer
        .json()
        .with_context(|| format!("{registry} did not answer a search with JSON"))?;
    if !status.is_success() {
        bail!(
            "{registry} refused the search (HTTP {}): {}",
            status.as_u16(),
            body["message"].as_str().unwrap_or("no reason given")
        );
    }
    if args.common.json {
        println!("{body}");
        return Ok(());
    }
    let hits = body["hits"].as_array().cloned().unwrap_or_default();
    if hits.is_empty() {
        println!("no package matches");
        return Ok(());
    }
    for hit in &hits {
        let text = |key: &str| hit[key].as_str().unwrap_or("").to_owned();
        println!(
            "{} {}{}{}  {}  {}",
            text("package"),
            text("version"),
            if hit["yanked"] == true {
                " (yanked)"
            } else {
                ""
            },
            if hit["signed"] == true {
                " (signed)"
            } else {
                ""
            },
            hit["license"].as_str().unwrap_or("(no license)"),
            text("description")
        );
        for key in ["exports", "imports"] {
            let list: Vec<&str> = hit[key]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if !list.is_empty() {
                println!("    {key}: {}", list.join(", "));
            }
        }
    }
    println!(
        "{} of {} (page {}); `cairn info <package>` verifies one",
        hits.len(),
        body["total"],
        body["page"]
    );
    Ok(())
}
