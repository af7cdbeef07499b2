//! `cairn monitor`: follows registries' checkpoints and checks that each
//! extends the last one it verified (signature, consistency proof, the
//! witnesses' quorum with a policy); with `--replay`, fetches every package
//! log in each registry's log and checks every record against its log's
//! rules and the checkpoint. Findings (a registry unreachable, caught in a
//! lie, seen by a peer with another history) are kept and served, with
//! the latest verified checkpoints, as JSON (`/findings`, `/checkpoints`,
//! the gossip other monitors read with `--peer`) and Prometheus metrics
//! (`/metrics`). Each registry's trusted state is the verifying client's,
//! in its own directory, so a restarted monitor goes on from what it
//! verified.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use cairn_api::SignedCheckpointJson;
use cairn_client::api::NoProgress;
use cairn_client::config::check_url;
use cairn_client::{Client, Error as ClientError};
use serde_json::{json, Value};

/// `cairn monitor`.
#[derive(clap::Args)]
pub struct MonitorArgs {
    /// The registries to follow (URLs).
    #[arg(required = true, value_name = "URL")]
    registries: Vec<String>,
    /// Seconds between rounds.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    interval: u64,
    /// Also fetch every package log each registry's log holds and check
    /// every record (the first round reads the whole log; later rounds
    /// only what is new).
    #[arg(long)]
    replay: bool,
    /// Serve findings, checkpoints (gossip) and metrics here.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Another monitor (or anything serving `/checkpoints` the same way)
    /// to compare checkpoints with: two signed checkpoints of one registry
    /// that are not one history are a split view (repeatable).
    #[arg(long = "peer", value_name = "URL")]
    peers: Vec<String>,
    /// Require the registries' C2SP checkpoints to meet this policy (the
    /// log's key and the witnesses' quorum), as `cairn get` does.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Where the trusted state of each registry is kept.
    #[arg(long, default_value = "./cairn-monitor", value_name = "DIR")]
    state_dir: PathBuf,
    /// Run one round, print the report as JSON, and exit (1 if there are
    /// findings of lies, 0 otherwise).
    #[arg(long)]
    once: bool,
}

/// One finding.
#[derive(Clone)]
struct Finding {
    time: u64,
    registry: String,
    kind: &'static str,
    message: String,
    evidence: Option<String>,
}

impl Finding {
    fn json(&self) -> Value {
        json!({
            "time": self.time,
            "registry": self.registry,
            "kind": self.kind,
            "message": self.message,
            "evidence": self.evidence,
        })
    }
}

/// What the monitor knows of one registry.
#[derive(Default, Clone)]
struct Followed {
    checkpoint: Option<SignedCheckpointJson>,
    last_success: Option<u64>,
    packages_verified: u64,
    /// The ledger index replaying has read up to.
    replayed_to: u64,
    /// Caught in a lie: followed no further.
    stopped: bool,
}

/// The monitor's shared report.
#[derive(Default)]
struct Report {
    registries: BTreeMap<String, Followed>,
    findings: Vec<Finding>,
    counts: BTreeMap<(String, &'static str), u64>,
    rounds: u64,
}

/// The largest gossip answer read from a peer.
const MAX_GOSSIP_BYTES: u64 = 4 << 20;

/// At most this many findings are kept (the oldest go first); counts stay.
const MAX_FINDINGS: usize = 1000;

impl Report {
    fn add(&mut self, finding: Finding) {
        *self
            .counts
            .entry((finding.registry.clone(), finding.kind))
            .or_default() += 1;
        // A repeated finding (the same registry, kind and message) is
        // counted, not listed again.
        let repeated = self.findings.iter().any(|f| {
            f.registry == finding.registry && f.kind == finding.kind && f.message == finding.message
        });
        if !repeated {
            if self.findings.len() == MAX_FINDINGS {
                self.findings.remove(0);
            }
            self.findings.push(finding);
        }
    }

    fn findings_json(&self) -> Value {
        json!({
            "rounds": self.rounds,
            "registries": self.registries.iter().map(|(url, f)| json!({
                "registry": url,
                "checkpoint": f.checkpoint,
                "lastSuccess": f.last_success,
                "packagesVerified": f.packages_verified,
                "stopped": f.stopped,
            })).collect::<Vec<_>>(),
            "findings": self.findings.iter().map(Finding::json).collect::<Vec<_>>(),
        })
    }

    fn checkpoints_json(&self) -> Value {
        json!({
            "registries": self.registries.iter()
                .filter_map(|(url, f)| Some(json!({ "registry": url, "checkpoint": f.checkpoint.as_ref()? })))
                .collect::<Vec<_>>(),
        })
    }

