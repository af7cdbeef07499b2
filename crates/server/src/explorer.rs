//! The log explorer, for people: `/log` (the latest checkpoints and the
//! newest records of the registry log, paged) and `/log/{index}` (one
//! record: which log it belongs to, who signed it and when, and its
//! inclusion proof in the latest checkpoint, step by step). The proof is
//! computed on the server and shown whole; a small inline script (no
//! external asset) recomputes it with the browser's own SHA-256 and says
//! whether it leads to the checkpoint's root. The page reads the same
//! leaves and proofs as `/v1/ledger` and `/tlog/...`.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use cairn_protocol::attestation::AttestationRecord;
use cairn_protocol::notice::{Notice, NoticeRecord};
use cairn_protocol::operator::{OperatorEntry, OperatorRecord};
use cairn_protocol::package::{PackageEntry, PackageRecord};
use cairn_protocol::{Envelope, Hash, LogId, LogLeaf, PackageName, SignedCheckpoint, Timestamp};
use cairn_registry::{FetchRequest, QueryError, Registry, StoredRecord};
use cairn_transparency::hash_leaf;

use crate::error::{blocking, ApiError};
use crate::home::escape;
use crate::ui::{error_page, number_param, page};
use crate::AppState;

/// Records on one page of `/log`.
pub(crate) const RECORDS_PER_PAGE: u64 = 25;

/// Which log a record belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LogKind {
    /// The operator's log (namespaces, operator keys).
    Operator,
    /// The notice log (take-downs, restores, forks).
    Notices,
    /// A package's log.
    Package(PackageName),
    /// A package's attestation log (OCI referrers), and the package when
    /// the search index knows it.
    Attestations(Option<PackageName>),
}

/// One record of the registry log, described for people.
pub(crate) struct Described {
    /// Its registry index.
    pub index: u64,
    /// Its leaf.
    pub leaf: LogLeaf,
    /// Its log.
    pub kind: LogKind,
    /// The key id that signed it.
    pub key_id: String,
    /// When it was made (by its own timestamp).
    pub time: Option<Timestamp>,
    /// What it says, in words (plain text, escaped when shown).
    pub what: Vec<String>,
}

/// The record of `leaf`, at `index` of the registry log, from its log.
fn record_of(
    registry: &Registry,
    leaf: &LogLeaf,
    index: u64,
) -> Result<Option<StoredRecord>, QueryError> {
    let after = index.checked_sub(1);
    let operator = leaf.log_id == LogId::operator();
    let request = FetchRequest {
        log_length: registry.log_length(),
        limit: Some(1),
        operator: operator.then_some(after),
        packages: if operator {
            Vec::new()
        } else {
            vec![(leaf.log_id, after)]
        },
    };
    let response = registry.fetch_logs(&request)?;
    let found = if operator {
        response.operator.into_iter().next()
    } else {
        response
            .packages
            .into_iter()
            .next()
            .and_then(|(_, records)| records.into_iter().next())
    };
    Ok(found
        .filter(|(i, r)| *i == index && r.record_id == leaf.record_id)
        .map(|(_, r)| r))
}

/// Items in words, comma-separated.
fn listed<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the entries of a package record say.
pub(crate) fn package_entries(entries: &[PackageEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|entry| match entry {
            PackageEntry::Init { key, .. } => format!("init, owner key {}", key.id()),
            PackageEntry::Grant { key, permissions } => {
                format!("grant {} to key {}", listed(permissions), key.id())
            }
            PackageEntry::Revoke {
                key_id,
                permissions,
            } => format!("revoke {} from key {key_id}", listed(permissions)),
            PackageEntry::Release { version, content } => {
                format!("release {version} (content {content})")
            }
            PackageEntry::Yank { version } => format!("yank {version}"),
        })
        .collect()
}

fn operator_entries(entries: &[OperatorEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|entry| match entry {
            OperatorEntry::Init { key, .. } => format!("init, operator key {}", key.id()),
            OperatorEntry::Grant { key, permissions } => {
                format!("grant {} to key {}", listed(permissions), key.id())
            }
            OperatorEntry::Revoke {
                key_id,
                permissions,
            } => format!("revoke {} from key {key_id}", listed(permissions)),
            OperatorEntry::DefineNamespace { namespace } => {
                format!("define namespace {namespace}")
            }
            OperatorEntry::ImportNamespace {
                namespace,
                registry,
            } => format!("import namespace {namespace} from {registry}"),
        })
        .collect()
}

