//! The client commands that need no registry: `cairn config` and
//! `cairn key`. Nothing here prompts; `--json` gives machine output.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use cairn_client::config::{check_url, Config};
use cairn_client::keys::{KeyFile, DEFAULT_KEY};
use cairn_client::Paths;
use clap::Subcommand;
use serde_json::json;

/// Where the client's files are: `--config`/`CAIRN_CONFIG` and
/// `--keys-file`/`CAIRN_KEYS_FILE`, else under the XDG config directory.
#[derive(clap::Args, Clone)]
pub struct FileArgs {
    /// The client configuration file [default: $XDG_CONFIG_HOME/cairn/config.toml].
    #[arg(long, env = "CAIRN_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// The signing keys file (mode 0600) [default: $XDG_CONFIG_HOME/cairn/keys.toml].
    #[arg(long, env = "CAIRN_KEYS_FILE", global = true)]
    pub keys_file: Option<PathBuf>,
    /// The API tokens file (mode 0600) [default: $XDG_CONFIG_HOME/cairn/credentials.toml].
    #[arg(long, env = "CAIRN_CREDENTIALS_FILE", global = true)]
    pub credentials_file: Option<PathBuf>,
    /// Trusted registry state: checkpoints and verified logs [default: $XDG_DATA_HOME/cairn/state].
    #[arg(long, env = "CAIRN_STATE_DIR", global = true)]
    pub state_dir: Option<PathBuf>,
    /// Downloaded content, by digest [default: $XDG_CACHE_HOME/cairn/content].
    #[arg(long, env = "CAIRN_CACHE_DIR", global = true)]
    pub cache_dir: Option<PathBuf>,
}

impl FileArgs {
    pub(crate) fn paths(&self) -> Result<Paths> {
        let xdg = Paths::xdg(|var| std::env::var_os(var).filter(|v| !v.is_empty()));
        let pick = |given: &Option<PathBuf>, default: Option<&PathBuf>, flag: &str| {
            given
                .clone()
                .or(default.cloned())
                .with_context(|| format!("HOME is not set: pass {flag} (or set HOME)"))
        };
        let xdg = xdg.as_ref();
        Ok(Paths {
            config: pick(&self.config, xdg.map(|p| &p.config), "--config")?,
            keys: pick(&self.keys_file, xdg.map(|p| &p.keys), "--keys-file")?,
            credentials: pick(
                &self.credentials_file,
                xdg.map(|p| &p.credentials),
                "--credentials-file",
            )?,
            state: pick(&self.state_dir, xdg.map(|p| &p.state), "--state-dir")?,
            cache: pick(&self.cache_dir, xdg.map(|p| &p.cache), "--cache-dir")?,
        })
    }
}

/// `cairn config`.
#[derive(clap::Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    files: FileArgs,
    /// Set the default registry (http:// or https:// URL).
    #[arg(long, value_name = "URL")]
    registry: Option<String>,
    /// Send a namespace to another registry (repeatable): `NS=URL`.
    #[arg(long, value_name = "NS=URL")]
    namespace_registry: Vec<String>,
    /// Remove a namespace's mapping (repeatable).
    #[arg(long, value_name = "NS")]
    unmap: Vec<String>,
    /// Trust registries' checkpoints only when they extend one cosigned by
    /// the witnesses of this C2SP policy file (`log`, `witness`, `group`,
    /// `quorum` lines; `c2sp.org/tlog-policy`). CAIRN_WITNESS_POLICY
    /// overrides it.
    #[arg(long, value_name = "FILE")]
    witness_policy: Option<std::path::PathBuf>,
    /// Stop requiring witnesses.
    #[arg(long, conflicts_with = "witness_policy")]
    no_witness_policy: bool,
    /// Print the configuration as JSON.
    #[arg(long)]
    json: bool,
}

/// `cairn config`: changes what is asked, then prints the configuration.
pub fn config(args: ConfigArgs) -> Result<()> {
    let paths = args.files.paths()?;
    let mut config = Config::load(&paths.config)?;
    let changing = args.registry.is_some()
        || !args.namespace_registry.is_empty()
        || !args.unmap.is_empty()
        || args.witness_policy.is_some()
        || args.no_witness_policy;
    if let Some(path) = &args.witness_policy {
        let path = std::fs::canonicalize(path)
            .with_context(|| format!("no witness policy at {}", path.display()))?;
        load_policy(&path)?;
        config.witness_policy = Some(path);
    }
    if args.no_witness_policy {
        config.witness_policy = None;
    }
    if let Some(url) = &args.registry {
        config.registry = Some(check_url(url)?);
    }
    for mapping in &args.namespace_registry {
        let Some((ns, url)) = mapping.split_once('=') else {
            bail!("`{mapping}` is not NS=URL (for example `wasi=https://registry.example`)");
        };
        cairn_protocol::validate_namespace(ns)
            .with_context(|| format!("`{ns}` is not a valid namespace"))?;
        config
            .namespace_registries
            .insert(ns.to_owned(), check_url(url)?);
    }
    for ns in &args.unmap {
        if config.namespace_registries.remove(ns).is_none() {
            bail!("namespace `{ns}` has no mapping to remove");
        }
    }
    if changing {
        config.save(&paths.config)?;
    }
    if args.json {
        println!(
            "{}",
            json!({
                "file": paths.config.display().to_string(),
                "registry": config.registry,
                "namespaceRegistries": config.namespace_registries,
                "witnessPolicy": config.witness_policy,
            })
        );
    } else {
        println!("# {}", paths.config.display());
        match &config.registry {
            Some(url) => println!("registry = {url}"),
            None => println!("registry is not set (cairn config --registry <url>)"),
        }
        for (ns, url) in &config.namespace_registries {
            println!("namespace {ns} -> {url}");
        }
        if let Some(path) = &config.witness_policy {
            println!("witness policy = {}", path.display());
        }
    }
    Ok(())
}

