//! Signatures people already make: `cairn attest` (a cosign-format
//! signature, or an in-toto attestation in a DSSE envelope, pushed as an
//! OCI referrer of a release's manifest), the keys an operator trusts
//! (`cairn namespace trust-key`, `keys`, `untrust-key`), and the listing
//! `cairn info --attestations` prints.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cairn_protocol::attestation::AttestationRecord;
use cairn_protocol::{Envelope, PackageName, Version};
use cairn_registry::oci::{OciStore, IMAGE_MANIFEST, MAX_MANIFEST_BYTES};
use cairn_registry::signatures::{self, SigningKey};
use cairn_store::SqliteStore;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::admin;
use crate::packages::{Common, Session};

/// The empty config of an artifact (`{}`).
const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";

/// The largest predicate file `cairn attest` reads, in bytes.
const MAX_PREDICATE: u64 = 512 * 1024;

/// `cairn attest`.
#[derive(clap::Args)]
pub struct AttestArgs {
    #[command(flatten)]
    common: Common,
    /// The release: `namespace:name@version`.
    release: String,
    /// The P-256 private key to sign with (PEM, PKCS#8 or SEC1, as
    /// `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`
    /// writes).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// A predicate (JSON) to attest: makes an in-toto attestation in a DSSE
    /// envelope instead of a cosign signature.
    #[arg(long, value_name = "FILE", requires = "predicate_type")]
    predicate: Option<PathBuf>,
    /// The predicate's type (a URI, e.g. `https://slsa.dev/provenance/v1`).
    #[arg(long = "type", value_name = "URI", requires = "predicate")]
    predicate_type: Option<String>,
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A refusal's message: the JSON error's, else the text.
fn refusal(response: reqwest::blocking::Response) -> String {
    let status = response.status().as_u16();
    let text = response.text().unwrap_or_default();
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let message = value["errors"][0]["message"]
        .as_str()
        .or(value["message"].as_str())
        .map_or_else(|| text.trim().to_owned(), str::to_owned);
    format!("{message} (HTTP {status})")
}

/// `cairn attest`: signs a release's manifest (or attests a predicate about
/// it) with a local key and pushes it as a referrer of that manifest.
pub fn attest(args: AttestArgs) -> Result<()> {
    let Some((name, version)) = args.release.split_once('@') else {
        bail!(
            "`{}` names no version: give `namespace:name@version`",
            args.release
        );
    };
    let name: PackageName = name
        .parse()
        .with_context(|| format!("`{name}` is not a package name (namespace:name)"))?;
    let version: Version = version
        .parse()
        .with_context(|| format!("`{version}` is not a version"))?;
    let pem = std::fs::read_to_string(&args.key)
        .with_context(|| format!("cannot read the key {}", args.key.display()))?;
    let key = SigningKey::from_pem(&pem).with_context(|| format!("{}", args.key.display()))?;
    let predicate = match (&args.predicate, &args.predicate_type) {
        (Some(file), Some(kind)) => Some((read_predicate(file)?, kind.clone())),
        _ => None,
    };

    // What to sign: the release the verified log holds, in the manifest
    // the registry serves for it.
    let mut session = Session::new(&args.common)?;
    let (registry, content) = {
        let client = session.for_package(&name)?;
        let log = client.fetch_package(&name)?;
        let Some(release) = log.state.release(&version) else {
            bail!("{name} has no release {version}: see `cairn info {name}`");
        };
        (client.registry().to_owned(), release.content.to_string())
    };
    let token = cairn_client::credentials::token_for(
        std::env::var("CAIRN_TOKEN").ok().as_deref(),
        &session.paths.credentials,
        &registry,
    )?
    .with_context(|| {
        format!(
            "attesting needs a token of a maintainer of {name}: store it with `cairn login \
             --registry {registry} --token-stdin`, or set CAIRN_TOKEN"
        )
    })?;
    let http = crate::admin::http_client()?;
    let repo = format!("{}/{}", name.namespace(), name.name());
    let base = registry.trim_end_matches('/');
    let response = http
        .get(format!("{base}/v2/{repo}/manifests/{version}"))
        .header(reqwest::header::ACCEPT, IMAGE_MANIFEST)
        .bearer_auth(&token)
        .send()
        .with_context(|| format!("cannot reach {registry}"))?;
    if !response.status().is_success() {
        bail!(
            "{registry} did not serve the manifest of {name}@{version}: {}",
            refusal(response)
        );
    }
    let media_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(IMAGE_MANIFEST)
        .to_owned();
    let mut manifest = Vec::new();
    response
        .take(MAX_MANIFEST_BYTES as u64 + 1)
        .read_to_end(&mut manifest)
        .with_context(|| format!("cannot read the manifest of {name}@{version}"))?;
    if manifest.len() > MAX_MANIFEST_BYTES {
        bail!("{registry} served a manifest larger than {MAX_MANIFEST_BYTES} bytes");
    }
    let subject = sha256(&manifest);
    let parsed: Value = serde_json::from_slice(&manifest)
        .with_context(|| format!("{registry} served a manifest that is not JSON"))?;
    let carries = parsed["layers"]
        .as_array()
        .is_some_and(|layers| layers.iter().any(|l| l["digest"] == content.as_str()));
    if !carries {
        bail!(
            "the manifest {registry} serves for {name}@{version} ({subject}) does not carry the \
             release's content {content} that the verified log holds: not signing it"
        );
    }

    // The layer: a cosign signature or a DSSE envelope.
    let (layer, layer_type, annotations, artifact_type) = match &predicate {
        None => {
            let host = base
                .split_once("://")
                .map_or(base, |(_, rest)| rest)
                .to_owned();
            let payload = signatures::simple_signing_payload(&format!("{host}/{repo}"), &subject);
            let signature = STANDARD.encode(key.sign(&payload));
            (
                payload,
                signatures::COSIGN_LAYER,
                json!({ signatures::COSIGN_SIGNATURE_ANNOTATION: signature }),
                signatures::COSIGN_ARTIFACT,
            )
        }
        Some((predicate, kind)) => {
            let statement = signatures::in_toto_statement(&repo, &subject, kind, predicate.clone());
            (
                signatures::dsse_envelope(&statement, &key),
                signatures::DSSE_LAYER,
                json!({ "predicateType": kind }),
                signatures::DSSE_LAYER,
            )
        }
    };
    let layer_digest = sha256(&layer);
    let config_digest = sha256(b"{}");
    for (digest, bytes) in [
        (&config_digest, b"{}".to_vec()),
        (&layer_digest, layer.clone()),
    ] {
        let response = http
            .post(format!("{base}/v2/{repo}/blobs/uploads/"))
            .query(&[("digest", digest.as_str())])
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .bearer_auth(&token)
            .body(bytes)
            .send()
            .with_context(|| format!("cannot reach {registry}"))?;
        if !response.status().is_success() {
            bail!("{registry} refused a blob: {}", refusal(response));
        }
    }
    let referrer = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": IMAGE_MANIFEST,
        "artifactType": artifact_type,
        "config": { "mediaType": EMPTY_CONFIG, "digest": config_digest, "size": 2 },
        "layers": [{
            "mediaType": layer_type,
            "digest": layer_digest,
            "size": layer.len(),
            "annotations": annotations,
        }],
        "subject": { "mediaType": media_type, "digest": subject, "size": manifest.len() },
    }))?;
    let referrer_digest = sha256(&referrer);
    let response = http
        .put(format!("{base}/v2/{repo}/manifests/{referrer_digest}"))
        .header(reqwest::header::CONTENT_TYPE, IMAGE_MANIFEST)
        .bearer_auth(&token)
        .body(referrer)
        .send()
        .with_context(|| format!("cannot reach {registry}"))?;
    if !response.status().is_success() {
        bail!(
            "{registry} refused the {}: {}",
            if predicate.is_some() {
                "attestation"
            } else {
                "signature"
            },
            refusal(response)
        );
    }
    // How the registry judged it: its attestation log, verified up to a
    // checkpoint that covers the new record (the push answers once one
    // does).
    let records = {
        let client = session.for_package(&name)?;
        client.fetch_package(&name)?;
        client.attestations(&name)?
    };
    let recorded = records
        .iter()
        .find(|(_, e)| e.contents().attestation.referrer == referrer_digest);
    let what = if predicate.is_some() {
        "attestation"
    } else {
        "signature"
    };
    let Some((index, envelope)) = recorded else {
        bail!(
            "{registry} accepted the {what} ({referrer_digest}) but its verified attestation \
             log of {name} does not list it"
        );
    };
    let check = envelope
        .contents()
        .attestation
        .signature
        .clone()
        .unwrap_or_default();
    let verdict = if check.verdict.is_empty() {
        "recorded"
    } else {
        check.verdict.as_str()
    };
    if args.common.json {
        println!(
            "{}",
            json!({
                "package": name.as_str(),
                "version": version.to_string(),
                "subject": subject,
                "referrer": referrer_digest,
                "verdict": verdict,
                "keyId": (!check.key_id.is_empty()).then_some(&check.key_id),
                "keyLabel": (!check.key_label.is_empty()).then_some(&check.key_label),
                "index": index,
            })
        );
        return Ok(());
    }
    let by = if check.key_label.is_empty() {
        String::new()
    } else {
        format!(" by trusted key `{}`", check.key_label)
    };
    println!(
        "{what} of {name}@{version} ({subject}) recorded at registry index {index}: {verdict}{by}"
    );
    if verdict != "verified" {
        println!(
            "  (the registry trusts no key that made it: its operator can add yours with \
             `cairn namespace trust-key {} --key <public.pem>`)",
            name.namespace()
        );
    }
    Ok(())
}