fn scope_text(scope: &cairn_protocol::notice::Scope) -> String {
    match &scope.version {
        Some(v) => format!("{}@{v}", scope.package),
        None => scope.package.to_string(),
    }
}

fn notice_text(notice: &Notice) -> String {
    match notice {
        Notice::TakeDown { scope, reason, .. } => {
            format!("take down {}: {reason}", scope_text(scope))
        }
        Notice::Restore { scope, reason } => format!("restore {}: {reason}", scope_text(scope)),
        Notice::Fork {
            namespace,
            package,
            origin,
            log_length,
            ..
        } => format!(
            "fork {} from {origin} (its log of {log_length} records)",
            package
                .as_ref()
                .map_or(namespace.clone(), ToString::to_string)
        ),
    }
}

/// Describes the records of `leaves` (from registry index `first` on).
pub(crate) fn describe(
    registry: &Registry,
    search: Option<&cairn_index::index::Index>,
    first: u64,
    leaves: &[LogLeaf],
) -> Result<Vec<Described>, QueryError> {
    let mut logs: Vec<LogId> = leaves.iter().map(|l| l.log_id).collect();
    logs.sort_unstable_by_key(|l| l.to_string());
    logs.dedup();
    let names = registry.package_names(&logs)?;
    let mut out = Vec::with_capacity(leaves.len());
    for (i, leaf) in leaves.iter().enumerate() {
        let index = first + i as u64;
        let name = logs
            .iter()
            .position(|l| *l == leaf.log_id)
            .and_then(|p| names.get(p).cloned().flatten());
        let kind = if leaf.log_id == LogId::operator() {
            LogKind::Operator
        } else if leaf.log_id == LogId::notices() {
            LogKind::Notices
        } else if let Some(name) = name {
            LogKind::Package(name)
        } else {
            // An attestation log names no package; the index remembers
            // whose it is.
            let owner = search
                .and_then(|i| i.package_of_log(&leaf.log_id.to_string()).ok().flatten())
                .and_then(|n| n.parse::<PackageName>().ok())
                .filter(|n| LogId::attestations(n) == leaf.log_id);
            LogKind::Attestations(owner)
        };
        let stored = record_of(registry, leaf, index)?;
        let (key_id, time, what) = match &stored {
            None => (String::new(), None, vec!["(record not found)".to_owned()]),
            Some(stored) => {
                let decoded = decode(&kind, stored);
                (stored.key_id.clone(), decoded.0, decoded.1)
            }
        };
        out.push(Described {
            index,
            leaf: *leaf,
            kind,
            key_id,
            time,
            what,
        });
    }
    Ok(out)
}

fn decode(kind: &LogKind, stored: &StoredRecord) -> (Option<Timestamp>, Vec<String>) {
    let bytes = stored.content_bytes.clone();
    let (key, signature) = (&stored.key_id, &stored.signature);
    let unreadable = || (None, vec!["(record unreadable)".to_owned()]);
    match kind {
        LogKind::Operator => match Envelope::<OperatorRecord>::from_parts(bytes, key, signature) {
            Ok(e) => (
                Some(e.contents().timestamp),
                operator_entries(&e.contents().entries),
            ),
            Err(_) => unreadable(),
        },
        LogKind::Package(_) => match Envelope::<PackageRecord>::from_parts(bytes, key, signature) {
            Ok(e) => (
                Some(e.contents().timestamp),
                package_entries(&e.contents().entries),
            ),
            Err(_) => unreadable(),
        },
        LogKind::Notices => match Envelope::<NoticeRecord>::from_parts(bytes, key, signature) {
            Ok(e) => (
                Some(e.contents().timestamp),
                vec![notice_text(&e.contents().notice)],
            ),
            Err(_) => unreadable(),
        },
        LogKind::Attestations(_) => {
            match Envelope::<AttestationRecord>::from_parts(bytes, key, signature) {
                Ok(e) => {
                    let a = &e.contents().attestation;
                    (
                        Some(e.contents().timestamp),
                        vec![format!(
                            "{} {} of {} by {}",
                            crate::ui::artifact_label(&a.artifact_type),
                            a.referrer,
                            a.subject,
                            a.account
                        )],
                    )
                }
                Err(_) => unreadable(),
            }
        }
    }
}

