//! Searches over releases of components built here: text ranking, filters,
//! WIT queries with versions, `only-imports`, yanks, pagination, lookup by
//! digest.

use cairn_index::index::{
    ImportPattern, Index, IndexedRelease, InterfaceReq, PackageUpdate, Query,
};
use cairn_index::metadata::extract;
use cairn_interop::components::{self, wit_package, Meta};

/// A component of the world in `main` (the packages in `deps` defined
/// first), with a description and license.
fn component(deps: &[&str], main: &str, description: &str, license: &str) -> Vec<u8> {
    components::component(
        deps,
        main,
        &Meta {
            description: Some(description),
            license: Some(license),
            ..Meta::default()
        },
    )
}

const HTTP_020: &str = "package wasi:http@0.2.0;
interface incoming-handler { handle: func(); }
interface outgoing-handler { send: func(); }";
const HTTP_023: &str = "package wasi:http@0.2.3;
interface incoming-handler { handle: func(); }";
const IO: &str = "package wasi:io@0.2.0;
interface streams { read: func() -> u32; }";
const CLI: &str = "package wasi:cli@0.2.0;
interface environment { get-arguments: func() -> list<string>; }
interface run { run: func() -> result; }";
const FS: &str = "package wasi:filesystem@0.2.0;
interface types { open: func(path: string) -> u32; }";

fn release(package: &str, version: &str, bytes: &[u8], yanked: bool) -> PackageUpdate {
    PackageUpdate {
        package: package.to_owned(),
        attestation_log: None,
        signatures_read: true,
        releases: vec![IndexedRelease {
            package: package.to_owned(),
            version: version.parse().expect("version"),
            digest: format!("sha256:{:064x}", bytes.len()),
            record_id: "sha256:00".into(),
            log_id: "sha256:11".into(),
            registry_index: Some(7),
            published: 1,
            yanked,
            signed: false,
            info: Some(extract(bytes).expect("extract")),
        }],
    }
}

fn names(index: &Index, query: &Query) -> Vec<String> {
    index
        .search(query)
        .expect("search")
        .hits
        .into_iter()
        .map(|h| h.package)
        .collect()
}

fn query() -> Query {
    Query {
        per_page: 20,
        ..Query::default()
    }
}