    fn metrics(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP cairn_monitor_log_length The log length of the latest verified checkpoint.\n# TYPE cairn_monitor_log_length gauge\n");
        for (url, f) in &self.registries {
            if let Some(cp) = &f.checkpoint {
                out.push_str(&format!(
                    "cairn_monitor_log_length{{registry=\"{}\"}} {}\n",
                    label(url),
                    cp.contents.log_length
                ));
            }
        }
        out.push_str("# HELP cairn_monitor_last_success_seconds When the registry was last verified (Unix time).\n# TYPE cairn_monitor_last_success_seconds gauge\n");
        for (url, f) in &self.registries {
            out.push_str(&format!(
                "cairn_monitor_last_success_seconds{{registry=\"{}\"}} {}\n",
                label(url),
                f.last_success.unwrap_or(0)
            ));
        }
        out.push_str("# HELP cairn_monitor_packages_verified Package logs replayed and verified.\n# TYPE cairn_monitor_packages_verified gauge\n");
        for (url, f) in &self.registries {
            out.push_str(&format!(
                "cairn_monitor_packages_verified{{registry=\"{}\"}} {}\n",
                label(url),
                f.packages_verified
            ));
        }
        out.push_str("# HELP cairn_monitor_findings_total Findings, by kind.\n# TYPE cairn_monitor_findings_total counter\n");
        for ((url, kind), n) in &self.counts {
            out.push_str(&format!(
                "cairn_monitor_findings_total{{registry=\"{}\",kind=\"{kind}\"}} {n}\n",
                label(url)
            ));
        }
        out
    }
}

fn label(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

fn now() -> u64 {
    use cairn_registry::Clock;
    cairn_registry::SystemClock.now_seconds()
}

/// The kind of a client error: a lie, or the registry not answering well.
fn kind_of(e: &ClientError) -> &'static str {
    if e.is_verification() {
        "verification"
    } else {
        "unreachable"
    }
}

fn evidence_of(e: &ClientError) -> Option<String> {
    match e {
        ClientError::Verification(failure) => {
            failure.evidence.as_ref().map(|p| p.display().to_string())
        }
        _ => None,
    }
}

/// One round over one registry.
fn round(
    url: &str,
    client: &mut Client,
    replay: bool,
    followed: &mut Followed,
    findings: &mut Vec<Finding>,
) {
    let finding = |kind, e: &ClientError| Finding {
        time: now(),
        registry: url.to_owned(),
        kind,
        message: e.to_string(),
        evidence: evidence_of(e),
    };
    if let Err(e) = client.update(&[], false) {
        let kind = kind_of(&e);
        followed.stopped |= kind == "verification";
        findings.push(finding(kind, &e));
        return;
    }
    if replay {
        let replayed = client
            .packages_since(followed.replayed_to)
            .and_then(|(names, to)| {
                for chunk in names.chunks(500) {
                    client.update(chunk, false)?;
                    followed.packages_verified += chunk.len() as u64;
                }
                followed.replayed_to = to;
                Ok(())
            });
        if let Err(e) = replayed {
            let kind = kind_of(&e);
            followed.stopped |= kind == "verification";
            findings.push(finding(kind, &e));
            return;
        }
    }
    followed.checkpoint = client.checkpoint().map(SignedCheckpointJson::from);
    followed.last_success = Some(now());
}

/// Compares the registries' checkpoints a peer reports with ours.
fn gossip(peer: &str, clients: &mut BTreeMap<String, Client>, findings: &mut Vec<Finding>) {
    let fail = |registry: &str, kind, message: String| Finding {
        time: now(),
        registry: registry.to_owned(),
        kind,
        message,
        evidence: None,
    };
    let url = format!("{}/checkpoints", peer.trim_end_matches('/'));
    // A peer's answer is read within MAX_GOSSIP_BYTES and 10 s.
    let answer = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .and_then(|http| http.get(&url).send())
        .and_then(|r| r.error_for_status())
        .map_err(|e| e.to_string())
        .and_then(|r| {
            let mut bytes = Vec::new();
            r.take(MAX_GOSSIP_BYTES + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| e.to_string())?;
            if bytes.len() as u64 > MAX_GOSSIP_BYTES {
                return Err(format!(
                    "the answer is larger than {MAX_GOSSIP_BYTES} bytes"
                ));
            }
            serde_json::from_slice::<Value>(&bytes).map_err(|e| e.to_string())
        });
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => {
            findings.push(fail(peer, "peer-unreachable", format!("{url}: {e}")));
            return;
        }
    };
    let Some(list) = answer["registries"].as_array() else {
        findings.push(fail(
            peer,
            "peer-unreachable",
            format!("{url}: not a checkpoint list"),
        ));
        return;
    };
    for entry in list.iter().take(1000) {
        let Some(registry) = entry["registry"].as_str() else {
            continue;
        };
        let Some(client) = clients.get_mut(registry) else {
            continue;
        };
        let theirs = serde_json::from_value::<SignedCheckpointJson>(entry["checkpoint"].clone())
            .ok()
            .and_then(|j| j.parse().ok());
        let Some(theirs) = theirs else {
            findings.push(fail(
                registry,
                "peer-unreachable",
                format!("{peer} reports a malformed checkpoint"),
            ));
            continue;
        };
        if let Err(e) = client.check_gossip(&theirs, peer) {
            let kind = if e.is_verification() {
                "split-view"
            } else {
                "gossip-unverified"
            };
            findings.push(Finding {
                time: now(),
                registry: registry.to_owned(),
                kind,
                message: e.to_string(),
                evidence: evidence_of(&e),
            });
        }
    }
}

