//! `cairn witness`: runs a C2SP witness (`c2sp.org/tlog-witness`) for the
//! logs of a config file: it cosigns each checkpoint a log sends it if the
//! log signed it and it is consistent with the last one it cosigned.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use cairn_registry::SystemClock;
use cairn_server::Witness;
use cairn_store::WitnessState;
use cairn_transparency::note::{Verifier, ED25519};

/// `cairn witness` flags.
#[derive(clap::Args)]
pub struct WitnessArgs {
    /// A config file: lines `name <witness name>`, `listen <address>`,
    /// `data-dir <dir>` and one `log <verifier key>` per log; `#` starts a
    /// comment. Flags override it.
    #[arg(long, env = "CAIRN_WITNESS_CONFIG")]
    config: Option<PathBuf>,
    /// The witness's name (its cosignatures' key name), e.g.
    /// `witness.example.com/w1`.
    #[arg(long)]
    name: Option<String>,
    /// Address to listen on (default 127.0.0.1:8091).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Directory of its key (`witness.key`, made at first start), state and
    /// evidence (default ./cairn-witness).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A log to witness, by the verifier key of its checkpoints
    /// (`<origin>+<id>+<key>`, as its `/tlog/key` gives it; repeatable).
    #[arg(long = "log", value_name = "VKEY")]
    logs: Vec<String>,
}

/// The settings, from the config file and the flags.
struct Settings {
    name: String,
    listen: SocketAddr,
    data_dir: PathBuf,
    logs: Vec<String>,
}

fn settings(args: WitnessArgs) -> Result<Settings> {
    let (mut name, mut listen, mut data_dir, mut logs) = (None, None, None, Vec::new());
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the witness config {}", path.display()))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line.split_once(char::is_whitespace).with_context(|| {
                format!(
                    "{} line {}: expected `<setting> <value>`",
                    path.display(),
                    n + 1
                )
            })?;
            let value = value.trim().to_owned();
            match key {
                "name" => name = Some(value),
                "listen" => {
                    listen = Some(value.parse().with_context(|| {
                        format!("{} line {}: not an address", path.display(), n + 1)
                    })?)
                }
                "data-dir" => data_dir = Some(PathBuf::from(value)),
                "log" => logs.push(value),
                other => bail!(
                    "{} line {}: unknown setting `{other}` (name, listen, data-dir, log)",
                    path.display(),
                    n + 1
                ),
            }
        }
    }
    logs.extend(args.logs);
    let Some(name) = args.name.or(name) else {
        bail!("the witness needs a name: --name witness.example.com/w1 (or `name` in --config)");
    };
    if logs.is_empty() {
        bail!("the witness witnesses no log: give --log <verifier key> (a registry's /tlog/key)");
    }
    Ok(Settings {
        name,
        listen: args
            .listen
            .or(listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8091))),
        data_dir: args
            .data_dir
            .or(data_dir)
            .unwrap_or_else(|| PathBuf::from("cairn-witness")),
        logs,
    })
}

/// Runs the witness until stopped.
pub fn witness(args: WitnessArgs) -> Result<()> {
    let settings = settings(args)?;
    let mut logs: HashMap<String, Vec<Verifier>> = HashMap::new();
    for vkey in &settings.logs {
        let key =
            Verifier::parse(vkey).with_context(|| format!("`{vkey}` is not a verifier key"))?;
        if key.kind() != ED25519 {
            bail!("`{vkey}` is not a log's key (a log signs with type 0x01)");
        }
        logs.entry(key.name().to_owned()).or_default().push(key);
    }
    let state = Arc::new(WitnessState::open(&settings.data_dir)?);
    let key = state.key(&settings.name)?;
    tracing::info!(
        "witness {} for {} log(s), state in {}",
        key.verifier(),
        logs.len(),
        settings.data_dir.display()
    );
    let witness = Arc::new(Witness {
        key,
        logs,
        state,
        clock: Arc::new(SystemClock),
    });
    let runtime = cairn_server::runtime(None)?;
    runtime.block_on(async move {
        let listener = cairn_server::bind(settings.listen)
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        tracing::info!("listening on http://{}", listener.local_addr()?);
        cairn_server::serve_witness(listener, witness, crate::shutdown_signal())
            .await
            .context("the witness failed")
    })
}
