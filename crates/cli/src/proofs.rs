//! Proofs that travel with files: `cairn proof` downloads a release's
//! offline proof (`c2sp.org/tlog-proof@v1`), `cairn verify-file` checks a
//! file fetched by any tool (wkg, oras, a browser) against a registry's
//! log, offline when the proof is at hand, and `cairn audit` checks every
//! component a `wkg.lock` pins. Trust comes from a C2SP policy (the log's
//! key and the witnesses' quorum) or the log's key alone.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use cairn_client::api::Api;
use cairn_client::config::{check_url, Config};
use cairn_protocol::release_proof::{verify_release, VerifiedRelease};
use cairn_protocol::{Hash, PackageName, Version};
use cairn_transparency::tlog_proof::{TlogProof, MAX_PROOF_BYTES};
use cairn_transparency::witness::Policy;
use serde_json::{json, Value};

use crate::client::FileArgs;
use crate::packages::UsageError;

/// Some pinned components are not proven to be in their logs (exit code
/// 3, as for every verification failure).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotProven(String);

/// Where trust in a log comes from.
#[derive(clap::Args, Clone)]
pub struct Trust {
    /// A C2SP policy file (`c2sp.org/tlog-policy`): the logs' keys and the
    /// witnesses' quorum a proof's checkpoint must meet [default: the
    /// client's witness policy, CAIRN_WITNESS_POLICY or `cairn config
    /// --witness-policy`].
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// The log's verifier key (`<origin>+<id>+<key>`, from the registry's
    /// `/tlog/key`, fetched once over a channel you trust), trusted with no
    /// witnesses.
    #[arg(long, value_name = "VKEY", conflicts_with = "policy")]
    log_key: Option<String>,
}

/// Options of the proof commands.
#[derive(clap::Args, Clone)]
pub struct ProofCommon {
    #[command(flatten)]
    files: FileArgs,
    /// Ask this registry instead of the one configured for the namespace.
    #[arg(long, env = "CAIRN_REGISTRY", value_name = "URL")]
    registry: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

impl ProofCommon {
    fn config(&self) -> Result<Config> {
        let paths = self.files.paths()?;
        Ok(Config::load(&paths.config)?)
    }

    /// The API of the registry serving `name` (the lock file's registry,
    /// an authority, when the configuration names none).
    fn api(&self, config: &Config, name: &PackageName, fallback: Option<&str>) -> Result<Api> {
        let registry = match (&self.registry, fallback) {
            (Some(url), _) => check_url(url)?,
            (None, fallback) => match (config.registry_for(name.namespace()), fallback) {
                (Ok(url), _) => url.to_owned(),
                (Err(_), Some(authority)) if authority.contains("://") => check_url(authority)?,
                (Err(_), Some(authority)) => check_url(&format!("https://{authority}"))?,
                (Err(e), None) => return Err(e.into()),
            },
        };
        let paths = self.files.paths()?;
        let token = cairn_client::credentials::token_for(
            std::env::var("CAIRN_TOKEN").ok().as_deref(),
            &paths.credentials,
            &registry,
        )?;
        let limits = cairn_client::Limits::from_env(|k| std::env::var_os(k))?;
        Ok(Api::with_limits(&registry, token, limits)?)
    }
}

impl Trust {
    fn policy(&self, config: &Config) -> Result<Policy> {
        if let Some(key) = &self.log_key {
            return Policy::parse(&format!("log {key}\nquorum none\n"))
                .with_context(|| format!("--log-key `{key}` is not a log's verifier key"));
        }
        let path = self
            .policy
            .clone()
            .or_else(|| {
                std::env::var_os("CAIRN_WITNESS_POLICY")
                    .filter(|p| !p.is_empty())
                    .map(PathBuf::from)
            })
            .or_else(|| config.witness_policy.clone());
        match path {
            Some(path) => crate::client::load_policy(&path),
            None => Err(UsageError(
                "nothing says which log to trust: give the log's key with --log-key (the registry \
                 serves it at /tlog/key; fetch it once over a channel you trust), or a C2SP policy \
                 file with --policy (or `cairn config --witness-policy FILE`)"
                    .into(),
            )
            .into()),
        }
    }
}

/// `namespace:name@1.2.3`.
#[derive(Clone, Debug)]
pub struct ExactRelease {
    name: PackageName,
    version: Option<Version>,
}

impl std::str::FromStr for ExactRelease {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (name, version) = match text.split_once('@') {
            Some((name, v)) => (
                name,
                Some(Version::parse(v).map_err(|e| format!("`{v}` is not an exact version: {e}"))?),
            ),
            None => (text, None),
        };
        let name = name
            .parse()
            .map_err(|e| format!("`{name}` is not a package name (`namespace:name`): {e}"))?;
        Ok(ExactRelease { name, version })
    }
}

/// `cairn proof`.
#[derive(clap::Args)]
pub struct ProofArgs {
    #[command(flatten)]
    common: ProofCommon,
    #[command(flatten)]
    trust: Trust,
    /// The release: `namespace:name@1.2.3`.
    release: ExactRelease,
    /// Where to write the proof (default: `./<namespace>_<name>@<version>.tlog-proof`).
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
}