/// `cairn monitor`.
pub fn monitor(args: MonitorArgs) -> Result<()> {
    let policy = args
        .policy
        .as_deref()
        .map(crate::client::load_policy)
        .transpose()?;
    let cache = args.state_dir.join("cache");
    let limits = cairn_client::Limits::from_env(|k| std::env::var_os(k))?;
    let mut clients = BTreeMap::new();
    for url in &args.registries {
        let url = check_url(url)?;
        let mut client = Client::open_with(
            &url,
            None,
            &args.state_dir,
            &cache,
            Arc::new(NoProgress),
            limits.clone(),
        )
        .with_context(|| format!("cannot keep the state of {url}"))?;
        if let Some(policy) = &policy {
            client = client.with_witness_policy(policy.clone());
        }
        clients.insert(url, client);
    }
    let report = Arc::new(Mutex::new(Report::default()));
    if let Some(addr) = args.listen {
        serve(addr, report.clone())?;
    }
    loop {
        let mut found = Vec::new();
        for (url, client) in clients.iter_mut() {
            let mut followed = lock(&report)
                .registries
                .get(url)
                .cloned()
                .unwrap_or_default();
            if !followed.stopped {
                round(url, client, args.replay, &mut followed, &mut found);
            }
            lock(&report).registries.insert(url.clone(), followed);
        }
        for peer in &args.peers {
            gossip(peer, &mut clients, &mut found);
        }
        {
            let mut report = lock(&report);
            report.rounds += 1;
            for finding in found {
                eprintln!("{} {}: {}", finding.kind, finding.registry, finding.message);
                report.add(finding);
            }
        }
        if args.once {
            let report = lock(&report);
            println!("{}", report.findings_json());
            let lies = report
                .findings
                .iter()
                .any(|f| matches!(f.kind, "verification" | "split-view"));
            if lies {
                bail!("a registry was caught: see the findings");
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(args.interval.max(1)));
    }
}

fn lock(report: &Mutex<Report>) -> std::sync::MutexGuard<'_, Report> {
    report.lock().unwrap_or_else(|e| e.into_inner())
}

/// Serves the report on `addr` from a thread of its own.
fn serve(addr: SocketAddr, report: Arc<Mutex<Report>>) -> Result<()> {
    use axum::routing::get;
    let runtime = cairn_server::runtime(Some(1))?;
    let listener = runtime
        .block_on(async { tokio::net::TcpListener::bind(addr).await })
        .with_context(|| format!("cannot listen on {addr}"))?;
    eprintln!("monitor: serving /findings, /checkpoints and /metrics on http://{addr}");
    let (findings, checkpoints, metrics) = (report.clone(), report.clone(), report);
    let app = axum::Router::new()
        .route(
            "/findings",
            get(move || async move { axum::Json(lock(&findings).findings_json()) }),
        )
        .route(
            "/checkpoints",
            get(move || async move { axum::Json(lock(&checkpoints).checkpoints_json()) }),
        )
        .route(
            "/metrics",
            get(move || async move {
                (
                    [("content-type", "text/plain; version=0.0.4")],
                    lock(&metrics).metrics(),
                )
            }),
        );
    std::thread::spawn(move || {
        runtime.block_on(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("monitor: the HTTP server stopped: {e}");
            }
        });
    });
    Ok(())
}