/// Reads and checks a witness policy file.
pub(crate) fn load_policy(path: &std::path::Path) -> Result<cairn_transparency::witness::Policy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the witness policy {}", path.display()))?;
    cairn_transparency::witness::Policy::parse(&text)
        .with_context(|| format!("the witness policy {}", path.display()))
}

/// `cairn key ...`.
#[derive(Subcommand)]
pub enum KeyCommand {
    /// Make a new signing key (ECDSA P-256) and store it in the keys file.
    New {
        /// Its name.
        #[arg(long, default_value = DEFAULT_KEY)]
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the stored keys: names, key ids and public keys.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one key's id and public key.
    Show {
        /// Its name.
        #[arg(default_value = DEFAULT_KEY)]
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a private key (for CAIRN_SIGNING_KEY in CI). Refuses to print
    /// to a terminal without --yes.
    Export {
        /// Its name.
        #[arg(default_value = DEFAULT_KEY)]
        name: String,
        /// Print it even to a terminal.
        #[arg(long)]
        yes: bool,
    },
}

/// `cairn key`.
#[derive(clap::Args)]
pub struct KeyArgs {
    #[command(flatten)]
    files: FileArgs,
    #[command(subcommand)]
    command: KeyCommand,
}

fn key_json(name: &str, key: &cairn_protocol::PrivateKey) -> serde_json::Value {
    json!({
        "name": name,
        "keyId": key.public_key().id().to_string(),
        "publicKey": key.public_key().to_string(),
    })
}

/// `cairn key ...`.
pub fn key(args: KeyArgs) -> Result<()> {
    let paths = args.files.paths()?;
    let mut file = KeyFile::load(&paths.keys)?;
    match args.command {
        KeyCommand::New { name, json } => {
            let key = file.generate(&name)?.clone();
            file.save(&paths.keys)?;
            if json {
                println!("{}", key_json(&name, &key));
            } else {
                println!("made key `{name}` in {}", paths.keys.display());
                println!("key id:     {}", key.public_key().id());
                println!("public key: {}", key.public_key());
            }
        }
        KeyCommand::List { json } => {
            if json {
                let keys: Vec<_> = file.keys().map(|(n, k)| key_json(n, k)).collect();
                println!("{}", serde_json::Value::Array(keys));
            } else if file.keys().next().is_none() {
                println!(
                    "no keys in {} (make one with `cairn key new`)",
                    paths.keys.display()
                );
            } else {
                for (name, key) in file.keys() {
                    println!("{name}\t{}\t{}", key.public_key().id(), key.public_key());
                }
            }
        }
        KeyCommand::Show { name, json } => {
            let key = file.get(&name)?;
            if json {
                println!("{}", key_json(&name, key));
            } else {
                println!("key id:     {}", key.public_key().id());
                println!("public key: {}", key.public_key());
            }
        }
        KeyCommand::Export { name, yes } => {
            let key = file.get(&name)?;
            if std::io::stdout().is_terminal() && !yes {
                bail!(
                    "refusing to print private key `{name}` to a terminal: redirect it \
                     (cairn key export {name} > key.txt) or pass --yes"
                );
            }
            println!("{}", key.encode());
        }
    }
    Ok(())
}

/// `cairn login` and `cairn logout`.
#[derive(clap::Args)]
pub struct LoginArgs {
    #[command(flatten)]
    files: FileArgs,
    /// The registry (default: the configured default registry).
    #[arg(long, value_name = "URL")]
    registry: Option<String>,
    /// Read the token from standard input (as `cairn token create` printed it).
    #[arg(long)]
    token_stdin: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// The registry a command that names no package talks to: `given`, else
/// the configured default.
pub(crate) fn default_registry(given: Option<&str>, config: &Config) -> Result<String> {
    match given {
        Some(url) => Ok(check_url(url)?),
        None => config.registry.clone().with_context(|| {
            "no registry given and no default configured: pass --registry <url> \
             or run `cairn config --registry <url>`"
                .to_owned()
        }),
    }
}

fn login_registry(args: &LoginArgs, paths: &Paths) -> Result<String> {
    // The config file is read only when it is needed.
    let config = match args.registry {
        Some(_) => Config::default(),
        None => Config::load(&paths.config)?,
    };
    default_registry(args.registry.as_deref(), &config)
}

/// `cairn login`: stores a token for a registry, from stdin or `CAIRN_TOKEN`.
pub fn login(args: LoginArgs) -> Result<()> {
    let paths = args.files.paths()?;
    let registry = login_registry(&args, &paths)?;
    let token = if args.token_stdin {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("cannot read the token from standard input")?;
        text
    } else if let Some(token) = std::env::var("CAIRN_TOKEN").ok().filter(|t| !t.is_empty()) {
        token
    } else {
        bail!(
            "no token given: pipe it in with `--token-stdin` (e.g. `cairn login --token-stdin \
             < token.txt`) or set CAIRN_TOKEN; a registry operator makes one with \
             `cairn token create`"
        );
    };
    let token = token.trim().to_owned();
    if token.is_empty()
        || token.len() > 4096
        || token.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        bail!(
            "that is not an API token (one line, no spaces): a registry operator makes one with \
             `cairn token create`; pipe it in with `cairn login --token-stdin < token.txt`"
        );
    }
    // Ask the registry, when it can be reached, whether it knows the token.
    let limits = cairn_client::Limits::from_env(|k| std::env::var_os(k))?;
    let api = cairn_client::api::Api::with_limits(&registry, Some(token.clone()), limits)?;
    match api.check_token() {
        Ok(()) => {}
        Err(cairn_client::Error::Refused {
            status: 401,
            message,
            ..
        }) => bail!(
            "{registry} does not accept this token ({message}); nothing was stored. Check \
             that it was made for this registry (`cairn token create` on its data directory)"
        ),
        Err(e) => {
            eprintln!("warning: could not check the token with {registry} ({e}); storing it anyway")
        }
    }
    cairn_client::credentials::store(&paths.credentials, &registry, &token)?;
    if args.json {
        println!(
            "{}",
            json!({ "registry": registry, "stored": true, "file": paths.credentials.display().to_string() })
        );
    } else {
        println!(
            "stored the token for {registry} in {}",
            paths.credentials.display()
        );
    }
    Ok(())
}

/// `cairn logout`: forgets the token of a registry.
pub fn logout(args: LoginArgs) -> Result<()> {
    let paths = args.files.paths()?;
    let registry = login_registry(&args, &paths)?;
    let forgot = cairn_client::credentials::forget(&paths.credentials, &registry)?;
    if args.json {
        println!("{}", json!({ "registry": registry, "forgotten": forgot }));
    } else if forgot {
        println!("forgot the token for {registry}");
    } else {
        println!("no token was stored for {registry}");
    }
    Ok(())
}

/// `cairn registry forget`.
#[derive(clap::Args)]
pub struct ForgetArgs {
    #[command(flatten)]
    files: FileArgs,
    /// The registry, as `cairn config` names it (e.g. `http://127.0.0.1:8090`).
    url: String,
    /// Really forget (without it, says what would be forgotten).
    #[arg(long)]
    yes: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

/// `cairn registry forget URL --yes`: drops the trusted checkpoint and the
/// verified logs of one registry, for a development registry wiped on
/// purpose (every command otherwise refuses it with exit code 3).
pub fn forget(args: ForgetArgs) -> Result<()> {
    use cairn_client::state::Trusted;
    let paths = args.files.paths()?;
    let url = cairn_client::config::check_url(&args.url)?;
    let Some(trusted) = Trusted::describe(&paths.state, &url)? else {
        if args.json {
            println!("{}", json!({ "registry": url, "forgotten": false }));
        } else {
            eprintln!("nothing is trusted about {url}; there is nothing to forget");
        }
        return Ok(());
    };
    let what = format!(
        "the trusted checkpoint of {url} ({}) and {} verified package logs, in {}",
        trusted
            .log_length
            .map_or("none yet".to_owned(), |n| format!("log length {n}")),
        trusted.packages,
        trusted.dir.display()
    );
    if !args.yes {
        return Err(crate::packages::UsageError(format!(
            "this would forget {what}. Do it only for a registry you wiped on purpose: a \
             registry that went back otherwise is what verification exists to catch. Run again \
             with --yes"
        ))
        .into());
    }
    Trusted::forget(&paths.state, &url)?;
    if args.json {
        println!(
            "{}",
            json!({
                "registry": url,
                "forgotten": true,
                "logLength": trusted.log_length,
                "packages": trusted.packages,
            })
        );
    } else {
        eprintln!(
            "forgot {what}; the next command trusts what {url} serves then, as a new user would"
        );
    }
    Ok(())
}