#[test]
fn search_by_text_filters_and_wit() {
    let index = Index::in_memory().expect("index");
    let proxy = component(
        &[HTTP_020, IO],
        "package acme:proxy@1.0.0; world proxy {
            import wasi:http/outgoing-handler@0.2.0; import wasi:io/streams@0.2.0;
            export wasi:http/incoming-handler@0.2.0; }",
        "An HTTP proxy that forwards requests",
        "Apache-2.0",
    );
    let hello = component(
        &[HTTP_023, CLI],
        "package acme:hello@1.0.0; world hello {
            import wasi:cli/environment@0.2.0;
            export wasi:http/incoming-handler@0.2.3; }",
        "Hello world over HTTP",
        "MIT",
    );
    let greeter = component(
        &[],
        "package acme:greeter@1.0.0; interface greet { hello: func(); } world greeter { export greet; }",
        "Greets people",
        "MIT",
    );
    let fs_tool = component(
        &[FS, CLI],
        "package other:fs@1.0.0; world fs {
            import wasi:filesystem/types@0.2.0; export wasi:cli/run@0.2.0; }",
        "Lists files",
        "MIT OR Apache-2.0",
    );
    index
        .apply(
            &[
                release("acme:http-proxy", "1.0.0", &proxy, false),
                release("acme:hello-http", "1.0.0", &hello, false),
                release("acme:greeter", "1.0.0", &greeter, true),
                release("other:fs-tool", "2.0.0", &fs_tool, false),
            ],
            10,
        )
        .expect("apply");
    assert_eq!(index.indexed_to().expect("progress"), 10);

    // Text: words anywhere, a name match ranking first.
    let text = |t: &str| Query {
        text: Some(t.into()),
        ..query()
    };
    assert_eq!(
        names(&index, &text("http")),
        ["acme:hello-http", "acme:http-proxy"]
    );
    assert_eq!(names(&index, &text("forwards")), ["acme:http-proxy"]);
    assert_eq!(
        names(&index, &text("prox")),
        ["acme:http-proxy"],
        "prefixes match"
    );
    assert!(names(&index, &text("\"; DROP TABLE packages; --")).is_empty());
    // Filters.
    let licensed = |l: &str| Query {
        license: Some(l.into()),
        ..query()
    };
    assert_eq!(
        names(&index, &licensed("MIT")),
        ["acme:hello-http", "other:fs-tool"]
    );
    assert_eq!(
        names(&index, &licensed("Apache-2.0")),
        ["acme:http-proxy", "other:fs-tool"]
    );
    let in_ns = Query {
        namespace: Some("other".into()),
        ..query()
    };
    assert_eq!(names(&index, &in_ns), ["other:fs-tool"]);
    // A namespace or license id is matched whole, never as a prefix.
    let in_prefix = Query {
        namespace: Some("oth".into()),
        ..query()
    };
    assert!(names(&index, &in_prefix).is_empty());
    assert!(names(&index, &licensed("Apache")).is_empty());
    assert!(
        names(&index, &licensed("mit")).len() == 2,
        "ids are case-blind"
    );
    assert!(
        index.search(&licensed("MIT OR Apache-2.0")).is_err(),
        "one id, not an expression"
    );
    // Yanked packages only when asked for.
    assert!(!names(&index, &query()).contains(&"acme:greeter".to_owned()));
    let all = Query {
        include_yanked: true,
        ..query()
    };
    assert!(names(&index, &all).contains(&"acme:greeter".to_owned()));

    // WIT: exports, with and without versions; imports; only-imports.
    let exports = |i: &str| Query {
        exports: vec![InterfaceReq::parse(i).expect("req")],
        ..query()
    };
    assert_eq!(
        names(&index, &exports("wasi:http/incoming-handler")),
        ["acme:hello-http", "acme:http-proxy"]
    );
    assert_eq!(
        names(&index, &exports("wasi:http/incoming-handler@^0.2.1")),
        ["acme:hello-http"]
    );
    assert_eq!(
        names(&index, &exports("wasi:http/incoming-handler@=0.2.0")),
        ["acme:http-proxy"]
    );
    let imports = Query {
        imports: vec![InterfaceReq::parse("wasi:filesystem/types").expect("req")],
        ..query()
    };
    assert_eq!(names(&index, &imports), ["other:fs-tool"]);
    // Needs nothing beyond the CLI environment: no filesystem, no network.
    let sandboxed = Query {
        only_imports: Some(vec![ImportPattern::parse("wasi:cli/*").expect("pattern")]),
        ..query()
    };
    assert_eq!(names(&index, &sandboxed), ["acme:hello-http"]);

    // A hit names its record and says what the release imports and
    // exports.
    let page = index
        .search(&exports("wasi:http/incoming-handler@=0.2.0"))
        .expect("search");
    let hit = &page.hits[0];
    assert_eq!(hit.version, "1.0.0");
    assert_eq!(hit.license.as_deref(), Some("Apache-2.0"));
    assert_eq!(hit.registry_index, Some(7));
    assert_eq!(hit.exports, ["wasi:http/incoming-handler@0.2.0"]);
    assert_eq!(
        hit.imports,
        ["wasi:http/outgoing-handler@0.2.0", "wasi:io/streams@0.2.0"]
    );

    // Satisfies a world a WIT package in the registry defines: imports
    // nothing the world does not. Only the package the world's id names
    // may define it.
    let package = wit_package(
        &[IO],
        "package wasi:http@0.2.0;
            interface incoming-handler { handle: func(); }
            interface outgoing-handler { send: func(); }
            world proxy {
                import outgoing-handler; import wasi:io/streams@0.2.0;
                export incoming-handler; }",
    );
    let mut impostor = release("other:not-http", "1.0.0", &package, false);
    impostor.releases[0].package = "other:not-http".into();
    index.apply(&[impostor], 11).expect("apply");
    let satisfies = Query {
        satisfies: Some("wasi:http/proxy@0.2.0".into()),
        ..query()
    };
    assert!(
        index.search(&satisfies).is_err(),
        "a package other than wasi:http does not define its worlds"
    );
    index
        .apply(&[release("wasi:http", "0.2.0", &package, false)], 12)
        .expect("apply");
    assert_eq!(names(&index, &satisfies), ["acme:http-proxy"]);
    let unknown = Query {
        satisfies: Some("wasi:nothing/here@1.0.0".into()),
        ..query()
    };
    assert!(index.search(&unknown).is_err());

    // Pages.
    let paged = |page| Query {
        page,
        per_page: 1,
        ..query()
    };
    let first = index.search(&paged(1)).expect("search");
    assert_eq!(first.total, 5);
    assert_eq!(first.hits.len(), 1);
    let fifth = index.search(&paged(5)).expect("search");
    assert_eq!(fifth.hits[0].package, "wasi:http");
    assert!(index.search(&paged(6)).expect("search").hits.is_empty());

    // By digest.
    let digest = format!("sha256:{:064x}", fs_tool.len());
    let found = index.by_digest(&digest).expect("lookup");
    assert_eq!(found[0].package, "other:fs-tool");
}