fn read_predicate(file: &Path) -> Result<Value> {
    let mut bytes = Vec::new();
    std::fs::File::open(file)
        .with_context(|| format!("cannot read the predicate {}", file.display()))?
        .take(MAX_PREDICATE + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read the predicate {}", file.display()))?;
    if bytes.len() as u64 > MAX_PREDICATE {
        bail!(
            "the predicate {} is larger than {MAX_PREDICATE} bytes",
            file.display()
        );
    }
    serde_json::from_slice(&bytes)
        .with_context(|| format!("the predicate {} is not JSON", file.display()))
}

/// One attestation record, as the operator signed it.
#[derive(Debug)]
pub struct Listed {
    /// Registry index.
    pub index: u64,
    /// When recorded, RFC 3339.
    pub timestamp: String,
    /// The manifest referred to.
    pub subject: String,
    /// The referrer.
    pub referrer: String,
    /// Its artifact type.
    pub artifact_type: String,
    /// Who pushed it.
    pub account: String,
    /// `cosign`, `dsse`, or none for other artifacts.
    pub kind: Option<String>,
    /// `verified` or `unverified`.
    pub verdict: Option<String>,
    /// The verifying key's id.
    pub key_id: Option<String>,
    /// And label.
    pub key_label: Option<String>,
    /// An attestation's predicate type.
    pub predicate_type: Option<String>,
}

/// The attestations of a package for `cairn info`, as the verifying
/// client proved them at its checkpoint: JSON, and printed unless `json`.
pub fn info_attestations(records: &[(u64, Envelope<AttestationRecord>)], json: bool) -> Value {
    let some = |t: &String| (!t.is_empty()).then(|| t.clone());
    let listed: Vec<Listed> = records
        .iter()
        .map(|(index, envelope)| {
            let record = envelope.contents();
            let a = &record.attestation;
            let check = a.signature.as_ref();
            Listed {
                index: *index,
                timestamp: cairn_registry::oci::rfc3339(&record.timestamp),
                subject: a.subject.clone(),
                referrer: a.referrer.clone(),
                artifact_type: a.artifact_type.clone(),
                account: a.account.clone(),
                kind: check.map(|c| c.kind.clone()),
                verdict: check.map(|c| c.verdict.clone()),
                key_id: check.and_then(|c| some(&c.key_id)),
                key_label: check.and_then(|c| some(&c.key_label)),
                predicate_type: check.and_then(|c| some(&c.predicate_type)),
            }
        })
        .collect();
    if !json {
        println!("attestations (proven in the checkpoint):");
        if listed.is_empty() {
            println!("  none");
        }
    }
    let mut out = Vec::new();
    for l in &listed {
        let kind = match (&l.kind, &l.predicate_type) {
            (Some(_), Some(p)) => format!("attestation {p}"),
            (Some(k), None) if k == "cosign" => "cosign signature".to_owned(),
            (Some(k), None) => k.clone(),
            (None, _) => l.artifact_type.clone(),
        };
        let verdict = l
            .verdict
            .clone()
            .unwrap_or_else(|| "not a signature".into());
        let key = match (&l.key_label, &l.key_id) {
            (Some(label), Some(id)) if label != id => format!("{label} ({id})"),
            (_, Some(id)) => id.clone(),
            _ => "-".into(),
        };
        if !json {
            println!(
                "  index {:<6} {kind}  {verdict}  key {key}  by {}  at {}  on {}",
                l.index, l.account, l.timestamp, l.subject
            );
        }
        out.push(json!({
            "index": l.index,
            "timestamp": l.timestamp,
            "subject": l.subject,
            "referrer": l.referrer,
            "artifactType": l.artifact_type,
            "account": l.account,
            "kind": l.kind,
            "verdict": l.verdict,
            "keyId": l.key_id,
            "keyLabel": l.key_label,
            "predicateType": l.predicate_type,
        }));
    }
    Value::Array(out)
}

/// `cairn namespace trust-key`.
pub fn trust_key(
    namespace: &str,
    key: &Path,
    package: Option<&str>,
    label: &str,
    data_dir: &Path,
    remote: &admin::RemoteArgs,
) -> Result<()> {
    let pem = std::fs::read_to_string(key)
        .with_context(|| format!("cannot read the key {}", key.display()))?;
    let package = package_in(namespace, package)?;
    if let Some(api) = admin::Remote::from_args(remote)? {
        let answer = api.trust_key(namespace, package.as_deref(), &pem, label)?;
        println!(
            "{} now trusts key {} (`{}`) for {}",
            api.url(),
            answer["keyId"].as_str().unwrap_or_default(),
            answer["name"].as_str().unwrap_or_default(),
            whose(namespace, package.as_deref())
        );
        return Ok(());
    }
    let trusted = cairn_registry::oci::trusted_key(namespace, package.as_deref(), &pem, label)
        .with_context(|| format!("{}", key.display()))?;
    let store = open(data_dir)?;
    store.trust_key(&trusted)?;
    println!(
        "trusted key {} (`{}`) for {}",
        trusted.key_id,
        trusted.label,
        whose(namespace, package.as_deref())
    );
    Ok(())
}

/// `cairn namespace keys`.
pub fn list_keys(
    namespace: &str,
    data_dir: &Path,
    remote: &admin::RemoteArgs,
    json: bool,
) -> Result<()> {
    cairn_protocol::validate_namespace(namespace)
        .map_err(|e| anyhow::anyhow!("namespace `{namespace}`: {e}"))?;
    let keys: Vec<Value> = match admin::Remote::from_args(remote)? {
        Some(api) => api.trusted_keys(namespace)?,
        None => open(data_dir)?
            .trusted_keys(namespace)?
            .iter()
            .map(|k| {
                json!({
                    "namespace": k.namespace,
                    "package": k.package,
                    "keyId": k.key_id,
                    "name": k.label,
                    "key": k.pem,
                })
            })
            .collect(),
    };
    if json {
        println!("{}", json!({ "namespace": namespace, "keys": keys }));
        return Ok(());
    }
    if keys.is_empty() {
        println!(
            "no key is trusted in `{namespace}`: add one with `cairn namespace trust-key \
             {namespace} --key <public.pem>`"
        );
    }
    for k in &keys {
        let scope = match k["package"].as_str() {
            Some(p) => format!("{namespace}:{p}"),
            None => format!("{namespace} (all packages)"),
        };
        println!(
            "{}  {}  {scope}",
            k["keyId"].as_str().unwrap_or_default(),
            k["name"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}

/// `cairn namespace untrust-key`.
pub fn untrust_key(
    namespace: &str,
    key: &str,
    package: Option<&str>,
    data_dir: &Path,
    remote: &admin::RemoteArgs,
) -> Result<()> {
    let package = package_in(namespace, package)?;
    if let Some(api) = admin::Remote::from_args(remote)? {
        api.untrust_key(namespace, package.as_deref(), key)?;
    } else {
        let store = open(data_dir)?;
        let keys = store.trusted_keys(namespace)?;
        let Some(found) = cairn_registry::oci::find_trusted(&keys, package.as_deref(), key) else {
            bail!(
                "no key `{key}` is trusted for {}: list them with `cairn namespace keys \
                 {namespace}`",
                whose(namespace, package.as_deref())
            );
        };
        store.untrust_key(namespace, package.as_deref(), &found.key_id)?;
    }
    println!(
        "key `{key}` is no longer trusted for {}",
        whose(namespace, package.as_deref())
    );
    Ok(())
}

fn whose(namespace: &str, package: Option<&str>) -> String {
    match package {
        Some(p) => format!("package `{namespace}:{p}`"),
        None => format!("every package of `{namespace}`"),
    }
}

/// `--package`, as `ns:name` or `name`, as the name within `namespace`.
fn package_in(namespace: &str, package: Option<&str>) -> Result<Option<String>> {
    let Some(package) = package else {
        return Ok(None);
    };
    match package.split_once(':') {
        Some((ns, name)) if ns == namespace => Ok(Some(name.to_owned())),
        Some(_) => bail!("package `{package}` is not in namespace `{namespace}`: name one of it"),
        None => Ok(Some(package.to_owned())),
    }
}

fn open(data_dir: &Path) -> Result<SqliteStore> {
    let dir = crate::existing_data_dir(data_dir)?;
    Ok(SqliteStore::open(&dir.database())?)
}
