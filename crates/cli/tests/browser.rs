//! The web UI (issue 18, items 4 and 7). The log explorer's proof, step by
//! step, is recomputed here from the page's own values and must reach the
//! root of the checkpoint the Warg API serves; bad paths get 4xx pages. In
//! headless Chromium (Debian's, driven over WebDriver by `fantoccini`) a
//! person searches by words (typing, then Enter) and by WIT export, opens
//! a package page with a yanked version, sees a cosign signature attached
//! as an OCI referrer, and opens a record in the log explorer where the
//! browser recomputes its inclusion proof; screenshots land in
//! `target/browser/`.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use cairn_interop::components::{component, Meta};
use cairn_interop::tools::{require, Tool};
use cairn_protocol::{Hash, LogId, LogLeaf, PackageName, PrivateKey, RecordId};
use cairn_transparency::{hash_branch, hash_leaf};
use common::publish::Publisher;
use common::{
    admin_command, free_addr, get, get_json, publish_token, publisher, request, start, stop,
    wait_for,
};
use fantoccini::{ClientBuilder, Locator};
use serde_json::json;

const HTTP: &str = "package wasi:http@0.2.0;
interface incoming-handler { handle: func(); }
interface outgoing-handler { send: func(); }";

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const COSIGN_SIG: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const EMPTY: &str = "application/vnd.oci.empty.v1+json";

fn proxy(description: &str) -> Vec<u8> {
    component(
        &[HTTP],
        "package example:proxy@1.0.0; world proxy {
            import wasi:http/outgoing-handler@0.2.0;
            export wasi:http/incoming-handler@0.2.0; }",
        &Meta {
            description: Some(description),
            license: Some("Apache-2.0"),
            authors: Some("Alice <alice@example.test>"),
            source: Some("https://git.example.test/proxy"),
            ..Meta::default()
        },
    )
}

/// A registry with `example:http-proxy` 1.0.0 (yanked) and 1.1.0 published
/// by `cairn publish`, and `example:signed` 1.0.0 pushed over OCI with a
/// cosign-style signature attached as a referrer. Answers the server, its
/// address and the record id and index of the 1.1.0 release.
struct Fixture {
    _scratch: tempfile::TempDir,
    server: Option<Child>,
    addr: SocketAddr,
    data: PathBuf,
    release: (RecordId, u64),
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            stop(server);
        }
    }
}

fn sha256(bytes: &[u8]) -> String {
    Hash::of(bytes).to_string()
}