fn kind_html(kind: &LogKind) -> String {
    match kind {
        LogKind::Operator => "operator log".to_owned(),
        LogKind::Notices => "notice log".to_owned(),
        LogKind::Attestations(None) => "attestation log".to_owned(),
        LogKind::Attestations(Some(name)) => format!(
            "attestations of <a href=\"/packages/{0}#attestations\">{0}</a>",
            escape(name.as_str())
        ),
        LogKind::Package(name) => format!(
            "package <a href=\"/packages/{0}\">{0}</a>",
            escape(name.as_str())
        ),
    }
}

fn time_text(time: Option<&Timestamp>) -> String {
    time.map(crate::ui::when).unwrap_or_default()
}

fn hex_of(hash: &Hash) -> String {
    hex::encode(hash.as_bytes())
}

fn checkpoint_time(cp: &SignedCheckpoint) -> String {
    let seconds = i64::try_from(cp.contents.timestamp).unwrap_or(i64::MAX);
    cairn_registry::oci::rfc3339(&Timestamp::new(seconds, 0))
}

/// `GET /log`: the latest checkpoints and the newest records (`?before=N`:
/// the page of records before index N).
pub(crate) async fn log(State(app): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    let before = match number_param::<u64>(
        raw.as_deref(),
        "before",
        "a registry index (a whole number)",
        |_| true,
    ) {
        Ok(before) => before,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e),
    };
    let registry = app.registry.clone();
    let search = app.search.clone();
    let loaded = blocking(move || {
        let length = registry.log_length();
        let end = before.unwrap_or(length).min(length);
        let start = end.saturating_sub(RECORDS_PER_PAGE);
        let leaves = registry.leaves(start, (end - start) as usize)?;
        let described = describe(&registry, search.as_deref(), start, &leaves)?;
        Ok((length, registry.recent_checkpoints(), start, described))
    })
    .await;
    let (length, checkpoints, start, described) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, e.text()),
    };
    let mut body = String::from("<main><h1>Registry log</h1>");
    body.push_str(&format!(
        "<p>The log holds <strong>{length}</strong> records under its latest checkpoint. \
         Each record is a leaf of one Merkle tree; every checkpoint signs the tree's size and \
         root. Pick a record to see its inclusion proof.</p>"
    ));
    body.push_str(
        "<h2>Recent checkpoints</h2><table><thead><tr><th scope=\"col\">Tree size</th>\
         <th scope=\"col\">Time</th><th scope=\"col\">Log root</th><th scope=\"col\">Map root</th>\
         </tr></thead><tbody>",
    );
    for cp in checkpoints.iter().rev().take(10) {
        let c = &cp.contents.checkpoint;
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
            c.log_length,
            escape(&checkpoint_time(cp)),
            escape(&c.log_root.to_string()),
            escape(&c.map_root.to_string()),
        ));
    }
    body.push_str("</tbody></table>");
    body.push_str(
        "<p>Machine-readable: <a href=\"/v1/fetch/checkpoint\">Warg checkpoint</a>, \
         <a href=\"/tlog/checkpoint\">C2SP checkpoint</a>, <a href=\"/v1/ledger\">ledger</a>.</p>",
    );
    body.push_str(&records_table("Records", &described));
    if start > 0 {
        body.push_str(&format!(
            "<nav aria-label=\"pages\"><a href=\"/log?before={start}\" rel=\"next\">Older records</a></nav>"
        ));
    }
    body.push_str("</main>");
    page("Registry log", &body)
}

/// A table of records, newest first.
fn records_table(title: &str, described: &[Described]) -> String {
    let mut out = format!(
        "<h2>{}</h2><table><thead><tr><th scope=\"col\">Index</th><th scope=\"col\">Log</th>\
         <th scope=\"col\">What</th><th scope=\"col\">Time</th><th scope=\"col\">Signed by key</th>\
         </tr></thead><tbody>",
        escape(title)
    );
    for d in described.iter().rev() {
        out.push_str(&format!(
            "<tr><td><a href=\"/log/{i}\">{i}</a></td><td>{kind}</td><td class=\"long\">{what}</td>\
             <td>{time}</td><td><code title=\"{key}\">{key_short}</code></td></tr>",
            i = d.index,
            kind = kind_html(&d.kind),
            what = escape(&d.what.join("; ")),
            time = escape(&time_text(d.time.as_ref())),
            key = escape(&d.key_id),
            key_short = escape(&crate::ui::short(&d.key_id)),
        ));
    }
    out.push_str("</tbody></table>");
    out
}

