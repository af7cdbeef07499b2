//! Pages for people: search (words and WIT) at `/search`, a page per
//! package at `/packages/{package}` and per namespace at
//! `/namespaces/{ns}` (the log explorer is `explorer.rs`). Server-rendered HTML, semantic and
//! readable without script; every value from a package is escaped. They
//! read the same index and verified package state as the JSON API.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_index::index::IndexedRelease;
use cairn_protocol::attestation::AttestationRecord;
use cairn_protocol::package::PackageRecord;
use cairn_protocol::{Envelope, LogId, PackageName};

use crate::error::{blocking, ApiError};
use crate::home::escape;
use crate::search::parse_query;
use crate::warg::base_url;
use crate::AppState;

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;\
padding:0 1rem;line-height:1.5}pre{background:#f4f4f4;padding:.75rem;overflow-x:auto}\
form{display:grid;grid-template-columns:max-content 1fr;gap:.4rem .8rem;align-items:center}\
form button{grid-column:2;justify-self:start}table{border-collapse:collapse}\
th,td{text-align:left;padding:.2rem .6rem;border-bottom:1px solid #ddd}th{white-space:nowrap}\
td code,td.long{overflow-wrap:anywhere}\
.yanked{color:#a00}.down{color:#a00;font-weight:bold}ul.hits{list-style:none;padding:0}\
ul.hits li{margin:0 0 1rem}\
code.wrap{word-break:break-all}.ok{color:#060;font-weight:bold}.bad{color:#a00;font-weight:bold}\
ol#proof li{margin:0 0 .5rem;word-break:break-all}";

pub(crate) fn page(title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <nav aria-label=\"site\"><a href=\"/\">Home</a> · <a href=\"/search\">Search</a> · <a href=\"/log\">Log</a></nav>\n\
         {body}\n</body>\n</html>\n",
        title = escape(title)
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
    let mut response = page(
        status.canonical_reason().unwrap_or("Error"),
        &format!(
            "<main><h1>{}</h1><p>{}</p></main>",
            status.as_u16(),
            escape(message)
        ),
    );
    *response.status_mut() = status;
    response
}

/// The pairs of a raw query string (none when it does not parse).
pub(crate) fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(raw.unwrap_or("")).unwrap_or_default()
}

/// The whole number `key` holds in the raw query string, if given and
/// `valid`; else what is wrong with it, for a 400 page.
pub(crate) fn number_param<T: std::str::FromStr>(
    raw: Option<&str>,
    key: &str,
    what: &str,
    valid: impl Fn(&T) -> bool,
) -> Result<Option<T>, String> {
    match query_pairs(raw).into_iter().find(|(k, _)| k == key) {
        None => Ok(None),
        Some((_, v)) => match v.parse::<T>() {
            Ok(n) if valid(&n) => Ok(Some(n)),
            _ => Err(format!("`{key}={v}` is not {what}")),
        },
    }
}

/// The value of `key` in the raw query string, for refilling the form.
fn value_of(raw: Option<&str>, key: &str) -> String {
    query_pairs(raw)
        .into_iter()
        .filter(|(k, v)| k == key && !v.is_empty())
        .map(|(_, v)| v)
        .collect::<Vec<_>>()
        .join(",")
}

/// `GET /search`: the form and, when asked, the hits.
pub(crate) async fn search(State(app): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    let raw = raw.unwrap_or_default();
    // Empty fields of the form are no filter.
    let kept: Vec<(String, String)> = serde_urlencoded::from_str::<Vec<(String, String)>>(&raw)
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .collect();
    let asked = !kept.is_empty();
    let cleaned = serde_urlencoded::to_string(&kept).unwrap_or_default();
    let field = |key: &str, label: &str, hint: &str| {
        format!(
            "<label for=\"{key}\">{label}</label><input id=\"{key}\" name=\"{key}\" value=\"{}\" \
             placeholder=\"{hint}\">",
            escape(&value_of(Some(&raw), key))
        )
    };
    let signed_only = value_of(Some(&raw), "signed") == "true";
    let form = format!(
        "<form method=\"get\" action=\"/search\" role=\"search\">{}{}{}{}{}{}\
         <label for=\"signed\">Signed only</label><input type=\"checkbox\" id=\"signed\" \
         name=\"signed\" value=\"true\"{}>\
         <button type=\"submit\">Search</button></form>",
        field("q", "Words", "http proxy"),
        field("exports", "Exports", "wasi:http/incoming-handler@0.2"),
        field("imports", "Imports", "wasi:keyvalue/store"),
        field("only-imports", "Imports only", "wasi:cli/*,wasi:io/*"),
        field("license", "License", "MIT"),
        field("namespace", "Namespace", "acme"),
        if signed_only { " checked" } else { "" },
    );
    let results = if !asked {
        String::new()
    } else {
        match (parse_query(Some(&cleaned)), app.search.clone()) {
            (Err(e), _) => format!("<p role=\"alert\">{}</p>", escape(e.text())),
            (Ok(_), None) => "<p>This registry keeps no search index.</p>".to_owned(),
            (Ok(query), Some(index)) => {
                match blocking(move || {
                    index
                        .search(&query)
                        .map_err(|e| ApiError::bad_request(e.to_string()))
                })
                .await
                {
                    Err(e) => format!("<p role=\"alert\">{}</p>", escape(e.text())),
                    Ok(found) => hits_html(&found, &cleaned),
                }
            }
        }
    };
    page(
        "Search packages",
        &format!(
            "<main><h1>Search packages</h1>\n{form}\n<section aria-label=\"results\">{results}</section></main>"
        ),
    )
}

fn hits_html(found: &cairn_index::index::SearchPage, query: &str) -> String {
    if found.hits.is_empty() {
        return "<p>No package matches.</p>".to_owned();
    }
    let mut out = format!(
        "<p>{} package{} match.</p><ul class=\"hits\">",
        found.total,
        if found.total == 1 { "" } else { "s" }
    );
    for hit in &found.hits {
        let exports = if hit.exports.is_empty() {
            String::new()
        } else {
            format!(
                "<br>exports: {}",
                hit.exports
                    .iter()
                    .map(|e| format!("<code>{}</code>", escape(e)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        out.push_str(&format!(
            "<li><a href=\"/packages/{pkg}\"><strong>{pkg}</strong></a> {version}{yanked}{signed} \
             <small>{license} · namespace <a href=\"/namespaces/{ns}\">{ns}</a></small><br>\
             {description}{exports}</li>",
            pkg = escape(&hit.package),
            ns = escape(hit.package.split_once(':').map_or("", |(ns, _)| ns)),
            version = escape(&hit.version),
            yanked = if hit.yanked {
                " <span class=\"yanked\">(yanked)</span>"
            } else {
                ""
            },
            signed = if hit.signed {
                " <span class=\"signed\">(signed)</span>"
            } else {
                ""
            },
            license = escape(hit.license.as_deref().unwrap_or("no license given")),
            description = escape(hit.description.as_deref().unwrap_or("")),
        ));
    }
    out.push_str("</ul>");
    let pages = found.total.div_ceil(found.per_page.max(1) as usize);
    if pages > 1 {
        let strip = |q: &str| {
            serde_urlencoded::from_str::<Vec<(String, String)>>(q)
                .unwrap_or_default()
                .into_iter()
                .filter(|(k, _)| k != "page")
                .collect::<Vec<_>>()
        };
        let link = |page: u32| {
            let mut pairs = strip(query);
            pairs.push(("page".into(), page.to_string()));
            format!(
                "/search?{}",
                serde_urlencoded::to_string(&pairs).unwrap_or_default()
            )
        };
        out.push_str("<nav aria-label=\"pages\">");
        if found.page > 1 {
            out.push_str(&format!(
                "<a href=\"{}\" rel=\"prev\">Previous</a> ",
                escape(&link(found.page - 1))
            ));
        }
        out.push_str(&format!("page {} of {pages}", found.page));
        if (found.page as usize) < pages {
            out.push_str(&format!(
                " <a href=\"{}\" rel=\"next\">Next</a>",
                escape(&link(found.page + 1))
            ));
        }
        out.push_str("</nav>");
    }
    out
}

/// Records of a package log on one page of its package page.
const RECORDS_PER_PAGE: usize = 50;
/// Attestations shown on a package page (the newest; the rest in the
/// attestation log's JSON).
const ATTESTATIONS_SHOWN: usize = 50;
/// Versions listed on a package page (the newest; all of them are in the
/// sparse index).
const VERSIONS_SHOWN: usize = 100;
/// Packages on one page of a namespace page.
const PACKAGES_PER_PAGE: u32 = 50;

/// What an OCI artifact type is, for people: cosign's signatures and
/// in-toto attestations by name, anything else as given.
pub(crate) fn artifact_label(artifact_type: &str) -> &'static str {
    match artifact_type {
        "application/vnd.dev.cosign.artifact.sig.v1+json"
        | "application/vnd.dev.cosign.simplesigning.v1+json" => "cosign signature",
        "application/vnd.in-toto+json" | "application/vnd.dsse.envelope.v1+json" => {
            "in-toto attestation (DSSE)"
        }
        t if t.starts_with("application/vnd.in-toto") || t.contains("dsse") => {
            "in-toto attestation (DSSE)"
        }
        "application/vnd.cairn.tlog-proof.v1" => "transparency log proof",
        t if t.contains("sbom") || t.contains("spdx") || t.contains("cyclonedx") => "SBOM",
        _ => "artifact",
    }
}

/// The package's signatures and attestations (its attestation log), the
/// newest first, at most [`ATTESTATIONS_SHOWN`]. One function renders
/// them so that a column (a verification verdict) is added in one place.
pub(crate) fn attestations_html(
    package: &PackageName,
    records: &[(u64, Envelope<AttestationRecord>)],
) -> String {
    let mut out = String::from("<h2 id=\"attestations\">Signatures and attestations</h2>");
    if records.is_empty() {
        out.push_str(
            "<p>Nothing is attached to this package's releases (no OCI referrer: no cosign \
             signature, no in-toto attestation).</p>",
        );
        return out;
    }
    out.push_str(
        "<table><thead><tr><th scope=\"col\">Kind</th><th scope=\"col\">Artifact type</th>\
         <th scope=\"col\">Verdict</th>\
         <th scope=\"col\">Of manifest</th><th scope=\"col\">Referrer</th>\
         <th scope=\"col\">Pushed by</th><th scope=\"col\">Time</th><th scope=\"col\">Log index</th>\
         </tr></thead><tbody>",
    );
    for (index, envelope) in records.iter().rev().take(ATTESTATIONS_SHOWN) {
        let record = envelope.contents();
        let a = &record.attestation;
        out.push_str(&format!(
            "<tr class=\"attestation\"><td>{label}</td><td><code>{kind}</code></td>\
             <td class=\"verdict\">{verdict}</td>\
             <td><code title=\"{subject}\">{subject_short}</code></td>\
             <td><code title=\"{referrer}\">{referrer_short}</code></td><td>{account}</td>\
             <td>{time}</td><td><a href=\"/log/{index}\">{index}</a></td></tr>",
            label = escape(artifact_label(&a.artifact_type)),
            verdict = verdict_html(a.signature.as_ref()),
            kind = escape(&a.artifact_type),
            subject = escape(&a.subject),
            subject_short = escape(&short(&a.subject)),
            referrer = escape(&a.referrer),
            referrer_short = escape(&short(&a.referrer)),
            account = escape(&a.account),
            time = escape(&when(&record.timestamp)),
        ));
    }
    out.push_str("</tbody></table>");
    if records.len() > ATTESTATIONS_SHOWN {
        out.push_str(&format!(
            "<p>{} older ones are in <a href=\"/v1/attestations/{}\">the attestation log</a>.</p>",
            records.len() - ATTESTATIONS_SHOWN,
            escape(package.as_str())
        ));
    }
    out
}

/// A signature's verdict: verified (by which trusted key), unverified, or
/// not a signature the registry checks.
fn verdict_html(check: Option<&cairn_protocol::attestation::SignatureCheck>) -> String {
    match check {
        Some(c) if c.verdict == "verified" => {
            let key = if c.key_label.is_empty() {
                short(&c.key_id)
            } else {
                c.key_label.clone()
            };
            format!(
                "<strong class=\"verified\">verified</strong> by trusted key \
                 <code title=\"{id}\">{key}</code>",
                id = escape(&c.key_id),
                key = escape(&key)
            )
        }
        Some(c) => format!(
            "<span class=\"unverified\">{}</span> (no trusted key signed it)",
            escape(&c.verdict)
        ),
        None => "not checked (no signature)".into(),
    }
}

/// A time for people: RFC 3339 to the second, in UTC.
pub(crate) fn when(time: &cairn_protocol::Timestamp) -> String {
    cairn_registry::oci::rfc3339(&cairn_protocol::Timestamp::new(time.seconds(), 0))
}

/// A digest or id cut for a table cell (the whole in its title).
pub(crate) fn short(text: &str) -> String {
    let cut: String = text.chars().take(19).collect();
    if cut.len() < text.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

/// Everything a package page shows, read on a blocking thread.
struct PackageData {
    state: cairn_protocol::package::PackageState,
    indexed: Vec<IndexedRelease>,
    notices: Option<cairn_protocol::notice::NoticeLog>,
    records: Vec<(u64, cairn_registry::StoredRecord)>,
    more_records: bool,
    attestations: Vec<(u64, Envelope<AttestationRecord>)>,
}

/// `GET /packages/{package}`: versions (yanks and take-downs marked),
/// metadata, imports and exports, how to get it, keys and permissions,
/// signatures and attestations, and the package's log of records with
/// their signers, times and registry indexes (`?records-after=N`: the
/// page of records after index N).
pub(crate) async fn package(
    State(app): State<AppState>,
    Path(package): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Ok(name) = package.parse::<PackageName>() else {
        return error_page(
            StatusCode::BAD_REQUEST,
            &format!("`{package}` is not a package name (namespace:name)"),
        );
    };
    let after = match number_param::<u64>(
        raw.as_deref(),
        "records-after",
        "a registry index (a whole number)",
        |_| true,
    ) {
        Ok(after) => after,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e),
    };
    let registry = app.registry.clone();
    let index = app.search.clone();
    let lookup = name.clone();
    let loaded = blocking(move || {
        let log_id = LogId::package(&lookup);
        let Some(state) = registry.published_package(&log_id)? else {
            return Ok(None);
        };
        let indexed = match &index {
            Some(index) => index
                .package(lookup.as_str())
                .map_err(|e| ApiError::message(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?,
            None => Vec::new(),
        };
        let notices = registry.notices().ok();
        let fetched = registry.fetch_logs(&cairn_registry::FetchRequest {
            log_length: registry.log_length(),
            limit: Some(RECORDS_PER_PAGE),
            operator: None,
            packages: vec![(log_id, after)],
        });
        let (records, more_records) = match fetched {
            Ok(mut response) => (
                response
                    .packages
                    .pop()
                    .map(|(_, records)| records)
                    .unwrap_or_default(),
                response.more,
            ),
            // Past the log's end: an empty page.
            Err(cairn_registry::QueryError::LogNotFound(_)) => (Vec::new(), false),
            Err(e) => return Err(e.into()),
        };
        let attestations = registry.attestations(&lookup)?;
        Ok(Some(PackageData {
            state,
            indexed,
            notices,
            records,
            more_records,
            attestations,
        }))
    })
    .await;
    let data = match loaded {
        Ok(Some(data)) => data,
        Ok(None) => {
            return error_page(
                StatusCode::NOT_FOUND,
                &format!("package `{name}` is not in this registry"),
            )
        }
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, e.text()),
    };
    let base = base_url(&app, &headers);
    let body = package_body(&name, &data, &base);
    page(name.as_str(), &body)
}

fn package_body(name: &PackageName, data: &PackageData, base: &str) -> String {
    let PackageData {
        state,
        indexed,
        notices,
        ..
    } = data;
    let mut releases: Vec<_> = state.releases().collect();
    releases.sort_by(|a, b| b.version.cmp(&a.version));
    let latest = releases
        .iter()
        .find(|r| r.yanked.is_none())
        .or(releases.first())
        .copied();
    let info_of = |v: &cairn_protocol::Version| -> Option<&IndexedRelease> {
        indexed.iter().find(|r| &r.version == v)
    };
    let info = latest
        .and_then(|r| info_of(&r.version))
        .and_then(|r| r.info.as_ref());
    let ns = name.namespace();
    let mut body = format!(
        "<main><h1>{}</h1><p>In namespace <a href=\"/namespaces/{ns}\">{ns}</a>.</p>",
        escape(name.as_str()),
        ns = escape(ns),
    );
    if let Some(down) = notices.as_ref().and_then(|n| n.package_down(name)) {
        body.push_str(&format!(
            "<p class=\"down\" role=\"alert\">This package is taken down: {}</p>",
            escape(&down.reason)
        ));
    }
    if let Some(info) = info {
        body.push_str(&metadata_html(info));
    }
    if let Some(latest) = latest {
        let host = base.split_once("://").map_or(base, |(_, h)| h);
        body.push_str(&format!(
            "<h2>Get it</h2><pre><code>cairn get {pkg}@{v}   # cairn config --registry {base}\n\
             wkg get {pkg}@{v}    # default_registry = \"{host}\"</code></pre>",
            pkg = escape(name.as_str()),
            v = escape(&latest.version.to_string()),
            base = escape(base),
            host = escape(host),
        ));
    }
    body.push_str(
        "<h2>Versions</h2><table><thead><tr><th scope=\"col\">Version</th>\
         <th scope=\"col\">Released</th><th scope=\"col\">By key</th><th scope=\"col\">Content</th>\
         <th scope=\"col\">Record</th><th scope=\"col\">State</th></tr></thead><tbody>",
    );
    let index_of = |record: &cairn_protocol::RecordId| {
        data.records
            .iter()
            .find(|(_, r)| r.record_id == *record)
            .map(|(i, _)| *i)
    };
    for release in releases.iter().take(VERSIONS_SHOWN) {
        let down = notices
            .as_ref()
            .and_then(|n| n.release_down(name, &release.version))
            .map(|d| d.reason.clone());
        let state_cell = match (&release.yanked, &down) {
            (_, Some(reason)) => {
                format!("<span class=\"down\">taken down: {}</span>", escape(reason))
            }
            (Some(_), None) => "<span class=\"yanked\">yanked</span>".to_owned(),
            (None, None) => "available".to_owned(),
        };
        let registry_index = info_of(&release.version)
            .and_then(|r| r.registry_index)
            .or_else(|| index_of(&release.record_id));
        let record = match registry_index {
            Some(i) => format!("<a href=\"/log/{i}\">log index {i}</a>"),
            None => format!(
                "<a href=\"/v1/package/{log}/record/{rec}\"><code>{short}</code></a>",
                log = escape(&LogId::package(name).to_string()),
                rec = escape(&release.record_id.to_string()),
                short = escape(&short(&release.record_id.to_string())),
            ),
        };
        body.push_str(&format!(
            "<tr><td>{v}</td><td>{t}</td><td><code title=\"{by}\">{by_short}</code></td>\
             <td><code title=\"{c}\">{c_short}</code></td><td>{record}</td><td>{state_cell}</td></tr>",
            v = escape(&release.version.to_string()),
            t = escape(&when(&release.timestamp)),
            by = escape(&release.by.to_string()),
            by_short = escape(&short(&release.by.to_string())),
            c = escape(&release.content.to_string()),
            c_short = escape(&short(&release.content.to_string())),
        ));
    }
    body.push_str("</tbody></table>");
    if releases.len() > VERSIONS_SHOWN {
        body.push_str(&format!(
            "<p>{} older versions are in <a href=\"/cairn/v1/index/{}\">the sparse index</a>.</p>",
            releases.len() - VERSIONS_SHOWN,
            escape(name.as_str())
        ));
    }
    body.push_str(
        "<h2>Keys and permissions</h2><table><thead><tr><th scope=\"col\">Key id</th>\
         <th scope=\"col\">Permissions</th></tr></thead><tbody>",
    );
    let authorities = state.authorities();
    for key in authorities.keys() {
        let permissions: Vec<String> = authorities
            .permissions(&key.id())
            .map(|p| p.to_string())
            .collect();
        if permissions.is_empty() {
            continue;
        }
        body.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{}</td></tr>",
            escape(&key.id().to_string()),
            escape(&permissions.join(", "))
        ));
    }
    body.push_str("</tbody></table>");
    body.push_str(&attestations_html(name, &data.attestations));
    body.push_str(&records_html(name, data));
    body.push_str(&format!(
        "<p>Machine-readable: <a href=\"/cairn/v1/packages/{0}\">metadata</a>, \
         <a href=\"/cairn/v1/index/{0}\">sparse index</a>, \
         <a href=\"/v1/attestations/{0}\">attestation log</a>.</p></main>",
        escape(name.as_str())
    ));
    body
}

/// The metadata of the latest release: description, the fields, the
/// producers, and the world's exports and imports.
fn metadata_html(info: &cairn_index::metadata::ComponentInfo) -> String {
    let mut body = String::new();
    if let Some(d) = info.summary() {
        body.push_str(&format!("<p>{}</p>", escape(d)));
    }
    body.push_str("<dl>");
    let producers = info
        .producers
        .iter()
        .map(|p| format!("{}: {} {}", p.field, p.name, p.version))
        .collect::<Vec<_>>()
        .join("; ");
    let rows = [
        ("License", info.license().map(str::to_owned)),
        ("Authors", info.authors.clone()),
        ("Source", info.source_url().map(str::to_owned)),
        ("Homepage", info.homepage.clone()),
        ("Revision", info.revision.clone()),
        ("Producers", Some(producers).filter(|p| !p.is_empty())),
    ];
    for (label, value) in rows {
        if let Some(value) = value {
            let shown = if value.starts_with("https://") || value.starts_with("http://") {
                format!("<a href=\"{0}\" rel=\"nofollow\">{0}</a>", escape(&value))
            } else {
                escape(&value)
            };
            body.push_str(&format!("<dt>{label}</dt><dd>{shown}</dd>"));
        }
    }
    body.push_str("</dl>");
    if let Some(world) = &info.world {
        for (title, list, names) in [
            ("Exports", &world.exports, &world.exported_names),
            ("Imports", &world.imports, &world.imported_names),
        ] {
            if list.is_empty() && names.is_empty() {
                continue;
            }
            body.push_str(&format!("<h2>{title}</h2><ul>"));
            for i in list {
                body.push_str(&format!("<li><code>{}</code></li>", escape(&i.to_string())));
            }
            for n in names {
                body.push_str(&format!("<li><code>{}</code></li>", escape(n)));
            }
            body.push_str("</ul>");
        }
    }
    body
}

/// The package log's records on this page: index, time, signer, entries.
fn records_html(name: &PackageName, data: &PackageData) -> String {
    let mut out = String::from(
        "<h2 id=\"records\">Log of records</h2><table><thead><tr><th scope=\"col\">Log index</th>\
         <th scope=\"col\">Time</th><th scope=\"col\">Signed by key</th><th scope=\"col\">Entries</th>\
         </tr></thead><tbody>",
    );
    for (index, stored) in &data.records {
        let (time, what) = match Envelope::<PackageRecord>::from_parts(
            stored.content_bytes.clone(),
            &stored.key_id,
            &stored.signature,
        ) {
            Ok(e) => (
                when(&e.contents().timestamp),
                crate::explorer::package_entries(&e.contents().entries).join("; "),
            ),
            Err(_) => (String::new(), "(record unreadable)".to_owned()),
        };
        out.push_str(&format!(
            "<tr><td><a href=\"/log/{index}\">{index}</a></td><td>{}</td>\
             <td><code title=\"{}\">{}</code></td><td class=\"long\">{}</td></tr>",
            escape(&time),
            escape(&stored.key_id),
            escape(&short(&stored.key_id)),
            escape(&what),
        ));
    }
    out.push_str("</tbody></table>");
    if data.more_records {
        if let Some((last, _)) = data.records.last() {
            out.push_str(&format!(
                "<nav aria-label=\"records\"><a href=\"/packages/{}?records-after={last}#records\" \
                 rel=\"next\">More records</a></nav>",
                escape(name.as_str())
            ));
        }
    }
    out
}

/// `GET /namespaces/{ns}`: where the namespace stands (defined here,
/// imported from another registry, mirrored, forked) and its packages,
/// paged from the search index (`?page=N`).
pub(crate) async fn namespace(
    State(app): State<AppState>,
    Path(ns): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    if let Err(e) = cairn_protocol::validate_namespace(&ns) {
        return error_page(
            StatusCode::BAD_REQUEST,
            &format!("`{ns}` is not a namespace: {e}"),
        );
    }
    let page_no =
        match number_param::<u32>(raw.as_deref(), "page", "a page number (1, 2, …)", |n| {
            *n >= 1
        }) {
            Ok(page) => page.unwrap_or(1),
            Err(e) => return error_page(StatusCode::BAD_REQUEST, &e),
        };
    let registry = app.registry.clone();
    let oci = app.oci.clone();
    let index = app.search.clone();
    let name = ns.clone();
    let loaded = blocking(move || {
        let defined = registry.namespaces().contains(&name);
        let imported = registry.imported_from(&name);
        let notices = registry.notices().ok();
        let forks: Vec<cairn_protocol::notice::Fork> = notices
            .iter()
            .flat_map(|n| n.forks())
            .filter(|(_, f)| f.namespace == name)
            .map(|(_, f)| f.clone())
            .collect();
        let mirrors: Vec<_> = oci
            .mirror_reports()
            .into_iter()
            .filter(|r| r.namespace == name)
            .collect();
        let found = match &index {
            Some(index) => Some(
                index
                    .search(&cairn_index::index::Query {
                        namespace: Some(name.clone()),
                        include_yanked: true,
                        page: page_no,
                        per_page: PACKAGES_PER_PAGE,
                        ..Default::default()
                    })
                    .map_err(|e| ApiError::bad_request(e.to_string()))?,
            ),
            None => None,
        };
        Ok((defined, imported, forks, mirrors, found))
    })
    .await;
    let (defined, imported, forks, mirrors, found) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => return error_page(e.status(), e.text()),
    };
    let known = defined
        || imported.is_some()
        || !forks.is_empty()
        || !mirrors.is_empty()
        || found.as_ref().is_some_and(|f| f.total > 0);
    if !known {
        return error_page(
            StatusCode::NOT_FOUND,
            &format!("namespace `{ns}` is not defined, imported or mirrored by this registry"),
        );
    }
    let mut body = format!(
        "<main><h1>Namespace <code>{}</code></h1><h2>State</h2><ul>",
        escape(&ns)
    );
    if defined {
        body.push_str("<li>Defined here: this registry's operator log defines it, and its packages are published here.</li>");
    }
    if let Some(from) = &imported {
        body.push_str(&format!(
            "<li>Imported from <code>{}</code>: its packages live there; clients asking here \
             are sent there.</li>",
            escape(from)
        ));
    }
    for fork in &forks {
        let what = match &fork.package {
            Some(p) => format!(
                "package <a href=\"/packages/{0}\">{0}</a>",
                escape(p.as_str())
            ),
            None => "the whole namespace".to_owned(),
        };
        body.push_str(&format!(
            "<li>Forked ({what}) from <code>{origin}</code> at its checkpoint of {len} records \
             (root <code>{root}</code>), {time}: published here since.</li>",
            origin = escape(&fork.origin),
            len = fork.log_length,
            root = escape(&fork.log_root.to_string()),
            time = escape(&when(&fork.timestamp)),
        ));
    }
    for mirror in &mirrors {
        body.push_str(&format!(
            "<li>Mirrored from <code>{origin}</code>: {held} packages held{checkpoint}, content \
             {content}{error}.</li>",
            origin = escape(&mirror.origin),
            held = mirror.packages_held,
            checkpoint = mirror
                .checkpoint_length
                .map(|l| format!(" as of its checkpoint of {l} records"))
                .unwrap_or_default(),
            content = if mirror.content_all {
                "copied whole"
            } else {
                "fetched on demand"
            },
            error = mirror
                .error
                .as_ref()
                .map(|e| format!("; last error: {}", escape(e)))
                .unwrap_or_default(),
        ));
    }
    body.push_str("</ul><h2>Packages</h2>");
    match &found {
        None => body.push_str("<p>This registry keeps no search index to list them from.</p>"),
        Some(found) if found.hits.is_empty() => body.push_str("<p>No package is indexed here.</p>"),
        Some(found) => {
            body.push_str(&format!(
                "<p>{} package{}.</p><ul class=\"hits\">",
                found.total,
                if found.total == 1 { "" } else { "s" }
            ));
            for hit in &found.hits {
                body.push_str(&format!(
                    "<li><a href=\"/packages/{pkg}\"><strong>{pkg}</strong></a> {version}{yanked} \
                     <small>{license}</small><br>{description}</li>",
                    pkg = escape(&hit.package),
                    version = escape(&hit.version),
                    yanked = if hit.yanked {
                        " <span class=\"yanked\">(yanked)</span>"
                    } else {
                        ""
                    },
                    license = escape(hit.license.as_deref().unwrap_or("no license given")),
                    description = escape(hit.description.as_deref().unwrap_or("")),
                ));
            }
            body.push_str("</ul>");
            let pages = found.total.div_ceil(found.per_page.max(1) as usize);
            if pages > 1 {
                body.push_str("<nav aria-label=\"pages\">");
                let path = format!("/namespaces/{}", escape(&ns));
                if found.page > 1 {
                    body.push_str(&format!(
                        "<a href=\"{path}?page={}\" rel=\"prev\">Previous</a> ",
                        found.page - 1
                    ));
                }
                body.push_str(&format!("page {} of {pages}", found.page));
                if (found.page as usize) < pages {
                    body.push_str(&format!(
                        " <a href=\"{path}?page={}\" rel=\"next\">Next</a>",
                        found.page + 1
                    ));
                }
                body.push_str("</nav>");
            }
        }
    }
    body.push_str("</main>");
    page(&format!("Namespace {ns}"), &body)
}

#[cfg(test)]
mod tests {
    use super::{artifact_label, short};

    #[test]
    fn signatures_and_attestations_are_named_by_their_artifact_type() {
        for (kind, label) in [
            (
                "application/vnd.dev.cosign.artifact.sig.v1+json",
                "cosign signature",
            ),
            (
                "application/vnd.dev.cosign.simplesigning.v1+json",
                "cosign signature",
            ),
            ("application/vnd.in-toto+json", "in-toto attestation (DSSE)"),
            (
                "application/vnd.dsse.envelope.v1+json",
                "in-toto attestation (DSSE)",
            ),
            ("application/spdx+json", "SBOM"),
            (
                "application/vnd.cairn.tlog-proof.v1",
                "transparency log proof",
            ),
            ("application/vnd.example.thing", "artifact"),
        ] {
            assert_eq!(artifact_label(kind), label, "{kind}");
        }
    }

    #[test]
    fn long_values_are_cut_with_an_ellipsis() {
        assert_eq!(short("sha256:0123"), "sha256:0123");
        assert_eq!(short("sha256:0123456789abcdef0123"), "sha256:0123456789ab…");
    }
}