/// `cairn verify-file`.
#[derive(clap::Args)]
pub struct VerifyFileArgs {
    #[command(flatten)]
    common: ProofCommon,
    #[command(flatten)]
    trust: Trust,
    /// The file to check (a component fetched by wkg, oras or anything).
    file: PathBuf,
    /// The offline proof: with it nothing is fetched.
    #[arg(long, value_name = "FILE")]
    proof: Option<PathBuf>,
    /// The release the file should be (`namespace:name@1.2.3`); needed
    /// without --proof, checked with it.
    #[arg(long, value_name = "RELEASE")]
    package: Option<ExactRelease>,
}

/// `cairn audit`.
#[derive(clap::Args)]
pub struct AuditArgs {
    #[command(flatten)]
    common: ProofCommon,
    #[command(flatten)]
    trust: Trust,
    /// The lock file wkg wrote.
    #[arg(default_value = "wkg.lock")]
    lock: PathBuf,
    /// A directory of proofs (`<namespace>_<name>@<version>.tlog-proof`):
    /// those there are used, those fetched are saved there.
    #[arg(long, value_name = "DIR")]
    proofs: Option<PathBuf>,
    /// Fetch nothing: every proof must be in --proofs.
    #[arg(long, requires = "proofs")]
    offline: bool,
}

fn proof_file_name(name: &PackageName, version: &Version) -> String {
    format!("{}_{}@{version}.tlog-proof", name.namespace(), name.name())
}

fn read_proof(path: &Path) -> Result<TlogProof> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read the proof {}", path.display()))?
        .len();
    if size > MAX_PROOF_BYTES as u64 {
        bail!(
            "{} is {size} bytes, more than a proof may be ({MAX_PROOF_BYTES})",
            path.display()
        );
    }
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read the proof {}", path.display()))?;
    TlogProof::parse(&bytes).with_context(|| format!("the proof {}", path.display()))
}

fn fetch_proof(api: &Api, name: &PackageName, version: &Version) -> Result<(TlogProof, Vec<u8>)> {
    let bytes = api.tlog_proof(name, version)?;
    let proof = TlogProof::parse(&bytes)
        .with_context(|| format!("the registry's proof of {name}@{version}"))?;
    Ok((proof, bytes))
}

fn verified_json(v: &VerifiedRelease) -> Value {
    json!({
        "package": v.package.as_str(),
        "version": v.version.to_string(),
        "digest": v.content.to_string(),
        "registryIndex": v.index,
        "origin": v.origin,
        "checkpointSize": v.checkpoint_size,
        "witnesses": v.witnesses,
        "signer": v.signer.to_string(),
    })
}

fn describe(v: &VerifiedRelease) -> String {
    let witnessed = if v.witnesses.is_empty() {
        String::new()
    } else {
        format!(", cosigned by {}", v.witnesses.join(", "))
    };
    format!(
        "{}@{} ({}): record {} of {}, in its checkpoint of {} records{witnessed}",
        v.package, v.version, v.content, v.index, v.origin, v.checkpoint_size
    )
}

/// `cairn proof`: downloads a release's proof, checks it, writes it.
pub fn proof(args: ProofArgs) -> Result<()> {
    let config = args.common.config()?;
    let policy = args.trust.policy(&config)?;
    let ExactRelease { name, version } = args.release;
    let Some(version) = version else {
        return Err(UsageError(format!(
            "a proof is of one release: name its version, `{name}@1.2.3`"
        ))
        .into());
    };
    let api = args.common.api(&config, &name, None)?;
    let (proof, bytes) = fetch_proof(&api, &name, &version)?;
    let extra = proof.extra.as_deref().unwrap_or_default();
    let release = cairn_protocol::release_proof::ReleaseRecord::from_extra(extra)?;
    let content = *release
        .releases()
        .find(|(v, _)| **v == version)
        .map(|(_, c)| c)
        .context("the registry's proof holds another release")?;
    let verified = verify_release(&proof, &policy, &content, Some((&name, Some(&version))))
        .context("the registry's proof does not verify")?;
    let output = args
        .output
        .unwrap_or_else(|| PathBuf::from(proof_file_name(&name, &version)));
    std::fs::write(&output, &bytes)
        .with_context(|| format!("cannot write {}", output.display()))?;
    if args.common.json {
        let mut out = verified_json(&verified);
        out["proof"] = json!(output);
        println!("{out}");
    } else {
        println!("{}: {}", output.display(), describe(&verified));
    }
    Ok(())
}