#[test]
fn a_new_release_and_a_yank_update_the_package() {
    let index = Index::in_memory().expect("index");
    let v1 = component(
        &[],
        "package acme:a@1.0.0; world w { export f: func(); }",
        "first words",
        "MIT",
    );
    let v2 = component(
        &[],
        "package acme:a@2.0.0; world w { export g: func(); }",
        "second words",
        "MIT",
    );
    index
        .apply(&[release("acme:tool", "1.0.0", &v1, false)], 1)
        .expect("apply");
    index
        .apply(&[release("acme:tool", "2.0.0", &v2, false)], 2)
        .expect("apply");
    let text = |t: &str| Query {
        text: Some(t.into()),
        ..query()
    };
    assert_eq!(names(&index, &text("second")), ["acme:tool"]);
    assert!(
        names(&index, &text("first")).is_empty(),
        "the latest release speaks"
    );
    // 2.0.0 yanked (its update carries no metadata: the kept one stays).
    let mut yank = release("acme:tool", "2.0.0", &v2, true);
    yank.releases[0].info = None;
    index.apply(&[yank], 3).expect("apply");
    assert_eq!(names(&index, &text("first")), ["acme:tool"]);
    let releases = index.package("acme:tool").expect("package");
    assert_eq!(releases.len(), 2);
    assert!(releases[0].yanked && releases[0].info.is_some());
}

/// A package's interface rows follow its latest release: those of a
/// release it moved on from are gone, and come back when the newer
/// release is yanked.
#[test]
fn interface_searches_follow_the_latest_release() {
    let index = Index::in_memory().expect("index");
    let v1 = component(
        &[CLI, IO],
        "package acme:a@1.0.0; world w {
            import wasi:io/streams@0.2.0;
            export wasi:cli/run@0.2.0; }",
        "a tool",
        "MIT",
    );
    let v2 = component(
        &[HTTP_020],
        "package acme:a@2.0.0; world w {
            import wasi:http/outgoing-handler@0.2.0;
            export wasi:http/incoming-handler@0.2.0; }",
        "a tool",
        "MIT",
    );
    let exports = |i: &str| Query {
        exports: vec![InterfaceReq::parse(i).expect("req")],
        ..query()
    };
    let imports = |i: &str| Query {
        imports: vec![InterfaceReq::parse(i).expect("req")],
        ..query()
    };
    // With a version requirement the lists are read; without, the
    // interface rows alone answer: both kinds of search are asked.
    let found = |index: &Index| {
        [
            names(index, &exports("wasi:cli/run")),
            names(index, &exports("wasi:cli/run@^0.2")),
            names(index, &imports("wasi:io/streams")),
            names(index, &exports("wasi:http/incoming-handler")),
            names(index, &exports("wasi:http/incoming-handler@^0.2")),
            names(index, &imports("wasi:http/outgoing-handler")),
        ]
        .map(|hits| !hits.is_empty())
    };
    index
        .apply(&[release("acme:tool", "1.0.0", &v1, false)], 1)
        .expect("apply");
    assert_eq!(found(&index), [true, true, true, false, false, false]);
    index
        .apply(&[release("acme:tool", "2.0.0", &v2, false)], 2)
        .expect("apply");
    assert_eq!(found(&index), [false, false, false, true, true, true]);
    let mut yank = release("acme:tool", "2.0.0", &v2, true);
    yank.releases[0].info = None;
    index.apply(&[yank], 3).expect("apply");
    assert_eq!(found(&index), [true, true, true, false, false, false]);
}

