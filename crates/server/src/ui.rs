//! Pages for people: search (words and WIT) at `/search`, and a page per
//! package at `/packages/{package}`. Server-rendered HTML, semantic and
//! readable without script; every value from a package is escaped. They
//! read the same index and verified package state as the JSON API.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_index::index::IndexedRelease;
use cairn_protocol::{LogId, PackageName};

use crate::error::{blocking, ApiError};
use crate::home::escape;
use crate::search::parse_query;
use crate::warg::base_url;
use crate::AppState;

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:54rem;margin:2rem auto;\
padding:0 1rem;line-height:1.5}pre{background:#f4f4f4;padding:.75rem;overflow-x:auto}\
form{display:grid;grid-template-columns:max-content 1fr;gap:.4rem .8rem;align-items:center}\
form button{grid-column:2;justify-self:start}table{border-collapse:collapse}\
th,td{text-align:left;padding:.2rem .6rem;border-bottom:1px solid #ddd}\
.yanked{color:#a00}.down{color:#a00;font-weight:bold}ul.hits{list-style:none;padding:0}\
ul.hits li{margin:0 0 1rem}";

fn page(title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <nav aria-label=\"site\"><a href=\"/\">Home</a> · <a href=\"/search\">Search</a></nav>\n\
         {body}\n</body>\n</html>\n",
        title = escape(title)
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

fn error_page(status: StatusCode, message: &str) -> Response {
    let mut response = page(
        "Not found",
        &format!(
            "<main><h1>{}</h1><p>{}</p></main>",
            status.as_u16(),
            escape(message)
        ),
    );
    *response.status_mut() = status;
    response
}

/// The value of `key` in the raw query string, for refilling the form.
fn value_of(raw: Option<&str>, key: &str) -> String {
    serde_urlencoded::from_str::<Vec<(String, String)>>(raw.unwrap_or(""))
        .unwrap_or_default()
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
    let form = format!(
        "<form method=\"get\" action=\"/search\" role=\"search\">{}{}{}{}{}{}\
         <button type=\"submit\">Search</button></form>",
        field("q", "Words", "http proxy"),
        field("exports", "Exports", "wasi:http/incoming-handler@0.2"),
        field("imports", "Imports", "wasi:keyvalue/store"),
        field("only-imports", "Imports only", "wasi:cli/*,wasi:io/*"),
        field("license", "License", "MIT"),
        field("namespace", "Namespace", "acme"),
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
            "<li><a href=\"/packages/{pkg}\"><strong>{pkg}</strong></a> {version}{yanked} \
             <small>{license}</small><br>{description}{exports}</li>",
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

/// `GET /packages/{package}`: versions (yanks and take-downs marked),
/// metadata, imports and exports, keys and permissions, releases with
/// their signers and times, and how to get it.
pub(crate) async fn package(
    State(app): State<AppState>,
    Path(package): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Ok(name) = package.parse::<PackageName>() else {
        return error_page(
            StatusCode::BAD_REQUEST,
            &format!("`{package}` is not a package name (namespace:name)"),
        );
    };
    let registry = app.registry.clone();
    let index = app.search.clone();
    let lookup = name.clone();
    let loaded = blocking(move || {
        let state = registry.published_package(&LogId::package(&lookup))?;
        let indexed = match &index {
            Some(index) => index
                .package(lookup.as_str())
                .map_err(|e| ApiError::message(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?,
            None => Vec::new(),
        };
        let notices = registry.notices().ok();
        Ok((state, indexed, notices))
    })
    .await;
    let (state, indexed, notices) = match loaded {
        Ok((Some(state), indexed, notices)) => (state, indexed, notices),
        Ok((None, _, _)) => {
            return error_page(
                StatusCode::NOT_FOUND,
                &format!("package `{name}` is not in this registry"),
            )
        }
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, e.text()),
    };
    let base = base_url(&app, &headers);
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
    let mut body = format!("<main><h1>{}</h1>", escape(name.as_str()));
    if let Some(info) = info {
        if let Some(d) = info.summary() {
            body.push_str(&format!("<p>{}</p>", escape(d)));
        }
        body.push_str("<dl>");
        let rows = [
            ("License", info.license().map(str::to_owned)),
            ("Authors", info.authors.clone()),
            ("Source", info.source_url().map(str::to_owned)),
            ("Homepage", info.homepage.clone()),
            ("Revision", info.revision.clone()),
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
    }
    if let Some(latest) = latest {
        let host = base.split_once("://").map_or(base.as_str(), |(_, h)| h);
        body.push_str(&format!(
            "<h2>Get it</h2><pre><code>cairn get {pkg}@{v}\nwkg get {pkg}@{v}   # registry {host}</code></pre>",
            pkg = escape(name.as_str()),
            v = escape(&latest.version.to_string()),
            host = escape(host),
        ));
    }
    body.push_str(
        "<h2>Versions</h2><table><thead><tr><th scope=\"col\">Version</th>\
         <th scope=\"col\">Released</th><th scope=\"col\">By key</th><th scope=\"col\">Content</th>\
         <th scope=\"col\">Record</th><th scope=\"col\">State</th></tr></thead><tbody>",
    );
    for release in &releases {
        let down = notices
            .as_ref()
            .and_then(|n| n.release_down(&name, &release.version))
            .map(|d| d.reason.clone());
        let state_cell = match (&release.yanked, &down) {
            (_, Some(reason)) => {
                format!("<span class=\"down\">taken down: {}</span>", escape(reason))
            }
            (Some(_), None) => "<span class=\"yanked\">yanked</span>".to_owned(),
            (None, None) => "available".to_owned(),
        };
        let index = info_of(&release.version)
            .and_then(|r| r.registry_index)
            .map(|i| format!(" (log index {i})"))
            .unwrap_or_default();
        body.push_str(&format!(
            "<tr><td>{v}</td><td>{t}</td><td><code>{by}</code></td><td><code>{c}</code></td>\
             <td><a href=\"/v1/package/{log}/record/{rec}\"><code>{rec_short}</code></a>{index}</td>\
             <td>{state_cell}</td></tr>",
            v = escape(&release.version.to_string()),
            t = escape(&cairn_registry::oci::rfc3339(&release.timestamp)),
            by = escape(&release.by.to_string()),
            c = escape(&release.content.to_string()),
            log = escape(&LogId::package(&name).to_string()),
            rec = escape(&release.record_id.to_string()),
            rec_short = escape(&release.record_id.to_string().chars().take(19).collect::<String>()),
        ));
    }
    body.push_str("</tbody></table>");
    body.push_str("<h2>Keys</h2><ul>");
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
            "<li><code>{}</code>: {}</li>",
            escape(&key.id().to_string()),
            escape(&permissions.join(", "))
        ));
    }
    body.push_str("</ul>");
    body.push_str(&format!(
        "<p>Machine-readable: <a href=\"/cairn/v1/packages/{0}\">metadata</a>, \
         <a href=\"/cairn/v1/index/{0}\">sparse index</a>, \
         <a href=\"/v1/attestations/{0}\">attestation log</a>.</p></main>",
        escape(name.as_str())
    ));
    page(name.as_str(), &body)
}
