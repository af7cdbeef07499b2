//! Discovery (issue 18): components published on the Warg face (by
//! `cairn publish`) are indexed from the log; the search API and `cairn
//! search` find them by words, license and WIT interfaces; a yank takes a
//! package out of the default results; package metadata and lookup by
//! digest; bad queries get 400 naming the problem; the index survives a
//! restart and catches up.

mod common;

use std::process::Stdio;

use cairn_interop::components::{component, Meta};
use cairn_protocol::Hash;
use common::{free_addr, get, get_json, publisher, request, start, stop, wait_for};

const HTTP: &str = "package wasi:http@0.2.0;
interface incoming-handler { handle: func(); }
interface outgoing-handler { send: func(); }";
const CLI: &str = "package wasi:cli@0.2.0;
interface environment { get-arguments: func() -> list<string>; }";
const FS: &str = "package wasi:filesystem@0.2.0;
interface types { open: func(path: string) -> u32; }";

fn hits(body: &serde_json::Value) -> Vec<String> {
    body["hits"]
        .as_array()
        .map(|h| {
            h.iter()
                .filter_map(|h| h["package"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn published_components_are_found_by_words_license_and_interface() {
    let scratch = tempfile::tempdir().expect("scratch");
    let data = scratch.path().join("data");
    let addr = free_addr();
    let server = start(&data, addr, &[], Stdio::null());
    let url = format!("http://{addr}");
    let alice = publisher(scratch.path(), "alice", &url, &data, "publish:example/*");
    let proxy = component(
        &[HTTP],
        "package example:proxy@1.0.0; world proxy {
            import wasi:http/outgoing-handler@0.2.0;
            export wasi:http/incoming-handler@0.2.0; }",
        &Meta {
            description: Some("An HTTP proxy that forwards requests"),
            license: Some("Apache-2.0"),
            authors: Some("Alice <alice@example.test>"),
            source: Some("https://git.example.test/proxy"),
            ..Meta::default()
        },
    );
    let hello = component(
        &[HTTP, CLI],
        "package example:hello@1.0.0; world hello {
            import wasi:cli/environment@0.2.0;
            export wasi:http/incoming-handler@0.2.0; }",
        &Meta {
            description: Some("Hello world over HTTP"),
            license: Some("MIT"),
            ..Meta::default()
        },
    );
    let files = component(
        &[FS],
        "package example:files@1.0.0; world files { import wasi:filesystem/types@0.2.0; }",
        &Meta {
            description: Some("Lists files"),
            license: Some("MIT"),
            ..Meta::default()
        },
    );
    for (file, bytes, package) in [
        ("proxy.wasm", &proxy, "example:http-proxy"),
        ("hello.wasm", &hello, "example:hello-http"),
        ("files.wasm", &files, "example:files"),
    ] {
        alice.write(file, bytes);
        alice.publish(file, package, "1.0.0");
    }
    let search = |query: &str| get_json(addr, &format!("/cairn/v1/search?{query}"));
    wait_for("the index to catch up", || {
        hits(&search("per-page=100")).len() == 3
    });

    // Words, ranked; license; interfaces with versions; only-imports.
    assert_eq!(
        hits(&search("q=http")),
        ["example:hello-http", "example:http-proxy"]
    );
    assert_eq!(hits(&search("q=forwards")), ["example:http-proxy"]);
    assert_eq!(hits(&search("author=alice")), ["example:http-proxy"]);
    assert_eq!(
        hits(&search("license=MIT")),
        ["example:files", "example:hello-http"]
    );
    assert_eq!(
        hits(&search("exports=wasi:http/incoming-handler@0.2")),
        ["example:hello-http", "example:http-proxy"]
    );
    assert!(hits(&search("exports=wasi:http/incoming-handler@0.3")).is_empty());
    assert_eq!(
        hits(&search("imports=wasi:filesystem/types")),
        ["example:files"]
    );
    assert_eq!(
        hits(&search(
            "exports=wasi:http/incoming-handler&only-imports=wasi:cli/*"
        )),
        ["example:hello-http"]
    );
    // Every hit names its log record.
    let found = search("q=forwards");
    let hit = &found["hits"][0];
    assert_eq!(hit["license"], "Apache-2.0");
    assert_eq!(hit["digest"], Hash::of(&proxy).to_string().as_str());
    let record = hit["record"].as_str().expect("record link");
    let status = get_json(addr, record);
    assert_eq!(status["state"], "published", "{status}");
    assert_eq!(hit["exports"][0], "wasi:http/incoming-handler@0.2.0");

    // A world a WIT package in the registry defines, and the components a
    // host of it can run (they import nothing else).
    let host = cairn_interop::components::wit_package(
        &[HTTP],
        "package example:host@1.0.0;
         world web { import wasi:http/outgoing-handler@0.2.0; export wasi:http/incoming-handler@0.2.0; }",
    );
    alice.write("host.wasm", &host);
    alice.publish("host.wasm", "example:host", "1.0.0");
    wait_for("the WIT package to be indexed", || {
        hits(&search("satisfies=example:host/web@1.0.0")) == ["example:http-proxy"]
    });
    let said = alice.ok(&["search", "--satisfies", "example:host/web@1.0.0"]);
    assert!(said.contains("example:http-proxy 1.0.0"), "{said}");
    let unknown = get(
        addr,
        "/cairn/v1/search?satisfies=example:host/nothing@1.0.0",
    );
    assert_eq!(unknown.status, 400);
    assert!(String::from_utf8_lossy(&unknown.body).contains("is not defined by a WIT package"));

    // The answers have the shapes the OpenAPI file documents.
    let spec: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../docs/api/discovery.openapi.json"),
        )
        .expect("the OpenAPI file"),
    )
    .expect("JSON");
    let required = |schema: &str| -> Vec<String> {
        spec["components"]["schemas"][schema]["required"]
            .as_array()
            .expect("required fields")
            .iter()
            .filter_map(|f| f.as_str().map(str::to_owned))
            .collect()
    };
    for field in required("SearchPage") {
        assert!(found.get(&field).is_some(), "search answers have `{field}`");
    }
    for field in required("Hit") {
        assert!(hit.get(&field).is_some(), "hits have `{field}`");
    }
    let paths: Vec<&String> = spec["paths"].as_object().expect("paths").keys().collect();
    assert_eq!(paths.len(), 4);

    // Bad queries: 400, naming the problem.
    for (query, needle) in [
        ("exports=http", "is not an interface"),
        ("page=x", "`page`"),
        ("colour=blue", "not a search parameter"),
    ] {
        let answer = get(addr, &format!("/cairn/v1/search?{query}"));
        assert_eq!(answer.status, 400, "{query}");
        assert!(
            String::from_utf8_lossy(&answer.body).contains(needle),
            "{query}: {}",
            String::from_utf8_lossy(&answer.body)
        );
    }

    // A package's metadata, and lookup by digest.
    let package = get_json(addr, "/cairn/v1/packages/example:http-proxy");
    let release = &package["releases"][0];
    for field in required("Release") {
        assert!(release.get(&field).is_some(), "releases have `{field}`");
    }
    assert_eq!(release["version"], "1.0.0");
    assert_eq!(release["info"]["source"], "https://git.example.test/proxy");
    assert_eq!(
        release["info"]["world"]["imports"][0]["package"],
        "wasi:http"
    );
    let by_digest = get_json(
        addr,
        &format!("/cairn/v1/content/{}/releases", Hash::of(&files)),
    );
    assert_eq!(by_digest["releases"][0]["package"], "example:files");
    assert_eq!(get(addr, "/cairn/v1/packages/example:nothing").status, 404);

    // `cairn search` on the command line.
    let said = alice.ok(&["search", "http", "--exports", "wasi:http/incoming-handler"]);
    assert!(said.contains("example:http-proxy 1.0.0"), "{said}");
    assert!(
        said.contains("exports: wasi:http/incoming-handler@0.2.0"),
        "{said}"
    );
    let json = alice.json(&["search", "--license", "MIT"]);
    assert_eq!(hits(&json), ["example:files", "example:hello-http"]);
    let refused = alice.run(&["search", "--exports", "nonsense"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is not an interface"));

    // The sparse index: a JSON line per release, a strong ETag, 304 for
    // a warm client.
    let sparse = get(addr, "/cairn/v1/index/example:files");
    assert_eq!(sparse.status, 200);
    let line: serde_json::Value =
        serde_json::from_slice(sparse.body.split(|b| *b == b'\n').next().expect("a line"))
            .expect("JSON line");
    assert_eq!(line["vers"], "1.0.0");
    assert_eq!(line["digest"], Hash::of(&files).to_string().as_str());
    assert_eq!(line["yanked"], false);
    assert!(line["world"]
        .as_str()
        .is_some_and(|w| w.starts_with("sha256:")));
    let tag = sparse.header("etag").expect("etag").to_owned();
    let warm = request(
        addr,
        "GET",
        "/cairn/v1/index/example:files",
        &[("if-none-match", &tag)],
        b"",
    )
    .expect("request");
    assert_eq!(warm.status, 304);
    assert!(warm.body.is_empty());
    assert_eq!(get(addr, "/cairn/v1/index/example:nothing").status, 404);

    // The pages for people: the search form and its hits, a package page
    // with its metadata, interfaces, versions and how to get it.
    let html = |path: &str| {
        let answer = get(addr, path);
        assert_eq!(answer.status, 200, "{path}");
        assert!(answer
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/html")));
        String::from_utf8_lossy(&answer.body).into_owned()
    };
    assert!(html("/").contains("action=\"/search\""));
    let found = html("/search?q=http&exports=wasi%3Ahttp%2Fincoming-handler&license=");
    assert!(
        found.contains("<a href=\"/packages/example:http-proxy\">"),
        "{found}"
    );
    assert!(found.contains("2 packages match"), "{found}");
    let refused = html("/search?exports=nonsense");
    assert!(refused.contains("role=\"alert\"") && refused.contains("is not an interface"));
    let proxy_page = html("/packages/example:http-proxy");
    for needle in [
        "An HTTP proxy that forwards requests",
        "Apache-2.0",
        "https://git.example.test/proxy",
        "<code>wasi:http/incoming-handler@0.2.0</code>",
        "<code>wasi:http/outgoing-handler@0.2.0</code>",
        "cairn get example:http-proxy@1.0.0",
        "release",
    ] {
        assert!(proxy_page.contains(needle), "{needle}: {proxy_page}");
    }
    assert_eq!(get(addr, "/packages/example:nothing").status, 404);
    assert_eq!(get(addr, "/packages/not-a-name").status, 400);

    // A yank takes the package out of the default results.
    alice.json(&["yank", "example:files@1.0.0", "--yes"]);
    wait_for("the yank to be indexed", || {
        hits(&search("license=MIT")) == ["example:hello-http"]
    });
    assert!(html("/packages/example:files").contains("class=\"yanked\""));
    let after = request(
        addr,
        "GET",
        "/cairn/v1/index/example:files",
        &[("if-none-match", &tag)],
        b"",
    )
    .expect("request");
    assert_eq!(after.status, 200, "the index changed with the yank");
    assert!(String::from_utf8_lossy(&after.body).contains("\"yanked\":true"));
    assert_eq!(
        hits(&search("license=MIT&yanked=true")),
        ["example:files", "example:hello-http"]
    );

    // Restarted, with the index file gone: built again from the log.
    stop(server);
    std::fs::remove_file(data.join("index.sqlite3")).expect("remove the index");
    let _ = std::fs::remove_file(data.join("index.sqlite3-wal"));
    let _ = std::fs::remove_file(data.join("index.sqlite3-shm"));
    let server = start(&data, addr, &[], Stdio::null());
    wait_for("the index to be rebuilt", || {
        hits(&search("q=http")) == ["example:hello-http", "example:http-proxy"]
    });
    assert_eq!(hits(&search("license=MIT")), ["example:hello-http"]);

    // What a component says is shown, never run.
    let evil = component(
        &[],
        "package example:evil@1.0.0; world evil { export f: func(); }",
        &Meta {
            description: Some("<script>alert(1)</script>"),
            ..Meta::default()
        },
    );
    alice.write("evil.wasm", &evil);
    alice.publish("evil.wasm", "example:evil", "1.0.0");
    wait_for("the evil package to be indexed", || {
        hits(&search("q=evil")) == ["example:evil"]
    });
    let page = String::from_utf8_lossy(&get(addr, "/packages/example:evil").body).into_owned();
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    assert!(!page.contains("<script>"));
    let listed = String::from_utf8_lossy(&get(addr, "/search?q=evil").body).into_owned();
    assert!(!listed.contains("<script>"));
    stop(server);
}
