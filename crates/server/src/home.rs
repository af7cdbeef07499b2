//! `GET /`: a small page for people: what this registry is, its
//! namespaces, how to connect with `cairn`, `wkg` and `warg`, and where the
//! APIs are. Server-rendered, no script.

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};

use crate::warg::base_url;
use crate::AppState;

/// Text made safe for HTML.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page.
pub(crate) async fn home(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let base = base_url(&app, &headers);
    let host = base
        .split_once("://")
        .map_or(base.as_str(), |(_, rest)| rest)
        .to_owned();
    let plain = base.starts_with("http://");
    let namespaces = app.registry.namespaces();
    let length = app.registry.log_length();
    let example = namespaces
        .first()
        .cloned()
        .unwrap_or_else(|| "example".into());
    let list = if namespaces.is_empty() {
        "<p>No namespace is defined yet: the operator runs <code>cairn namespace define \
         &lt;ns&gt;</code>.</p>"
            .to_owned()
    } else {
        let items: String = namespaces
            .iter()
            .map(|ns| {
                format!(
                    "<li><a href=\"/namespaces/{0}\"><code>{0}</code></a></li>",
                    escape(ns)
                )
            })
            .collect();
        format!("<ul>{items}</ul>")
    };
    let wkg_protocol = if plain {
        format!(
            "\n[registry.\"{}\".oci]\nprotocol = \"http\"",
            escape(&host)
        )
    } else {
        String::new()
    };
    let pull = if app.anonymous_pull {
        "Anyone may read; publishing needs a token from the operator."
    } else {
        "Reading and publishing need a token from the operator."
    };
    let page = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Cairn registry at {host}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}pre{{background:#f4f4f4;padding:.75rem;overflow-x:auto}}</style>
</head>
<body>
<header>
<h1>Cairn registry at <code>{host}</code></h1>
<p>A verifiable registry for WebAssembly components: every release is a signed record in a public log, and clients check proofs before they trust a byte. {length} records so far. {pull}</p>
</header>
<main>
<section aria-labelledby="find">
<h2 id="find">Find a component</h2>
<form method="get" action="/search" role="search"><label for="q">Words</label> <input id="q" name="q" placeholder="http proxy"> <label for="exports">exporting</label> <input id="exports" name="exports" placeholder="wasi:http/incoming-handler"> <button type="submit">Search</button></form>
</section>
<section aria-labelledby="namespaces">
<h2 id="namespaces">Namespaces</h2>
{list}
</section>
<section aria-labelledby="connect">
<h2 id="connect">Connect</h2>
<h3>cairn (verifies everything)</h3>
<pre><code>cairn config --registry {base}
cairn login --registry {base} --token-stdin   # to publish
cairn get {example}:hello</code></pre>
<h3>wkg (OCI)</h3>
<pre><code># ~/.config/wasm-pkg/config.toml
default_registry = "{host}"{wkg_protocol}</code></pre>
<h3>warg (Warg v1)</h3>
<pre><code>warg config --registry {base}</code></pre>
</section>
<section aria-labelledby="apis">
<h2 id="apis">APIs</h2>
<ul>
<li><a href="/.well-known/wasm-pkg/registry.json">Discovery document</a></li>
<li><a href="/log">Log explorer</a>: recent checkpoints and records, each record's inclusion proof checked in your browser</li>
<li><a href="/v1/fetch/checkpoint">Latest checkpoint</a> (Warg v1; <code>/v1/…</code>)</li>
<li><a href="/v2/">OCI distribution 1.1</a> (<code>/v2/…</code>)</li>
<li><a href="/healthz">Health</a>, <a href="/readyz">readiness</a>, <a href="/metrics">metrics</a></li>
</ul>
</section>
</main>
</body>
</html>
"#,
        host = escape(&host),
        base = escape(&base),
        example = escape(&example),
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