/// One step of an inclusion proof, as RFC 9162 §2.1.3.2 walks it.
pub(crate) type Step = cairn_transparency::log::rfc9162::InclusionStep;

/// Walks the inclusion path of leaf `index` in the tree of `size` leaves
/// from `leaf` (a leaf hash): each step and the root it leads to, or
/// `None` when the path is not of the right length for the tree.
pub(crate) fn walk(index: u64, size: u64, leaf: Hash, path: &[Hash]) -> Option<Vec<Step>> {
    cairn_transparency::log::rfc9162::inclusion_steps(index, size, &leaf, path).ok()
}

/// The script that recomputes the proof of `#proof` in the browser
/// (WebCrypto SHA-256, RFC 6962/9162 hashing) and says so in
/// `#browser-verdict`. No external asset; without script the page is
/// whole, the verdict line says the script did not run.
const VERIFY_SCRIPT: &str = r#"(async function () {
  var out = document.getElementById("browser-verdict");
  var el = document.getElementById("proof");
  if (!out || !el) return;
  if (!window.crypto || !window.crypto.subtle) {
    out.textContent = "Your browser offers no WebCrypto on this page (it needs HTTPS): check the steps above by hand.";
    return;
  }
  function bytes(hex) {
    var b = new Uint8Array(hex.length / 2);
    for (var i = 0; i < b.length; i++) b[i] = parseInt(hex.substr(2 * i, 2), 16);
    return b;
  }
  function hexOf(b) {
    return Array.from(b, function (x) { return x.toString(16).padStart(2, "0"); }).join("");
  }
  async function h(prefix, parts) {
    var n = 1;
    parts.forEach(function (p) { n += p.length; });
    var buf = new Uint8Array(n);
    buf[0] = prefix;
    var o = 1;
    parts.forEach(function (p) { buf.set(p, o); o += p.length; });
    return new Uint8Array(await window.crypto.subtle.digest("SHA-256", buf));
  }
  try {
    var r = await h(0, [bytes(el.dataset.leafBytes)]);
    if (hexOf(r) !== el.dataset.leafHash) throw new Error("the leaf bytes do not hash to the leaf hash shown");
    var f = BigInt(el.dataset.index), s = BigInt(el.dataset.size) - 1n;
    var steps = el.querySelectorAll("li[data-sibling]");
    for (var i = 0; i < steps.length; i++) {
      if (s === 0n) throw new Error("the path is too long");
      var p = bytes(steps[i].dataset.sibling);
      if ((f & 1n) === 1n || f === s) {
        r = await h(1, [p, r]);
        while ((f & 1n) === 0n && f !== 0n) { f >>= 1n; s >>= 1n; }
      } else {
        r = await h(1, [r, p]);
      }
      f >>= 1n; s >>= 1n;
      if (hexOf(r) !== steps[i].dataset.result) throw new Error("step " + (i + 1) + " gives another hash than the server shows");
    }
    if (s !== 0n) throw new Error("the path is too short");
    if (hexOf(r) !== el.dataset.root) throw new Error("the path leads to " + hexOf(r) + ", not to the checkpoint's root");
    out.textContent = "Verified in your browser: SHA-256 of the leaf and its " + steps.length + " siblings leads to the checkpoint's root.";
    out.className = "ok";
  } catch (e) {
    out.textContent = "Mismatch: " + e.message + ".";
    out.className = "bad";
  }
})();"#;