fn fixture() -> Fixture {
    let scratch = tempfile::tempdir().expect("scratch");
    let data = scratch.path().join("data");
    let addr = free_addr();
    let server = start(&data, addr, &[], Stdio::null());
    let url = format!("http://{addr}");
    let alice = publisher(scratch.path(), "alice", &url, &data, "publish:example/*");
    alice.write("v1.wasm", &proxy("An HTTP proxy that forwards requests"));
    alice.publish("v1.wasm", "example:http-proxy", "1.0.0");
    alice.write(
        "v11.wasm",
        &proxy("An HTTP proxy that forwards requests, faster"),
    );
    let published = alice.publish("v11.wasm", "example:http-proxy", "1.1.0");
    let record: RecordId = published["recordId"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .expect("record id");
    let index = published["registryIndex"].as_u64().expect("index");
    alice.ok(&["yank", "example:http-proxy@1.0.0", "--yes"]);

    // Over OCI: the account's own key signs, so it maintains the package
    // and may attach a signature to the release.
    let token = publish_token(&data, "publish:example/*");
    let oci = Publisher {
        addr,
        bearer: format!("Bearer {token}"),
        key: PrivateKey::generate(),
        observe: |_| {},
    };
    let signed = component(
        &[HTTP],
        "package example:signed@1.0.0; world signed { export wasi:http/incoming-handler@0.2.0; }",
        &Meta {
            description: Some("A signed handler <script>alert(1)</script> & more"),
            license: Some("MIT"),
            ..Meta::default()
        },
    );
    let (release_digest, _) = oci
        .oci_push("example/signed", &signed)
        .expect("OCI push of example:signed");
    let auth = [("authorization", oci.bearer.as_str())];
    let release = request(
        addr,
        "GET",
        "/v2/example/signed/manifests/1.0.0",
        &auth,
        b"",
    )
    .expect("the release manifest");
    assert_eq!(release.status, 200);
    assert_eq!(sha256(&release.body), release_digest);
    // A cosign signature (ECDSA P-256, DER, over the simple-signing
    // payload naming the release's manifest) by a key the operator trusts
    // for the namespace.
    let signer = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let public_pem = {
        use p256::pkcs8::EncodePublicKey;
        signer
            .verifying_key()
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .expect("PEM")
    };
    let admin = format!("Bearer {}", common::admin_token(&data));
    let trusted = request(
        addr,
        "POST",
        "/cairn/v1/admin/namespaces/example/keys",
        &[
            ("authorization", admin.as_str()),
            ("content-type", "application/json"),
        ],
        json!({ "key": public_pem, "name": "release-bot" })
            .to_string()
            .as_bytes(),
    )
    .expect("trust the key");
    assert!(
        trusted.status < 300,
        "{}",
        String::from_utf8_lossy(&trusted.body)
    );
    let payload = json!({
        "critical": {
            "identity": { "docker-reference": "example/signed" },
            "image": { "docker-manifest-digest": release_digest },
            "type": "cosign container image signature",
        },
        "optional": null,
    })
    .to_string();
    let payload = payload.as_bytes();
    let signature_b64 = {
        use base64::Engine;
        use p256::ecdsa::signature::Signer;
        let signed: p256::ecdsa::Signature = signer.sign(payload);
        base64::engine::general_purpose::STANDARD.encode(signed.to_der().as_bytes())
    };
    for blob in [&b"{}"[..], payload] {
        let pushed = request(
            addr,
            "POST",
            &format!("/v2/example/signed/blobs/uploads/?digest={}", sha256(blob)),
            &auth,
            blob,
        )
        .expect("blob push");
        assert_eq!(
            pushed.status,
            201,
            "{}",
            String::from_utf8_lossy(&pushed.body)
        );
    }
    let signature = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "artifactType": COSIGN_SIG,
        "config": { "mediaType": EMPTY, "digest": sha256(b"{}"), "size": 2 },
        "layers": [{
            "mediaType": SIMPLE_SIGNING,
            "digest": sha256(payload),
            "size": payload.len(),
            "annotations": { "dev.cosignproject.cosign/signature": signature_b64 },
        }],
        "subject": { "mediaType": MANIFEST, "digest": release_digest, "size": release.body.len() },
    })
    .to_string();
    let mut headers = auth.to_vec();
    headers.push(("content-type", MANIFEST));
    let pushed = request(
        addr,
        "PUT",
        &format!(
            "/v2/example/signed/manifests/{}",
            sha256(signature.as_bytes())
        ),
        &headers,
        signature.as_bytes(),
    )
    .expect("signature push");
    assert_eq!(
        pushed.status,
        201,
        "{}",
        String::from_utf8_lossy(&pushed.body)
    );
    wait_for("the signature in the attestation log", || {
        get_json(addr, "/v1/attestations/example:signed")["records"]
            .as_array()
            .is_some_and(|r| r.len() == 1)
    });
    // Six records: the operator's, three of example:http-proxy, one of
    // example:signed, the signature's; all under a checkpoint.
    wait_for("a checkpoint of every record", || {
        get_json(addr, "/v1/fetch/checkpoint")["contents"]["logLength"].as_u64() == Some(6)
    });
    wait_for("the index to catch up", || {
        get_json(addr, "/cairn/v1/search?per-page=100")["total"].as_u64() == Some(2)
    });
    Fixture {
        _scratch: scratch,
        server: Some(server),
        addr,
        data,
        release: (record, index),
    }
}

/// The value of attribute `name` in the start tag at the beginning of
/// `tag`.
fn attr<'a>(tag: &'a str, name: &str) -> &'a str {
    let head = &tag[..tag.find('>').expect("a tag")];
    let start = head
        .find(&format!(" {name}=\""))
        .unwrap_or_else(|| panic!("no {name} in {head}"))
        + name.len()
        + 3;
    let len = head[start..].find('"').expect("closing quote");
    &head[start..start + len]
}

fn hash_hex(hex: &str) -> Hash {
    Hash::from_str(&format!("sha256:{hex}")).expect("a hash")
}

fn html(addr: SocketAddr, path: &str) -> (u16, String) {
    let answer = get(addr, path);
    (
        answer.status,
        String::from_utf8_lossy(&answer.body).into_owned(),
    )
}