/// Searches run while the indexer writes, on a file-backed index (its
/// reading connections beside the writing one): every search answers, and
/// sees whole batches only (a page never counts a batch in part).
#[test]
fn searches_and_writes_run_at_once() {
    let dir = tempfile::tempdir().expect("scratch");
    let index = std::sync::Arc::new(Index::open(&dir.path().join("index.sqlite3")).expect("index"));
    let batch = |n: usize| -> Vec<PackageUpdate> {
        (0..10)
            .map(|i| {
                let package = format!("acme:tool-{n}-{i}");
                PackageUpdate {
                    package: package.clone(),
                    attestation_log: None,
                    signatures_read: true,
                    releases: vec![IndexedRelease {
                        package,
                        version: semver::Version::new(1, 0, 0),
                        digest: format!("sha256:{:064x}", n * 10 + i),
                        record_id: "sha256:00".into(),
                        log_id: "sha256:11".into(),
                        registry_index: Some((n * 10 + i) as u64),
                        published: 1,
                        yanked: false,
                        signed: false,
                        info: Some(cairn_index::metadata::ComponentInfo {
                            description: Some("a concurrent widget".into()),
                            ..Default::default()
                        }),
                    }],
                }
            })
            .collect()
    };
    let writer = {
        let index = index.clone();
        std::thread::spawn(move || {
            for n in 0..30 {
                index.apply(&batch(n), (n as u64 + 1) * 10).expect("apply");
            }
        })
    };
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let index = index.clone();
            std::thread::spawn(move || {
                for _ in 0..60 {
                    let page = index
                        .search(&Query {
                            text: Some("widget".into()),
                            per_page: 5,
                            ..Query::default()
                        })
                        .expect("a search while writing");
                    assert_eq!(page.total % 10, 0, "whole batches only");
                }
            })
        })
        .collect();
    writer.join().expect("writer");
    for reader in readers {
        reader.join().expect("reader");
    }
    let all = index
        .search(&Query {
            text: Some("widget".into()),
            per_page: 5,
            ..Query::default()
        })
        .expect("search");
    assert_eq!(all.total, 300);
    assert_eq!(index.indexed_to().expect("progress"), 300);
}

/// A package with only a description (no component behind it).
fn described(package: &str, description: &str, yanked: bool) -> PackageUpdate {
    PackageUpdate {
        package: package.to_owned(),
        attestation_log: None,
        signatures_read: true,
        releases: vec![IndexedRelease {
            package: package.to_owned(),
            version: "1.0.0".parse().expect("version"),
            digest: format!("sha256:{:064x}", package.len()),
            record_id: "sha256:00".into(),
            log_id: "sha256:11".into(),
            registry_index: Some(7),
            published: 1,
            yanked,
            signed: false,
            info: Some(cairn_index::metadata::ComponentInfo {
                description: Some(description.to_owned()),
                ..Default::default()
            }),
        }],
    }
}