/// `GET /log/{index}`: one record of the registry log and its inclusion
/// proof in the latest checkpoint.
pub(crate) async fn entry(State(app): State<AppState>, Path(index): Path<String>) -> Response {
    let Ok(index) = index.parse::<u64>() else {
        return error_page(
            StatusCode::BAD_REQUEST,
            &format!("`{index}` is not a registry index (a whole number)"),
        );
    };
    let registry = app.registry.clone();
    let search = app.search.clone();
    let loaded = blocking(move || {
        let Some(cp) = registry.latest_checkpoint() else {
            return Ok(None);
        };
        let size = cp.contents.checkpoint.log_length;
        if index >= size {
            return Ok(None);
        }
        let leaves = registry.leaves(index, 1)?;
        let described = describe(&registry, search.as_deref(), index, &leaves)?;
        let path = registry.rfc_inclusion_proof(index, size)?;
        let stored = match leaves.first() {
            Some(leaf) => record_of(&registry, leaf, index)?,
            None => None,
        };
        Ok::<_, ApiError>(Some((cp, described, path, stored)))
    })
    .await;
    let (cp, described, path, stored) = match loaded {
        Ok(Some((cp, mut described, path, stored))) if !described.is_empty() => {
            (cp, described.remove(0), path, stored)
        }
        Ok(_) => {
            return error_page(
                StatusCode::NOT_FOUND,
                &format!(
                    "the registry log has no record {index} under its latest checkpoint \
                     ({} records)",
                    app.registry.log_length()
                ),
            )
        }
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, e.text()),
    };
    let c = &cp.contents.checkpoint;
    let leaf_bytes = described.leaf.encode();
    let leaf_hash = hash_leaf(&leaf_bytes);
    let mut body = format!("<main><h1>Record {index} of the registry log</h1>");
    body.push_str(&format!(
        "<dl><dt>Log</dt><dd>{kind} <code>{log}</code></dd><dt>Record id</dt><dd><code>{rec}</code></dd>\
         <dt>What</dt><dd>{what}</dd><dt>Time</dt><dd>{time}</dd>\
         <dt>Signed by key</dt><dd><code>{key}</code></dd>",
        kind = kind_html(&described.kind),
        log = escape(&described.leaf.log_id.to_string()),
        rec = escape(&described.leaf.record_id.to_string()),
        what = described
            .what
            .iter()
            .map(|w| escape(w))
            .collect::<Vec<_>>()
            .join("<br>"),
        time = escape(&time_text(described.time.as_ref())),
        key = escape(&described.key_id),
    ));
    if let Some(stored) = &stored {
        body.push_str(&format!(
            "<dt>Signature</dt><dd><code class=\"wrap\">{}</code></dd>",
            escape(&stored.signature)
        ));
    }
    body.push_str("</dl>");
    if let LogKind::Package(_) = described.kind {
        body.push_str(&format!(
            "<p>Machine-readable: <a href=\"/v1/package/{log}/record/{rec}\">the record's status</a>.</p>",
            log = escape(&described.leaf.log_id.to_string()),
            rec = escape(&described.leaf.record_id.to_string()),
        ));
    }
    let nav = {
        let mut links = Vec::new();
        if index > 0 {
            links.push(format!(
                "<a href=\"/log/{}\" rel=\"prev\">Record {}</a>",
                index - 1,
                index - 1
            ));
        }
        if index + 1 < c.log_length {
            links.push(format!(
                "<a href=\"/log/{}\" rel=\"next\">Record {}</a>",
                index + 1,
                index + 1
            ));
        }
        links.push("<a href=\"/log\">All records</a>".to_owned());
        links.join(" · ")
    };
    body.push_str(&format!("<nav aria-label=\"records\">{nav}</nav>"));

    // The proof, step by step.
    let steps = walk(index, c.log_length, leaf_hash, &path);
    body.push_str(&format!(
        "<h2>Inclusion proof</h2><p>In the checkpoint of <strong>{size}</strong> records \
         (RFC 9162 §2.1.3.2; SHA-256, leaf hash = H(0x00 ‖ leaf), node = H(0x01 ‖ left ‖ right)).</p>\
         <dl><dt>Leaf bytes (<code>WARG-LOG-LEAF-V0</code>: log id, record id)</dt>\
         <dd><code class=\"wrap\">{bytes}</code></dd>\
         <dt>Leaf hash</dt><dd><code>{leaf}</code></dd></dl>",
        size = c.log_length,
        bytes = hex::encode(&leaf_bytes),
        leaf = hex_of(&leaf_hash),
    ));
    body.push_str(&format!(
        "<ol id=\"proof\" data-index=\"{index}\" data-size=\"{size}\" data-leaf-bytes=\"{bytes}\" \
         data-leaf-hash=\"{leaf}\" data-root=\"{root}\">",
        size = c.log_length,
        bytes = hex::encode(&leaf_bytes),
        leaf = hex_of(&leaf_hash),
        root = hex_of(&c.log_root),
    ));
    let mut current = leaf_hash;
    for (n, step) in steps.iter().flatten().enumerate() {
        let (left, right) = if step.sibling_left {
            (step.sibling, current)
        } else {
            (current, step.sibling)
        };
        body.push_str(&format!(
            "<li data-sibling=\"{sib}\" data-left=\"{l}\" data-right=\"{r}\" data-result=\"{res}\">\
             Step {k}: sibling on the {side}: <code>{sib}</code><br>H(0x01 ‖ <code>{ls}…</code> ‖ \
             <code>{rs}…</code>) = <code>{res}</code></li>",
            k = n + 1,
            sib = hex_of(&step.sibling),
            side = if step.sibling_left { "left" } else { "right" },
            l = hex_of(&left),
            r = hex_of(&right),
            ls = &hex_of(&left)[..12],
            rs = &hex_of(&right)[..12],
            res = hex_of(&step.result),
        ));
        current = step.result;
    }
    body.push_str("</ol>");
    let server_verdict = match &steps {
        Some(_) if current == c.log_root => format!(
            "<p class=\"ok\">The path leads to <code>{}</code>, the checkpoint's log root.</p>",
            hex_of(&c.log_root)
        ),
        _ => format!(
            "<p class=\"bad\">The path does not lead to the checkpoint's log root <code>{}</code>.</p>",
            hex_of(&c.log_root)
        ),
    };
    body.push_str(&server_verdict);
    body.push_str(
        "<p id=\"browser-verdict\" role=\"status\" aria-live=\"polite\">Your browser has not \
         checked this proof (the check needs JavaScript).</p>",
    );

    // The checkpoint and its signatures.
    body.push_str(&format!(
        "<h2>Checkpoint</h2><dl><dt>Tree size</dt><dd>{size}</dd><dt>Log root</dt><dd><code>{root}</code></dd>\
         <dt>Map root</dt><dd><code>{map}</code></dd><dt>Time</dt><dd>{time}</dd>\
         <dt>Warg signature (operator key <code>{key}</code>)</dt><dd><code class=\"wrap\">{sig}</code></dd></dl>",
        size = c.log_length,
        root = escape(&c.log_root.to_string()),
        map = escape(&c.map_root.to_string()),
        time = escape(&checkpoint_time(&cp)),
        key = escape(&cp.key_id.to_string()),
        sig = escape(&cp.signature.to_string()),
    ));
    if let Some(key) = &app.tlog {
        let note = key.note(c.log_length, c.log_root);
        body.push_str(&format!(
            "<p>The same checkpoint as a C2SP signed note (log key <code>{}</code>):</p><pre>{}</pre>",
            escape(&key.verifier_key()),
            escape(&note)
        ));
    }
    body.push_str(&format!("</main>\n<script>{VERIFY_SCRIPT}</script>"));
    page(&format!("Record {index} of the registry log"), &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_transparency::log::rfc9162;
    use cairn_transparency::log::VecLog;

    #[test]
    fn the_walk_ends_at_the_root_for_every_leaf_of_small_trees() {
        for size in 1..=20u64 {
            let mut log = VecLog::default();
            let leaves: Vec<Hash> = (0..size).map(|i| hash_leaf(&i.to_be_bytes())).collect();
            for leaf in &leaves {
                log.push(*leaf);
            }
            let root = log.root();
            for index in 0..size {
                let path = rfc9162::inclusion_proof(&log, index, size).expect("proof");
                let steps = walk(index, size, leaves[index as usize], &path).expect("walk");
                let end = steps.last().map_or(leaves[index as usize], |s| s.result);
                assert_eq!(end, root, "leaf {index} of {size}");
                // A wrong sibling leads elsewhere.
                if let Some(first) = path.first() {
                    let mut bad = path.clone();
                    bad[0] = hash_leaf(first.as_bytes());
                    let steps = walk(index, size, leaves[index as usize], &bad).expect("walk");
                    assert_ne!(steps.last().map(|s| s.result), Some(root));
                }
            }
        }
    }
}