#[test]
fn the_log_explorer_shows_proof_steps_that_lead_to_the_checkpoint_root() {
    let f = fixture();
    let addr = f.addr;
    let checkpoint = get_json(addr, "/v1/fetch/checkpoint");
    let root = Hash::from_str(checkpoint["contents"]["logRoot"].as_str().expect("root"))
        .expect("root hash");
    let size = checkpoint["contents"]["logLength"]
        .as_u64()
        .expect("length");
    assert!(size > f.release.1);

    for index in 0..size {
        let (status, page) = html(addr, &format!("/log/{index}"));
        assert_eq!(status, 200, "{page}");
        let ol = &page[page.find("<ol id=\"proof\"").expect("the proof")..];
        assert_eq!(attr(ol, "data-index"), index.to_string());
        assert_eq!(attr(ol, "data-size"), size.to_string());
        assert_eq!(hash_hex(attr(ol, "data-root")), root);
        let bytes = hex::decode(attr(ol, "data-leaf-bytes")).expect("hex");
        let leaf = hash_leaf(&bytes);
        assert_eq!(hash_hex(attr(ol, "data-leaf-hash")), leaf);
        if index == f.release.1 {
            // The leaf is the release record's, as clients hash it.
            let name: PackageName = "example:http-proxy".parse().expect("name");
            let expected = LogLeaf {
                log_id: LogId::package(&name),
                record_id: f.release.0,
            };
            assert_eq!(bytes, expected.encode());
            assert!(page.contains("release 1.1.0"), "{page}");
            assert!(page.contains("/packages/example:http-proxy"), "{page}");
        }
        // Each step hashes the two shown, one of them the hash so far; the
        // last is the checkpoint's root.
        let end = ol.find("</ol>").expect("end of the proof");
        let mut current = leaf;
        let mut siblings = Vec::new();
        for step in ol[..end].split("<li ").skip(1) {
            let step = format!(" {step}");
            let sibling = hash_hex(attr(&step, "data-sibling"));
            let left = hash_hex(attr(&step, "data-left"));
            let right = hash_hex(attr(&step, "data-right"));
            let result = hash_hex(attr(&step, "data-result"));
            assert!(
                (left, right) == (sibling, current) || (left, right) == (current, sibling),
                "step of record {index} does not start from the hash so far"
            );
            assert_eq!(hash_branch(&left, &right), result);
            current = result;
            siblings.push(sibling);
        }
        assert_eq!(current, root, "record {index}: the steps end elsewhere");
        cairn_transparency::log::rfc9162::verify_inclusion(index, size, &leaf, &root, &siblings)
            .expect("an RFC 9162 inclusion proof");
        assert!(page.contains("<p class=\"ok\">The path leads to"), "{page}");
    }

    // The log page lists the newest records; a package page lists its
    // records, keys, signatures; a namespace page its packages.
    let (status, log) = html(addr, "/log");
    assert_eq!(status, 200);
    assert!(
        log.contains(&format!("href=\"/log/{}\"", size - 1)),
        "{log}"
    );
    assert!(log.contains("yank 1.0.0"), "{log}");
    assert!(log.contains("cosign signature"), "{log}");
    let (_, proxy) = html(addr, "/packages/example:http-proxy");
    assert!(
        proxy.contains("<span class=\"yanked\">yanked</span>"),
        "{proxy}"
    );
    assert!(proxy.contains(&format!("href=\"/log/{}\"", f.release.1)));
    assert!(proxy.contains("Keys and permissions"));
    assert!(proxy.contains("release, yank"), "{proxy}");
    assert!(proxy.contains("wasi:http/incoming-handler@0.2.0"));
    assert!(proxy.contains("href=\"/namespaces/example\""));
    assert!(proxy.contains("cairn get example:http-proxy@1.1.0"));
    let (_, signed) = html(addr, "/packages/example:signed");
    assert!(signed.contains("<td>cosign signature</td>"), "{signed}");
    assert!(
        signed.contains("verified</strong> by trusted key <code"),
        "the verdict is shown: {signed}"
    );
    // The search form's "signed only" finds it, marked.
    wait_for("the index to see the signature", || {
        String::from_utf8_lossy(&get(addr, "/search?signed=true").body).contains("(signed)")
    });
    let found = String::from_utf8_lossy(&get(addr, "/search?signed=true").body).into_owned();
    assert!(found.contains("1 package match"), "{found}");
    assert!(found.contains("example:signed"), "{found}");
    // The log explorer names the package an attestation record is about.
    let log = String::from_utf8_lossy(&get(addr, "/log").body).into_owned();
    assert!(
        log.contains("attestations of <a href=\"/packages/example:signed#attestations\">"),
        "{log}"
    );
    assert!(signed.contains(COSIGN_SIG));
    // What a package says of itself is escaped.
    assert!(
        signed.contains("A signed handler &lt;script&gt;alert(1)&lt;/script&gt; &amp; more"),
        "{signed}"
    );
    assert!(!signed.contains("<script>alert"), "{signed}");
    let (_, home) = html(addr, "/");
    assert!(home.contains("href=\"/namespaces/example\""), "{home}");
    assert!(home.contains("href=\"/log\""), "{home}");
    let (status, ns) = html(addr, "/namespaces/example");
    assert_eq!(status, 200);
    assert!(ns.contains("Defined here"), "{ns}");
    assert!(ns.contains("/packages/example:http-proxy") && ns.contains("/packages/example:signed"));

    // A namespace imported from another registry says so; the operator's
    // record of it is in the log.
    let imported = admin_command(
        &[
            "namespace",
            "import",
            "faraway",
            "--from",
            "https://registry.example.test",
        ],
        &format!("http://{addr}"),
        &f.data,
    );
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    wait_for("the import record in the log explorer", || {
        html(addr, "/log")
            .1
            .contains("import namespace faraway from https://registry.example.test")
    });
    let (status, faraway) = html(addr, "/namespaces/faraway");
    assert_eq!(status, 200, "{faraway}");
    assert!(
        faraway.contains("Imported from <code>https://registry.example.test</code>"),
        "{faraway}"
    );

    // Bad paths: a page naming the problem, nothing else.
    for (path, status, says) in [
        ("/log/x", 400, "is not a registry index"),
        ("/log/99999", 404, "has no record 99999"),
        ("/log?before=x", 400, "is not a registry index"),
        ("/packages/nope", 400, "is not a package name"),
        ("/packages/example:none", 404, "is not in this registry"),
        (
            "/packages/example:http-proxy?records-after=x",
            400,
            "records-after",
        ),
        ("/namespaces/Bad_Name", 400, "is not a namespace"),
        ("/namespaces/elsewhere", 404, "is not defined"),
        ("/namespaces/example?page=0", 400, "is not a page number"),
    ] {
        let (got, page) = html(addr, path);
        assert_eq!(got, status, "{path}: {page}");
        assert!(page.contains(says), "{path}: {page}");
    }
    // Values from a package are escaped.
    let (_, page) = html(addr, "/log/%3Cscript%3E");
    assert!(!page.contains("<script>"), "{page}");
}