#[test]
fn a_common_word_is_ranked_from_stored_relevance() {
    let index = Index::in_memory().expect("index");
    let many = cairn_index::index::STATIC_RANK_FROM + 500;
    let mut updates: Vec<PackageUpdate> = (0..many)
        .map(|i| {
            described(
                &format!("ns:filler-{i}"),
                "a common tool for everyone",
                false,
            )
        })
        .collect();
    updates.push(described("ns:common", "the common one", false));
    updates.push(described("ns:common-parser", "parses", false));
    updates.push(described("ns:common-gone", "yanked", true));
    updates.push(described("ns:toolbox", "a common one", false));
    updates.push(described("ns:common-tool", "a tool", false));
    index.apply(&updates, 10).expect("apply");
    let common = Query {
        text: Some("common".into()),
        ..query()
    };
    let page = index.search(&common).expect("search");
    assert_eq!(page.total, many + 4, "the yanked package is left out");
    let first: Vec<&str> = page.hits.iter().map(|h| h.package.as_str()).collect();
    // Name matches first, the shorter name (and the word in the
    // description too) before the longer.
    assert_eq!(
        &first[..3],
        ["ns:common", "ns:common-tool", "ns:common-parser"]
    );
    assert!(!first.contains(&"ns:common-gone"));
    // A prefix finds the same, and pages do not overlap.
    let prefix = names(
        &index,
        &Query {
            text: Some("comm".into()),
            ..query()
        },
    );
    assert_eq!(prefix, first);
    let second = names(
        &index,
        &Query {
            page: 2,
            ..common.clone()
        },
    );
    assert_eq!(second.len(), 20);
    assert!(second.iter().all(|p| !first.contains(&p.as_str())));
    // Two words both matching thousands: the packages with both, the
    // best for the less common word first (its name has both words).
    let both = Query {
        text: Some("tool common".into()),
        ..query()
    };
    let page = index.search(&both).expect("search");
    assert_eq!(
        page.total,
        many + 2,
        "the fillers, ns:common-tool and ns:toolbox"
    );
    let found: Vec<&str> = page.hits.iter().map(|h| h.package.as_str()).collect();
    assert_eq!(found[0], "ns:common-tool", "{found:?}");
    assert!(
        found.contains(&"ns:toolbox"),
        "a prefix of a word counts: {found:?}"
    );
    assert!(!found.contains(&"ns:common-parser"));
    let next = names(&index, &Query { page: 2, ..both });
    assert!(next.iter().all(|p| !found.contains(&p.as_str())));
    // A page past the candidates is empty (and reads no more than they).
    let far = index
        .search(&Query {
            page: u32::MAX,
            per_page: 100,
            ..common.clone()
        })
        .expect("far page");
    assert!(far.hits.is_empty());
    assert_eq!(far.total, many + 4);
    // Yanked ones come back when asked for.
    let with_yanked = names(
        &index,
        &Query {
            include_yanked: true,
            per_page: 3,
            ..common.clone()
        },
    );
    assert!(
        with_yanked.contains(&"ns:common-gone".to_owned()),
        "{with_yanked:?}"
    );
    // A package whose words change leaves no stale relevance behind.
    index
        .apply(&[described("ns:common", "renamed words only", false)], 11)
        .expect("update");
    // The newest filler: of the equally relevant ones, it comes first, so a
    // stale row of it would show on the first page.
    let newest = format!("ns:filler-{}", many - 1);
    index
        .apply(&[described(&newest, "nothing shared", false)], 12)
        .expect("update");
    let page = index.search(&common).expect("search");
    assert_eq!(page.total, many + 3);
    let all = names(
        &index,
        &Query {
            per_page: 100,
            page: 1,
            ..common
        },
    );
    assert!(!all.contains(&newest), "{all:?}");
    assert_eq!(all[0], "ns:common", "still a name match");
}

#[test]
fn signed_flags_stay_until_the_signatures_are_read_again() {
    let index = Index::in_memory().expect("index");
    let signed_only = Query {
        signed: true,
        ..query()
    };
    let mut update = described("ns:tool", "a tool", false);
    update.releases[0].signed = true;
    index.apply(&[update], 1).expect("signed");
    assert_eq!(names(&index, &signed_only), ["ns:tool"]);
    // A round that did not read the attestation log says nothing of it.
    let mut unread = described("ns:tool", "a tool, again", false);
    unread.signatures_read = false;
    index.apply(&[unread], 2).expect("unread");
    assert_eq!(names(&index, &signed_only), ["ns:tool"]);
    // One that read it decides.
    index
        .apply(&[described("ns:tool", "a tool", false)], 3)
        .expect("read");
    assert!(names(&index, &signed_only).is_empty());
}