/// `cairn verify-file`: checks a file against the log.
pub fn verify_file(args: VerifyFileArgs) -> Result<()> {
    let config = args.common.config()?;
    let policy = args.trust.policy(&config)?;
    let digest = cairn_client::hash_file(&args.file)?;
    let expected = args.package.as_ref();
    let proof = match (&args.proof, expected) {
        (Some(path), _) => read_proof(path)?,
        (
            None,
            Some(ExactRelease {
                name,
                version: Some(version),
            }),
        ) => {
            let api = args.common.api(&config, name, None)?;
            fetch_proof(&api, name, version)?.0
        }
        (None, _) => {
            return Err(UsageError(
                "say which release the file should be: --package namespace:name@1.2.3 (its \
                 proof is then fetched), or give its proof with --proof FILE"
                    .into(),
            )
            .into())
        }
    };
    let verified = verify_release(
        &proof,
        &policy,
        &digest,
        expected.map(|e| (&e.name, e.version.as_ref())),
    )
    .with_context(|| {
        format!(
            "{} ({digest}) is not proven to be in the log",
            args.file.display()
        )
    })?;
    if args.common.json {
        let mut out = verified_json(&verified);
        out["file"] = json!(args.file);
        println!("{out}");
    } else {
        println!("verified {}: {}", args.file.display(), describe(&verified));
    }
    Ok(())
}

/// One pinned version of a `wkg.lock`.
#[derive(serde::Deserialize)]
struct LockVersion {
    version: String,
    digest: String,
}

#[derive(serde::Deserialize)]
struct LockPackage {
    name: String,
    registry: Option<String>,
    #[serde(default)]
    versions: Vec<LockVersion>,
}

#[derive(serde::Deserialize)]
struct WkgLock {
    version: u32,
    #[serde(default)]
    packages: Vec<LockPackage>,
}

/// The most bytes of a lock file read.
const MAX_LOCK_BYTES: u64 = 16 << 20;

/// `cairn audit`: checks every pinned component of a `wkg.lock`.
pub fn audit(args: AuditArgs) -> Result<()> {
    let config = args.common.config()?;
    let policy = args.trust.policy(&config)?;
    let size = std::fs::metadata(&args.lock)
        .with_context(|| format!("cannot read {}", args.lock.display()))?
        .len();
    if size > MAX_LOCK_BYTES {
        bail!(
            "{} is larger than {MAX_LOCK_BYTES} bytes",
            args.lock.display()
        );
    }
    let text = std::fs::read_to_string(&args.lock)
        .with_context(|| format!("cannot read {}", args.lock.display()))?;
    let lock: WkgLock = toml::from_str(&text)
        .with_context(|| format!("{} is not a wkg lock file", args.lock.display()))?;
    if lock.version != 1 {
        bail!(
            "{} is a lock file of version {}; this cairn reads version 1",
            args.lock.display(),
            lock.version
        );
    }
    if let Some(dir) = &args.proofs {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot make the proofs directory {}", dir.display()))?;
    }
    let mut results = Vec::new();
    let mut failed = 0usize;
    for package in &lock.packages {
        for pinned in &package.versions {
            let outcome = audit_one(&args, &config, &policy, package, pinned);
            let label = format!("{}@{}", package.name, pinned.version);
            match outcome {
                Ok(verified) => {
                    if !args.common.json {
                        println!("ok      {label}: {}", describe(&verified));
                    }
                    let mut out = verified_json(&verified);
                    out["ok"] = json!(true);
                    results.push(out);
                }
                Err(e) => {
                    failed += 1;
                    if !args.common.json {
                        println!("FAILED  {label} ({}): {e:#}", pinned.digest);
                    }
                    results.push(json!({
                        "package": package.name,
                        "version": pinned.version,
                        "digest": pinned.digest,
                        "ok": false,
                        "error": format!("{e:#}"),
                    }));
                }
            }
        }
    }
    if args.common.json {
        println!(
            "{}",
            json!({ "lock": args.lock, "results": results, "failed": failed })
        );
    }
    if failed > 0 {
        return Err(NotProven(format!(
            "{failed} of {} pinned components of {} are not proven to be in their registry's log",
            results.len(),
            args.lock.display()
        ))
        .into());
    }
    if !args.common.json {
        println!(
            "all {} pinned components of {} are in their logs",
            results.len(),
            args.lock.display()
        );
    }
    Ok(())
}

fn audit_one(
    args: &AuditArgs,
    config: &Config,
    policy: &Policy,
    package: &LockPackage,
    pinned: &LockVersion,
) -> Result<VerifiedRelease> {
    let name: PackageName = package
        .name
        .parse()
        .with_context(|| format!("`{}` is not a package name", package.name))?;
    let version = Version::parse(&pinned.version)
        .with_context(|| format!("`{}` is not a version", pinned.version))?;
    let digest: Hash = pinned
        .digest
        .parse()
        .with_context(|| format!("the digest `{}` is not sha256:<hex>", pinned.digest))?;
    let saved = args
        .proofs
        .as_ref()
        .map(|dir| dir.join(proof_file_name(&name, &version)));
    let (proof, fetched) = match &saved {
        Some(path) if path.exists() => (read_proof(path)?, None),
        Some(path) if args.offline => bail!("no proof at {}", path.display()),
        _ => {
            let api = args
                .common
                .api(config, &name, package.registry.as_deref())?;
            let (proof, bytes) = fetch_proof(&api, &name, &version)?;
            (proof, Some(bytes))
        }
    };
    let verified = verify_release(&proof, policy, &digest, Some((&name, Some(&version))))?;
    // Only a proof that verified is kept for the next (offline) audit.
    if let (Some(path), Some(bytes)) = (&saved, fetched) {
        std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(verified)
}