/// Starts `chromedriver` on a free port and waits until it listens.
fn chromedriver(path: &Path) -> (Child, SocketAddr) {
    let addr = free_addr();
    let child = Command::new(path)
        .arg(format!("--port={}", addr.port()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    (child, addr)
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("browser");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

#[test]
fn in_chromium_a_person_searches_opens_a_package_and_sees_a_proof_verified() {
    let test = "in_chromium_a_person_searches_opens_a_package_and_sees_a_proof_verified";
    let Some(chromium) = require(test, Tool::CHROMIUM) else {
        return;
    };
    let Some(driver_path) = require(test, Tool::CHROMEDRIVER) else {
        return;
    };
    let f = fixture();
    let (mut driver, driver_addr) = chromedriver(&driver_path);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = runtime.block_on(drive(&chromium, driver_addr, f.addr, f.release.1));
    let _ = driver.kill();
    let _ = driver.wait();
    if let Err(e) = result {
        panic!("{e}");
    }
}

async fn drive(
    chromium: &Path,
    driver: SocketAddr,
    registry: SocketAddr,
    release_index: u64,
) -> Result<(), String> {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium.to_string_lossy(),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,1400"],
        }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://{driver}"))
        .await
        .map_err(|e| format!("a WebDriver session: {e}"))?;
    let outcome = session(&client, registry, release_index).await;
    let _ = client.close().await;
    outcome
}

async fn shot(client: &fantoccini::Client, name: &str) -> Result<(), String> {
    let png = client.screenshot().await.map_err(|e| e.to_string())?;
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(screenshots().join(name), png).map_err(|e| e.to_string())
}

async fn text_of(client: &fantoccini::Client, css: &str) -> Result<String, String> {
    let element = client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
        .map_err(|e| format!("`{css}`: {e}"))?;
    element.text().await.map_err(|e| e.to_string())
}

async fn session(
    client: &fantoccini::Client,
    registry: SocketAddr,
    release_index: u64,
) -> Result<(), String> {
    let base = format!("http://{registry}");
    let e = |e: fantoccini::error::CmdError| e.to_string();

    // Words, typed into the form and sent with Enter.
    client.goto(&format!("{base}/search")).await.map_err(e)?;
    let words = client.find(Locator::Id("q")).await.map_err(e)?;
    words.send_keys("proxy").await.map_err(e)?;
    let enter: char = fantoccini::key::Key::Enter.into();
    words.send_keys(&enter.to_string()).await.map_err(e)?;
    let hits = text_of(client, "ul.hits").await?;
    assert!(hits.contains("example:http-proxy"), "{hits}");
    assert!(!hits.contains("example:signed"), "{hits}");
    let url = client.current_url().await.map_err(e)?;
    assert!(url.as_str().contains("q=proxy"), "{url}");
    shot(client, "search.png").await?;

    // By WIT export: both packages export the handler.
    client.goto(&format!("{base}/search")).await.map_err(e)?;
    let exports = client.find(Locator::Id("exports")).await.map_err(e)?;
    exports
        .send_keys("wasi:http/incoming-handler@0.2")
        .await
        .map_err(e)?;
    client
        .find(Locator::Css("form[role=search] button[type=submit]"))
        .await
        .map_err(e)?
        .click()
        .await
        .map_err(e)?;
    let hits = text_of(client, "ul.hits").await?;
    assert!(
        hits.contains("example:http-proxy") && hits.contains("example:signed"),
        "{hits}"
    );
    shot(client, "search-exports.png").await?;

    // The package page, from its hit: the yanked version marked.
    client
        .find(Locator::LinkText("example:http-proxy"))
        .await
        .map_err(e)?
        .click()
        .await
        .map_err(e)?;
    let yanked = text_of(client, "span.yanked").await?;
    assert_eq!(yanked, "yanked");
    let page = text_of(client, "main").await?;
    assert!(page.contains("Apache-2.0"), "{page}");
    assert!(page.contains("wasi:http/outgoing-handler@0.2.0"), "{page}");
    assert!(page.contains("release 1.1.0"), "{page}");
    shot(client, "package.png").await?;

    // The signature on the signed package's page.
    client
        .goto(&format!("{base}/packages/example:signed"))
        .await
        .map_err(e)?;
    let signature = text_of(client, "tr.attestation").await?;
    assert!(signature.contains("cosign signature"), "{signature}");
    assert!(
        signature.contains("verified by trusted key release-bot"),
        "{signature}"
    );
    shot(client, "signature.png").await?;

    // The release's record in the log explorer: the browser checks it.
    client
        .goto(&format!("{base}/packages/example:http-proxy"))
        .await
        .map_err(e)?;
    client
        .find(Locator::Css(&format!(
            "#records + table a[href='/log/{release_index}']"
        )))
        .await
        .map_err(e)?
        .click()
        .await
        .map_err(e)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let verdict = loop {
        let verdict = text_of(client, "#browser-verdict").await?;
        if verdict.starts_with("Verified") || verdict.starts_with("Mismatch") {
            break verdict;
        }
        if Instant::now() > deadline {
            return Err(format!("no verdict from the browser: {verdict}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(verdict.starts_with("Verified in your browser"), "{verdict}");
    shot(client, "log-entry.png").await?;

    // A tampered step is caught by the same script.
    client
        .execute(
            "var li = document.querySelector('#proof li'); \
             if (li) { li.dataset.sibling = li.dataset.sibling.replace(/^./, function (c) { return c === '0' ? '1' : '0'; }); }",
            vec![],
        )
        .await
        .map_err(e)?;
    // The page's own script, run again on the tampered proof.
    client
        .execute(
            "eval(document.querySelector('body > script').textContent); return null;",
            vec![],
        )
        .await
        .map_err(e)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let verdict = text_of(client, "#browser-verdict").await?;
        if verdict.starts_with("Mismatch") {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("a tampered sibling went unnoticed: {verdict}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    client.goto(&format!("{base}/log")).await.map_err(e)?;
    let log = text_of(client, "main").await?;
    assert!(log.contains("Recent checkpoints"), "{log}");
    shot(client, "log.png").await?;
    client
        .goto(&format!("{base}/namespaces/example"))
        .await
        .map_err(e)?;
    let ns = text_of(client, "main").await?;
    assert!(ns.contains("example:signed"), "{ns}");
    shot(client, "namespace.png").await?;
    Ok(())
}
